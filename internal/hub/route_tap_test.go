package hub_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"
	"github.com/nats-io/nats.go"

	"github.com/ferry-iot/ferry/internal/api"
	"github.com/ferry-iot/ferry/internal/hubtest"
	"github.com/ferry-iot/ferry/internal/protocol"
	"github.com/ferry-iot/ferry/internal/route"
)

// TestRouteEveryMessageOnce alternates bursts (the router reads the store)
// with paced single messages (it routes them from the ingest writer's tap,
// before they are stored), while a stream endpoint's routed copies land in
// the same store in between: every message must be routed exactly once,
// none twice and none lost, across all the hand-overs between the two.
func TestRouteEveryMessageOnce(t *testing.T) {
	t.Parallel()
	natsAddr := freeAddr(t)
	h := hubtest.Start(t, func(c *hubConfig) { c.NATSListen = natsAddr })
	nc, err := nats.Connect("nats://" + natsAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	seen := make(chan string, 1<<16)
	sub, err := nc.Subscribe("every.message", func(m *nats.Msg) { seen <- m.Header.Get("Ferry-Message-Id") })
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	if err := sub.SetPendingLimits(-1, -1); err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	addRoute(t, h, route.Route{Name: "every", Condition: "$connectionDeviceId <> 'nobody'",
		Endpoints: []route.Endpoint{{Kind: route.KindNATS, Name: "every.message"}, {Kind: route.KindStream, Name: "copies"}}})

	const conns, rounds, burst, paced = 3, 6, 600, 25
	var cs []*hubtest.Conn
	for i := range conns {
		c := connect(t, h, h.CreateDevice(t, fmt.Sprintf("load-%d", i)), 4)
		defer c.Disconnect()
		cs = append(cs, c)
	}
	sendAll := func(c *hubtest.Conn, dev string, ids []string, window int, gap time.Duration) {
		slots := make(chan struct{}, window)
		done := make(chan struct{})
		go func() {
			defer close(done)
			for got := 0; got < len(ids); {
				pk, err := c.Next(30 * time.Second)
				if err != nil {
					t.Error(err)
					return
				}
				if pk.FixedHeader.Type == packets.Puback {
					got++
					<-slots
				}
			}
		}()
		for _, id := range ids {
			slots <- struct{}{}
			topic := protocol.TelemetryTopic(dev, "", protocol.Properties{ContentType: "application/json", MessageID: id})
			if _, err := c.PublishAsync(topic, fmt.Appendf(nil, `{"id":%q}`, id)); err != nil {
				t.Error(err)
				return
			}
			if gap > 0 {
				time.Sleep(gap)
			}
		}
		<-done
	}
	want := map[string]bool{}
	for r := range rounds {
		var wg sync.WaitGroup
		for i, c := range cs {
			dev := fmt.Sprintf("load-%d", i)
			ids := make([]string, burst)
			for k := range ids {
				ids[k] = fmt.Sprintf("%s-r%d-b%d", dev, r, k)
				want[ids[k]] = true
			}
			wg.Add(1)
			go func() { defer wg.Done(); sendAll(c, dev, ids, 32, 0) }()
		}
		wg.Wait()
		ids := make([]string, paced)
		for k := range ids {
			ids[k] = fmt.Sprintf("load-0-r%d-p%d", r, k)
			want[ids[k]] = true
		}
		sendAll(cs[0], "load-0", ids, 1, 3*time.Millisecond)
	}

	got := map[string]int{}
	deadline := time.After(30 * time.Second)
	for len(got) < len(want) {
		select {
		case id := <-seen:
			got[id]++
		case <-deadline:
			t.Fatalf("routed %d distinct messages of %d", len(got), len(want))
		}
	}
	// Anything routed twice arrives close behind.
	quiet := time.After(500 * time.Millisecond)
drain:
	for {
		select {
		case id := <-seen:
			got[id]++
		case <-quiet:
			break drain
		}
	}
	var twice, stray []string
	for id, n := range got {
		if !want[id] {
			stray = append(stray, id)
		} else if n > 1 {
			twice = append(twice, id)
		}
	}
	if len(twice) > 0 || len(stray) > 0 {
		t.Errorf("routed twice: %d (e.g. %v); not sent: %v", len(twice), first(twice), first(stray))
	}
	// Every message has one routed copy in the store.
	hubtest.Eventually(t, 20*time.Second, func() error {
		copies, after := map[string]int{}, ""
		for {
			page, err := h.Client.ReadStream(context.Background(), "copies", api.ReadQuery{From: "beginning", After: after, Limit: 1000})
			if err != nil {
				return err
			}
			for _, m := range page.Messages {
				copies[m.SystemProperties.MessageID]++
			}
			if len(page.Messages) == 0 || page.Next == "" {
				break
			}
			after = page.Next
		}
		if len(copies) != len(want) {
			return fmt.Errorf("%d messages have a routed copy, want %d", len(copies), len(want))
		}
		for id, n := range copies {
			if n != 1 || !want[id] {
				return fmt.Errorf("message %s has %d routed copies", id, n)
			}
		}
		return nil
	})
	m := scrape(t, h)
	if !strings.Contains(m, "ferry_route_batches_handed_total") || strings.Contains(m, "ferry_route_batches_handed_total 0\n") {
		t.Errorf("no message was routed from the tap: %s", grep(m, "handed"))
	}
	t.Logf("%d messages; %s", len(want), grep(m, "handed"))
}

func first(s []string) []string { return s[:min(len(s), 5)] }
