//go:build linux

package proof_test

import (
	"bufio"
	"context"
	"encoding/base64"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ferry-iot/ferry/device"
	"github.com/ferry-iot/ferry/internal/hubtest"
)

// rssEnv turns TestDrainRSS on; its value is the backlog size (e.g.
// 1000000). It is a measurement, not a regular test: it takes a minute or
// more and a few hundred MB of disk.
const rssEnv = "FERRY_MEASURE_RSS"

// procStatus reads the memory fields of /proc/pid/status, in kB.
func procStatus(pid int) (map[string]int, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return nil, err
	}
	out := map[string]int{}
	for _, l := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(l, ":")
		if f := strings.Fields(v); ok && len(f) == 2 && f[1] == "kB" {
			out[k], _ = strconv.Atoi(f[0])
		}
	}
	return out, nil
}

// TestDrainRSS measures the memory of examples/telemetry, a separate device
// process, while it drains a backlog of $FERRY_MEASURE_RSS messages
// (200-byte bodies) to a local hub over loopback TLS. It samples VmRSS,
// RssAnon (heap, stacks) and RssFile (the store's memory-mapped pages the
// process touched) every 100 ms and fails when VmRSS ever exceeds 30 MB.
func TestDrainRSS(t *testing.T) {
	total, _ := strconv.Atoi(os.Getenv(rssEnv))
	if total <= 0 {
		t.Skipf("a measurement: set %s=1000000 to run it", rssEnv)
	}
	bin := filepath.Join(t.TempDir(), "telemetry")
	build := exec.Command(filepath.Join(runtime.GOROOT(), "bin", "go"), "build", "-o", bin,
		"github.com/ferry-iot/ferry/examples/telemetry")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}

	h := hubtest.Start(t)
	d := h.CreateDevice(t, "rss")
	store := filepath.Join(t.TempDir(), "telemetry.db")
	began := time.Now()
	fill(t, store, total)
	st, _ := os.Stat(store)
	t.Logf("stored %d messages in %v; store file %d MB", total, time.Since(began).Round(time.Millisecond), st.Size()>>20)

	cmd := exec.Command(bin, "--store", store, "--ca", h.CAFile(), "--interval", "500ms",
		"--connection-string", fmt.Sprintf("HostName=%s;DeviceId=%s;SharedAccessKey=%s",
			d.Host, d.ID, base64.StdEncoding.EncodeToString(d.Key)))
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	var mu sync.Mutex
	pending := total
	go func() {
		re := regexp.MustCompile(`pending (\d+)`)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if m := re.FindStringSubmatch(sc.Text()); m != nil {
				n, _ := strconv.Atoi(m[1])
				mu.Lock()
				pending = n
				mu.Unlock()
			}
		}
	}()

	start := time.Now()
	peak := map[string]int{}
	var lastLog time.Time
	for {
		time.Sleep(100 * time.Millisecond)
		s, err := procStatus(cmd.Process.Pid)
		if err != nil {
			t.Fatalf("device process: %v", err)
		}
		for _, k := range []string{"VmRSS", "RssAnon", "RssFile", "VmHWM"} {
			peak[k] = max(peak[k], s[k])
		}
		mu.Lock()
		n := pending
		mu.Unlock()
		if time.Since(lastLog) >= 5*time.Second {
			lastLog = time.Now()
			t.Logf("%5.1fs pending %7d  VmRSS %6d kB  RssAnon %6d kB  RssFile %6d kB",
				time.Since(start).Seconds(), n, s["VmRSS"], s["RssAnon"], s["RssFile"])
		}
		if n < 10 {
			break
		}
		if time.Since(start) > 10*time.Minute {
			t.Fatalf("%d messages still pending after 10 minutes", n)
		}
	}
	el := time.Since(start)
	t.Logf("drained %d messages in %v (%.0f msg/s)", total, el.Round(time.Millisecond), float64(total)/el.Seconds())
	t.Logf("peak VmRSS %d kB (RssAnon %d kB, RssFile %d kB), VmHWM %d kB",
		peak["VmRSS"], peak["RssAnon"], peak["RssFile"], peak["VmHWM"])
	if peak["VmRSS"] > 30<<10 {
		t.Errorf("peak VmRSS %d kB exceeds 30 MB", peak["VmRSS"])
	}
}

// fill stores n 200-byte messages in the store at path, with no hub.
func fill(t *testing.T, path string, n int) {
	t.Helper()
	cfg := device.Config{
		ConnectionString: "HostName=127.0.0.1:1;DeviceId=rss;SharedAccessKey=a2V5a2V5a2V5a2V5",
		StorePath:        path,
		InsecureTCP:      true,
		MaxPending:       max(n, 1_000_000),
	}
	c, err := device.Start(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s := c.Stream("", "telemetry")
	const page = 1000
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			ms := make([]device.Message, page)
			for i := range ms {
				ms[i] = device.Message{Body: make([]byte, 200)}
			}
			for k := g * page; k < n; k += 4 * page {
				if _, err := s.EnqueueBatch(context.Background(), ms[:min(page, n-k)]); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
}
