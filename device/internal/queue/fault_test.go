package queue_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/ferry-iot/ferry/device/internal/queue"
)

func TestOpenCorruptFile(t *testing.T) {
	for name, size := range map[string]int{"garbage 64KiB": 64 << 10, "garbage 100B": 100} {
		t.Run(name, func(t *testing.T) {
			path := tempPath(t)
			garbage := bytes.Repeat([]byte("not a bbolt file "), size/17+1)[:size]
			if err := os.WriteFile(path, garbage, 0o600); err != nil {
				t.Fatal(err)
			}
			q, err := queue.Open(path, queue.Options{})
			if err == nil {
				q.Close()
				t.Fatal("Open of a garbage file succeeded")
			}
			if !errors.Is(err, queue.ErrCorrupt) || !strings.Contains(err.Error(), path) {
				t.Fatalf("Open = %v; want ErrCorrupt naming the file", err)
			}
		})
	}
}

func TestOpenCorruptRecord(t *testing.T) {
	path := tempPath(t)
	q := openQueue(t, path, queue.Options{})
	mustEnqueue(t, q, queue.Record{Body: []byte("MARKER-abcdefgh")})
	q.Close()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	i := bytes.Index(data, []byte("MARKER"))
	if i < 0 {
		t.Fatal("record body not found in file")
	}
	data[i] ^= 0x20 // a flipped bit in a data page: bbolt does not notice, the record checksum does
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := queue.Open(path, queue.Options{}); !errors.Is(err, queue.ErrCorrupt) {
		t.Fatalf("Open = %v; want ErrCorrupt", err)
	}
}

func TestOpenUnwritable(t *testing.T) {
	dir := t.TempDir()
	t.Run("missing directory", func(t *testing.T) {
		path := filepath.Join(dir, "missing", "queue.db")
		_, err := queue.Open(path, queue.Options{})
		if !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), path) {
			t.Fatalf("Open = %v; want not-exist naming the file", err)
		}
	})
	t.Run("path is a directory", func(t *testing.T) {
		if _, err := queue.Open(dir, queue.Options{}); err == nil || !strings.Contains(err.Error(), dir) {
			t.Fatalf("Open = %v; want an error naming the path", err)
		}
	})
	t.Run("read-only directory", func(t *testing.T) {
		if os.Geteuid() == 0 {
			t.Skip("root ignores directory permissions")
		}
		ro := filepath.Join(dir, "ro")
		os.Mkdir(ro, 0o500)
		_, err := queue.Open(filepath.Join(ro, "queue.db"), queue.Options{})
		if !errors.Is(err, os.ErrPermission) {
			t.Fatalf("Open = %v; want permission denied", err)
		}
	})
}

func TestOpenLocked(t *testing.T) {
	path := tempPath(t)
	openQueue(t, path, queue.Options{})
	q, err := queue.Open(path, queue.Options{LockTimeout: 50 * time.Millisecond})
	if err == nil {
		q.Close()
		t.Fatal("second Open of a file in use succeeded")
	}
	if !errors.Is(err, queue.ErrLocked) {
		t.Fatalf("Open = %v; want ErrLocked", err)
	}
}

func TestFullRejectNew(t *testing.T) {
	q := openQueue(t, tempPath(t), queue.Options{MaxRecords: 3, Full: queue.RejectNew})
	for range 3 {
		mustEnqueue(t, q, queue.Record{})
	}
	if _, err := q.Enqueue(context.Background(), queue.Record{}); !errors.Is(err, queue.ErrQueueFull) {
		t.Fatalf("Enqueue on a full queue = %v; want ErrQueueFull", err)
	}
	q.Ack(2)
	mustEnqueue(t, q, queue.Record{})
	if n, _ := q.Pending(); n != 3 {
		t.Fatalf("Pending = %d, want 3", n)
	}
}

func TestFullBlock(t *testing.T) {
	q := openQueue(t, tempPath(t), queue.Options{MaxRecords: 2})
	mustEnqueue(t, q, queue.Record{})
	mustEnqueue(t, q, queue.Record{})
	type result struct {
		r   queue.Record
		err error
	}
	done := make(chan result, 1)
	go func() {
		r, err := q.Enqueue(context.Background(), queue.Record{})
		done <- result{r, err}
	}()
	select {
	case res := <-done:
		t.Fatalf("Enqueue on a full Block queue returned %+v", res)
	case <-time.After(50 * time.Millisecond):
	}
	q.Ack(1)
	select {
	case res := <-done:
		if res.err != nil || res.r.Seq != 3 {
			t.Fatalf("blocked Enqueue = %+v", res)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Enqueue still blocked after an Ack freed space")
	}
}

func TestFullBlockContextCancelled(t *testing.T) {
	q := openQueue(t, tempPath(t), queue.Options{MaxRecords: 1})
	mustEnqueue(t, q, queue.Record{})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	if _, err := q.Enqueue(ctx, queue.Record{}); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Enqueue = %v; want deadline exceeded", err)
	}
	if n, _ := q.Pending(); n != 1 {
		t.Fatalf("Pending = %d after a cancelled Enqueue", n)
	}
	// The cancelled Enqueue left no reservation behind.
	q.Ack(1)
	mustEnqueue(t, q, queue.Record{})
}

func TestFullDropOldest(t *testing.T) {
	q := openQueue(t, tempPath(t), queue.Options{MaxRecords: 3, Full: queue.DropOldest})
	for range 5 {
		mustEnqueue(t, q, queue.Record{})
	}
	if got := peekSeqs(t, q); !reflect.DeepEqual(got, []uint64{3, 4, 5}) {
		t.Fatalf("records = %v, want [3 4 5]", got)
	}
	if d := q.Dropped(); d != 2 {
		t.Fatalf("Dropped = %d, want 2", d)
	}

	// The byte bound works the same way; each record encodes to about 350 bytes.
	q2 := openQueue(t, tempPath(t), queue.Options{MaxBytes: 1100, Full: queue.DropOldest})
	for range 10 {
		mustEnqueue(t, q2, queue.Record{Body: make([]byte, 300)})
	}
	n, b := q2.Pending()
	if n != 3 || b > 1100 || q2.Dropped() != 7 {
		t.Fatalf("Pending = %d, %d; Dropped = %d; want 3 records within 1100 bytes, 7 dropped", n, b, q2.Dropped())
	}
}

func TestTooLarge(t *testing.T) {
	q := openQueue(t, tempPath(t), queue.Options{MaxBytes: 100})
	if _, err := q.Enqueue(context.Background(), queue.Record{Body: make([]byte, 200)}); !errors.Is(err, queue.ErrTooLarge) {
		t.Fatalf("Enqueue = %v; want ErrTooLarge", err)
	}
}

func TestClosed(t *testing.T) {
	q, err := queue.Open(tempPath(t), queue.Options{})
	if err != nil {
		t.Fatal(err)
	}
	mustEnqueue(t, q, queue.Record{})
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	if err := q.Close(); err != nil {
		t.Fatalf("second Close = %v", err)
	}
	if _, err := q.Enqueue(context.Background(), queue.Record{}); !errors.Is(err, queue.ErrClosed) {
		t.Errorf("Enqueue after Close = %v", err)
	}
	if err := q.Ack(1); !errors.Is(err, queue.ErrClosed) {
		t.Errorf("Ack after Close = %v", err)
	}
	if _, err := q.Peek(0, 1); !errors.Is(err, queue.ErrClosed) {
		t.Errorf("Peek after Close = %v", err)
	}
	if err := q.Wait(context.Background()); !errors.Is(err, queue.ErrClosed) {
		t.Errorf("Wait after Close = %v", err)
	}
}
