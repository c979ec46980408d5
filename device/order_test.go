package device_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ferry-iot/ferry/device"
)

// enqueueN stores n messages numbered in property "n" and returns their ids.
func enqueueN(t *testing.T, c *device.Client, n int) map[string]bool {
	t.Helper()
	ids := map[string]bool{}
	for i := range n {
		info, err := c.Stream("", "ordered").Enqueue(context.Background(),
			device.Message{Body: []byte("x"), Properties: map[string]string{"n": strconv.Itoa(i)}})
		if err != nil {
			t.Fatalf("Enqueue: %v", err)
		}
		ids[info.ID] = true
	}
	return ids
}

// cutWhileDraining cuts the connection a few times while c has a backlog
// and returns how many cuts it made.
func cutWhileDraining(e *env, c *device.Client) int {
	cuts := 0
	for range 4 {
		time.Sleep(20 * time.Millisecond)
		if n, _ := c.Pending(); n == 0 {
			break
		}
		e.link.cut()
		cuts++
	}
	return cuts
}

func TestWindowOneKeepsOrder(t *testing.T) {
	e := newEnv(t, true)
	e.cfg.Window = 1
	c := e.start(t)
	ids := enqueueN(t, c, 300)
	t.Logf("%d connections cut while draining", cutWhileDraining(e, c))
	flush(t, c)
	msgs := e.read(t)
	exactlyOnce(t, msgs, ids)
	for i, m := range msgs {
		if m.Properties["n"] != strconv.Itoa(i) {
			t.Fatalf("message %d in the stream has n=%s", i, m.Properties["n"])
		}
	}
}

func TestReconnectsDeliverOnce(t *testing.T) {
	e := newEnv(t, false)
	c := e.start(t)
	ids := enqueueN(t, c, 2000)
	e.link.up.Store(true)
	t.Logf("%d connections cut while draining", cutWhileDraining(e, c))
	flush(t, c)
	exactlyOnce(t, e.read(t), ids)
}

func TestCorruptStore(t *testing.T) {
	path := filepath.Join(t.TempDir(), "device.db")
	if err := os.WriteFile(path, []byte(strings.Repeat("not a store ", 1000)), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := device.Start(context.Background(), device.Config{
		ConnectionString: "HostName=localhost:1;DeviceId=d1;SharedAccessKey=a2V5a2V5a2V5a2V5",
		StorePath:        path,
	})
	if !errors.Is(err, device.ErrStoreCorrupt) || !strings.HasPrefix(err.Error(), "device: ") {
		t.Fatalf("Start over a corrupt store: %v, want ErrStoreCorrupt", err)
	}
	b, _ := os.ReadFile(path)
	if !strings.HasPrefix(string(b), "not a store") {
		t.Fatal("Start changed the corrupt file")
	}
}

func TestStoreLocked(t *testing.T) {
	cfg := device.Config{
		ConnectionString: "HostName=localhost:1;DeviceId=d1;SharedAccessKey=a2V5a2V5a2V5a2V5",
		StorePath:        filepath.Join(t.TempDir(), "device.db"),
		InsecureTCP:      true,
	}
	c, err := device.Start(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := device.Start(context.Background(), cfg); !errors.Is(err, device.ErrStoreLocked) {
		t.Fatalf("second Start on the same store: %v, want ErrStoreLocked", err)
	}
}

func TestCloseLeavesNoGoroutines(t *testing.T) {
	before := runtime.NumGoroutine()
	cfg := device.Config{
		ConnectionString: "HostName=127.0.0.1:1;DeviceId=d1;SharedAccessKey=a2V5a2V5a2V5a2V5",
		StorePath:        filepath.Join(t.TempDir(), "device.db"),
	}
	c, err := device.Start(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Stream("", "").Enqueue(context.Background(), device.Message{Body: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	go c.Flush(context.Background()) // must end with ErrClosed
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			t.Fatalf("%d goroutines after Close, %d before Start", runtime.NumGoroutine(), before)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
