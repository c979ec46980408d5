package transport

import "sync"

// statusQueue delivers status changes to the callback from one goroutine,
// in order, without ever blocking the run loop on a slow callback.
type statusQueue struct {
	fn      func(Status, error)
	mu      sync.Mutex
	pending []statusEvent
	wake    chan struct{}
	stopped chan struct{} // closed by stop
	exited  chan struct{} // closed when the goroutine has delivered everything
}

type statusEvent struct {
	s   Status
	err error
}

func newStatusQueue(fn func(Status, error)) *statusQueue {
	q := &statusQueue{fn: fn, wake: make(chan struct{}, 1), stopped: make(chan struct{}), exited: make(chan struct{})}
	go q.loop()
	return q
}

func (q *statusQueue) push(s Status, err error) {
	q.mu.Lock()
	q.pending = append(q.pending, statusEvent{s, err})
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// stop delivers what is queued, then ends the goroutine and waits for it.
func (q *statusQueue) stop() {
	close(q.stopped)
	<-q.exited
}

func (q *statusQueue) loop() {
	defer close(q.exited)
	for {
		q.mu.Lock()
		batch := q.pending
		q.pending = nil
		q.mu.Unlock()
		for _, e := range batch {
			if q.fn != nil {
				q.fn(e.s, e.err)
			}
		}
		if len(batch) > 0 {
			continue // more may have come while the callback ran
		}
		select {
		case <-q.wake:
		case <-q.stopped:
			q.mu.Lock()
			left := len(q.pending)
			q.mu.Unlock()
			if left == 0 {
				return
			}
		}
	}
}
