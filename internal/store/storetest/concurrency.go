package storetest

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/ferry-iot/ferry/internal/fault"
	"github.com/ferry-iot/ferry/internal/registry"
)

// testConditionalUpdateRace has many writers update one device with the
// same If-Match etag: the check and the write must be atomic, so exactly
// one wins and the others see PreconditionFailed.
func testConditionalUpdateRace(t *testing.T, st registry.Store) {
	ctx := t.Context()
	must(t, st.CreateDevice(ctx, newDevice("r1")))
	const writers = 8
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for i := range writers {
		wg.Go(func() {
			d := newDevice("r1")
			d.ETag = fmt.Sprintf("writer-%d", i)
			errs <- st.UpdateDevice(ctx, d, "MzE4NzUxOTU1")
		})
	}
	wg.Wait()
	close(errs)
	wins := 0
	for err := range errs {
		switch {
		case err == nil:
			wins++
		case fault.KindOf(err) != fault.PreconditionFailed:
			t.Errorf("a losing writer got %v, want PreconditionFailed", err)
		}
	}
	if wins != 1 {
		t.Errorf("%d writers won with the same etag, want exactly 1", wins)
	}
}

// testConcurrentWriters runs creates, updates, connection changes and reads
// from many goroutines at once; none may fail (no "database is busy").
func testConcurrentWriters(t *testing.T, st registry.Store) {
	ctx := t.Context()
	const workers, ops = 8, 25
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Go(func() {
			errs <- func() error {
				id := fmt.Sprintf("w%d", w)
				if err := st.CreateDevice(ctx, newDevice(id)); err != nil {
					return err
				}
				for i := range ops {
					at := base.Add(time.Duration(i) * time.Second)
					if err := st.SetConnectionState(ctx, id, i%2 == 0, at); err != nil {
						return err
					}
					d := newDevice(id)
					d.ETag = fmt.Sprintf("e%d", i)
					if err := st.UpdateDevice(ctx, d, "*"); err != nil {
						return err
					}
					if _, err := st.GetDevice(ctx, id); err != nil {
						return err
					}
					if _, err := st.ListDevices(ctx, "", 5); err != nil {
						return err
					}
				}
				return nil
			}()
		})
	}
	wg.Wait()
	close(errs)
	if err := errNil(errs); err != nil {
		t.Fatal(err)
	}
	n, err := st.CountDevices(ctx)
	must(t, err)
	if n != workers {
		t.Errorf("count = %d, want %d", n, workers)
	}
}
