package device_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/ferry-iot/ferry/device"
	"github.com/ferry-iot/ferry/internal/hubtest"
)

// desiredLog records OnDesired calls.
type desiredLog struct {
	mu  sync.Mutex
	got []device.TwinProperties
}

func (l *desiredLog) on(d device.TwinProperties) {
	l.mu.Lock()
	l.got = append(l.got, d)
	l.mu.Unlock()
}

func (l *desiredLog) calls() []device.TwinProperties {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]device.TwinProperties(nil), l.got...)
}

// waitFor waits until the newest call has version and the document want.
func (l *desiredLog) waitFor(t *testing.T, version int64, want string) {
	t.Helper()
	hubtest.Eventually(t, 15*time.Second, func() error {
		calls := l.calls()
		if len(calls) == 0 {
			return errors.New("OnDesired not called")
		}
		last := calls[len(calls)-1]
		if last.Version != version || !sameJSON(last.JSON, []byte(want)) {
			return fmt.Errorf("last OnDesired: version %d %s; want %d %s", last.Version, last.JSON, version, want)
		}
		return nil
	})
}

func sameJSON(a, b []byte) bool {
	var x, y any
	return json.Unmarshal(a, &x) == nil && json.Unmarshal(b, &y) == nil && reflect.DeepEqual(x, y)
}

// hubSide is one properties side of the hub's twin.
type hubSide struct {
	version int64
	doc     map[string]any // without $version and $metadata
}

// hubTwin reads the device's twin through the service API.
func (e *env) hubTwin(t *testing.T) (desired, reported hubSide) {
	t.Helper()
	raw, err := e.hub.Client.GetTwin(context.Background(), e.id)
	if err != nil {
		t.Fatalf("GetTwin: %v", err)
	}
	var tw struct {
		Properties struct {
			Desired, Reported map[string]any
		}
	}
	if err := json.Unmarshal(raw, &tw); err != nil {
		t.Fatal(err)
	}
	side := func(m map[string]any) hubSide {
		v, _ := m["$version"].(float64)
		delete(m, "$version")
		delete(m, "$metadata")
		return hubSide{int64(v), m}
	}
	return side(tw.Properties.Desired), side(tw.Properties.Reported)
}

// patchDesired changes the desired properties through the service API and
// returns the new desired version.
func (e *env) patchDesired(t *testing.T, patch string) int64 {
	t.Helper()
	_, err := e.hub.Client.PatchTwin(context.Background(), e.id, []byte(`{"properties":{"desired":`+patch+`}}`), "")
	if err != nil {
		t.Fatalf("PatchTwin: %v", err)
	}
	d, _ := e.hubTwin(t)
	return d.version
}

func docJSON(m map[string]any) string {
	b, _ := json.Marshal(m)
	return string(b)
}

func TestTwinDesiredAtStartAndOnChange(t *testing.T) {
	e := newEnv(t, true)
	v := e.patchDesired(t, `{"rate":1,"mode":"eco"}`)
	var log desiredLog
	e.cfg.OnDesired = log.on
	c := e.start(t)
	log.waitFor(t, v, `{"rate":1,"mode":"eco"}`)

	v = e.patchDesired(t, `{"rate":2}`)
	log.waitFor(t, v, `{"rate":2,"mode":"eco"}`)
	v = e.patchDesired(t, `{"mode":null,"nested":{"a":[1,2]}}`)
	log.waitFor(t, v, `{"rate":2,"nested":{"a":[1,2]}}`)
	for i, d := range log.calls() {
		if i > 0 && d.Version <= log.calls()[i-1].Version {
			t.Fatalf("OnDesired versions not increasing: %+v", log.calls())
		}
	}

	if _, ok := c.DesiredIfNewer(v); ok {
		t.Fatal("DesiredIfNewer(current) reported a newer document")
	}
	d, ok := c.DesiredIfNewer(v - 1)
	if !ok || d.Version != v || !sameJSON(d.JSON, []byte(`{"rate":2,"nested":{"a":[1,2]}}`)) {
		t.Fatalf("DesiredIfNewer(%d) = %+v %v", v-1, d, ok)
	}

	// An offline start hears the last known document at once.
	c.Close()
	e.link.up.Store(false)
	var log2 desiredLog
	e.cfg.OnDesired = log2.on
	c2 := e.start(t)
	log2.waitFor(t, v, `{"rate":2,"nested":{"a":[1,2]}}`)
	if d, ok := c2.DesiredIfNewer(0); !ok || d.Version != v {
		t.Fatalf("DesiredIfNewer after an offline start = %+v %v", d, ok)
	}
	// Once online, an unchanged twin fires no second call.
	e.link.up.Store(true)
	if _, err := c2.Twin(context.Background()); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	if n := len(log2.calls()); n != 1 {
		t.Fatalf("%d OnDesired calls for an unchanged twin, want 1", n)
	}
}

// TestTwinVersionGapTriggersGet turns off the GET on connect: the device
// learns the desired properties it missed only because a notification
// whose version skips some makes it GET the whole twin.
func TestTwinVersionGapTriggersGet(t *testing.T) {
	e := newEnv(t, true)
	e.patchDesired(t, `{"a":1}`)
	device.DisableTwinResync(&e.cfg)
	connected := make(chan struct{}, 10)
	e.cfg.OnStatus = func(s device.Status, err error) {
		if s == device.Connected {
			connected <- struct{}{}
		}
	}
	var log desiredLog
	e.cfg.OnDesired = log.on
	e.start(t)
	waitConnected(t, connected)
	v := e.patchDesired(t, `{"b":2}`) // the device knows no version: a gap
	log.waitFor(t, v, `{"a":1,"b":2}`)

	// Offline while two changes happen; back online, a third one arrives
	// with a version two ahead of the device's.
	e.link.up.Store(false)
	e.link.cut()
	e.patchDesired(t, `{"c":3}`)
	e.patchDesired(t, `{"a":null}`)
	e.link.up.Store(true)
	waitConnected(t, connected)
	v = e.patchDesired(t, `{"d":4}`)
	log.waitFor(t, v, `{"b":2,"c":3,"d":4}`)
}

// TestTwinResyncOnReconnect changes desired properties while the device is
// offline: it gets them with the GET it makes on reconnecting.
func TestTwinResyncOnReconnect(t *testing.T) {
	e := newEnv(t, true)
	var log desiredLog
	e.cfg.OnDesired = log.on
	e.start(t)
	v := e.patchDesired(t, `{"x":1}`)
	log.waitFor(t, v, `{"x":1}`)
	e.link.up.Store(false)
	e.link.cut()
	e.patchDesired(t, `{"x":2}`)
	v = e.patchDesired(t, `{"y":true}`)
	e.link.up.Store(true)
	log.waitFor(t, v, `{"x":2,"y":true}`)
}

func waitConnected(t *testing.T, connected chan struct{}) {
	t.Helper()
	select {
	case <-connected:
	case <-time.After(15 * time.Second):
		t.Fatal("not connected within 15s")
	}
}

func waitReportedSent(t *testing.T, c *device.Client) {
	t.Helper()
	hubtest.Eventually(t, 15*time.Second, func() error {
		if n := c.PendingReported(); n != 0 {
			return fmt.Errorf("%d reported patches pending", n)
		}
		return nil
	})
}

// TestTwinReportedOfflineCoalesced makes several updates offline: they are
// stored as one merged patch, which the hub applies once when the link
// comes up.
func TestTwinReportedOfflineCoalesced(t *testing.T) {
	e := newEnv(t, false)
	_, before := e.hubTwin(t)
	c := e.start(t)
	ctx := context.Background()
	for _, p := range []any{
		map[string]any{"a": 1, "gone": "x"},
		json.RawMessage(`{"b":{"x":1}}`),
		[]byte(`{"a":2,"gone":null,"b":{"y":"two"}}`),
		struct {
			C []int `json:"c"`
		}{[]int{1, 2}},
	} {
		if err := c.UpdateReported(ctx, p); err != nil {
			t.Fatalf("UpdateReported(%v): %v", p, err)
		}
	}
	if n := c.PendingReported(); n != 1 {
		t.Fatalf("PendingReported = %d offline after 4 updates, want 1 merged patch", n)
	}
	e.link.up.Store(true)
	waitReportedSent(t, c)
	_, after := e.hubTwin(t)
	if want := `{"a":2,"b":{"x":1,"y":"two"},"c":[1,2]}`; !sameJSON([]byte(docJSON(after.doc)), []byte(want)) {
		t.Fatalf("hub's reported = %s, want %s", docJSON(after.doc), want)
	}
	if after.version != before.version+1 {
		t.Fatalf("reported version went from %d to %d: want one patch", before.version, after.version)
	}

	// Online, an update is sent at once.
	if err := c.UpdateReported(ctx, map[string]any{"a": nil}); err != nil {
		t.Fatal(err)
	}
	waitReportedSent(t, c)
	if _, r := e.hubTwin(t); !sameJSON([]byte(docJSON(r.doc)), []byte(`{"b":{"x":1,"y":"two"},"c":[1,2]}`)) {
		t.Fatalf("hub's reported after deleting a = %s", docJSON(r.doc))
	}
}

// TestTwinReportedNotComposable replaces an object by deleting it first:
// one merge patch cannot say that, so the updates go out as two patches,
// in order.
func TestTwinReportedNotComposable(t *testing.T) {
	e := newEnv(t, false)
	c := e.start(t)
	ctx := context.Background()
	for _, p := range []string{`{"cfg":{"old":1},"k":1}`, `{"cfg":null}`, `{"cfg":{"new":2}}`} {
		if err := c.UpdateReported(ctx, json.RawMessage(p)); err != nil {
			t.Fatal(err)
		}
	}
	if n := c.PendingReported(); n != 2 {
		t.Fatalf("PendingReported = %d, want 2", n)
	}
	e.link.up.Store(true)
	waitReportedSent(t, c)
	if _, r := e.hubTwin(t); !sameJSON([]byte(docJSON(r.doc)), []byte(`{"cfg":{"new":2},"k":1}`)) {
		t.Fatalf("hub's reported = %s", docJSON(r.doc))
	}
}

// TestTwinReportedSurvivesRestart stores reported properties offline,
// closes, and starts again online: they reach the hub.
func TestTwinReportedSurvivesRestart(t *testing.T) {
	e := newEnv(t, false)
	c := e.start(t)
	if err := c.UpdateReported(context.Background(), map[string]any{"fw": "1.2.3"}); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.UpdateReported(context.Background(), map[string]any{"x": 1}); !errors.Is(err, device.ErrClosed) {
		t.Fatalf("UpdateReported after Close = %v, want ErrClosed", err)
	}
	e.link.up.Store(true)
	c2 := e.start(t)
	if n := c2.PendingReported(); n != 1 {
		t.Fatalf("PendingReported after restart = %d, want 1", n)
	}
	waitReportedSent(t, c2)
	if _, r := e.hubTwin(t); !sameJSON([]byte(docJSON(r.doc)), []byte(`{"fw":"1.2.3"}`)) {
		t.Fatalf("hub's reported = %s", docJSON(r.doc))
	}
}

func TestTwinGet(t *testing.T) {
	e := newEnv(t, false)
	v := e.patchDesired(t, `{"want":"on"}`)
	c := e.start(t)
	if err := c.UpdateReported(context.Background(), map[string]any{"have": "off"}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	_, err := c.Twin(ctx) // offline: waits for a connection until ctx ends
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Twin offline = %v, want DeadlineExceeded", err)
	}
	e.link.up.Store(true)
	waitReportedSent(t, c)
	tw, err := c.Twin(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	_, r := e.hubTwin(t)
	if tw.Desired.Version != v || !sameJSON(tw.Desired.JSON, []byte(`{"want":"on"}`)) ||
		tw.Reported.Version != r.version || !sameJSON(tw.Reported.JSON, []byte(`{"have":"off"}`)) {
		t.Fatalf("Twin = desired %d %s, reported %d %s", tw.Desired.Version, tw.Desired.JSON, tw.Reported.Version, tw.Reported.JSON)
	}
}

func TestTwinInvalidPatch(t *testing.T) {
	e := newEnv(t, false)
	c := e.start(t)
	for _, p := range []any{"a string", []byte(`[1]`), []byte(`{"a.b":1}`), []byte(`{bad json`), make(chan int)} {
		if err := c.UpdateReported(context.Background(), p); !errors.Is(err, device.ErrInvalidPatch) {
			t.Errorf("UpdateReported(%v) = %v, want ErrInvalidPatch", p, err)
		}
	}
	if n := c.PendingReported(); n != 0 {
		t.Fatalf("invalid patches stored: %d pending", n)
	}
}
