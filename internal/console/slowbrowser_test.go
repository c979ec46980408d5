package console_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ferry-iot/ferry/internal/hubtest"
	"github.com/ferry-iot/ferry/internal/protocol"
)

// A browser that opens a live chart and stops reading must not hold up
// the hub: a real hub takes a burst of telemetry at full speed while one
// stalled and one reading browser watch the device, and the reading one
// keeps getting updates.
func TestSlowBrowserDoesNotBlockTheHub(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a hub")
	}
	h := hubtest.Start(t)
	dev := h.CreateDevice(t, "watched")
	base := "https://" + h.HTTPAddr().String()
	owner, _ := protocol.ParseConnectionString(h.OwnerConnectionString())

	jar, _ := cookiejar.New(nil)
	cl := &http.Client{Jar: jar, Transport: &http.Transport{TLSClientConfig: h.TLSConfig()},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := cl.Get(base + "/console/login")
	if err != nil {
		t.Fatal(err)
	}
	page := readAll(t, resp)
	tok := regexp.MustCompile(`name="csrf" value="([^"]*)"`).FindStringSubmatch(page)[1]
	resp, err = cl.PostForm(base+"/console/login", url.Values{"csrf": {tok}, "policy": {owner.SharedAccessKeyName}, "key": {owner.SharedAccessKey}})
	if err != nil || resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("sign in: %v %v", resp, err)
	}
	resp.Body.Close()
	u, _ := url.Parse(base + "/console/")
	var cookie string
	for _, c := range jar.Cookies(u) {
		if c.Name == "ferry_session" {
			cookie = c.Value
		}
	}

	conn, code, err := hubtest.Dial(h.MQTTAddr("tcp").String(), nil, hubtest.ConnectOptions{ClientID: dev.ID, Username: dev.Username(), Password: dev.Token(time.Hour), Clean: true})
	if err != nil || code != 0 {
		t.Fatal(code, err)
	}
	defer conn.Close()
	body := []byte(`{"temperature":21.5,"pad":"` + strings.Repeat("x", 900) + `"}`)
	const n = 3000
	burst := func() time.Duration {
		t0 := time.Now()
		for i := range n {
			if rc, err := conn.Publish("devices/watched/messages/events/", body, 1, false); err != nil || rc != 0 {
				t.Fatalf("publish %d: %d %v", i, rc, err)
			}
		}
		return time.Since(t0)
	}
	baseline := burst()

	// The stalled browser: asks for the stream over HTTP/1.1 and never reads.
	tc := h.TLSConfig()
	tc.NextProtos = []string{"http/1.1"}
	stalled, err := tls.Dial("tcp", h.HTTPAddr().String(), tc)
	if err != nil {
		t.Fatal(err)
	}
	defer stalled.Close()
	fmt.Fprintf(stalled, "GET /console/data/devices/watched/live HTTP/1.1\r\nHost: %s\r\nCookie: ferry_session=%s\r\n\r\n", h.HTTPAddr(), cookie)

	// The reading browser.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", base+"/console/data/devices/watched/live", nil)
	live, err := cl.Do(req)
	if err != nil || live.StatusCode != http.StatusOK {
		t.Fatalf("live stream: %v %v", live, err)
	}
	var updates atomic.Int64
	go func() {
		sc := bufio.NewScanner(live.Body)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), "event: telemetry") {
				updates.Add(1)
			}
		}
	}()
	time.Sleep(300 * time.Millisecond) // the tailer starts from "now"

	took := burst()
	t.Logf("%d QoS 1 messages of %d bytes, one at a time: %s without browsers, %s with a stalled and a reading browser watching",
		n, len(body), baseline.Round(time.Millisecond), took.Round(time.Millisecond))
	// A tailer that a loaded machine started late may have seen little of
	// the burst: more messages keep the updates coming until there are 3.
	hubtest.Eventually(t, 30*time.Second, func() error {
		if updates.Load() < 3 {
			if rc, err := conn.Publish("devices/watched/messages/events/", body, 1, false); err != nil || rc != 0 {
				t.Fatalf("publish: %d %v", rc, err)
			}
			return fmt.Errorf("the reading browser got %d updates", updates.Load())
		}
		return nil
	})
	// A blocked hub would not finish the burst at all; the margin is for
	// a loaded machine, whose pace varies from one burst to the next.
	if took > 3*baseline+5*time.Second {
		t.Errorf("the burst took %s with browsers watching, %s without", took, baseline)
	}
}

func readAll(t *testing.T, resp *http.Response) string {
	t.Helper()
	defer resp.Body.Close()
	var b strings.Builder
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		b.WriteString(sc.Text())
		b.WriteByte('\n')
	}
	return b.String()
}
