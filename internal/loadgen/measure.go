package loadgen

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// measure drives the phases of one Ingest run: warm-up, measuring window,
// drain, disconnect. It samples the counters, the loader's CPU and the
// broker's /proc entries at the window's two edges.
type measure struct {
	r        *run
	conns    []*pubConn
	pid      int
	progress func(sent, acked int64)

	tBegin, tEnd           int64
	ackedBegin, ackedEnd   int64
	loaderBegin, loaderEnd time.Duration
	server                 [2]procSample
	sampleErr              error
}

// stopReason tells why a wait ended.
type stopReason int

const (
	reachedTime stopReason = iota
	writersDone            // every writer returned: MaxMessages, or all connections failed
	ctxDone
)

var errNoWindow = errors.New("loadgen: publishing ended before the measuring window opened (MaxMessages spent in the warm-up, or every connection failed)")

func (m *measure) run(ctx context.Context) (IngestResult, error) {
	var readers, writers sync.WaitGroup
	for _, c := range m.conns {
		if m.r.minBurst > 1 {
			c.setLowWater(pubackSize * int(m.r.minBurst))
		}
		readers.Go(c.readLoop)
		writers.Go(c.writeLoop)
	}
	done := make(chan struct{})
	go func() { writers.Wait(); close(done) }()

	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	measured := false
	reason := m.wait(ctx, m.r.mStart, done, tick.C)
	if reason == reachedTime {
		m.sample(0)
		reason = m.wait(ctx, m.r.mEnd, done, tick.C)
		m.sample(1)
		measured = true
	}
	close(m.r.stop)
	<-done
	// The last PUBACKs of a connection may be fewer than its low-water
	// mark; without this they would sit in the kernel until the drain
	// timed out. Linux signals readiness at once when the mark drops.
	if m.r.minBurst > 1 {
		for _, c := range m.conns {
			c.setLowWater(1)
		}
	}
	if reason != ctxDone {
		m.drain(ctx, tick.C)
	}
	m.r.closing.Store(true)
	for _, c := range m.conns {
		_ = c.conn.SetWriteDeadline(time.Now().Add(time.Second))
		_, _ = c.conn.Write(disconnect)
		c.conn.Close()
	}
	readers.Wait()
	m.report()

	res := m.result()
	switch {
	case reason == ctxDone:
		return res, fmt.Errorf("loadgen: ingest interrupted: %w", ctx.Err())
	case !measured:
		return res, errNoWindow
	}
	return res, m.sampleErr
}

// wait blocks until the clock reaches at, the writers are done or ctx ends,
// reporting progress on every tick.
func (m *measure) wait(ctx context.Context, at int64, done <-chan struct{}, tick <-chan time.Time) stopReason {
	timer := time.NewTimer(time.Duration(at - m.r.clock()))
	defer timer.Stop()
	for {
		select {
		case <-timer.C:
			return reachedTime
		case <-done:
			return writersDone
		case <-ctx.Done():
			return ctxDone
		case <-tick:
			m.report()
		}
	}
}

// sample reads the counters at the window's start (edge 0) or end (edge 1).
func (m *measure) sample(edge int) {
	now, acked, cpu := m.r.clock(), m.totalAcked(), selfCPU()
	if edge == 0 {
		m.tBegin, m.ackedBegin, m.loaderBegin = now, acked, cpu
	} else {
		m.tEnd, m.ackedEnd, m.loaderEnd = now, acked, cpu
	}
	if m.pid > 0 && m.sampleErr == nil {
		m.server[edge], m.sampleErr = sampleProc(m.pid)
	}
}

// drain waits, at most drainTimeout, for the PUBACKs of messages still in
// flight, so that Acked can equal Sent.
func (m *measure) drain(ctx context.Context, tick <-chan time.Time) {
	deadline := time.Now().Add(drainTimeout)
	poll := time.NewTicker(10 * time.Millisecond)
	defer poll.Stop()
	for time.Now().Before(deadline) {
		busy := false
		for _, c := range m.conns {
			busy = busy || (!c.dead.Load() && c.inflight.Load() > 0)
		}
		if !busy {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-tick:
			m.report()
		case <-poll.C:
		}
	}
}

func (m *measure) totalAcked() (n int64) {
	for _, c := range m.conns {
		n += c.acked.Load()
	}
	return n
}

func (m *measure) report() {
	if m.progress == nil {
		return
	}
	var sent int64
	for _, c := range m.conns {
		sent += c.sent.Load()
	}
	m.progress(sent, m.totalAcked())
}

// result adds up the connections' counters and histograms. It runs after
// every goroutine returned, so the goroutine-owned fields are safe to read.
func (m *measure) result() IngestResult {
	var res IngestResult
	var h histogram
	for _, c := range m.conns {
		res.Sent += c.sentWin
		res.Acked += c.ackedWin
		h.merge(&c.hist)
	}
	res.Errors = m.r.errors.Load()
	res.LatencyP50, res.LatencyP90 = h.percentile(50), h.percentile(90)
	res.LatencyP99, res.LatencyMax = h.percentile(99), time.Duration(h.max)
	if m.tEnd <= m.tBegin {
		return res
	}
	res.Elapsed = time.Duration(m.tEnd - m.tBegin)
	acked := m.ackedEnd - m.ackedBegin
	res.MsgsPerSec = float64(acked) / res.Elapsed.Seconds()
	res.LoaderCPU = m.loaderEnd - m.loaderBegin
	if m.pid > 0 && m.sampleErr == nil {
		res.ServerCPU = m.server[1].cpu - m.server[0].cpu
		res.ServerRSSBytes = m.server[1].rss
		if acked > 0 {
			res.ServerCPUPerMsg = res.ServerCPU / time.Duration(acked)
		}
	}
	return res
}
