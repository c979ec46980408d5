package cli_test

import (
	"context"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ferry-iot/ferry/internal/cli"
)

// events decodes monitor --json output, one event per line.
func events(t *testing.T, out string) []map[string]any {
	t.Helper()
	var evs []map[string]any
	for line := range strings.Lines(out) {
		var e struct{ Event map[string]any }
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatalf("line %q: %v", line, err)
		}
		evs = append(evs, e.Event)
	}
	return evs
}

// messageIDs lists the events' message ids.
func messageIDs(evs []map[string]any) string {
	var ids []string
	for _, e := range evs {
		sys := e["properties"].(map[string]any)["system"].(map[string]any)
		ids = append(ids, sys["messageId"].(string))
	}
	return strings.Join(ids, ",")
}

func TestMonitorFromBeginning(t *testing.T) {
	h := newFakeHub(t)
	h.addMessage("d1", `{"t":21}`)
	h.addMessage("d2", "hello")
	h.addMessage("d1", "\xff\x00")
	r := h.run(t, "monitor", "--from", "beginning", "--json", "--max", "3").want(t, 0)
	evs := events(t, r.stdout)
	if messageIDs(evs) != "m1,m2,m3" || r.stderr != "" {
		t.Fatalf("events %v, stderr %q", evs, r.stderr)
	}
	if p, ok := evs[0]["payload"].(map[string]any); !ok || p["t"] != 21.0 || evs[0]["origin"] != "d1" {
		t.Errorf("JSON payload: %v", evs[0])
	}
	if evs[1]["payload"] != "hello" {
		t.Errorf("text payload: %v", evs[1]["payload"])
	}
	if p, ok := evs[2]["payload"].(map[string]any); !ok || p["hex"] != "ff00" {
		t.Errorf("binary payload: %v", evs[2]["payload"])
	}

	r = h.run(t, "monitor", "--from", "beginning", "--device", "d1", "--max", "2").want(t, 0)
	if !strings.HasPrefix(r.stderr, "Starting event monitor, use ctrl-c to stop...") {
		t.Errorf("stderr %q", r.stderr)
	}
	if !strings.Contains(r.stdout, "{\n    \"event\": {\n        \"origin\": \"d1\",") || strings.Contains(r.stdout, `"d2"`) {
		t.Errorf("pretty output:\n%s", r.stdout)
	}
}

func TestMonitorStartsNow(t *testing.T) {
	h := newFakeHub(t)
	h.addMessage("d1", "old")
	var (
		wg sync.WaitGroup
		r  result
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		r = h.run(t, "monitor", "--json", "--max", "1", "--timeout", "30s")
	}()
	// The monitor's first read pins "now"; until then a new message could
	// count as old, so keep adding until one is seen.
	for {
		h.addMessage("d1", "new")
		if waitFor(&wg, 100*time.Millisecond) {
			break
		}
	}
	r.want(t, 0)
	if evs := events(t, r.stdout); len(evs) != 1 || evs[0]["payload"] != "new" {
		t.Errorf("events %v", evs)
	}
}

// waitFor reports whether wg is done within d.
func waitFor(wg *sync.WaitGroup, d time.Duration) bool {
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
		return true
	case <-time.After(d):
		return false
	}
}

func TestMonitorTimeout(t *testing.T) {
	h := newFakeHub(t)
	start := time.Now()
	r := h.run(t, "monitor", "--json", "--timeout", "300ms").want(t, 0)
	if r.stdout != "" || time.Since(start) > 20*time.Second { // a monitor without a timeout would wait for ever
		t.Errorf("stdout %q after %s", r.stdout, time.Since(start))
	}
}

func TestMonitorConsumerGroupResumes(t *testing.T) {
	h := newFakeHub(t)
	for range 5 {
		h.addMessage("d1", "x")
	}
	cg := []string{"monitor", "--consumer-group", "archiver", "--json"}
	r := h.run(t, append(cg, "--max", "2")...).want(t, 0)
	if ids := messageIDs(events(t, r.stdout)); ids != "m1,m2" {
		t.Errorf("first run: %s", ids)
	}
	r = h.run(t, append(cg, "--max", "2")...).want(t, 0)
	if ids := messageIDs(events(t, r.stdout)); ids != "m3,m4" {
		t.Errorf("second run: %s", ids)
	}
	r = h.run(t, append(cg, "--timeout", "500ms")...).want(t, 0)
	if ids := messageIDs(events(t, r.stdout)); ids != "m5" {
		t.Errorf("third run: %s", ids)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.cgPos["archiver"] != 5 {
		t.Errorf("committed position %d, want 5 (commits %v)", h.cgPos["archiver"], h.commits)
	}
}

// cancelOnWrite cancels a context at the first write: ctrl-c arriving
// while a page is being printed.
type cancelOnWrite struct {
	mu     sync.Mutex
	b      strings.Builder
	cancel context.CancelFunc
}

func (w *cancelOnWrite) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.cancel()
	return w.b.Write(p)
}

func TestMonitorInterruptFinishesPage(t *testing.T) {
	h := newFakeHub(t)
	for range 3 {
		h.addMessage("d1", "x")
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out := &cancelOnWrite{cancel: cancel}
	var stderr strings.Builder
	args := append([]string{"monitor", "--consumer-group", "cg", "--json"}, h.flags()...)
	if code := cli.Main(ctx, args, out, &stderr); code != 0 {
		t.Fatalf("exit code %d: %s", code, stderr.String())
	}
	if ids := messageIDs(events(t, out.b.String())); ids != "m1,m2,m3" {
		t.Errorf("printed %s, want the whole page", ids)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.cgPos["cg"] != 3 {
		t.Errorf("committed position %d, want 3", h.cgPos["cg"])
	}
}
