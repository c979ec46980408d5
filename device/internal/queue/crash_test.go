//go:build unix

package queue_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/ferry-iot/ferry/device/internal/queue"
)

// crashEnv names the store file for TestCrashChild when it runs as the
// child process of TestCrashKeepsAcknowledged.
const crashEnv = "FERRY_QUEUE_CRASH_CHILD"

// TestCrashChild is not a test on its own: run by TestCrashKeepsAcknowledged
// as a child process, it enqueues from several goroutines until killed and
// prints "ack <seq> <id>" after each Enqueue returns.
func TestCrashChild(t *testing.T) {
	path := os.Getenv(crashEnv)
	if path == "" {
		t.Skip("helper for TestCrashKeepsAcknowledged")
	}
	q, err := queue.Open(path, queue.Options{})
	if err != nil {
		fmt.Fprintln(os.Stdout, "open failed:", err)
		os.Exit(2)
	}
	var mu sync.Mutex // one line per write, so lines never interleave
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for {
				r, err := q.Enqueue(context.Background(), queue.Record{Stream: "crash", Body: make([]byte, 200)})
				if err != nil {
					fmt.Fprintln(os.Stdout, "enqueue failed:", err)
					os.Exit(2)
				}
				mu.Lock()
				fmt.Fprintf(os.Stdout, "ack %d %s\n", r.Seq, r.ID)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
}

// TestCrashKeepsAcknowledged SIGKILLs a process that is enqueueing, several
// times over the same file, and checks that every record whose Enqueue
// returned is in the file exactly once after each crash.
func TestCrashKeepsAcknowledged(t *testing.T) {
	if testing.Short() {
		t.Skip("starts child processes")
	}
	path := tempPath(t)
	acked := map[uint64]string{} // Seq → ID of every acknowledged record
	var lastSeq uint64
	for cycle := range 3 {
		first := runCrashChild(t, path, 300+200*cycle, acked)
		if first <= lastSeq {
			t.Fatalf("cycle %d: first Seq %d not after %d: Seq reused after a crash", cycle, first, lastSeq)
		}

		q, err := queue.Open(path, queue.Options{})
		if err != nil {
			t.Fatalf("cycle %d: reopen after SIGKILL: %v", cycle, err)
		}
		recs, err := q.Peek(0, 1<<30)
		q.Close()
		if err != nil {
			t.Fatal(err)
		}
		ids := map[string]bool{}
		stored := map[uint64]string{}
		for _, r := range recs {
			if ids[r.ID] {
				t.Fatalf("cycle %d: ID %s stored twice", cycle, r.ID)
			}
			ids[r.ID] = true
			stored[r.Seq] = r.ID
			lastSeq = max(lastSeq, r.Seq)
		}
		for seq, id := range acked {
			if stored[seq] != id {
				t.Fatalf("cycle %d: acknowledged record %d (%s) missing after SIGKILL (found %q)", cycle, seq, id, stored[seq])
			}
		}
		t.Logf("cycle %d: %d acknowledged in total, %d stored", cycle, len(acked), len(recs))
	}
}

// runCrashChild starts TestCrashChild on path, SIGKILLs it after it has
// acknowledged n records, adds every acknowledged record to acked, and
// returns the lowest Seq it acknowledged.
func runCrashChild(t *testing.T, path string, n int, acked map[uint64]string) uint64 {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashEnv+"="+path)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	first, seen := uint64(0), 0
	sc := bufio.NewScanner(out)
	for sc.Scan() { // reads on after the kill: lines already in the pipe were acknowledged too
		f := strings.Fields(sc.Text())
		if len(f) != 3 || f[0] != "ack" {
			if strings.Contains(sc.Text(), "failed") {
				t.Errorf("child: %s", sc.Text())
			}
			continue
		}
		seq, err := strconv.ParseUint(f[1], 10, 64)
		if err != nil {
			t.Fatalf("child printed %q", sc.Text())
		}
		if _, dup := acked[seq]; dup {
			t.Fatalf("Seq %d acknowledged twice", seq)
		}
		acked[seq] = f[2]
		if first == 0 || seq < first {
			first = seq
		}
		if seen++; seen == n {
			cmd.Process.Signal(syscall.SIGKILL)
		}
	}
	err = cmd.Wait()
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() {
		t.Fatalf("child was not killed (after %d acks): %v", seen, err)
	}
	return first
}
