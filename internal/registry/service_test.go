package registry_test

import (
	"encoding/base64"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ferry-iot/ferry/internal/fault"
	"github.com/ferry-iot/ferry/internal/registry"
)

// key returns a base64 key of n bytes.
func key(n int, fill byte) string {
	return base64.StdEncoding.EncodeToString([]byte(strings.Repeat(string(rune(fill)), n)))
}

func TestCreateDefaults(t *testing.T) {
	clk := newClock()
	svc, _ := newService(t, registry.Options{Now: clk.Now})
	ctx := t.Context()

	// What Node's Registry.create sends when the caller gives only an id.
	d, err := svc.Create(ctx, registry.Device{
		DeviceID:       "d1",
		Authentication: registry.Authentication{SymmetricKey: &registry.SymmetricKey{}},
		// Server-owned fields from the caller are ignored.
		ETag: "mine", GenerationID: "1", ConnectionState: registry.Connected, CloudToDeviceMessageCount: 9,
	})
	must(t, err)
	if d.Status != registry.StatusEnabled || d.Authentication.Type != registry.AuthSAS {
		t.Errorf("status %q, auth %q; want enabled, sas", d.Status, d.Authentication.Type)
	}
	if d.ConnectionState != registry.Disconnected || d.CloudToDeviceMessageCount != 0 {
		t.Errorf("connectionState %q, c2d count %d; want Disconnected, 0", d.ConnectionState, d.CloudToDeviceMessageCount)
	}
	if d.ETag == "" || d.ETag == "mine" {
		t.Errorf("etag = %q, want a generated one", d.ETag)
	}
	if _, err := base64.StdEncoding.DecodeString(d.ETag); err != nil {
		t.Errorf("etag %q is not base64", d.ETag)
	}
	if len(d.GenerationID) != 18 || strings.Trim(d.GenerationID, "0123456789") != "" {
		t.Errorf("generationId = %q, want 18 digits", d.GenerationID)
	}
	if !d.StatusUpdatedTime.Equal(clk.Now()) || !d.ConnectionStateUpdatedTime.Equal(clk.Now()) || !d.LastActivityTime.IsZero() {
		t.Errorf("times = %v, %v, %v; want now, now, zero", d.StatusUpdatedTime, d.ConnectionStateUpdatedTime, d.LastActivityTime)
	}
	for name, k := range map[string]string{"primary": d.Authentication.SymmetricKey.PrimaryKey, "secondary": d.Authentication.SymmetricKey.SecondaryKey} {
		b, err := base64.StdEncoding.DecodeString(k)
		if err != nil || len(b) != registry.KeyLen {
			t.Errorf("%s key %q: %d bytes, %v; want %d random bytes in base64", name, k, len(b), err, registry.KeyLen)
		}
	}
	if d.Authentication.SymmetricKey.PrimaryKey == d.Authentication.SymmetricKey.SecondaryKey {
		t.Error("the generated keys are equal")
	}

	got, err := svc.Get(ctx, "d1")
	must(t, err)
	if got.ETag != d.ETag || got.Authentication.SymmetricKey.PrimaryKey != d.Authentication.SymmetricKey.PrimaryKey {
		t.Errorf("Get returned %+v, want what Create returned", got)
	}

	// No authentication at all, .NET-style capitalization.
	d2, err := svc.Create(ctx, registry.Device{DeviceID: "d2", Status: "Disabled"})
	must(t, err)
	if d2.Status != registry.StatusDisabled || d2.Authentication.SymmetricKey == nil || d2.Authentication.SymmetricKey.PrimaryKey == "" {
		t.Errorf("d2 = status %q, auth %+v; want disabled with generated keys", d2.Status, d2.Authentication)
	}
	if d2.GenerationID == d.GenerationID {
		t.Error("two devices got the same generationId")
	}

	_, err = svc.Create(ctx, registry.Device{DeviceID: "d1"})
	wantFault(t, err, fault.Conflict, "d1", "already exists")
}

func TestCreateGivenKeys(t *testing.T) {
	svc, _ := newService(t, registry.Options{})
	ctx := t.Context()
	sk := &registry.SymmetricKey{PrimaryKey: key(16, 'a'), SecondaryKey: key(64, 'b')}
	d, err := svc.Create(ctx, registry.Device{DeviceID: "given",
		Authentication: registry.Authentication{Type: registry.AuthSAS, SymmetricKey: sk}})
	must(t, err)
	if *d.Authentication.SymmetricKey != *sk {
		t.Errorf("keys = %+v, want the given %+v", *d.Authentication.SymmetricKey, *sk)
	}
	// Equal primary and secondary keys are allowed, as in Azure.
	_, err = svc.Create(ctx, registry.Device{DeviceID: "same", Authentication: registry.Authentication{
		SymmetricKey: &registry.SymmetricKey{PrimaryKey: key(32, 'c'), SecondaryKey: key(32, 'c')}}})
	must(t, err)
	// Only the missing key is generated.
	d, err = svc.Create(ctx, registry.Device{DeviceID: "half", Authentication: registry.Authentication{
		SymmetricKey: &registry.SymmetricKey{PrimaryKey: key(32, 'd')}}})
	must(t, err)
	if d.Authentication.SymmetricKey.PrimaryKey != key(32, 'd') || d.Authentication.SymmetricKey.SecondaryKey == "" {
		t.Errorf("keys = %+v, want the given primary and a generated secondary", *d.Authentication.SymmetricKey)
	}
}

func TestCreateRefusesBadInput(t *testing.T) {
	svc, _ := newService(t, registry.Options{})
	sas := func(primary, secondary string) registry.Authentication {
		return registry.Authentication{SymmetricKey: &registry.SymmetricKey{PrimaryKey: primary, SecondaryKey: secondary}}
	}
	tests := []struct {
		name string
		d    registry.Device
		want []string
	}{
		{"bad id", registry.Device{DeviceID: "a/b"}, []string{"'/'"}},
		{"primary not base64", registry.Device{DeviceID: "k", Authentication: sas("not base64!", "")}, []string{"primaryKey", "base64"}},
		{"secondary not base64", registry.Device{DeviceID: "k", Authentication: sas("", "%%%")}, []string{"secondaryKey", "base64"}},
		{"primary too short", registry.Device{DeviceID: "k", Authentication: sas(key(15, 'a'), "")}, []string{"primaryKey", "15 bytes", "16 to 64"}},
		{"secondary too long", registry.Device{DeviceID: "k", Authentication: sas("", key(65, 'a'))}, []string{"secondaryKey", "65 bytes"}},
		{"url-safe base64", registry.Device{DeviceID: "k", Authentication: sas("-_-_-_-_-_-_-_-_-_-_-_-_", "")}, []string{"primaryKey", "base64"}},
		{"bad status", registry.Device{DeviceID: "k", Status: "paused"}, []string{"paused"}},
		{"bad auth type", registry.Device{DeviceID: "k", Authentication: registry.Authentication{Type: "none"}}, []string{"none"}},
		{"selfSigned without thumbprint", registry.Device{DeviceID: "k", Authentication: registry.Authentication{Type: registry.AuthSelfSigned}}, []string{"primaryThumbprint", "required"}},
		{"bad thumbprint", registry.Device{DeviceID: "k", Authentication: registry.Authentication{Type: registry.AuthSelfSigned,
			X509Thumbprint: registry.X509Thumbprint{PrimaryThumbprint: ptr("xyz")}}}, []string{"primaryThumbprint", "hex"}},
		{"bad model id", registry.Device{DeviceID: "k", ModelID: "thermostat"}, []string{"modelId", "dtmi:"}},
		{"long status reason", registry.Device{DeviceID: "k", StatusReason: ptr(strings.Repeat("r", 129))}, []string{"statusReason"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := svc.Create(t.Context(), tt.d)
			wantFault(t, err, fault.Invalid, tt.want...)
		})
	}
	if n, err := svc.Count(t.Context()); err != nil || n != 0 {
		t.Errorf("after refused creates: %d devices, %v; want 0", n, err)
	}
}

func TestCreateX509(t *testing.T) {
	svc, _ := newService(t, registry.Options{})
	ctx := t.Context()
	tp := strings.Repeat("AB", 32) // SHA-256
	d, err := svc.Create(ctx, registry.Device{DeviceID: "x", Authentication: registry.Authentication{
		Type:           "selfsigned",
		SymmetricKey:   &registry.SymmetricKey{PrimaryKey: "ignored"},
		X509Thumbprint: registry.X509Thumbprint{PrimaryThumbprint: &tp, SecondaryThumbprint: ptr("")},
	}})
	must(t, err)
	a := d.Authentication
	if a.Type != registry.AuthSelfSigned || a.SymmetricKey != nil || *a.X509Thumbprint.PrimaryThumbprint != tp || a.X509Thumbprint.SecondaryThumbprint != nil {
		t.Errorf("authentication = %+v, want selfSigned with only the primary thumbprint", a)
	}
	d, err = svc.Create(ctx, registry.Device{DeviceID: "ca", Authentication: registry.Authentication{Type: registry.AuthCA}})
	must(t, err)
	if d.Authentication.SymmetricKey != nil || d.Authentication.X509Thumbprint.PrimaryThumbprint != nil {
		t.Errorf("CA authentication = %+v, want no keys and no thumbprints", d.Authentication)
	}
}

func TestUpdate(t *testing.T) {
	clk := newClock()
	svc, _ := newService(t, registry.Options{Now: clk.Now})
	ctx := t.Context()
	orig, err := svc.Create(ctx, registry.Device{DeviceID: "u1"})
	must(t, err)
	clk.Advance(time.Minute)
	must(t, svc.SetConnected(ctx, "u1", true))
	clk.Advance(time.Minute)

	// A PUT carries the whole identity; what it omits is reset, keys are
	// generated again when empty, and server-owned fields are kept.
	upd, err := svc.Update(ctx, registry.Device{
		DeviceID:     "u1",
		Status:       registry.StatusDisabled,
		StatusReason: ptr("lost"),
		Capabilities: registry.Capabilities{IotEdge: true},
		ModelID:      "dtmi:com:example:Thermostat;1",
		GenerationID: "999", ConnectionState: registry.Disconnected, ETag: "ignored",
	}, `"`+orig.ETag+`"`) // quoted, as azure-iothub sends If-Match
	must(t, err)
	if upd.GenerationID != orig.GenerationID || upd.ETag == orig.ETag || upd.ETag == "ignored" {
		t.Errorf("generationId %q etag %q; want %q kept and a new etag", upd.GenerationID, upd.ETag, orig.GenerationID)
	}
	if upd.ConnectionState != registry.Connected {
		t.Errorf("connectionState = %q, want Connected kept", upd.ConnectionState)
	}
	if upd.Status != registry.StatusDisabled || *upd.StatusReason != "lost" || !upd.Capabilities.IotEdge || upd.ModelID == "" {
		t.Errorf("update did not replace the identity fields: %+v", upd)
	}
	if !upd.StatusUpdatedTime.Equal(clk.Now()) {
		t.Errorf("statusUpdatedTime = %v, want now (%v) since the status changed", upd.StatusUpdatedTime, clk.Now())
	}
	if upd.Authentication.SymmetricKey.PrimaryKey == orig.Authentication.SymmetricKey.PrimaryKey {
		t.Error("empty keys in an update were not regenerated")
	}
	got, err := svc.Get(ctx, "u1")
	must(t, err)
	if got.ETag != upd.ETag || got.Status != registry.StatusDisabled {
		t.Errorf("stored device = %+v, want the update", got)
	}

	// Same status: StatusUpdatedTime stays.
	clk.Advance(time.Minute)
	upd2, err := svc.Update(ctx, registry.Device{DeviceID: "u1", Status: registry.StatusDisabled,
		Authentication: upd.Authentication}, "*")
	must(t, err)
	if !upd2.StatusUpdatedTime.Equal(upd.StatusUpdatedTime) {
		t.Errorf("statusUpdatedTime moved to %v without a status change", upd2.StatusUpdatedTime)
	}
	if upd2.Authentication.SymmetricKey.PrimaryKey != upd.Authentication.SymmetricKey.PrimaryKey {
		t.Error("given keys were not kept")
	}

	// A stale etag changes nothing.
	_, err = svc.Update(ctx, registry.Device{DeviceID: "u1"}, orig.ETag)
	wantFault(t, err, fault.PreconditionFailed)
	_, err = svc.Update(ctx, registry.Device{DeviceID: "ghost"}, "*")
	wantFault(t, err, fault.NotFound, "ghost")
	_, err = svc.Update(ctx, registry.Device{DeviceID: "u1", Authentication: registry.Authentication{
		SymmetricKey: &registry.SymmetricKey{PrimaryKey: "short"}}}, "*")
	wantFault(t, err, fault.Invalid, "primaryKey")
	if got, _ := svc.Get(ctx, "u1"); got.ETag != upd2.ETag {
		t.Error("a refused update changed the device")
	}
}

func TestDeleteAndList(t *testing.T) {
	svc, _ := newService(t, registry.Options{})
	ctx := t.Context()
	for i := range 5 {
		_, err := svc.Create(ctx, registry.Device{DeviceID: fmt.Sprintf("d%d", i)})
		must(t, err)
	}
	d2, _ := svc.Get(ctx, "d2")
	wantFault(t, svc.Delete(ctx, "d2", "c3RhbGU="), fault.PreconditionFailed)
	must(t, svc.Delete(ctx, "d2", `"`+d2.ETag+`"`))
	must(t, svc.Delete(ctx, "d3", ""))
	wantFault(t, svc.Delete(ctx, "d3", "*"), fault.NotFound, "d3")

	ds, err := svc.List(ctx, "", 0) // default limit
	must(t, err)
	if got := fmt.Sprint(idsOf(ds)); got != "[d0 d1 d4]" {
		t.Errorf("List = %s, want [d0 d1 d4]", got)
	}
	ds, err = svc.List(ctx, "d0", 1)
	must(t, err)
	if got := fmt.Sprint(idsOf(ds)); got != "[d1]" {
		t.Errorf("List(after d0, 1) = %s, want [d1]", got)
	}
	if n, err := svc.Count(ctx); err != nil || n != 3 {
		t.Errorf("Count = %d, %v; want 3", n, err)
	}
}

func TestListLimitCapped(t *testing.T) {
	svc, db := newService(t, registry.Options{})
	ctx := t.Context()
	for i := range registry.MaxListLimit + 5 {
		must(t, db.CreateDevice(ctx, &registry.Device{DeviceID: fmt.Sprintf("d%05d", i), Status: registry.StatusEnabled,
			ConnectionState: registry.Disconnected, Authentication: registry.Authentication{Type: registry.AuthCA}}))
	}
	ds, err := svc.List(ctx, "", 1_000_000)
	must(t, err)
	if len(ds) != registry.MaxListLimit {
		t.Errorf("List with a huge limit returned %d devices, want %d", len(ds), registry.MaxListLimit)
	}
	ds, err = svc.List(ctx, "", -1)
	must(t, err)
	if len(ds) != registry.DefaultListLimit {
		t.Errorf("List with limit -1 returned %d devices, want %d", len(ds), registry.DefaultListLimit)
	}
}

func TestSetConnected(t *testing.T) {
	clk := newClock()
	svc, _ := newService(t, registry.Options{Now: clk.Now})
	ctx := t.Context()
	d, err := svc.Create(ctx, registry.Device{DeviceID: "c1"})
	must(t, err)
	clk.Advance(time.Hour)
	must(t, svc.SetConnected(ctx, "c1", true))
	got, _ := svc.Get(ctx, "c1")
	if got.ConnectionState != registry.Connected || !got.LastActivityTime.Equal(clk.Now()) || got.ETag != d.ETag {
		t.Errorf("after connect: %s, activity %v, etag %q; want Connected, now, etag unchanged", got.ConnectionState, got.LastActivityTime, got.ETag)
	}
	wantFault(t, svc.SetConnected(ctx, "ghost", false), fault.NotFound)
}

func idsOf(ds []registry.Device) []string {
	ids := make([]string, len(ds))
	for i, d := range ds {
		ids[i] = d.DeviceID
	}
	return ids
}
