package queue_test

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"sync"
	"testing"

	"github.com/ferry-iot/ferry/device/internal/queue"
)

// dump returns bucket's contents as key=value lines.
func dump(t *testing.T, q *queue.Queue, bucket string) string {
	t.Helper()
	var b bytes.Buffer
	err := q.ForEach(bucket, func(k, v []byte) error {
		fmt.Fprintf(&b, "%s=%s\n", k, v)
		return nil
	})
	if err != nil {
		t.Fatalf("ForEach(%s): %v", bucket, err)
	}
	return b.String()
}

func TestKVPutGetDeleteAcrossReopen(t *testing.T) {
	path := tempPath(t)
	q := openQueue(t, path, queue.Options{})
	if v, err := q.Get("twin", []byte("desired")); v != nil || err != nil {
		t.Fatalf("Get from a missing bucket = %q, %v", v, err)
	}
	if err := q.Put("twin", []byte("desired"), []byte(`{"a":1}`)); err != nil {
		t.Fatal(err)
	}
	if err := q.Put("twin", []byte("empty"), nil); err != nil {
		t.Fatal(err)
	}
	err := q.Update(
		queue.KVOp{Bucket: "inbox", Key: []byte("2"), Value: []byte("two")},
		queue.KVOp{Bucket: "inbox", Key: []byte("1"), Value: []byte("one")},
		queue.KVOp{Bucket: "inbox", Key: []byte("3"), Value: []byte("three")},
		queue.KVOp{Bucket: "inbox", Key: []byte("3")}, // deleted again in the same commit
		queue.KVOp{Bucket: "inbox", Key: []byte("9")}, // deleting a missing key is fine
	)
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := q.Pending(); n != 0 {
		t.Fatalf("key-value writes counted as %d pending records", n)
	}
	q.Close()

	q = openQueue(t, path, queue.Options{})
	if v, err := q.Get("twin", []byte("desired")); string(v) != `{"a":1}` || err != nil {
		t.Fatalf("Get after reopen = %q, %v", v, err)
	}
	if v, err := q.Get("twin", []byte("empty")); v == nil || len(v) != 0 || err != nil {
		t.Fatalf("Get of an empty value = %q (nil %v), %v; want empty, not nil", v, v == nil, err)
	}
	if got := dump(t, q, "inbox"); got != "1=one\n2=two\n" {
		t.Fatalf("inbox after reopen:\n%s", got)
	}
	if err := q.Delete("inbox", []byte("1")); err != nil {
		t.Fatal(err)
	}
	if got := dump(t, q, "inbox"); got != "2=two\n" {
		t.Fatalf("inbox after Delete:\n%s", got)
	}
	stop := errors.New("stop")
	calls := 0
	err = q.ForEach("twin", func(k, v []byte) error { calls++; return stop })
	if !errors.Is(err, stop) || calls != 1 {
		t.Fatalf("ForEach with a failing fn = %v after %d calls", err, calls)
	}
}

// TestKVSharesCommitsWithRecords runs key-value updates and enqueues
// concurrently: both land, and the records keep their order and counts.
func TestKVSharesCommitsWithRecords(t *testing.T) {
	q := openQueue(t, tempPath(t), queue.Options{})
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(2)
		go func() {
			defer wg.Done()
			for range 50 {
				mustEnqueue(t, q, queue.Record{Body: []byte("x")})
			}
		}()
		go func() {
			defer wg.Done()
			for i := range 50 {
				k := []byte(fmt.Sprintf("%d-%03d", g, i))
				if err := q.Put("kv", k, k); err != nil {
					t.Errorf("Put: %v", err)
				}
			}
		}()
	}
	wg.Wait()
	if n, _ := q.Pending(); n != 400 {
		t.Fatalf("Pending = %d, want 400", n)
	}
	n := 0
	if err := q.ForEach("kv", func(k, v []byte) error {
		if !bytes.Equal(k, v) {
			t.Errorf("key %s holds %s", k, v)
		}
		n++
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if n != 400 {
		t.Fatalf("%d keys stored, want 400", n)
	}
}

func TestKVBadOps(t *testing.T) {
	q := openQueue(t, tempPath(t), queue.Options{})
	for name, op := range map[string]queue.KVOp{
		"empty bucket": {Key: []byte("k"), Value: []byte("v")},
		"empty key":    {Bucket: "b", Value: []byte("v")},
		"long key":     {Bucket: "b", Key: bytes.Repeat([]byte("k"), 40000), Value: []byte("v")},
	} {
		if err := q.Update(op); !errors.Is(err, queue.ErrBadOp) {
			t.Errorf("%s: Update = %v, want ErrBadOp", name, err)
		}
	}
	// A bad op refuses the whole call: the good one before it is not stored.
	err := q.Update(queue.KVOp{Bucket: "b", Key: []byte("ok"), Value: []byte("v")}, queue.KVOp{Bucket: "b"})
	if !errors.Is(err, queue.ErrBadOp) {
		t.Fatalf("Update = %v, want ErrBadOp", err)
	}
	if v, _ := q.Get("b", []byte("ok")); v != nil {
		t.Fatal("a refused Update stored part of its ops")
	}
}

func TestKVCorruptValue(t *testing.T) {
	path := tempPath(t)
	q := openQueue(t, path, queue.Options{})
	if err := q.Put("twin", []byte("desired"), []byte("KVMARKER-abcdefgh")); err != nil {
		t.Fatal(err)
	}
	q.Close()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	i := bytes.Index(data, []byte("KVMARKER"))
	if i < 0 {
		t.Fatal("value not found in file")
	}
	data[i] ^= 0x20
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	q = openQueue(t, path, queue.Options{})
	if _, err := q.Get("twin", []byte("desired")); !errors.Is(err, queue.ErrCorrupt) {
		t.Fatalf("Get of a flipped value = %v, want ErrCorrupt", err)
	}
	if err := q.ForEach("twin", func(k, v []byte) error { return nil }); !errors.Is(err, queue.ErrCorrupt) {
		t.Fatalf("ForEach over a flipped value = %v, want ErrCorrupt", err)
	}
}

func TestKVClosed(t *testing.T) {
	q := openQueue(t, tempPath(t), queue.Options{})
	q.Close()
	if err := q.Put("b", []byte("k"), []byte("v")); !errors.Is(err, queue.ErrClosed) {
		t.Errorf("Put after Close = %v", err)
	}
	if _, err := q.Get("b", []byte("k")); !errors.Is(err, queue.ErrClosed) {
		t.Errorf("Get after Close = %v", err)
	}
	if err := q.ForEach("b", func(k, v []byte) error { return nil }); !errors.Is(err, queue.ErrClosed) {
		t.Errorf("ForEach after Close = %v", err)
	}
}
