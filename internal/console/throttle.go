package console

import (
	"net"
	"net/http"
	"sync"
	"time"
)

// Sign-in throttling: after maxFailures wrong credentials from one address
// within failureWindow, that address may not try again until the window
// has passed. It slows guessing of keys without locking out other
// addresses (keys are 256 random bits: this only keeps logs and CPU calm).
const (
	maxFailures   = 10
	failureWindow = time.Minute
	maxTracked    = 10000 // addresses remembered at once
)

type throttle struct {
	now func() time.Time

	mu   sync.Mutex
	fail map[string]*failures // guarded by mu
}

type failures struct {
	n     int
	since time.Time
}

func newThrottle(now func() time.Time) *throttle {
	return &throttle{now: now, fail: make(map[string]*failures)}
}

func clientAddr(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// blocked reports whether addr has failed too often lately.
func (t *throttle) blocked(addr string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	f := t.fail[addr]
	if f == nil {
		return false
	}
	if t.now().Sub(f.since) >= failureWindow {
		delete(t.fail, addr)
		return false
	}
	return f.n >= maxFailures
}

// failed counts a wrong credential from addr.
func (t *throttle) failed(addr string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	f := t.fail[addr]
	if f == nil || now.Sub(f.since) >= failureWindow {
		if len(t.fail) >= maxTracked {
			for a, o := range t.fail {
				if now.Sub(o.since) >= failureWindow {
					delete(t.fail, a)
				}
			}
			if len(t.fail) >= maxTracked {
				return // full of fresh failures: count no more rather than grow
			}
		}
		f = &failures{since: now}
		t.fail[addr] = f
	}
	f.n++
}

// succeeded forgets addr's failures.
func (t *throttle) succeeded(addr string) {
	t.mu.Lock()
	delete(t.fail, addr)
	t.mu.Unlock()
}
