package proof_test

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ferry-iot/ferry/device"
	"github.com/ferry-iot/ferry/internal/hubtest"
	"github.com/ferry-iot/ferry/internal/protocol"
)

// mosquittoBin finds Debian's mosquitto broker (in /usr/sbin, often not on
// PATH). Without it the test is skipped, except in CI, where scripts/test
// installs it and its absence is a failure.
func mosquittoBin(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("mosquitto")
	if err != nil {
		if _, serr := os.Stat("/usr/sbin/mosquitto"); serr == nil {
			bin, err = "/usr/sbin/mosquitto", nil
		}
	}
	if err == nil {
		_, err = exec.LookPath("mosquitto_sub")
	}
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("mosquitto or mosquitto_sub is not installed (scripts/test installs them): %v", err)
		}
		t.Skipf("mosquitto or mosquitto_sub is not installed (apt-get install mosquitto mosquitto-clients, or run scripts/test): %v", err)
	}
	return bin
}

// startMosquitto runs mosquitto on a free loopback port with anonymous
// plain MQTT, until the test ends, and returns the port.
func startMosquitto(t *testing.T) int {
	t.Helper()
	bin := mosquittoBin(t)
	port := mustAtoi(t, strings.TrimPrefix(freeAddr(t), "127.0.0.1:"))
	dir := t.TempDir()
	conf := fmt.Sprintf(`listener %d 127.0.0.1
allow_anonymous true
persistence false
max_queued_messages 100000
`, port)
	if os.Geteuid() == 0 {
		conf += "user root\n" // else it drops to the user mosquitto, who may not read dir
	}
	cf := filepath.Join(dir, "mosquitto.conf")
	if err := os.WriteFile(cf, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-c", cf)
	logf, err := os.Create(filepath.Join(dir, "mosquitto.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		logf.Close()
		if t.Failed() {
			b, _ := os.ReadFile(logf.Name())
			t.Logf("mosquitto log:\n%s", b)
		}
	})
	hubtest.Eventually(t, 10*time.Second, func() error {
		c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err == nil {
			c.Close()
		}
		return err
	})
	return port
}

func mustAtoi(t *testing.T, s string) int {
	t.Helper()
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// received is one message mosquitto_sub printed: its topic and payload.
type received struct{ topic, body string }

// mosquittoSub subscribes at QoS 1 with mosquitto_sub until the test ends.
func mosquittoSub(t *testing.T, port int, filter string) <-chan received {
	t.Helper()
	cmd := exec.Command("mosquitto_sub", "-h", "127.0.0.1", "-p", strconv.Itoa(port),
		"-q", "1", "-v", "-t", filter)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	ch := make(chan received, 10_000)
	go func() {
		defer close(ch)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			topic, body, _ := strings.Cut(sc.Text(), " ") // topics carry no spaces: the bag is URL-encoded
			ch <- received{topic, body}
		}
	}()
	return ch
}

// next returns the next message mosquitto_sub printed, failing after 10 s.
func next(t *testing.T, ch <-chan received) received {
	t.Helper()
	select {
	case r, ok := <-ch:
		if !ok {
			t.Fatal("mosquitto_sub exited")
		}
		return r
	case <-time.After(10 * time.Second):
		t.Fatal("mosquitto_sub received nothing within 10 s")
	}
	return received{}
}

// waitSubscribed sends probes until mosquitto_sub, which subscribes some
// time after it starts, prints one; everything sent after that arrives.
// It then discards the late probes, up to the last one sent.
func waitSubscribed(t *testing.T, ctx context.Context, c *device.Client, msgs <-chan received) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	sent, seen := 0, ""
	for seen == "" {
		if time.Now().After(deadline) {
			t.Fatal("mosquitto_sub saw no probe in 30 s")
		}
		if err := c.Stream("", "probe").Send(ctx, device.Message{ID: fmt.Sprintf("probe-%d", sent), Body: []byte("probe")}); err != nil {
			t.Fatalf("Send probe: %v", err)
		}
		sent++
		select {
		case r := <-msgs:
			if _, p := bag(t, r); strings.HasPrefix(p.MessageID, "probe-") {
				seen = p.MessageID
			}
		case <-time.After(200 * time.Millisecond):
		}
	}
	// The probes arrive in order, so the last one sent is the last to come.
	last := fmt.Sprintf("probe-%d", sent-1)
	for seen != last {
		_, p := bag(t, next(t, msgs))
		seen = p.MessageID
	}
}

// bag decodes the telemetry topic of r.
func bag(t *testing.T, r received) (protocol.Topic, protocol.Properties) {
	t.Helper()
	tp, err := protocol.ParseTopic(r.topic)
	if err != nil || tp.Kind != protocol.TopicTelemetry {
		t.Fatalf("topic %q parsed as %+v, %v", r.topic, tp, err)
	}
	p, err := protocol.ParsePropertyBag(tp.Bag)
	if err != nil {
		t.Fatalf("property bag %q: %v", tp.Bag, err)
	}
	return tp, p
}

// TestMosquitto connects the SDK over plain MQTT to Debian's mosquitto, a
// broker we did not write: the telemetry topic carries the property bag a
// third-party subscriber can decode, and a backlog goes through the QoS 1
// window and mosquitto's PUBACKs exactly once and in order.
func TestMosquitto(t *testing.T) {
	port := startMosquitto(t)
	msgs := mosquittoSub(t, port, "devices/+/messages/events/#")
	c, err := device.Start(context.Background(), device.Config{
		ConnectionString: fmt.Sprintf("HostName=127.0.0.1:%d;DeviceId=mq-dev;SharedAccessKey=a2V5a2V5a2V5a2V5", port),
		StorePath:        filepath.Join(t.TempDir(), "device.db"),
		InsecureTCP:      true,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	waitSubscribed(t, ctx, c, msgs)

	t.Run("property bag", func(t *testing.T) {
		err := c.Stream("", "sensors").Send(ctx, device.Message{Body: []byte(`{"t":21.5}`), ID: "m-1",
			CorrelationID: "corr 1", ContentType: "application/json", ContentEncoding: "utf-8",
			Properties: map[string]string{"kind": "a b/c", "x&y": "1=2%", "ünï": "ok"}})
		if err != nil {
			t.Fatalf("Send: %v", err)
		}
		r := next(t, msgs)
		tp, p := bag(t, r)
		if tp.DeviceID != "mq-dev" {
			t.Errorf("topic %q names device %q", r.topic, tp.DeviceID)
		}
		if p.MessageID != "m-1" || p.CorrelationID != "corr 1" || p.ContentType != "application/json" || p.ContentEncoding != "utf-8" {
			t.Errorf("system properties %+v", p)
		}
		app := map[string]string{}
		for _, kv := range p.App {
			app[kv.Key] = kv.Value
		}
		want := map[string]string{"stream": "sensors", "kind": "a b/c", "x&y": "1=2%", "ünï": "ok"}
		if fmt.Sprint(app) != fmt.Sprint(want) {
			t.Errorf("application properties %v, want %v (bag %q)", app, want, tp.Bag)
		}
		if r.body != `{"t":21.5}` {
			t.Errorf("body %q", r.body)
		}
	})

	t.Run("window", func(t *testing.T) {
		const n = 2000
		s := c.Stream("", "backlog")
		for b := 0; b < n; b += 100 {
			ms := make([]device.Message, 100)
			for i := range ms {
				ms[i] = device.Message{Body: []byte(strconv.Itoa(b + i)), ID: fmt.Sprintf("w-%d", b+i)}
			}
			if _, err := s.EnqueueBatch(ctx, ms); err != nil {
				t.Fatalf("EnqueueBatch: %v", err)
			}
		}
		if err := c.Flush(ctx); err != nil {
			t.Fatalf("Flush: %v", err)
		}
		if p, _ := c.Pending(); p != 0 {
			t.Fatalf("Pending after Flush = %d", p)
		}
		for i := range n {
			r := next(t, msgs)
			if _, p := bag(t, r); p.MessageID != fmt.Sprintf("w-%d", i) || r.body != strconv.Itoa(i) {
				t.Fatalf("message %d of the backlog: topic %q body %q", i, r.topic, r.body)
			}
		}
		select {
		case r := <-msgs:
			t.Fatalf("more than %d messages: %q", n, r.topic)
		case <-time.After(300 * time.Millisecond):
		}
	})
}
