//go:build unix

package device_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ferry-iot/ferry/device"
	"github.com/ferry-iot/ferry/internal/hubtest"
)

// crashEnv carries the child's store path (and marks the child) for
// TestCrashChild.
const crashEnv = "FERRY_DEVICE_CRASH_STORE"

// TestCrashChild is not a test on its own: run by TestCrashKeepsTwinAndInbox
// as a child process, it stores a reported patch, prints "stored", then
// prints "handling <id>" for the first cloud-to-device message and holds
// it until it is killed.
func TestCrashChild(t *testing.T) {
	path := os.Getenv(crashEnv)
	if path == "" {
		t.Skip("helper for TestCrashKeepsTwinAndInbox")
	}
	c, err := device.Start(context.Background(), device.Config{
		ConnectionString: os.Getenv(crashEnv + "_CS"),
		CAFile:           os.Getenv(crashEnv + "_CA"),
		StorePath:        path,
		OnC2D: func(ctx context.Context, m device.C2DMessage) device.Disposition {
			fmt.Println("handling", m.ID)
			select {} // until killed
		},
	})
	if err != nil {
		fmt.Println("start failed:", err)
		os.Exit(2)
	}
	if err := c.UpdateReported(context.Background(), map[string]any{"crash": "survived"}); err != nil {
		fmt.Println("update failed:", err)
		os.Exit(2)
	}
	fmt.Println("stored")
	select {}
}

// TestCrashKeepsTwinAndInbox SIGKILLs a device program that has stored a
// reported patch and is handling a cloud-to-device message the hub already
// has acknowledged: after a restart both are still there, the message is
// handed over again from the local store, and the patch reaches the hub.
func TestCrashKeepsTwinAndInbox(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a child process")
	}
	e := newEnv(t, true)
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashEnv+"="+e.cfg.StorePath,
		crashEnv+"_CS="+e.cfg.ConnectionString, crashEnv+"_CA="+e.cfg.CAFile)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	lines := make(chan string)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	expect := func(want string) {
		t.Helper()
		for {
			select {
			case l, ok := <-lines:
				if !ok {
					t.Fatalf("child ended before %q", want)
				}
				if l == want {
					return
				}
				if strings.Contains(l, "failed") {
					t.Fatalf("child: %s", l)
				}
			case <-time.After(30 * time.Second):
				t.Fatalf("child did not print %q", want)
			}
		}
	}
	expect("stored")
	e.sendC2D(t, "crash-1", "payload")
	expect("handling crash-1")
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()

	e.link.up.Store(false) // the message can only come from the local store
	var log c2dLog
	e.cfg.OnC2D = func(ctx context.Context, m device.C2DMessage) device.Disposition {
		log.add(m)
		return device.Complete
	}
	c := e.start(t)
	log.waitIDs(t, "crash-1/2")
	// The child was online: the hub may have acknowledged the patch before
	// the kill. Either it is still stored, or the hub already has it.
	switch n := c.PendingReported(); n {
	case 1:
	case 0:
		t.Log("the patch reached the hub before the kill")
	default:
		t.Fatalf("PendingReported after the crash = %d, want 1 (or 0 if it was sent)", n)
	}
	e.link.up.Store(true)
	waitReportedSent(t, c)
	if _, r := e.hubTwin(t); r.doc["crash"] != "survived" {
		t.Fatalf("hub's reported = %v", r.doc)
	}
	// Had the kill come before the PUBACK, the hub sends the message again
	// now: it is dropped as a duplicate.
	hubtest.Eventually(t, 10*time.Second, func() error {
		if n := e.hubPendingC2D(t); n != 0 {
			return fmt.Errorf("%d messages queued at the hub", n)
		}
		return nil
	})
	time.Sleep(200 * time.Millisecond)
	log.waitIDs(t, "crash-1/2")
}
