package hub_test

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ferry-iot/ferry/internal/fault"
	"github.com/ferry-iot/ferry/internal/hub"
	"github.com/ferry-iot/ferry/internal/hubtest"
	"github.com/ferry-iot/ferry/internal/provision"
)

// sweepClock is the hub's settable clock.
type sweepClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *sweepClock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *sweepClock) set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

// post sends a JSON body without a policy and returns the status and body;
// safe in any goroutine.
func post(hc *http.Client, url, body string) (int, []byte, error) {
	resp, err := hc.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

// TestRetentionSweep runs a hub whose clock starts two days back, makes
// provisioning operations and a console session then, moves the clock to
// the present and waits for the background sweep to delete what ended
// more than the retention ago, and nothing else.
func TestRetentionSweep(t *testing.T) {
	clk := &sweepClock{t: time.Now().Add(-48 * time.Hour)}
	h := hubtest.Start(t, func(c *hub.Config) {
		c.Now = clk.now
		c.RetentionInterval = 50 * time.Millisecond
		c.ProvisioningRetention = 24 * time.Hour
	})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: h.TLSConfig()},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	base := "https://" + h.HTTPAddr().String()
	tok, err := h.Client.CreateProvisioningToken(ctx, provision.CreateTokenRequest{Name: "sweep", ExpiresAt: time.Now().Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	initOp := func(device string) string {
		t.Helper()
		code, b, err := post(hc, base+"/api/v1/provisioning/device/init",
			fmt.Sprintf(`{"provisioningToken":%q,"deviceId":%q}`, tok.Secret, device))
		var res provision.InitResult
		if err != nil || code != 201 || json.Unmarshal(b, &res) != nil {
			t.Fatalf("init %s: %d %s %v", device, code, b, err)
		}
		return res.OperationID
	}
	// Two days back: one operation completed, one rejected, one left to expire.
	done := initOp("sweep-done")
	if _, err := h.Client.ApproveProvisioning(ctx, done, provision.Approval{}); err != nil {
		t.Fatal(err)
	}
	if code, b, err := post(hc, base+"/api/v1/provisioning/device/poll",
		fmt.Sprintf(`{"provisioningToken":%q,"operationId":%q}`, tok.Secret, done)); err != nil || code != 200 {
		t.Fatalf("poll: %d %s %v", code, b, err)
	}
	rejected := initOp("sweep-rejected")
	if _, err := h.Client.RejectProvisioning(ctx, rejected, provision.Rejection{}); err != nil {
		t.Fatal(err)
	}
	expired := initOp("sweep-expired")
	// And a console sign-in, which expires 8 hours later.
	session := signInConsole(t, hc, base, h)

	// The present: the old ones ended more than a day ago; one operation
	// opened now waits for an operator.
	clk.set(time.Now())
	pending := initOp("sweep-pending")

	deadline := time.Now().Add(45 * time.Second)
	for _, id := range []string{done, rejected, expired} {
		for {
			_, err := h.Client.ProvisioningOperation(ctx, id)
			if fault.Is(err, fault.NotFound) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			if time.Now().After(deadline) {
				t.Fatalf("operation %s is still stored; the sweep did not delete it", id)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	db := openDB(t, h)
	hash := sha256.Sum256([]byte(session))
	for {
		_, ok, err := db.ConsoleSession(ctx, hash[:])
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the expired console session is still stored; the sweep did not delete it")
		}
		time.Sleep(50 * time.Millisecond)
	}
	// Sweeps go on; the pending operation is never theirs.
	time.Sleep(300 * time.Millisecond)
	if op, err := h.Client.ProvisioningOperation(ctx, pending); err != nil || op.State != provision.StatePending {
		t.Errorf("pending operation after sweeps = %+v, %v", op, err)
	}
}

// signInConsole signs in to the console with the owner policy's key and
// returns the session cookie's value.
func signInConsole(t *testing.T, hc *http.Client, base string, h *hubtest.Hub) string {
	t.Helper()
	form := url.Values{"csrf": {"sweep-test-csrf"}, "policy": {"iothubowner"},
		"key": {base64.StdEncoding.EncodeToString(policyKey(t, h, "iothubowner"))}}
	req, err := http.NewRequest("POST", base+"/console/login", strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.AddCookie(&http.Cookie{Name: "ferry_login", Value: "sweep-test-csrf"})
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	for _, c := range resp.Cookies() {
		if c.Name == "ferry_session" && c.Value != "" {
			return c.Value
		}
	}
	b, _ := io.ReadAll(resp.Body)
	t.Fatalf("console sign-in: %d, no session cookie: %.300s", resp.StatusCode, b)
	return ""
}

// TestPendingProvisioningLimit floods a real hub with provisioning
// requests for new device ids: beyond the cap on operations waiting for an
// operator each gets 429 with a clear error, while a device that waits
// already can still ask again, which adds no operation.
func TestPendingProvisioningLimit(t *testing.T) {
	h := hubtest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: h.TLSConfig(), MaxIdleConnsPerHost: 8}}
	initURL := "https://" + h.HTTPAddr().String() + "/api/v1/provisioning/device/init"
	tok, err := h.Client.CreateProvisioningToken(ctx, provision.CreateTokenRequest{Name: "leaked"})
	if err != nil {
		t.Fatal(err)
	}
	body := func(device string) string {
		return fmt.Sprintf(`{"provisioningToken":%q,"deviceId":%q}`, tok.Secret, device)
	}
	code, b, err := post(hc, initURL, body("legit"))
	var first provision.InitResult
	if err != nil || code != 201 || json.Unmarshal(b, &first) != nil {
		t.Fatalf("init of the legitimate device: %d %s %v", code, b, err)
	}

	// The flood: more new device ids than the cap leaves room for.
	const flood = provision.DefaultMaxPending + 50
	var accepted, refused atomic.Int64
	var refusal atomic.Value
	var wg sync.WaitGroup
	next := make(chan int)
	errs := make(chan error, 8)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				code, b, err := post(hc, initURL, body(fmt.Sprintf("flood-%04d", i)))
				switch {
				case err != nil:
					errs <- err
					return
				case code == 201:
					accepted.Add(1)
				case code == 429:
					refused.Add(1)
					refusal.Store(string(b))
				default:
					errs <- fmt.Errorf("flood init: %d %s", code, b)
					return
				}
			}
		}()
	}
	for i := range flood {
		select {
		case next <- i:
		case err := <-errs:
			t.Fatal(err)
		}
	}
	close(next)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if accepted.Load() != provision.DefaultMaxPending-1 || refused.Load() != flood-(provision.DefaultMaxPending-1) {
		t.Fatalf("flood: %d accepted, %d refused; want %d accepted (the cap less the legitimate one) and the rest refused",
			accepted.Load(), refused.Load(), provision.DefaultMaxPending-1)
	}
	msg, _ := refusal.Load().(string)
	if !strings.Contains(msg, provision.CodePendingLimit) || !strings.Contains(msg, "waiting for an operator") {
		t.Errorf("the refusal does not say why: %s", msg)
	}

	// The device that waits already asks again (it restarted): it gets a
	// new operation in place of its old one.
	code, b, err = post(hc, initURL, body("legit"))
	var again provision.InitResult
	if err != nil || code != 201 || json.Unmarshal(b, &again) != nil {
		t.Fatalf("repeat of the legitimate device over the cap: %d %s %v", code, b, err)
	}
	if again.OperationID == first.OperationID {
		t.Error("the repeat was handed the pending operation's id")
	}
	if _, err := h.Client.ProvisioningOperation(ctx, first.OperationID); !fault.Is(err, fault.NotFound) {
		t.Errorf("the replaced operation: %v, want not found", err)
	}
	ops, err := h.Client.ProvisioningOperations(ctx, provision.StatePending, provision.MaxListLimit)
	if err != nil {
		t.Fatal(err)
	}
	if len(ops) != provision.DefaultMaxPending {
		t.Errorf("%d operations pending, want the cap, %d", len(ops), provision.DefaultMaxPending)
	}
	// An operator's decision makes room for a new device.
	if _, err := h.Client.RejectProvisioning(ctx, ops[len(ops)-1].ID, provision.Rejection{Reason: "flood"}); err != nil {
		t.Fatal(err)
	}
	if code, b, err := post(hc, initURL, body("after-reject")); err != nil || code != 201 {
		t.Errorf("init after a rejection made room: %d %s %v", code, b, err)
	}
}
