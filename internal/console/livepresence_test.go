package console_test

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ferry-iot/ferry/internal/api"
	"github.com/ferry-iot/ferry/internal/console"
	"github.com/ferry-iot/ferry/internal/hubtest"
)

// presenceEvent is one "presence" event of data/presence/live.
type presenceEvent struct {
	Devices map[string]struct {
		Connected    bool      `json:"connected"`
		LastActivity time.Time `json:"lastActivity"`
	} `json:"devices"`
	Connected int `json:"connected"`
}

// presenceStream opens data/presence/live for ids and sends its presence
// events on the returned channel until the test ends.
func presenceStream(t *testing.T, b *browser, ids ...string) <-chan presenceEvent {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	q := "id=" + strings.Join(ids, "&id=")
	req, _ := http.NewRequestWithContext(ctx, "GET", b.base+"/console/data/presence/live?"+q, nil)
	resp, err := b.c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		t.Fatalf("presence stream: %s %s", resp.Status, resp.Header.Get("Content-Type"))
	}
	ch := make(chan presenceEvent, 100)
	go func() {
		defer resp.Body.Close()
		defer close(ch)
		sc := bufio.NewScanner(resp.Body)
		event := ""
		for sc.Scan() {
			line := sc.Text()
			if e, ok := strings.CutPrefix(line, "event: "); ok {
				event = e
			}
			if d, ok := strings.CutPrefix(line, "data: "); ok && event == "presence" {
				var ev presenceEvent
				if err := json.Unmarshal([]byte(d), &ev); err != nil {
					t.Errorf("presence event %q: %v", d, err)
					return
				}
				select {
				case ch <- ev:
				case <-ctx.Done():
					return
				}
			}
		}
	}()
	return ch
}

// waitPresence waits for an event that says id is (dis)connected.
func waitPresence(t *testing.T, ch <-chan presenceEvent, id string, connected bool, within time.Duration) presenceEvent {
	t.Helper()
	deadline := time.After(within)
	for {
		select {
		case ev, ok := <-ch:
			if !ok {
				t.Fatalf("the stream ended before %s was connected=%v", id, connected)
			}
			if d, ok := ev.Devices[id]; ok && d.Connected == connected {
				return ev
			}
		case <-deadline:
			t.Fatalf("no event saying %s is connected=%v within %s", id, connected, within)
		}
	}
}

// A real device's connect and disconnect reach the device list's stream
// as they happen, not at the next poll.
func TestPresencePushedFromRealHub(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a hub")
	}
	h := hubtest.Start(t)
	dev := h.CreateDevice(t, "pushed")
	h.CreateDevice(t, "bystander")
	b := hubBrowser(t, h)
	b.signInKey("iothubowner", policyKeys(t, h.Dir)["iothubowner"])
	ch := presenceStream(t, b, "pushed", "bystander")
	first := waitPresence(t, ch, "pushed", false, 10*time.Second)
	if _, ok := first.Devices["bystander"]; !ok {
		t.Errorf("the first event lacks a device of the page: %+v", first)
	}

	began := time.Now()
	conn, code, err := hubtest.Dial(h.MQTTAddr("tcp").String(), nil, hubtest.ConnectOptions{
		ClientID: dev.ID, Username: dev.Username(), Password: dev.Token(time.Hour), Clean: true})
	if err != nil || code != 0 {
		t.Fatal(code, err)
	}
	ev := waitPresence(t, ch, "pushed", true, 10*time.Second)
	t.Logf("connect pushed after %s", time.Since(began).Round(time.Millisecond))
	if ev.Connected < 1 || ev.Devices["pushed"].LastActivity.IsZero() {
		t.Errorf("connect event: %+v", ev)
	}
	if _, ok := ev.Devices["bystander"]; ok {
		t.Errorf("the connect event carries an unchanged device: %+v", ev)
	}
	conn.Disconnect()
	waitPresence(t, ch, "pushed", false, 10*time.Second)
}

// feed is a PresenceFeed the test drives.
type feed struct {
	mu  sync.Mutex
	fns map[int]func(string, bool, time.Time)
	n   int
}

func (f *feed) WatchPresence(fn func(string, bool, time.Time)) func() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.n++
	id := f.n
	f.fns[id] = fn
	return func() {
		f.mu.Lock()
		delete(f.fns, id)
		f.mu.Unlock()
	}
}

func (f *feed) emit(id string, on bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, fn := range f.fns {
		fn(id, on, time.Now())
	}
}

// A storm of connection changes is coalesced into a few updates a second
// per browser, and a browser that does not read never holds up the feed.
func TestPresenceCoalescedAndNeverBlocks(t *testing.T) {
	f := &feed{fns: map[int]func(string, bool, time.Time){}}
	e := newEnv(t, func(c *console.Config, _ *api.Config) { c.PresenceFeed = f })
	b := e.browser(t)
	b.signInKey("iothubowner", e.keys["iothubowner"])
	ch := presenceStream(t, b, "d1", "d2")
	<-ch // the first state

	// A stalled browser: its stream is open and never read.
	stalled := e.browser(t)
	stalled.signInKey("iothubowner", e.keys["iothubowner"])
	_ = presenceStream(t, stalled, "d1", "d2") // its reader stops once the channel's 100 events are queued

	began := time.Now()
	for i := range 200_000 {
		on := i%2 == 0
		e.pres.set("d1", on)
		f.emit("d1", on)
		f.emit("elsewhere", on) // a device no browser shows
	}
	took := time.Since(began)
	e.pres.set("d1", true)
	f.emit("d1", true)
	if took > 5*time.Second {
		t.Errorf("400,000 changes took %s to hand over: the feed waited for browsers", took)
	}

	// Updates come until d1's final state, at most four a second.
	events := 0
	for {
		ev, ok := <-ch
		if !ok {
			t.Fatal("the stream ended")
		}
		events++
		if d, ok := ev.Devices["d1"]; ok && d.Connected && time.Since(began) > took {
			break
		}
	}
	elapsed := time.Since(began)
	t.Logf("400,000 changes handed over in %s; %d updates in %s", took.Round(time.Millisecond), events, elapsed.Round(time.Millisecond))
	if limit := int(elapsed/(250*time.Millisecond)) + 2; events > limit {
		t.Errorf("%d updates in %s, want at most %d (four a second)", events, elapsed, limit)
	}
}

func (p *fakePresence) set(id string, on bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if on {
		p.on[id] = true
	} else {
		delete(p.on, id)
	}
}
