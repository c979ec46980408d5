package hub_test

import (
	"context"
	"encoding/json"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/ferry-iot/ferry/internal/cli"
	"github.com/ferry-iot/ferry/internal/fault"
	"github.com/ferry-iot/ferry/internal/hubtest"
)

func TestTwinQueries(t *testing.T) {
	t.Parallel()
	h := hubtest.Start(t)
	ctx := context.Background()
	for _, d := range []struct{ id, tags, reported string }{
		{"q-1", `{"site":"A"}`, `{"temp":35}`},
		{"q-2", `{"site":"A"}`, `{"temp":20}`},
		{"q-3", `{"site":"B"}`, `{"temp":"35"}`},
		{"q-4", `{}`, `{}`},
	} {
		dev := h.CreateDevice(t, d.id)
		if _, err := h.Client.PatchTwin(ctx, d.id, []byte(`{"tags":`+d.tags+`}`), ""); err != nil {
			t.Fatal(err)
		}
		c := connect(t, h, dev, 4)
		if _, err := c.Subscribe("$iothub/twin/res/#"); err != nil {
			t.Fatal(err)
		}
		if status, _, _ := twinCall(t, c, "$iothub/twin/PATCH/properties/reported/?$rid=1", []byte(d.reported)); status != 204 {
			t.Fatalf("%s reported: %d", d.id, status)
		}
		c.Disconnect()
	}
	ids := func(q string) []string {
		t.Helper()
		items, _, err := h.Client.Query(ctx, q, 100, "")
		if err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		var out []string
		for _, it := range items {
			var m map[string]any
			_ = json.Unmarshal(it, &m)
			out = append(out, m["deviceId"].(string))
		}
		sort.Strings(out)
		return out
	}
	for q, want := range map[string]string{
		"SELECT * FROM devices WHERE tags.site = 'A'":                                          "q-1 q-2",
		"SELECT * FROM devices WHERE properties.reported.temp > 30":                            "q-1", // "35" is a string, not a number
		"SELECT deviceId FROM devices WHERE tags.site IN ['A', 'B'] AND NOT (tags.site = 'B')": "q-1 q-2",
		"SELECT * FROM devices WHERE NOT IS_DEFINED(tags.site)":                                "q-4",
		`select * from devices where tags.site = 'x\'; DROP TABLE devices; --'`:                "",
	} {
		if got := strings.Join(ids(q), " "); got != want {
			t.Errorf("%s: got %q, want %q", q, got, want)
		}
	}
	items, _, err := h.Client.Query(ctx, "SELECT COUNT() AS n, tags.site FROM devices GROUP BY tags.site", 100, "")
	if err != nil || len(items) != 3 {
		t.Fatalf("GROUP BY: %s %v", items, err)
	}
	// Paging with Azure's continuation header.
	page1, next, err := h.Client.Query(ctx, "SELECT * FROM devices", 3, "")
	if err != nil || len(page1) != 3 || next == "" {
		t.Fatalf("page 1: %d items, next %q, %v", len(page1), next, err)
	}
	page2, next2, err := h.Client.Query(ctx, "SELECT * FROM devices", 3, next)
	if err != nil || len(page2) != 1 || next2 != "" {
		t.Fatalf("page 2: %d items, next %q, %v", len(page2), next2, err)
	}
	// A syntax error points at its position.
	_, _, err = h.Client.Query(ctx, "SELECT * FROM devices WHERE tags.site = AND", 10, "")
	if !fault.Is(err, fault.Invalid) || !strings.Contains(err.Error(), "column") {
		t.Fatalf("syntax error: %v", err)
	}
	var out, errb strings.Builder
	code := cli.Main(ctx, []string{"query", "SELECT deviceId, properties.reported.temp FROM devices WHERE tags.site = 'A'",
		"--hub", h.OwnerConnectionString(), "--ca", h.CAFile()}, &out, &errb)
	if code != 0 || !strings.Contains(out.String(), `"temp": 35`) {
		t.Fatalf("ferry query: %d %s %s", code, out.String(), errb.String())
	}
	// The injection attempt above was a literal: the devices are all still there.
	if got := ids("SELECT * FROM devices"); len(got) != 4 {
		t.Fatalf("after the injection attempt: %v", got)
	}
}

// TestQueryConnectionState: connects and disconnects reach the registry
// (batched, within about a second), so queries on connectionState see them.
func TestQueryConnectionState(t *testing.T) {
	t.Parallel()
	h := hubtest.Start(t)
	dev := h.CreateDevice(t, "online-1")
	h.CreateDevice(t, "offline-1")
	c := connect(t, h, dev, 4)
	connected := func() string {
		items, _, err := h.Client.Query(context.Background(), "SELECT deviceId FROM devices WHERE connectionState = 'Connected'", 10, "")
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, it := range items {
			var m map[string]string
			_ = json.Unmarshal(it, &m)
			ids = append(ids, m["deviceId"])
		}
		return strings.Join(ids, " ")
	}
	hubtest.Eventually(t, 20*time.Second, func() error {
		if got := connected(); got != "online-1" {
			return fault.Invalidf("connected devices %q", got)
		}
		return nil
	})
	c.Disconnect()
	hubtest.Eventually(t, 20*time.Second, func() error {
		if got := connected(); got != "" {
			return fault.Invalidf("connected devices %q after the disconnect", got)
		}
		return nil
	})
}
