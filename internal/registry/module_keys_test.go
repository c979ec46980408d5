package registry_test

import (
	"bytes"
	"encoding/base64"
	"testing"
	"time"

	"github.com/ferry-iot/ferry/internal/fault"
	"github.com/ferry-iot/ferry/internal/registry"
)

func TestModuleKeys(t *testing.T) {
	svc, _ := newService(t, registry.Options{})
	ctx := t.Context()
	_, err := svc.Create(ctx, registry.Device{DeviceID: "d1"})
	must(t, err)
	m, err := svc.CreateModule(ctx, registry.Module{DeviceID: "d1", ModuleID: "m1"})
	must(t, err)
	wantP, _ := base64.StdEncoding.DecodeString(m.Authentication.SymmetricKey.PrimaryKey)
	wantS, _ := base64.StdEncoding.DecodeString(m.Authentication.SymmetricKey.SecondaryKey)
	for range 2 { // miss, then hit
		p, s, st, err := svc.ModuleKeys(ctx, "d1", "m1")
		must(t, err)
		if !bytes.Equal(p, wantP) || !bytes.Equal(s, wantS) || st != registry.StatusEnabled {
			t.Fatalf("ModuleKeys = %x %x %s, want the decoded keys and enabled", p, s, st)
		}
		p[0] ^= 0xff // the caller owns the slices
	}
	// The device's own keys are not the module's.
	dp, _, _, err := svc.Keys(ctx, "d1")
	must(t, err)
	if bytes.Equal(dp, wantP) {
		t.Error("module and device share a key")
	}
	_, err = svc.CreateModule(ctx, registry.Module{DeviceID: "d1", ModuleID: "ca", Authentication: registry.Authentication{Type: registry.AuthCA}})
	must(t, err)
	p, s, st, err := svc.ModuleKeys(ctx, "d1", "ca")
	if err != nil || p != nil || s != nil || st != registry.StatusEnabled {
		t.Errorf("ModuleKeys of a CA module = %x, %x, %s, %v; want no keys", p, s, st, err)
	}
	for _, ids := range [][2]string{{"d1", "ghost"}, {"ghost", "m1"}, {"d1", ""}, {"", "m1"}} {
		_, _, _, err = svc.ModuleKeys(ctx, ids[0], ids[1])
		wantFault(t, err, fault.NotFound)
	}
}

// TestModuleKeysInvalidation checks that module writes and writes of the
// parent device are seen by the next ModuleKeys call, while a change behind
// the Service's back (another node) is not, until the TTL.
func TestModuleKeysInvalidation(t *testing.T) {
	c := newClock()
	svc, db := newService(t, registry.Options{Now: c.Now, CacheTTL: time.Minute})
	ctx := t.Context()
	d, err := svc.Create(ctx, registry.Device{DeviceID: "d1"})
	must(t, err)
	m, err := svc.CreateModule(ctx, registry.Module{DeviceID: "d1", ModuleID: "m1"})
	must(t, err)
	old, _, _, err := svc.ModuleKeys(ctx, "d1", "m1")
	must(t, err)

	key := func(b byte) string { return base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{b}, 32)) }
	sas := func(b byte) registry.Authentication {
		return registry.Authentication{Type: registry.AuthSAS, SymmetricKey: &registry.SymmetricKey{PrimaryKey: key(b), SecondaryKey: key(b)}}
	}

	// Behind the Service's back: the cache still answers, until the TTL.
	behind := *m
	behind.Authentication, behind.ETag = sas(9), "behind"
	must(t, db.UpdateModule(ctx, &behind, "*"))
	p, _, _, err := svc.ModuleKeys(ctx, "d1", "m1")
	must(t, err)
	if !bytes.Equal(p, old) {
		t.Errorf("cache not used: got %x", p)
	}
	c.Advance(2 * time.Minute)
	p, _, _, err = svc.ModuleKeys(ctx, "d1", "m1")
	must(t, err)
	if p[0] != 9 {
		t.Errorf("after the TTL: got %x, want the key written behind the back", p)
	}

	// UpdateModule invalidates.
	_, err = svc.UpdateModule(ctx, registry.Module{DeviceID: "d1", ModuleID: "m1", Authentication: sas(7)}, "*")
	must(t, err)
	p, _, _, err = svc.ModuleKeys(ctx, "d1", "m1")
	must(t, err)
	if p[0] != 7 {
		t.Errorf("after UpdateModule: got %x", p)
	}

	// Updating the device invalidates its modules: the status is the device's.
	d.Status = registry.StatusDisabled
	_, err = svc.Update(ctx, *d, "*")
	must(t, err)
	_, _, st, err := svc.ModuleKeys(ctx, "d1", "m1")
	must(t, err)
	if st != registry.StatusDisabled {
		t.Errorf("after disabling the device: status %s", st)
	}

	// DeleteModule invalidates.
	must(t, svc.DeleteModule(ctx, "d1", "m1", "*"))
	_, _, _, err = svc.ModuleKeys(ctx, "d1", "m1")
	wantFault(t, err, fault.NotFound)

	// Deleting the device invalidates its modules.
	_, err = svc.CreateModule(ctx, registry.Module{DeviceID: "d1", ModuleID: "m2"})
	must(t, err)
	_, _, _, err = svc.ModuleKeys(ctx, "d1", "m2")
	must(t, err)
	must(t, svc.Delete(ctx, "d1", "*"))
	_, _, _, err = svc.ModuleKeys(ctx, "d1", "m2")
	wantFault(t, err, fault.NotFound)
}
