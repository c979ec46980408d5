package device_test

import (
	"context"
	"errors"
	"regexp"
	"runtime"
	"testing"
	"time"

	"github.com/ferry-iot/ferry/device"
	"github.com/ferry-iot/ferry/internal/api"
	"github.com/ferry-iot/ferry/internal/hubtest"
)

// sdkGoroutines returns the stacks of the goroutines running SDK code
// (package device and its internal packages; not the tests).
func sdkGoroutines() []string {
	buf := make([]byte, 4<<20)
	buf = buf[:runtime.Stack(buf, true)]
	sdk := regexp.MustCompile(`ferry-iot/ferry/device(/internal/\w+)?\.`)
	var out []string
	for _, g := range regexp.MustCompile(`\n\n`).Split(string(buf), -1) {
		if sdk.MatchString(g) {
			out = append(out, g)
		}
	}
	return out
}

// TestCloseStopsHandlers closes a Client while a method handler and a C2D
// handler run, a Twin call waits for a connection and a reported patch is
// pending: Close cancels the handlers' context, waits for them, and no SDK
// goroutine is left.
func TestCloseStopsHandlers(t *testing.T) {
	e := newEnv(t, true)
	inMethod, inC2D := make(chan struct{}), make(chan struct{})
	e.cfg.Methods = map[string]device.MethodHandler{
		"wait": func(ctx context.Context, req device.MethodRequest) device.MethodResponse {
			close(inMethod)
			<-ctx.Done()
			return device.MethodResponse{Status: 503}
		},
	}
	e.cfg.OnC2D = func(ctx context.Context, m device.C2DMessage) device.Disposition {
		close(inC2D)
		<-ctx.Done()
		return device.Abandon
	}
	e.cfg.OnDesired = func(device.TwinProperties) {}
	c, err := device.Start(context.Background(), e.cfg)
	if err != nil {
		t.Fatal(err)
	}
	invoked := make(chan *api.MethodResponse, 1)
	go func() {
		resp, _ := e.hub.Client.InvokeMethod(context.Background(), e.id, "", api.MethodRequest{
			MethodName: "wait", ResponseTimeoutInSeconds: 5, ConnectTimeoutInSeconds: 10})
		invoked <- resp
	}()
	e.sendC2D(t, "c1", "x")
	for _, ch := range []chan struct{}{inMethod, inC2D} {
		select {
		case <-ch:
		case <-time.After(15 * time.Second):
			t.Fatal("handler not called")
		}
	}
	e.link.up.Store(false)
	e.link.cut()
	if err := c.UpdateReported(context.Background(), map[string]any{"k": 1}); err != nil {
		t.Fatal(err)
	}
	twinErr := make(chan error, 1)
	go func() {
		_, err := c.Twin(context.Background())
		twinErr <- err
	}()
	time.Sleep(100 * time.Millisecond)

	if len(sdkGoroutines()) == 0 {
		t.Fatal("sdkGoroutines finds no SDK goroutine in a running Client")
	}
	closed := make(chan error, 1)
	go func() { closed <- c.Close() }()
	select {
	case err := <-closed:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not return")
	}
	if err := <-twinErr; !errors.Is(err, device.ErrClosed) {
		t.Fatalf("Twin during Close = %v, want ErrClosed", err)
	}
	<-invoked
	hubtest.Eventually(t, 20*time.Second, func() error {
		if gs := sdkGoroutines(); len(gs) > 0 {
			return errors.New("SDK goroutines left after Close:\n" + gs[0])
		}
		return nil
	})
}
