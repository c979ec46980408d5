//go:build linux

package device_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/ferry-iot/ferry/device"
	"github.com/ferry-iot/ferry/internal/hubtest"
)

// faultTmpfs mounts a tmpfs of size bytes on a new directory until the test
// ends, or skips the test where mounting is not permitted (not root, no
// CAP_SYS_ADMIN); CI runs the tests as root.
func faultTmpfs(t *testing.T, size int, opts ...string) string {
	t.Helper()
	dir := t.TempDir()
	o := strings.Join(append([]string{fmt.Sprintf("size=%d", size)}, opts...), ",")
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", o, "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs (needs root): %v: %s", err, bytes.TrimSpace(out))
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
		}
	})
	return dir
}

func faultRemount(t *testing.T, dir, mode string) {
	t.Helper()
	if out, err := exec.Command("mount", "-o", "remount,"+mode, dir).CombinedOutput(); err != nil {
		t.Fatalf("remount %s %s: %v: %s", dir, mode, err, out)
	}
}

// TestStoreUnwritable: Start fails with a clear error naming the store when
// the store cannot be written, both for a new store in a read-only
// directory and for an existing store on a file system remounted
// read-only, and never starts without its store.
func TestStoreUnwritable(t *testing.T) {
	cfg := device.Config{
		ConnectionString: "HostName=127.0.0.1:1;DeviceId=d1;SharedAccessKey=a2V5a2V5a2V5a2V5",
		InsecureTCP:      true,
	}
	check := func(t *testing.T, err error) {
		t.Helper()
		if err == nil {
			t.Fatal("Start succeeded on a read-only store")
		}
		if !strings.HasPrefix(err.Error(), "device: open store") || !strings.Contains(err.Error(), cfg.StorePath) ||
			!(errors.Is(err, syscall.EROFS) || errors.Is(err, os.ErrPermission)) {
			t.Fatalf("Start: %v; want a read-only or permission error naming %s", err, cfg.StorePath)
		}
	}
	t.Run("new store, read-only directory", func(t *testing.T) {
		var dir string
		if os.Geteuid() != 0 {
			dir = t.TempDir()
			if err := os.Chmod(dir, 0o500); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { os.Chmod(dir, 0o700) })
		} else { // root ignores permissions; a read-only mount stops it
			dir = faultTmpfs(t, 1<<20, "ro")
		}
		cfg.StorePath = filepath.Join(dir, "device.db")
		_, err := device.Start(context.Background(), cfg)
		check(t, err)
	})
	t.Run("existing store, read-only file system", func(t *testing.T) {
		dir := faultTmpfs(t, 4<<20)
		cfg.StorePath = filepath.Join(dir, "device.db")
		c, err := device.Start(context.Background(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Stream("", "").Enqueue(context.Background(), device.Message{Body: []byte("kept")}); err != nil {
			t.Fatal(err)
		}
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
		faultRemount(t, dir, "ro")
		_, err = device.Start(context.Background(), cfg)
		check(t, err)
		faultRemount(t, dir, "rw")
		c, err = device.Start(context.Background(), cfg)
		if err != nil {
			t.Fatalf("Start once writable again: %v", err)
		}
		defer c.Close()
		if n, _ := c.Pending(); n != 1 {
			t.Fatalf("Pending = %d, want the stored message", n)
		}
	})
}

// TestDiskFull fills the file system under the store: Enqueue fails with
// an error that says so, every message stored before is kept (across a
// restart too), Enqueue works again once space is freed, and the hub gets
// exactly the messages whose Enqueue succeeded.
func TestDiskFull(t *testing.T) {
	dir := faultTmpfs(t, 2<<20)
	e := newEnv(t, false)
	e.cfg.StorePath = filepath.Join(dir, "device.db")
	c, err := device.Start(context.Background(), e.cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { c.Close() }()
	s := c.Stream("", "full")
	ids := map[string]bool{}
	body := bytes.Repeat([]byte("x"), 4000)
	for range 20 {
		info, err := s.Enqueue(context.Background(), device.Message{Body: body})
		if err != nil {
			t.Fatalf("Enqueue with room: %v", err)
		}
		ids[info.ID] = true
	}

	// Take the rest of the space.
	filler := filepath.Join(dir, "filler")
	f, err := os.Create(filler)
	if err != nil {
		t.Fatal(err)
	}
	chunk := make([]byte, 64<<10)
	for {
		if _, err := f.Write(chunk); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("filling: %v", err)
			}
			break
		}
	}
	f.Close()

	// The store may still have free pages inside its file; Enqueue until
	// they are used up too.
	var full error
	for i := 0; i < 2000 && full == nil; i++ {
		info, err := s.Enqueue(context.Background(), device.Message{Body: body})
		if err != nil {
			full = err
			break
		}
		ids[info.ID] = true
	}
	if full == nil {
		t.Fatal("Enqueue never failed on a full file system")
	}
	if !errors.Is(full, syscall.ENOSPC) || !strings.HasPrefix(full.Error(), "device: enqueue") ||
		!strings.Contains(full.Error(), "no space left on device") {
		t.Fatalf("Enqueue on a full disk: %v; want a device: enqueue error wrapping ENOSPC", full)
	}
	if _, err := s.EnqueueBatch(context.Background(), []device.Message{{Body: body}, {Body: body}}); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("EnqueueBatch on a full disk: %v", err)
	}
	if n, _ := c.Pending(); n != len(ids) {
		t.Fatalf("Pending = %d after the disk filled, want the %d stored", n, len(ids))
	}
	t.Logf("disk full after %d messages: %v", len(ids), full)

	// A restart while full loses nothing.
	if err := c.Close(); err != nil {
		t.Logf("Close on a full disk: %v", err)
	}
	if c, err = device.Start(context.Background(), e.cfg); err != nil {
		t.Fatalf("Start on a full disk: %v", err)
	}
	if n, _ := c.Pending(); n != len(ids) {
		t.Fatalf("Pending = %d after a restart on a full disk, want %d", n, len(ids))
	}

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	for range 5 {
		info, err := c.Stream("", "full").Enqueue(context.Background(), device.Message{Body: body})
		if err != nil {
			t.Fatalf("Enqueue after space was freed: %v", err)
		}
		ids[info.ID] = true
	}
	e.link.up.Store(true)
	flush(t, c)
	exactlyOnce(t, e.read(t), ids)
}

// TestFullPolicies checks MaxPending's three policies through the public
// API, offline and then draining to the hub.
func TestFullPolicies(t *testing.T) {
	ctx := context.Background()
	msg := func(i int) device.Message {
		return device.Message{ID: fmt.Sprintf("m%d", i), Body: []byte("x")}
	}
	fill := func(t *testing.T, s *device.Stream, n int) map[string]bool {
		ids := map[string]bool{}
		for i := range n {
			if _, err := s.Enqueue(ctx, msg(i)); err != nil {
				t.Fatalf("Enqueue %d: %v", i, err)
			}
			ids[msg(i).ID] = true
		}
		return ids
	}
	t.Run("RejectNew", func(t *testing.T) {
		e := newEnv(t, false)
		e.cfg.MaxPending, e.cfg.Full = 10, device.RejectNew
		c := e.start(t)
		s := c.Stream("", "")
		ids := fill(t, s, 10)
		if _, err := s.Enqueue(ctx, msg(10)); !errors.Is(err, device.ErrQueueFull) {
			t.Fatalf("Enqueue over MaxPending: %v, want ErrQueueFull", err)
		}
		if _, err := s.EnqueueBatch(ctx, []device.Message{msg(11), msg(12)}); !errors.Is(err, device.ErrQueueFull) {
			t.Fatalf("EnqueueBatch over MaxPending: %v, want ErrQueueFull", err)
		}
		e.link.up.Store(true)
		flush(t, c)
		if _, err := s.Enqueue(ctx, msg(13)); err != nil {
			t.Fatalf("Enqueue once drained: %v", err)
		}
		ids[msg(13).ID] = true
		flush(t, c)
		exactlyOnce(t, e.read(t), ids)
	})
	t.Run("Block", func(t *testing.T) {
		e := newEnv(t, false)
		e.cfg.MaxPending, e.cfg.Full = 10, device.Block
		c := e.start(t)
		s := c.Stream("", "")
		ids := fill(t, s, 10)
		short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
		defer cancel()
		if _, err := s.Enqueue(short, msg(10)); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Enqueue over MaxPending with a deadline: %v, want DeadlineExceeded", err)
		}
		done := make(chan error, 1)
		go func() {
			_, err := s.Enqueue(ctx, msg(11))
			done <- err
		}()
		select {
		case err := <-done:
			t.Fatalf("Enqueue over MaxPending returned %v while full", err)
		case <-time.After(300 * time.Millisecond):
		}
		e.link.up.Store(true)
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("blocked Enqueue: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Fatal("blocked Enqueue did not proceed once the hub took messages")
		}
		ids[msg(11).ID] = true
		flush(t, c)
		exactlyOnce(t, e.read(t), ids)
	})
	t.Run("DropOldest", func(t *testing.T) {
		e := newEnv(t, false)
		e.cfg.MaxPending, e.cfg.Full = 10, device.DropOldest
		c := e.start(t)
		s := c.Stream("", "")
		fill(t, s, 15)
		if n, _ := c.Pending(); n != 10 || c.Dropped() != 5 {
			t.Fatalf("Pending = %d, Dropped = %d; want 10 and 5", n, c.Dropped())
		}
		e.link.up.Store(true)
		flush(t, c)
		ids := map[string]bool{}
		for i := 5; i < 15; i++ {
			ids[msg(i).ID] = true
		}
		exactlyOnce(t, e.read(t), ids) // the five oldest were dropped, never sent
	})
}

// TestWrongKey: the hub refuses the device's key. OnStatus reports
// Disconnected with the refusal, connection attempts back off from the
// default 1 s floor (no storm), and messages stay stored.
func TestWrongKey(t *testing.T) {
	e := newEnv(t, true)
	e.cfg.ConnectionString = fmt.Sprintf("HostName=%s;DeviceId=%s;SharedAccessKey=%s",
		e.hub.DeviceHost(), e.id, base64.StdEncoding.EncodeToString([]byte("not the device key")))
	var dials atomic.Int32
	var connected atomic.Bool
	reasons := make(chan error, 100)
	e.cfg.OnStatus = func(s device.Status, err error) {
		switch s {
		case device.Connected:
			connected.Store(true)
		case device.Disconnected:
			select {
			case reasons <- err:
			default:
			}
		}
	}
	// Backoff 0 keeps the SDK's default backoff; only dials are counted.
	device.SetTestHooks(&e.cfg, func(ctx context.Context, network, addr string) (net.Conn, error) {
		dials.Add(1)
		var d net.Dialer
		return d.DialContext(ctx, network, addr)
	}, 0)
	c := e.start(t)
	if _, err := c.Stream("", "").Enqueue(context.Background(), device.Message{Body: []byte("kept")}); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-reasons:
		if err == nil || !strings.Contains(strings.ToLower(err.Error()), "refused") {
			t.Fatalf("Disconnected with reason %v; want the refusal", err)
		}
		t.Logf("reason: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("no Disconnected status")
	}
	start := time.Now()
	// A second attempt comes within 2 s of the first refusal, later on a
	// loaded machine: wait for it as long as it takes.
	hubtest.Eventually(t, 30*time.Second, func() error {
		if n := dials.Load(); n < 2 {
			return fmt.Errorf("%d connection attempts, want them to go on", n)
		}
		return nil
	})
	time.Sleep(3500*time.Millisecond - time.Since(start))
	n := dials.Load()
	// Attempt k starts at least k seconds after the first: at most 5 in
	// 3.5 s after the first refusal, one more as its report may come late.
	if el := time.Since(start); n > int32(el/time.Second)+2 {
		t.Errorf("%d connection attempts in about %s, want at most one a second", n, el)
	}
	if connected.Load() {
		t.Fatal("connected with a wrong key")
	}
	if p, _ := c.Pending(); p != 1 {
		t.Fatalf("Pending = %d, want the message kept", p)
	}
}
