package transport

import (
	"context"
	"crypto/tls"
	"fmt"
	"runtime/pprof"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/ferry-iot/ferry/internal/hubtest"
	"github.com/ferry-iot/ferry/internal/protocol"
	"github.com/ferry-iot/ferry/internal/provision"
)

// BenchmarkDPSRegistrations registers b.N distinct devices of one
// symmetric-key enrollment group through the hub's DPS endpoint over
// MQTT/TLS (a new TLS connection per registration: CONNECT, SUBSCRIBE,
// register, poll), from 64 concurrent clients in this process, and reports
// registrations per second. Bounded: b.N registrations, each within 30 s.
//
//	go test ./device/internal/transport -run '^$' -bench DPSRegistrations -benchtime 5000x
func BenchmarkDPSRegistrations(b *testing.B) {
	const workers = 64
	h := hubtest.Start(b)
	ctx := context.Background()
	info, err := h.Client.DPSInfo(ctx)
	if err != nil {
		b.Fatal(err)
	}
	gk := benchGroupKey(b, h)
	host, tlsCfg := h.DeviceHost(), h.TLSConfig()
	// X25519 key exchange, as most device TLS stacks (mbedTLS, OpenSSL 1.1)
	// offer; Go's default hybrid X25519MLKEM768 costs both ends more.
	tlsCfg.CurvePreferences = []tls.CurveID{tls.X25519}
	run := time.Now().UnixNano()
	var next, failed atomic.Int64
	b.ResetTimer()
	cpu0 := cpuTime()
	start := time.Now()
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		// The loader's goroutines carry the label side=loader, so that a CPU
		// profile (-cpuprofile) tells the hub's share apart:
		// go tool pprof -tagignore side=loader ...
		go pprof.Do(ctx, pprof.Labels("side", "loader"), func(ctx context.Context) {
			defer wg.Done()
			for {
				i := next.Add(1)
				if i > int64(b.N) {
					return
				}
				reg := fmt.Sprintf("bench-%x-%d", run, i)
				key, _ := protocol.DecodeKey(protocol.DeriveDeviceKey(gk, reg))
				rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
				_, err := Register(rctx, DPSConfig{Host: host, IDScope: info.IDScope, RegistrationID: reg, Key: key, TLS: tlsCfg,
					Payload: []byte(`{"modelId":"dtmi:com:example:Thermostat;1"}`)})
				cancel()
				if err != nil {
					if failed.Add(1) <= 3 {
						b.Logf("register %s: %v", reg, err)
					}
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	if n := failed.Load(); n > 0 {
		b.Fatalf("%d of %d registrations failed", n, b.N)
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "registrations/s")
	// CPU of this process (hub and clients together) per registration: what
	// the rate would be on idle cores is 2 cores / this, whatever else runs.
	b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/float64(b.N), "cpu-µs/registration")
}

func benchGroupKey(b *testing.B, h *hubtest.Hub) []byte {
	b.Helper()
	g, err := h.Client.EnrollmentGroup(context.Background(), "bench")
	if err != nil {
		g2, err2 := h.Client.PutEnrollmentGroup(context.Background(), benchGroup(), false)
		if err2 != nil {
			b.Fatal(err2)
		}
		g = g2
	}
	k, err := protocol.DecodeKey(g.Attestation.SymmetricKey.PrimaryKey)
	if err != nil {
		b.Fatal(err)
	}
	return k
}

// cpuTime is the user and system CPU time of this process.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func benchGroup() provision.EnrollmentGroup {
	return provision.EnrollmentGroup{EnrollmentGroupID: "bench"}
}
