package hub_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/ferry-iot/ferry/internal/api"
	"github.com/ferry-iot/ferry/internal/hub"
	"github.com/ferry-iot/ferry/internal/hubtest"
	"github.com/ferry-iot/ferry/internal/protocol"
	"github.com/ferry-iot/ferry/internal/registry"
)

// TestCrashKeepsAcknowledgedMessages publishes QoS 1 messages, kills the hub
// process with SIGKILL while messages are in flight, restarts it and checks
// that every message whose PUBACK arrived is stored exactly once.
func TestCrashKeepsAcknowledgedMessages(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and kills the ferry binary")
	}
	bin := buildFerry(t)
	dir := t.TempDir()

	p := startProcess(t, bin, dir)
	client := p.client(t)
	d, err := client.CreateDevice(context.Background(), registry.Device{DeviceID: "crash-dev"})
	if err != nil {
		t.Fatal(err)
	}
	key, _ := protocol.DecodeKey(d.Authentication.SymmetricKey.PrimaryKey)
	dev := hubtest.Device{ID: d.DeviceID, Key: key, Host: "localhost"}
	c, code, err := hubtest.Dial(p.mqtt, nil, hubtest.ConnectOptions{ClientID: dev.ID, Username: dev.Username(), Password: dev.Token(time.Hour)})
	if err != nil || code != 0 {
		t.Fatalf("connect: 0x%02x %v", code, err)
	}

	const total, window = 30000, 200
	var (
		mu     sync.Mutex
		midOf  = map[uint16]int{}
		acked  = map[int]bool{}
		slots  = make(chan struct{}, window)
		killed = make(chan struct{})
	)
	go func() { // PUBACK reader
		for {
			pk, err := c.Next(30 * time.Second)
			if err != nil {
				return
			}
			if pk.FixedHeader.Type != packets.Puback {
				continue
			}
			mu.Lock()
			if mid, ok := midOf[pk.PacketID]; ok {
				acked[mid] = true
				delete(midOf, pk.PacketID)
				n := len(acked)
				mu.Unlock()
				<-slots
				if n == total/3 {
					close(killed)
				}
				continue
			}
			mu.Unlock()
		}
	}()
	go func() {
		<-killed
		_ = p.cmd.Process.Signal(syscall.SIGKILL)
	}()
	// acquire waits for a free slot in the window. Before the kill a slow
	// hub only delays it; after the kill a window that stays full means the
	// hub is gone.
	acquire := func() bool {
		select {
		case slots <- struct{}{}:
			return true
		case <-killed:
		case <-time.After(2 * time.Minute):
			_ = p.cmd.Process.Kill()
			t.Fatalf("no PUBACK for 2 minutes with %d messages acknowledged", func() int { mu.Lock(); defer mu.Unlock(); return len(acked) }())
		}
		select {
		case slots <- struct{}{}:
			return true
		case <-time.After(5 * time.Second):
			return false
		}
	}
	for i := 0; i < total; i++ {
		if !acquire() {
			break
		}
		mu.Lock()
		pid, err := c.PublishAsync(fmt.Sprintf("devices/crash-dev/messages/events/%%24.mid=%d", i), []byte("payload-"+strconv.Itoa(i)))
		if err == nil {
			midOf[pid] = i
		}
		mu.Unlock()
		if err != nil {
			break
		}
	}
	_ = p.cmd.Wait()
	c.Close()
	mu.Lock()
	ackedCopy := make(map[int]bool, len(acked))
	for k := range acked {
		ackedCopy[k] = true
	}
	mu.Unlock()
	if len(ackedCopy) < total/3 {
		t.Fatalf("only %d messages acknowledged before the kill", len(ackedCopy))
	}

	p2 := startProcess(t, bin, dir)
	defer p2.stop(t)
	stored := map[int]int{}
	after := ""
	cl2 := p2.client(t)
	for {
		page, err := cl2.ReadStream(context.Background(), "*", api.ReadQuery{From: "beginning", After: after, Limit: 1000})
		if err != nil {
			t.Fatal(err)
		}
		if len(page.Messages) == 0 {
			break
		}
		for _, m := range page.Messages {
			mid, err := strconv.Atoi(m.SystemProperties.MessageID)
			if err != nil || string(m.Body) != "payload-"+strconv.Itoa(mid) {
				t.Fatalf("unexpected stored message %+v", m)
			}
			stored[mid]++
		}
		after = page.Next
	}
	lost := 0
	for mid := range ackedCopy {
		switch stored[mid] {
		case 1:
		case 0:
			lost++
		default:
			t.Errorf("message %d stored %d times", mid, stored[mid])
		}
	}
	if lost > 0 {
		t.Fatalf("%d of %d acknowledged messages lost after kill -9", lost, len(ackedCopy))
	}
	t.Logf("%d acknowledged before kill -9, %d stored after restart (the rest were in flight)", len(ackedCopy), len(stored))
}

type process struct {
	cmd   *exec.Cmd
	dir   string
	mqtt  string
	http  string
	lines chan string
}

func buildFerry(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "ferry")
	cmd := exec.Command("go", "build", "-o", bin, "github.com/ferry-iot/ferry/cmd/ferry")
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("build ferry: %v", err)
	}
	return bin
}

func startProcess(t *testing.T, bin, dir string) *process {
	t.Helper()
	cmd := exec.Command(bin, "serve", "--data", dir, "--mqtt", "127.0.0.1:0", "--mqtts", "-",
		"--http", "127.0.0.1:0", "--http-plain", "--log-format", "json")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout = io.Discard
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &process{cmd: cmd, dir: dir, lines: make(chan string, 100)}
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			select {
			case p.lines <- sc.Text():
			default:
			}
		}
	}()
	deadline := time.After(30 * time.Second)
	for p.mqtt == "" {
		select {
		case line := <-p.lines:
			var rec map[string]any
			if json.Unmarshal([]byte(line), &rec) == nil && rec["msg"] == "ferry hub serving" {
				p.mqtt, _ = rec["mqtt"].(string)
				p.http, _ = rec["http"].(string)
			}
		case <-deadline:
			_ = cmd.Process.Kill()
			t.Fatal("ferry serve did not report its addresses")
		}
	}
	return p
}

func (p *process) client(t *testing.T) *api.Client {
	t.Helper()
	owner, err := os.ReadFile(filepath.Join(p.dir, hub.OwnerFile))
	if err != nil {
		t.Fatal(err)
	}
	c, err := api.NewClient(strings.TrimSpace(string(owner)), api.ClientOptions{BaseURL: "http://" + p.http})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func (p *process) stop(t *testing.T) {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- p.cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("ferry serve exited with %v after SIGTERM", err)
		}
	case <-time.After(30 * time.Second):
		_ = p.cmd.Process.Kill()
		t.Error("ferry serve did not stop within 30s of SIGTERM")
	}
}
