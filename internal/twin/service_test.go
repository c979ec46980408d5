package twin_test

import (
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/ferry-iot/ferry/internal/fault"
	"github.com/ferry-iot/ferry/internal/twin"
)

const zeroMeta = `{"$lastUpdated":"0001-01-01T00:00:00Z"}`

func TestGetFresh(t *testing.T) {
	e := newEnv(t, "d1")
	tw, err := e.svc.Get(t.Context(), "d1", "")
	must(t, err)
	got, err := twin.Render(tw, twin.DeviceFacts{Status: "enabled", ConnectionState: "Connected",
		AuthenticationType: "sas", ModelID: "dtmi:com:example:Thermostat;1"})
	must(t, err)
	wantJSON(t, "Render", got, `{"deviceId":"d1","etag":"AAAAAAAAAAE=","status":"enabled",
		"statusUpdateTime":"0001-01-01T00:00:00Z","connectionState":"Connected",
		"lastActivityTime":"0001-01-01T00:00:00Z","cloudToDeviceMessageCount":0,"authenticationType":"sas",
		"x509Thumbprint":{"primaryThumbprint":null,"secondaryThumbprint":null},
		"modelId":"dtmi:com:example:Thermostat;1","version":1,"tags":{},
		"properties":{"desired":{"$metadata":`+zeroMeta+`,"$version":1},
		"reported":{"$metadata":`+zeroMeta+`,"$version":1}}}`)
	wantJSON(t, "RenderDevice", twin.RenderDevice(tw), `{"desired":{"$version":1},"reported":{"$version":1}}`)

	mt, err := e.svc.Get(t.Context(), "d1", "m1")
	must(t, err)
	got, err = twin.Render(mt, twin.DeviceFacts{})
	must(t, err)
	if !strings.Contains(string(got), `"moduleId":"m1"`) {
		t.Errorf("module twin without moduleId: %s", got)
	}
	_, err = e.svc.Get(t.Context(), "nobody", "")
	if !fault.Is(err, fault.NotFound) {
		t.Errorf("Get of an unknown device = %v, want NotFound", err)
	}
}

func TestPatchReported(t *testing.T) {
	e := newEnv(t, "d1")
	ctx := t.Context()
	steps := []struct {
		patch, doc, meta string
		version          int64
	}{
		{`{"temp":{"value":21,"ac":200},"fw":"1.0","$version":1}`, `{"fw":"1.0","temp":{"ac":200,"value":21}}`,
			`{"$lastUpdated":"` + ts(1) + `","fw":{"$lastUpdated":"` + ts(1) + `"},"temp":{"$lastUpdated":"` + ts(1) +
				`","ac":{"$lastUpdated":"` + ts(1) + `"},"value":{"$lastUpdated":"` + ts(1) + `"}}}`, 2},
		{`{"temp":{"value":22},"fw":null}`, `{"temp":{"ac":200,"value":22}}`,
			`{"$lastUpdated":"` + ts(2) + `","temp":{"$lastUpdated":"` + ts(2) +
				`","ac":{"$lastUpdated":"` + ts(1) + `"},"value":{"$lastUpdated":"` + ts(2) + `"}}}`, 3},
		{`{"temp":5}`, `{"temp":5}`, `{"$lastUpdated":"` + ts(3) + `","temp":{"$lastUpdated":"` + ts(3) + `"}}`, 4},
		{`{}`, `{"temp":5}`, `{"$lastUpdated":"` + ts(3) + `","temp":{"$lastUpdated":"` + ts(3) + `"}}`, 4}, // no change
	}
	for i, s := range steps {
		v, err := e.svc.PatchReported(ctx, "d1", "", []byte(s.patch))
		must(t, err)
		if v != s.version {
			t.Errorf("step %d: reported version %d, want %d", i, v, s.version)
		}
		tw, err := e.svc.Get(ctx, "d1", "")
		must(t, err)
		wantJSON(t, fmt.Sprintf("step %d reported", i), tw.Reported.Doc, s.doc)
		wantJSON(t, fmt.Sprintf("step %d metadata", i), tw.Reported.Metadata, s.meta)
		if tw.Version != s.version || tw.ETag != twin.ETag(1) {
			t.Errorf("step %d: twin version %d etag %s; want %d and the first etag", i, tw.Version, tw.ETag, s.version)
		}
	}
	tw, err := e.svc.Get(ctx, "d1", "")
	must(t, err)
	wantJSON(t, "RenderDevice", twin.RenderDevice(tw), `{"desired":{"$version":1},"reported":{"temp":5,"$version":4}}`)
	if _, err := e.svc.PatchReported(ctx, "nobody", "", []byte(`{"a":1}`)); !fault.Is(err, fault.NotFound) {
		t.Errorf("PatchReported of an unknown device = %v, want NotFound", err)
	}
}

func TestPatchDesired(t *testing.T) {
	e := newEnv(t, "d1")
	ctx := t.Context()
	tw, dc, err := e.svc.PatchDesired(ctx, "d1", "", []byte(`{"tags":{"site":"A"},
		"properties":{"desired":{"rate":"5m","route":null},"reported":{"ignored":1}},"etag":"whatever"}`), `"AAAAAAAAAAE="`)
	must(t, err)
	if tw.Version != 2 || tw.Desired.Version != 2 || tw.TagsVersion != 2 || tw.ETag != twin.ETag(2) {
		t.Errorf("versions %d/%d/%d etag %s, want 2/2/2 %s", tw.Version, tw.Desired.Version, tw.TagsVersion, tw.ETag, twin.ETag(2))
	}
	wantJSON(t, "notification", dc.Body(), `{"rate":"5m","route":null,"$version":2}`)
	wantJSON(t, "tags", tw.Tags, `{"site":"A"}`)
	wantJSON(t, "desired metadata", tw.Desired.Metadata, `{"$lastUpdated":"`+ts(1)+`","$lastUpdatedVersion":2,
		"rate":{"$lastUpdated":"`+ts(1)+`","$lastUpdatedVersion":2}}`)
	wantJSON(t, "reported", tw.Reported.Doc, `{}`)

	// A stale etag changes nothing.
	_, _, err = e.svc.PatchDesired(ctx, "d1", "", []byte(`{"tags":{"site":"B"}}`), `"AAAAAAAAAAE="`)
	if fault.KindOf(err) != fault.PreconditionFailed {
		t.Fatalf("stale etag: %v, want PreconditionFailed", err)
	}
	// Tags only: no desired notification.
	tw, dc, err = e.svc.PatchDesired(ctx, "d1", "", []byte(`{"tags":{"site":"B"}}`), "*")
	must(t, err)
	if dc.Changed() || tw.Desired.Version != 2 || tw.TagsVersion != 3 || tw.ETag != twin.ETag(3) {
		t.Errorf("tags-only patch: changed=%v desired %d tags %d etag %s", dc.Changed(), tw.Desired.Version, tw.TagsVersion, tw.ETag)
	}
	// A reported patch leaves the etag.
	_, err = e.svc.PatchReported(ctx, "d1", "", []byte(`{"x":1}`))
	must(t, err)
	tw, err = e.svc.Get(ctx, "d1", "")
	must(t, err)
	if tw.ETag != twin.ETag(3) || tw.Version != 4 {
		t.Errorf("after a reported patch: etag %s version %d, want %s and 4", tw.ETag, tw.Version, twin.ETag(3))
	}
	for _, bad := range []string{`[]`, `{"tags":[1]}`, `{"properties":1}`, `{"properties":{"desired":"x"}}`} {
		_, _, err := e.svc.PatchDesired(ctx, "d1", "", []byte(bad), "")
		if !fault.Is(err, fault.Invalid) {
			t.Errorf("PatchDesired(%s) = %v, want Invalid", bad, err)
		}
	}
}

func TestReplace(t *testing.T) {
	e := newEnv(t, "d1")
	ctx := t.Context()
	_, _, err := e.svc.PatchDesired(ctx, "d1", "", []byte(`{"tags":{"a":1,"b":{"c":2}},"properties":{"desired":{"x":1,"y":{"z":2}}}}`), "")
	must(t, err)
	_, err = e.svc.PatchReported(ctx, "d1", "", []byte(`{"r":1}`))
	must(t, err)
	tw, dc, err := e.svc.Replace(ctx, "d1", "", []byte(`{"deviceId":"d1","tags":{"b":{}},
		"properties":{"desired":{"y":{"w":3},"n":null,"$metadata":{"$lastUpdated":"x"},"$version":2},"reported":{}}}`), twin.ETag(2))
	must(t, err)
	wantJSON(t, "tags", tw.Tags, `{"b":{}}`)
	wantJSON(t, "desired", tw.Desired.Doc, `{"y":{"w":3}}`)
	wantJSON(t, "reported", tw.Reported.Doc, `{"r":1}`)
	wantJSON(t, "notification", dc.Body(), `{"x":null,"y":{"w":3,"z":null},"$version":3}`)
	// Replacing with what is there is no change.
	tw2, dc, err := e.svc.Replace(ctx, "d1", "", []byte(`{"tags":{"b":{}},"properties":{"desired":{"y":{"w":3}}}}`), "")
	must(t, err)
	if dc.Changed() || tw2 != nil && tw2.Version != tw.Version {
		t.Errorf("identical replace: changed=%v", dc.Changed())
	}
}

// TestRejectedPatchChangesNothing checks that every kind of refusal leaves
// the documents, versions, etag and history as they were.
func TestRejectedPatchChangesNothing(t *testing.T) {
	e := newEnv(t, "d1")
	ctx := t.Context()
	_, _, err := e.svc.PatchDesired(ctx, "d1", "", []byte(`{"tags":{"t":1},"properties":{"desired":{"d":1}}}`), "")
	must(t, err)
	_, err = e.svc.PatchReported(ctx, "d1", "", []byte(`{"r":1}`))
	must(t, err)
	before, err := e.svc.Get(ctx, "d1", "")
	must(t, err)
	half := strings.Repeat("x", 4000)
	var big strings.Builder
	big.WriteString(`{`)
	for i := range 9 {
		fmt.Fprintf(&big, `"k%d":"%s",`, i, half)
	}
	big.WriteString(`"ok":1}`)
	tagsBig := fmt.Sprintf(`{"tags":{"a":"%s","b":"%s","c":"%s"},"properties":{"desired":{"d":2}}}`, half, half, half)
	reported := []string{`{"a":` + nest(11, `1`) + `}`, `{"a.b":1}`, big.String(), `not json`, `[]`}
	for _, p := range reported {
		if _, err := e.svc.PatchReported(ctx, "d1", "", []byte(p)); !fault.Is(err, fault.Invalid) {
			t.Errorf("PatchReported(%.40s...) = %v, want Invalid", p, err)
		}
	}
	for _, p := range []string{tagsBig, `{"tags":{"t":2},"properties":{"desired":{"a":["` + strings.Repeat("x", 4097) + `"]}}}`} {
		if _, _, err := e.svc.PatchDesired(ctx, "d1", "", []byte(p), ""); !fault.Is(err, fault.Invalid) {
			t.Errorf("PatchDesired(%.40s...) = %v, want Invalid", p, err)
		}
	}
	after, err := e.svc.Get(ctx, "d1", "")
	must(t, err)
	a, _ := twin.Render(after, twin.DeviceFacts{})
	b, _ := twin.Render(before, twin.DeviceFacts{})
	if string(a) != string(b) {
		t.Errorf("rejected patches changed the twin:\n%s\nwas\n%s", a, b)
	}
	cs, err := e.svc.History(ctx, "d1", "", t0, t0.Add(1e12), 0)
	must(t, err)
	if len(cs) != 3 {
		t.Errorf("history has %d changes, want the 3 accepted", len(cs))
	}
}

// TestConcurrentReported checks that concurrent reported patches all apply.
func TestConcurrentReported(t *testing.T) {
	e := newEnv(t, "d1")
	ctx := t.Context()
	const workers, each = 8, 20
	var wg sync.WaitGroup
	errs := make(chan error, workers*each)
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				_, err := e.svc.PatchReported(ctx, "d1", "", fmt.Appendf(nil, `{"w%d":{"i%d":%d}}`, w, i, i))
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		must(t, err)
	}
	tw, err := e.svc.Get(ctx, "d1", "")
	must(t, err)
	if want := int64(1 + workers*each); tw.Reported.Version != want || tw.Version != want {
		t.Errorf("reported version %d, twin version %d; want %d", tw.Reported.Version, tw.Version, want)
	}
	var want strings.Builder
	want.WriteString("{")
	for w := range workers {
		if w > 0 {
			want.WriteString(",")
		}
		fmt.Fprintf(&want, `"w%d":{`, w)
		for i := range each {
			if i > 0 {
				want.WriteString(",")
			}
			fmt.Fprintf(&want, `"i%d":%d`, i, i)
		}
		want.WriteString("}")
	}
	want.WriteString("}")
	wantJSON(t, "reported", tw.Reported.Doc, want.String())
}
