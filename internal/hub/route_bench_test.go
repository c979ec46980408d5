package hub_test

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/ferry-iot/ferry/internal/hub"
	"github.com/ferry-iot/ferry/internal/hubtest"
	"github.com/ferry-iot/ferry/internal/protocol"
	"github.com/ferry-iot/ferry/internal/route"
)

// These runs measure routing for BENCHMARKS.md. They take a while, so they
// run only with FERRY_BENCH_ROUTE=1:
//
//	FERRY_BENCH_ROUTE=1 go test ./internal/hub -run 'TestBenchRouting' -v -count=1

func benchOnly(t *testing.T) {
	if os.Getenv("FERRY_BENCH_ROUTE") == "" {
		t.Skip("set FERRY_BENCH_ROUTE=1 to run the routing benchmarks")
	}
}

// flood publishes n JSON telemetry messages over conns connections with
// window messages in flight each, and returns when all are acknowledged.
func flood(t *testing.T, h *hubtest.Hub, conns []*hubtest.Conn, ids []string, n, window int) time.Duration {
	t.Helper()
	start := time.Now()
	var wg sync.WaitGroup
	per := n / len(conns)
	for i, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			slots := make(chan struct{}, window)
			done := make(chan struct{})
			go func() {
				defer close(done)
				for got := 0; got < per; {
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
			topic := protocol.TelemetryTopic(ids[i], "", protocol.Properties{ContentType: "application/json"})
			for k := range per {
				slots <- struct{}{}
				body := fmt.Appendf(nil, `{"deviceId":%q,"seq":%d,"temperature":%d.5,"humidity":40,"site":"A"}`, ids[i], k, 20+k%30)
				if _, err := c.PublishAsync(topic, body); err != nil {
					t.Error(err)
					return
				}
			}
			<-done
		}()
	}
	wg.Wait()
	return time.Since(start)
}

var examinedRE = regexp.MustCompile(`ferry_route_messages_total\{source="telemetry"\} (\d+)`)

func routedCount(t *testing.T, h *hubtest.Hub, hc *http.Client) int {
	resp, err := hc.Get("https://" + h.HTTPAddr().String() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	m := examinedRE.FindSubmatch(b)
	if m == nil {
		return 0
	}
	n, _ := strconv.Atoi(string(m[1]))
	return n
}

// TestBenchRoutingThroughput compares, in one run, the hub's plain ingest
// rate (no routes) with the rate at which ten routes with body conditions
// get through the same load: the time from the first publish until the
// router has evaluated the last message.
func TestBenchRoutingThroughput(t *testing.T) {
	benchOnly(t)
	const conns, window, n = 8, 100, 200_000
	// FERRY_BENCH_AA=1 runs plain ingest on both sides: the ratio it
	// prints is the measurement's own bias and noise.
	aa := os.Getenv("FERRY_BENCH_AA") != ""
	run := func(routes bool) (ingest, routed time.Duration) {
		// Each hub is stopped before the next starts, so that no run
		// shares the machine with an earlier hub's leftovers.
		h, stop, err := hubtest.Launch(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		defer func() {
			if err := stop(); err != nil {
				t.Error(err)
			}
		}()
		if routes && !aa {
			for i := range 10 {
				// One route in ten matches 1/30 of the messages (to a NATS
				// subject); the rest read the body and do not match.
				cond := fmt.Sprintf("$body.temperature > %d AND $body.site = 'A'", 100+i)
				if i == 0 {
					cond = "$body.temperature >= 49 AND $body.site = 'A'"
				}
				addRoute(t, h, route.Route{Name: fmt.Sprintf("r%d", i), Condition: cond,
					Endpoints: []route.Endpoint{{Kind: route.KindNATS, Name: "bench.hot"}}})
			}
		}
		var cs []*hubtest.Conn
		var ids []string
		for i := range conns {
			d := h.CreateDevice(t, fmt.Sprintf("bench-%d", i))
			c := connect(t, h, d, 4)
			defer c.Close()
			cs = append(cs, c)
			ids = append(ids, d.ID)
		}
		runtime.GC() // start each run from the same heap
		cpu0 := cpuTime()
		start := time.Now()
		ingest = flood(t, h, cs, ids, n, window)
		defer func() {
			t.Logf("  routes=%v: the process used %.2f cores", routes && !aa, (cpuTime()-cpu0).Seconds()/time.Since(start).Seconds())
		}()
		if !routes || aa {
			return ingest, ingest
		}
		hc := &http.Client{Transport: &http.Transport{TLSClientConfig: h.TLSConfig()}}
		defer hc.CloseIdleConnections()
		for routedCount(t, h, hc) < n {
			time.Sleep(5 * time.Millisecond)
		}
		return ingest, time.Since(start)
	}
	// Alternate which side runs first, so that neither the order nor a
	// change in the machine's load during the run favours one side.
	rounds := 4
	if v, err := strconv.Atoi(os.Getenv("FERRY_BENCH_ROUNDS")); err == nil && v > 0 {
		rounds = v
	}
	var plainSum, routedSum float64
	for round := range rounds {
		var plain, ingest, routed time.Duration
		if round%2 == 0 {
			plain, _ = run(false)
			ingest, routed = run(true)
		} else {
			ingest, routed = run(true)
			plain, _ = run(false)
		}
		plainRate := float64(n) / plain.Seconds()
		routedRate := float64(n) / routed.Seconds()
		plainSum += plainRate
		routedSum += routedRate
		t.Logf("round %d: plain ingest %d msgs in %s = %.0f msgs/s; with 10 routes: ingest %s (%.0f msgs/s), all routed after %s = %.0f msgs/s routed (%.2fx)",
			round+1, n, plain.Round(time.Millisecond), plainRate, ingest.Round(time.Millisecond), float64(n)/ingest.Seconds(),
			routed.Round(time.Millisecond), routedRate, routedRate/plainRate)
	}
	t.Logf("routed/plain: %.2fx", routedSum/plainSum)
	if routedSum < 0.8*plainSum {
		t.Errorf("routing is below 0.8x the plain ingest rate")
	}
}

// TestBenchParcelLatency measures device→device parcel latency: from the
// agent's publish to the monitor's direct-method handler, through the
// store and the router, paced at 100 parcels/s.
//
// FERRY_BENCH_DURABILITY=process runs the hub with --durability process,
// which takes the fsync out of the path.
func TestBenchParcelLatency(t *testing.T) {
	benchOnly(t)
	var opts []hubtest.Option
	if d := os.Getenv("FERRY_BENCH_DURABILITY"); d != "" {
		opts = append(opts, func(c *hub.Config) { c.Durability = hub.Durability(d) })
	}
	h := hubtest.Start(t, opts...)
	agent, monitor := h.CreateDevice(t, "agent"), h.CreateDevice(t, "monitor")
	mc := connect(t, h, monitor, 4)
	defer mc.Disconnect()
	calls := serveMethods(t, mc)
	ac := connect(t, h, agent, 4)
	defer ac.Disconnect()
	addRoute(t, h, route.Route{Name: "parcels", Condition: "proto-type = 'pb_AlarmStatus'",
		Endpoints: []route.Endpoint{{Kind: route.KindMethod, Name: "ProcessMessage", TargetFrom: "to"}},
		Allow:     route.Allow{Targets: []string{"monitor"}}})
	const n = 2000
	props := protocol.Properties{To: "monitor", ContentType: "application/x-protobuf",
		App: []protocol.Property{{Key: "proto-type", Value: "pb_AlarmStatus"}}}
	topic := protocol.TelemetryTopic(agent.ID, "", props)
	sent := make([]time.Time, n)
	// When each PUBACK arrived, to split the latency into storing
	// (publish → PUBACK) and routing (PUBACK → handler).
	var mu sync.Mutex
	byID := map[uint16]int{}
	acked := make([]time.Time, n)
	go func() {
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for i := range n {
			<-tick.C
			sent[i] = time.Now()
			body := alarmStatus(i%2 == 0, strconv.Itoa(i))
			mu.Lock()
			id, err := ac.PublishAsync(topic, body)
			byID[id] = i
			mu.Unlock()
			if err != nil {
				t.Error(err)
				return
			}
		}
	}()
	go func() { // drain the agent's PUBACKs
		for {
			pk, err := ac.Next(time.Minute)
			if err != nil {
				return
			}
			if pk.FixedHeader.Type == packets.Puback {
				at := time.Now()
				mu.Lock()
				if i, ok := byID[pk.PacketID]; ok {
					acked[i] = at
					delete(byID, pk.PacketID)
				}
				mu.Unlock()
			}
		}
	}()
	lat := make([]time.Duration, 0, n)
	at := make([]time.Time, n)
	for range n {
		c := expectCall(t, calls, 30*time.Second)
		i := seqOf(c.payload)
		at[i] = c.at
		lat = append(lat, c.at.Sub(sent[i]))
	}
	var store, rest []time.Duration
	mu.Lock()
	for i := range n {
		if !acked[i].IsZero() {
			store = append(store, acked[i].Sub(sent[i]))
			rest = append(rest, at[i].Sub(acked[i]))
		}
	}
	mu.Unlock()
	p := func(d []time.Duration, q float64) time.Duration { return d[int(q*float64(len(d)-1))] }
	stats := func(d []time.Duration) string {
		if len(d) == 0 {
			return "-"
		}
		slices.Sort(d)
		return fmt.Sprintf("p50 %s p90 %s p99 %s max %s", p(d, 0.5), p(d, 0.9), p(d, 0.99), d[len(d)-1])
	}
	t.Logf("parcel latency over %d parcels: %s", n, stats(lat))
	t.Logf("  of which publish → PUBACK (stored): %s", stats(store))
	t.Logf("  and PUBACK → handler (routed, invoked): %s", stats(rest))
	if p(lat, 0.99) > 10*time.Millisecond {
		t.Errorf("p99 %s exceeds 10ms", p(lat, 0.99))
	}
}

// seqOf reads the sequence number alarmStatus put in time_utc.
func seqOf(b []byte) int {
	// field 2 (time_utc) follows an optional field 1 (2 bytes).
	if len(b) > 0 && b[0] == 0x08 {
		b = b[2:]
	}
	if len(b) < 2 {
		return 0
	}
	n, _ := strconv.Atoi(string(b[2 : 2+int(b[1])]))
	return n
}

// cpuTime is the CPU time the process has used (user and system).
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
