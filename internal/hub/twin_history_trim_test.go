package hub_test

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/ferry-iot/ferry/internal/fault"
	"github.com/ferry-iot/ferry/internal/hub"
	"github.com/ferry-iot/ferry/internal/hubtest"
)

// TestTwinHistoryTrim runs a hub whose retention sweep trims twin history
// to 20 changes and an hour: a device reports 120 patches over MQTT, a
// second apart on the hub's clock, and the sweep (running meanwhile) leaves
// the 20 newest. The current twin and "as of" reads within the kept range
// stay right, earlier times are refused naming the oldest readable time.
// Then the clock moves on so that the age bound trims half of what is left.
func TestTwinHistoryTrim(t *testing.T) {
	t.Parallel()
	start := time.Now().Add(-48 * time.Hour).UTC().Truncate(time.Second)
	clk := &sweepClock{t: start}
	h := hubtest.Start(t, func(c *hub.Config) {
		c.Now = clk.now
		c.RetentionInterval = 50 * time.Millisecond
		c.TwinHistoryMaxChanges = 20
		c.TwinHistoryMaxAge = time.Hour
	})
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	dev := h.CreateDevice(t, "chatty-1")
	// A twin that has not been trimmed says so: no history start.
	if _, hs, err := h.Client.TwinHistoryStart(ctx, dev.ID); err != nil || !hs.IsZero() {
		t.Errorf("history start of a fresh twin = %s, %v; want none", hs, err)
	}
	c := connect(t, h, dev, 4)
	defer c.Disconnect()
	if _, err := c.Subscribe("$iothub/twin/res/#"); err != nil {
		t.Fatal(err)
	}

	// Patch i sets n and one of four keys; want[i] is the reported
	// document after it.
	const patches = 120
	times := make([]time.Time, patches)
	want := make([]map[string]any, patches)
	doc := map[string]any{}
	for i := range patches {
		times[i] = start.Add(time.Duration(i+1) * time.Second)
		clk.set(times[i])
		body := fmt.Sprintf(`{"n":%d,"k%d":%d}`, i, i%4, i)
		status, _, resp := twinCall(t, c, fmt.Sprintf("$iothub/twin/PATCH/properties/reported/?$rid=%d", i), []byte(body))
		if status != 204 {
			t.Fatalf("reported patch %d: %d %s", i, status, resp)
		}
		doc["n"], doc[fmt.Sprintf("k%d", i%4)] = float64(i), float64(i)
		want[i] = maps.Clone(doc)
	}

	// The sweep trims to the 20 newest: patches 100..119, versions 102..121.
	hubtest.Eventually(t, 60*time.Second, func() error {
		cs, err := h.Client.TwinHistory(ctx, dev.ID)
		if err != nil {
			return err
		}
		if len(cs) != 20 || cs[0].TwinVersion != 102 || cs[19].TwinVersion != 121 {
			return fmt.Errorf("%d changes kept, want versions 102..121", len(cs))
		}
		return nil
	})
	if _, hs, err := h.Client.TwinHistoryStart(ctx, dev.ID); err != nil || !hs.Equal(times[99]) {
		t.Errorf("history start = %s, %v; want the newest trimmed change's time %s", hs, err, times[99])
	}
	checkReported(t, "current twin", mustJSON(h.Client.GetTwin(ctx, dev.ID)), want[patches-1])
	asOf := func(i int, at time.Time) {
		t.Helper()
		checkReported(t, fmt.Sprintf("as of patch %d", i), mustJSON(h.Client.TwinAsOf(ctx, dev.ID, at)), want[i])
	}
	// Reads as of the newest trimmed change (the base) and after answer.
	for _, i := range []int{99, 100, 101, 110, 118} {
		asOf(i, times[i])
		asOf(i, times[i].Add(500*time.Millisecond))
	}
	refused := func(at, oldest time.Time) {
		t.Helper()
		_, err := h.Client.TwinAsOf(ctx, dev.ID, at)
		if !fault.Is(err, fault.Invalid) || !strings.Contains(err.Error(), "trimmed") ||
			!strings.Contains(err.Error(), oldest.Format(time.RFC3339Nano)) {
			t.Errorf("as of %s, before the oldest kept change: %v; want a refusal naming %s", at, err, oldest.Format(time.RFC3339Nano))
		}
	}
	refused(times[99].Add(-time.Millisecond), times[99])
	refused(times[0], times[99])

	// An hour after patch 110 the age bound trims patches 100..109.
	clk.set(times[110].Add(time.Hour))
	hubtest.Eventually(t, 60*time.Second, func() error {
		cs, err := h.Client.TwinHistory(ctx, dev.ID)
		if err != nil {
			return err
		}
		if len(cs) != 10 || cs[0].TwinVersion != 112 {
			return fmt.Errorf("%d changes kept, want versions 112..121", len(cs))
		}
		return nil
	})
	checkReported(t, "current twin after the age trim", mustJSON(h.Client.GetTwin(ctx, dev.ID)), want[patches-1])
	if _, hs, err := h.Client.TwinHistoryStart(ctx, dev.ID); err != nil || !hs.Equal(times[109]) {
		t.Errorf("history start after the age trim = %s, %v; want %s", hs, err, times[109])
	}
	asOf(109, times[109])
	asOf(115, times[115].Add(500*time.Millisecond))
	refused(times[105], times[109])
}

func mustJSON(b json.RawMessage, err error) json.RawMessage {
	if err != nil {
		panic(err)
	}
	return b
}

// checkReported compares a twin's reported properties, without "$" keys,
// to want.
func checkReported(t *testing.T, what string, twinJSON json.RawMessage, want map[string]any) {
	t.Helper()
	var tw struct {
		Properties struct {
			Reported map[string]any `json:"reported"`
		} `json:"properties"`
	}
	if err := json.Unmarshal(twinJSON, &tw); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	got := tw.Properties.Reported
	for k := range got {
		if strings.HasPrefix(k, "$") {
			delete(got, k)
		}
	}
	if !maps.Equal(got, want) {
		t.Errorf("%s: reported %v, want %v", what, got, want)
	}
}
