//go:build unix

package proof_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ferry-iot/ferry/device"
	"github.com/ferry-iot/ferry/internal/api"
	"github.com/ferry-iot/ferry/internal/hub"
	"github.com/ferry-iot/ferry/internal/hubtest"
)

// childEnv makes the test binary a device process (see runChild) instead of
// running tests. Its value is the mode: "enqueue" or "flush".
const childEnv = "FERRY_PROOF_CHILD"

func TestMain(m *testing.M) {
	if mode := os.Getenv(childEnv); mode != "" {
		os.Exit(runChild(mode))
	}
	os.Exit(m.Run())
}

// batchSize is the number of messages of the batch that starts with
// message n (1 to 4). It depends on n alone, so the parent knows what a
// batch the child was killed in holds without having seen it.
func batchSize(n int) int { return 1 + n%4 }

// streamOf is the stream of the batch that starts with message n.
func streamOf(n int) string {
	if n%3 == 0 {
		return "b"
	}
	return "a"
}

// runChild is the device process. In mode "enqueue" it stores messages
// numbered from $FERRY_PROOF_FIRST up to $FERRY_PROOF_LAST in batches (one
// Enqueue for a batch of one, else EnqueueBatch) and prints "ok <n> <seq>
// <id>" for each message once its call returned nil, one write per batch;
// then it prints "done" and keeps sending until killed. In mode "flush" it
// enqueues nothing, waits until the store is empty, prints "flushed" and
// exits.
func runChild(mode string) int {
	window, _ := strconv.Atoi(os.Getenv("FERRY_PROOF_WINDOW"))
	c, err := device.Start(context.Background(), device.Config{
		ConnectionString: os.Getenv("FERRY_PROOF_CONN"),
		StorePath:        os.Getenv("FERRY_PROOF_STORE"),
		CAFile:           os.Getenv("FERRY_PROOF_CA"),
		Window:           window,
	})
	if err != nil {
		fmt.Println("error: start:", err)
		return 2
	}
	defer c.Close()
	ctx := context.Background()
	if mode == "flush" {
		// Flush for as long as messages keep going out: a loaded machine
		// sends slowly, a stuck device not at all.
		for {
			before, _ := c.Pending()
			fctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			err := c.Flush(fctx)
			cancel()
			if err == nil {
				break
			}
			if after, _ := c.Pending(); !errors.Is(err, context.DeadlineExceeded) || after >= before {
				fmt.Printf("error: flush: %v with %d pending, %d 30s before\n", err, after, before)
				return 2
			}
		}
		n, _ := c.Pending()
		fmt.Printf("flushed %d\n", n)
		return 0
	}
	first, _ := strconv.Atoi(os.Getenv("FERRY_PROOF_FIRST"))
	last, _ := strconv.Atoi(os.Getenv("FERRY_PROOF_LAST"))
	for n := first; n <= last; n += batchSize(n) {
		ms := make([]device.Message, batchSize(n))
		for i := range ms {
			k := strconv.Itoa(n + i)
			ms[i] = device.Message{Body: []byte("reading " + k), Properties: map[string]string{"n": k}}
		}
		s := c.Stream("", streamOf(n))
		var infos []device.MessageInfo
		if len(ms) == 1 {
			var info device.MessageInfo
			info, err = s.Enqueue(ctx, ms[0])
			infos = []device.MessageInfo{info}
		} else {
			infos, err = s.EnqueueBatch(ctx, ms)
		}
		if err != nil {
			fmt.Println("error: enqueue:", err)
			return 2
		}
		var b bytes.Buffer
		for i, info := range infos {
			fmt.Fprintf(&b, "ok %d %d %s\n", n+i, info.Seq, info.ID)
		}
		os.Stdout.Write(b.Bytes()) // one write: a batch is printed whole or not at all
	}
	fmt.Println("done")
	select {} // keep sending until killed
}

// child is a running device process and the lines it printed.
type child struct {
	cmd    *exec.Cmd
	stderr bytes.Buffer
	done   chan struct{} // closed when stdout reached EOF
	lines  []string      // complete once done is closed
}

func startChild(t *testing.T, env []string) *child {
	t.Helper()
	p := &child{done: make(chan struct{})}
	p.cmd = exec.Command(os.Args[0], "-test.run=^$")
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stderr = &p.stderr
	out, err := p.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		defer close(p.done)
		// Read to EOF, after the kill too: lines already in the pipe were
		// printed before the process died.
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			p.lines = append(p.lines, sc.Text())
		}
	}()
	return p
}

// wait waits for the process to exit (SIGKILL after timeout) and returns
// what it printed.
func (p *child) wait(t *testing.T, timeout time.Duration) []string {
	t.Helper()
	tm := time.AfterFunc(timeout, func() { p.cmd.Process.Kill() })
	defer tm.Stop()
	<-p.done
	_ = p.cmd.Wait()
	return p.lines
}

func (p *child) kill(t *testing.T) []string {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatalf("SIGKILL: %v", err)
	}
	lines := p.wait(t, 10*time.Second)
	if ws, ok := p.cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() {
		t.Fatalf("device process ended before the kill: %v\nstdout: %s\nstderr: %s",
			p.cmd.ProcessState, strings.Join(lines, "\n"), p.stderr.String())
	}
	return lines
}

// freeAddr returns a loopback address no one listens on, so restarted hubs
// keep the address the device's connection string names.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// readAll returns every message of the hub's streams, in stream order.
func readAll(t *testing.T, h *hubtest.Hub) []api.Message {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var all []api.Message
	after := ""
	for {
		p, err := h.Client.ReadStream(ctx, "*", api.ReadQuery{From: "beginning", After: after, Limit: 1000})
		if err != nil {
			t.Fatalf("ReadStream: %v", err)
		}
		if len(p.Messages) == 0 {
			return all
		}
		all = append(all, p.Messages...)
		after = p.Next
	}
}

// TestKillLoop is the SDK's durability proof: a device process enqueues
// 10,000 numbered messages and is killed with SIGKILL at random moments
// and restarted on the same store, in a loop, while the hub is stopped and
// restarted twice (same data directory and address). At the end every
// message whose Enqueue returned nil is in the hub's stream exactly once,
// a batch the process was killed in is there whole or not at all, and with
// Window 1 each stream holds its messages in enqueue order.
func TestKillLoop(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a device process ~20 times against a restarting hub")
	}
	for _, window := range []int{1, 32} {
		t.Run(fmt.Sprintf("window=%d", window), func(t *testing.T) { killLoop(t, window) })
	}
}

func killLoop(t *testing.T, window int) {
	const (
		total   = 10_000
		perRun  = 800 // messages a run enqueues at most: at least total/perRun kills
		maxLife = 400 * time.Millisecond
	)
	began := time.Now()
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 0))

	dir, addr := t.TempDir(), freeAddr(t)
	atAddr := func(c *hub.Config) { c.MQTTSAddr, c.MQTTAddr = addr, "-" }
	h := hubtest.StartDir(t, dir, atAddr)
	d := h.CreateDevice(t, "proof")
	env := []string{
		"FERRY_PROOF_CONN=" + fmt.Sprintf("HostName=%s;DeviceId=%s;SharedAccessKey=%s",
			d.Host, d.ID, base64.StdEncoding.EncodeToString(d.Key)),
		"FERRY_PROOF_CA=" + h.CAFile(),
		"FERRY_PROOF_STORE=" + filepath.Join(t.TempDir(), "device.db"),
		"FERRY_PROOF_WINDOW=" + strconv.Itoa(window),
	}
	restartHub := func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := h.Shutdown(ctx); err != nil {
			t.Fatalf("hub shutdown: %v", err)
		}
		time.Sleep(time.Duration(100+rng.IntN(300)) * time.Millisecond) // the device runs without a hub
		h = hubtest.StartDir(t, dir, atAddr)
	}

	printed := map[int]string{} // message number → id, for every acknowledged Enqueue
	var maybe [][2]int          // [first, end) of each batch a process was killed in before printing it
	var lastSeq uint64
	next, kills, restarts := 1, 0, 0
	for cycle := 0; next <= total; cycle++ {
		if time.Since(began) > 3*time.Minute { // about 30s on a loaded machine
			t.Fatalf("only %d of %d messages enqueued after %v", len(printed), total, time.Since(began))
		}
		p := startChild(t, append(env, childEnv+"=enqueue",
			"FERRY_PROOF_FIRST="+strconv.Itoa(next), "FERRY_PROOF_LAST="+strconv.Itoa(min(total, next+perRun-1))))
		life := time.Duration(rng.Int64N(int64(maxLife)))
		if cycle == 3 || cycle == 7 { // the hub goes away and comes back while the device runs
			time.Sleep(life / 2)
			restartHub()
			restarts++
			time.Sleep(life / 2)
		} else {
			time.Sleep(life)
		}
		lines := p.kill(t)
		kills++

		start, finished := next, false
		for _, l := range lines {
			f := strings.Fields(l)
			switch {
			case l == "done":
				finished = true
			case len(f) == 4 && f[0] == "ok":
				n, _ := strconv.Atoi(f[1])
				seq, _ := strconv.ParseUint(f[2], 10, 64)
				if n != start {
					t.Fatalf("cycle %d: printed message %d, expected %d", cycle, n, start)
				}
				if seq <= lastSeq {
					t.Fatalf("message %d has Seq %d, not after %d: a Seq was reused", n, seq, lastSeq)
				}
				printed[n], lastSeq, start = f[3], seq, n+1
			default:
				t.Fatalf("device process printed %q\nstderr: %s", l, p.stderr.String())
			}
		}
		next = start
		if !finished && next <= total {
			// Killed in the batch starting at next, maybe after its commit:
			// it may be stored. Numbers are never reused, so skip it.
			end := next + batchSize(next)
			maybe = append(maybe, [2]int{next, end})
			next = end
		}
	}
	t.Logf("%d messages acknowledged by Enqueue, %d kills, %d hub restarts, %d batches killed mid-Enqueue; %v",
		len(printed), kills, restarts, len(maybe), time.Since(began).Round(time.Millisecond))
	if restarts != 2 {
		t.Fatalf("the hub restarted %d times, want 2", restarts)
	}

	p := startChild(t, append(env, childEnv+"=flush"))
	lines := p.wait(t, 5*time.Minute) // it gives up itself when no message goes out for 30s
	if len(lines) != 1 || lines[0] != "flushed 0" {
		t.Fatalf("final run: %v %q\nstderr: %s", p.cmd.ProcessState, lines, p.stderr.String())
	}

	msgs := readAll(t, h)
	count := map[int]int{}
	lastInStream := map[string]int{}
	for _, m := range msgs {
		n, err := strconv.Atoi(m.Properties["n"])
		if err != nil {
			t.Fatalf("hub holds a message without a number: %+v", m)
		}
		count[n]++
		if id, ok := printed[n]; ok && m.SystemProperties.MessageID != id {
			t.Errorf("message %d has id %s in the hub, %s at Enqueue", n, m.SystemProperties.MessageID, id)
		}
		if window == 1 {
			if n <= lastInStream[m.Stream] {
				t.Errorf("stream %s: message %d after %d", m.Stream, n, lastInStream[m.Stream])
			}
			lastInStream[m.Stream] = n
		}
	}
	for n := range printed {
		if count[n] != 1 {
			t.Errorf("acknowledged message %d stored %d times", n, count[n])
		}
	}
	maybeStored := 0
	for _, b := range maybe {
		in := 0
		for n := b[0]; n < b[1]; n++ {
			in += count[n]
			delete(count, n)
		}
		switch {
		case in == b[1]-b[0]:
			maybeStored++
		case in != 0:
			t.Errorf("batch [%d, %d) killed mid-Enqueue: %d of its messages stored, want all or none", b[0], b[1], in)
		}
	}
	for n := range printed {
		delete(count, n)
	}
	for n, k := range count {
		t.Errorf("hub holds %d copies of message %d, which was never enqueued", k, n)
	}
	t.Logf("hub holds %d messages: %d acknowledged + %d of %d batches killed mid-Enqueue; %v in all",
		len(msgs), len(printed), maybeStored, len(maybe), time.Since(began).Round(time.Millisecond))
}
