package api_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ferry-iot/ferry/internal/api"
	"github.com/ferry-iot/ferry/internal/fault"
	"github.com/ferry-iot/ferry/internal/registry"
)

const (
	testHost    = "hub.test:8443" // HostName in the connection string; the server is elsewhere
	testKeyName = "iothubowner"
	testKey     = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=" // base64("0123456789abcdef0123456789abcdef")
)

var testNow = time.Date(2026, 11, 23, 5, 0, 0, 0, time.UTC)

func ownerConnString(host string) string {
	return "HostName=" + host + ";SharedAccessKeyName=" + testKeyName + ";SharedAccessKey=" + testKey
}

// exchange is one expected request and the canned answer to it.
type exchange struct {
	method  string
	path    string            // as escaped on the wire
	query   url.Values        // expected parameters besides api-version, exactly
	header  map[string]string // expected request headers; "" means absent
	body    string            // expected JSON body, compared as JSON; "" means no body
	status  int
	respHdr map[string]string
	resp    string
}

// checkSAS verifies the Authorization header independently of the client's
// code: sr is the host name exactly, the signature is HMAC-SHA256 of
// "sr\nse" with the policy key, and the token lives one hour.
func checkSAS(t *testing.T, h string) {
	t.Helper()
	rest, ok := strings.CutPrefix(h, "SharedAccessSignature ")
	if !ok {
		t.Fatalf("Authorization %q: want a SharedAccessSignature", h)
	}
	f := map[string]string{}
	for _, item := range strings.Split(rest, "&") {
		k, v, _ := strings.Cut(item, "=")
		f[k] = v
	}
	if f["sr"] != testHost {
		t.Errorf("sr = %q, want the host name %q unencoded", f["sr"], testHost)
	}
	if f["skn"] != testKeyName {
		t.Errorf("skn = %q, want %q", f["skn"], testKeyName)
	}
	if want := strconv.FormatInt(testNow.Add(time.Hour).Unix(), 10); f["se"] != want {
		t.Errorf("se = %q, want %s (an hour from now)", f["se"], want)
	}
	key, _ := base64.StdEncoding.DecodeString(testKey)
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(f["sr"] + "\n" + f["se"]))
	sig, err := url.QueryUnescape(f["sig"])
	if err != nil || !hmac.Equal([]byte(sig), []byte(base64.StdEncoding.EncodeToString(mac.Sum(nil)))) {
		t.Errorf("sig %q does not verify", f["sig"])
	}
}

// serve starts a TLS server that expects the exchanges in order and returns
// a client for it.
func serve(t *testing.T, want ...exchange) *api.Client {
	t.Helper()
	n := 0
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n >= len(want) {
			t.Errorf("unexpected request %s %s", r.Method, r.URL)
			w.WriteHeader(http.StatusTeapot)
			return
		}
		x := want[n]
		n++
		checkSAS(t, r.Header.Get("Authorization"))
		if r.Method != x.method || r.URL.EscapedPath() != x.path {
			t.Errorf("request %s %s, want %s %s", r.Method, r.URL.EscapedPath(), x.method, x.path)
		}
		q := r.URL.Query()
		if q.Get("api-version") != "2021-04-12" {
			t.Errorf("api-version = %q", q.Get("api-version"))
		}
		q.Del("api-version")
		if x.query == nil {
			x.query = url.Values{}
		}
		if !reflect.DeepEqual(q, x.query) {
			t.Errorf("%s %s: query %v, want %v", x.method, x.path, q, x.query)
		}
		for k, v := range x.header {
			if got := r.Header.Get(k); got != v {
				t.Errorf("%s %s: header %s = %q, want %q", x.method, x.path, k, got, v)
			}
		}
		body, _ := io.ReadAll(r.Body)
		checkJSONBody(t, body, x.body)
		for k, v := range x.respHdr {
			w.Header().Set(k, v)
		}
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		w.WriteHeader(x.status)
		_, _ = io.WriteString(w, x.resp)
	}))
	t.Cleanup(func() {
		srv.Close()
		if n != len(want) {
			t.Errorf("%d requests, want %d", n, len(want))
		}
	})
	c, err := api.NewClient(ownerConnString(testHost), api.ClientOptions{
		HTTPClient: srv.Client(), BaseURL: srv.URL, Now: func() time.Time { return testNow },
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func checkJSONBody(t *testing.T, got []byte, want string) {
	t.Helper()
	if want == "" {
		if len(got) != 0 {
			t.Errorf("body %s, want none", got)
		}
		return
	}
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatalf("body %s: %v", got, err)
	}
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatalf("want %s: %v", want, err)
	}
	if !reflect.DeepEqual(g, w) {
		t.Errorf("body %s, want %s", got, want)
	}
}

const deviceJSON = `{"deviceId":"a b#c","generationId":"638","etag":"MzE4","connectionState":"Disconnected",
 "status":"enabled","statusReason":null,"connectionStateUpdatedTime":"0001-01-01T00:00:00",
 "statusUpdatedTime":"0001-01-01T00:00:00","lastActivityTime":"2026-11-23T04:59:00Z","cloudToDeviceMessageCount":0,
 "authentication":{"symmetricKey":{"primaryKey":"cHJpbWFyeQ==","secondaryKey":"c2Vjb25kYXJ5"},
 "x509Thumbprint":{"primaryThumbprint":null,"secondaryThumbprint":null},"type":"sas"},
 "capabilities":{"iotEdge":false},"deviceScope":null,"parentScopes":[]}`

// newDeviceBody is what the client sends for a new SAS device with
// generated keys: Azure's shape, keys empty.
const newDeviceBody = `{"deviceId":"a b#c","generationId":"","etag":"","connectionState":"","status":"enabled",
 "statusReason":null,"connectionStateUpdatedTime":"0001-01-01T00:00:00Z","statusUpdatedTime":"0001-01-01T00:00:00Z",
 "lastActivityTime":"0001-01-01T00:00:00Z","cloudToDeviceMessageCount":0,
 "authentication":{"symmetricKey":{"primaryKey":"","secondaryKey":""},
 "x509Thumbprint":{"primaryThumbprint":null,"secondaryThumbprint":null},"type":"sas"},
 "capabilities":{"iotEdge":false},"deviceScope":null,"parentScopes":[]}`

func newDevice() registry.Device {
	return registry.Device{DeviceID: "a b#c", Status: registry.StatusEnabled, Authentication: registry.Authentication{
		Type: registry.AuthSAS, SymmetricKey: &registry.SymmetricKey{}}}
}

func checkDevice(t *testing.T, d *registry.Device) {
	t.Helper()
	if d.DeviceID != "a b#c" || d.ETag != "MzE4" || d.Authentication.SymmetricKey.PrimaryKey != "cHJpbWFyeQ==" ||
		!d.LastActivityTime.Equal(testNow.Add(-time.Minute)) {
		t.Errorf("device = %+v", d)
	}
}

func TestCreateDevice(t *testing.T) {
	c := serve(t, exchange{method: "PUT", path: "/devices/a%20b%23c", header: map[string]string{
		"If-Match": "", "Content-Type": "application/json; charset=utf-8"},
		body: newDeviceBody, status: 200, resp: deviceJSON})
	d, err := c.CreateDevice(context.Background(), newDevice())
	if err != nil {
		t.Fatal(err)
	}
	checkDevice(t, d)
}

func TestUpdateDeviceIfMatch(t *testing.T) {
	c := serve(t,
		exchange{method: "PUT", path: "/devices/a%20b%23c", header: map[string]string{"If-Match": `"*"`},
			body: newDeviceBody, status: 200, resp: deviceJSON},
		exchange{method: "PUT", path: "/devices/a%20b%23c", header: map[string]string{"If-Match": `"MzE4"`},
			body: newDeviceBody, status: 200, resp: deviceJSON})
	for _, etag := range []string{"", "MzE4"} {
		d, err := c.UpdateDevice(context.Background(), newDevice(), etag)
		if err != nil {
			t.Fatal(err)
		}
		checkDevice(t, d)
	}
}

func TestGetAndDeleteDevice(t *testing.T) {
	c := serve(t,
		exchange{method: "GET", path: "/devices/a%20b%23c", status: 200, resp: deviceJSON},
		exchange{method: "DELETE", path: "/devices/a%20b%23c", header: map[string]string{"If-Match": `"*"`}, status: 204},
		exchange{method: "DELETE", path: "/devices/d1", header: map[string]string{"If-Match": `"MzE4"`}, status: 204})
	ctx := context.Background()
	d, err := c.GetDevice(ctx, "a b#c")
	if err != nil {
		t.Fatal(err)
	}
	checkDevice(t, d)
	if err := c.DeleteDevice(ctx, "a b#c", ""); err != nil {
		t.Fatal(err)
	}
	if err := c.DeleteDevice(ctx, "d1", `"MzE4"`); err != nil { // an etag quoted already stays as it is
		t.Fatal(err)
	}
}

func TestListDevicesContinuation(t *testing.T) {
	c := serve(t,
		exchange{method: "GET", path: "/devices/", query: url.Values{"top": {"2"}},
			header: map[string]string{"x-ms-continuation": ""}, status: 200,
			respHdr: map[string]string{"x-ms-continuation": "d2"}, resp: `[{"deviceId":"d1"},{"deviceId":"d2"}]`},
		exchange{method: "GET", path: "/devices/", query: url.Values{"top": {"2"}},
			header: map[string]string{"x-ms-continuation": "d2"}, status: 200, resp: `[{"deviceId":"d3"}]`})
	ctx := context.Background()
	list, next, err := c.ListDevices(ctx, 2, "")
	if err != nil || len(list) != 2 || next != "d2" {
		t.Fatalf("first page: %v, %q, %v", list, next, err)
	}
	list, next, err = c.ListDevices(ctx, 2, next)
	if err != nil || len(list) != 1 || list[0].DeviceID != "d3" || next != "" {
		t.Fatalf("last page: %v, %q, %v", list, next, err)
	}
}

func TestHubAndStreams(t *testing.T) {
	c := serve(t,
		exchange{method: "GET", path: "/api/v1/hub", status: 200, resp: `{"hostName":"localhost:8080",
			"deviceHostName":"localhost","version":"v1","startedAt":"2026-11-23T04:00:00Z","uptimeSeconds":12.5,
			"devices":{"total":3,"connected":1},"mqtt":{"tcp":"127.0.0.1:1883","tls":":8883","websocket":"/$iothub/websocket"}}`},
		exchange{method: "GET", path: "/api/v1/streams", status: 200,
			resp: `[{"group":"default","name":"default","messages":12,"first":"2026-11-23T04:00:00Z","last":"2026-11-23T04:59:00Z"}]`})
	ctx := context.Background()
	info, err := c.Hub(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := api.HubInfo{HostName: "localhost:8080", DeviceHostName: "localhost", Version: "v1",
		StartedAt: testNow.Add(-time.Hour), UptimeSeconds: 12.5, Devices: api.DeviceCount{Total: 3, Connected: 1},
		MQTT: api.MQTTInfo{TCP: "127.0.0.1:1883", TLS: ":8883", WebSocket: "/$iothub/websocket"}}
	if !reflect.DeepEqual(*info, want) {
		t.Errorf("Hub = %+v, want %+v", *info, want)
	}
	streams, err := c.Streams(ctx)
	if err != nil || len(streams) != 1 || streams[0].Messages != 12 || streams[0].Name != "default" {
		t.Fatalf("Streams = %+v, %v", streams, err)
	}
}

const pageJSON = `{"messages":[{"stream":"default","group":"default","deviceId":"d1","moduleId":"",
 "enqueuedTime":"2026-11-23T04:59:59.123456789Z","cursor":"12.3","systemProperties":{"messageId":"m1",
 "contentType":"application/json","authMethod":"sas"},"properties":{"k":"v"},"body":"eyJ0IjoyMX0="}],"next":"12.4"}`

func checkPage(t *testing.T, p *api.MessagePage) {
	t.Helper()
	if p.Next != "12.4" || len(p.Messages) != 1 {
		t.Fatalf("page = %+v", p)
	}
	m := p.Messages[0]
	if m.DeviceID != "d1" || m.Cursor != "12.3" || string(m.Body) != `{"t":21}` || m.Properties["k"] != "v" ||
		m.SystemProperties.MessageID != "m1" || m.EnqueuedTime.Nanosecond() != 123456789 {
		t.Errorf("message = %+v", m)
	}
}

func TestReadStream(t *testing.T) {
	c := serve(t,
		exchange{method: "GET", path: "/api/v1/streams/*/messages", query: url.Values{"group": {"g"}, "device": {"d1"},
			"from": {"beginning"}, "to": {"2026-11-23T05:00:00Z"}, "after": {"12.2"}, "limit": {"10"}, "wait": {"30s"}},
			status: 200, resp: pageJSON},
		exchange{method: "GET", path: "/api/v1/streams/tele%2Fmetry/messages", status: 200, resp: `{"messages":[],"next":"12.4"}`})
	ctx := context.Background()
	p, err := c.ReadStream(ctx, "*", api.ReadQuery{Group: "g", Device: "d1", From: "beginning",
		To: "2026-11-23T05:00:00Z", After: "12.2", Limit: 10, Wait: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	checkPage(t, p)
	if p, err = c.ReadStream(ctx, "tele/metry", api.ReadQuery{}); err != nil || p.Next != "12.4" {
		t.Fatalf("empty page: %+v, %v", p, err)
	}
}

func TestConsumerGroup(t *testing.T) {
	c := serve(t,
		exchange{method: "GET", path: "/api/v1/consumergroups/archiver/streams/default/messages",
			query: url.Values{"from": {"now"}, "limit": {"5"}, "wait": {"1.5s"}}, status: 200, resp: pageJSON},
		exchange{method: "PUT", path: "/api/v1/consumergroups/archiver/streams/default/position",
			body: `{"cursor":"12.4"}`, status: 200, resp: `{"cursor":"12.4"}`},
		exchange{method: "GET", path: "/api/v1/consumergroups/archiver/streams/default/position",
			status: 200, resp: `{"cursor":"12.4"}`})
	ctx := context.Background()
	// After is the hub's business for a consumer group, so it is not sent.
	p, err := c.ReadConsumerGroup(ctx, "archiver", "default", api.ReadQuery{From: "now", After: "1.1", Limit: 5, Wait: 1500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	checkPage(t, p)
	if err := c.Commit(ctx, "archiver", "default", p.Next); err != nil {
		t.Fatal(err)
	}
	if pos, err := c.CommittedPosition(ctx, "archiver", "default"); err != nil || pos != "12.4" {
		t.Fatalf("CommittedPosition = %q, %v", pos, err)
	}
}

func TestErrorResponses(t *testing.T) {
	azure := func(code string, num int, text string) string {
		b, _ := json.Marshal(map[string]any{"Message": "ErrorCode:" + code + ";" + text,
			"ExceptionMessage": "Tracking ID:abc", "errorCode": num, "message": text,
			"trackingId": "abc", "timestampUtc": "2026-11-23T05:00:00Z"})
		return string(b)
	}
	tests := []struct {
		status int
		resp   string
		want   fault.Error
	}{
		{400, azure("ArgumentInvalid", 400004, "bad id"), fault.Error{Kind: fault.Invalid, Code: "ArgumentInvalid", Num: 400004, Msg: "bad id"}},
		{401, azure("IotHubUnauthorizedAccess", 401002, "token rejected"), fault.Error{Kind: fault.Unauthorized, Code: "IotHubUnauthorizedAccess", Num: 401002, Msg: "token rejected"}},
		{403, azure("IotHubUnauthorizedAccess", 403000, "lacks RegistryWrite"), fault.Error{Kind: fault.Forbidden, Code: "IotHubUnauthorizedAccess", Num: 403000, Msg: "lacks RegistryWrite"}},
		{404, azure("DeviceNotFound", 404001, `device "x" not found`), fault.Error{Kind: fault.NotFound, Code: "DeviceNotFound", Num: 404001, Msg: `device "x" not found`}},
		{409, azure("DeviceAlreadyExists", 409001, "exists"), fault.Error{Kind: fault.Conflict, Code: "DeviceAlreadyExists", Num: 409001, Msg: "exists"}},
		{412, azure("PreconditionFailed", 412002, "etag"), fault.Error{Kind: fault.PreconditionFailed, Code: "PreconditionFailed", Num: 412002, Msg: "etag"}},
		{413, azure("MessageTooLarge", 413001, "big"), fault.Error{Kind: fault.TooLarge, Code: "MessageTooLarge", Num: 413001, Msg: "big"}},
		{429, azure("ThrottlingException", 429001, "slow down"), fault.Error{Kind: fault.Throttled, Code: "ThrottlingException", Num: 429001, Msg: "slow down"}},
		{503, azure("ServiceUnavailable", 503000, "stopping"), fault.Error{Kind: fault.Unavailable, Code: "ServiceUnavailable", Num: 503000, Msg: "stopping"}},
		{504, azure("GatewayTimeout", 504101, "late"), fault.Error{Kind: fault.Timeout, Code: "GatewayTimeout", Num: 504101, Msg: "late"}},
		{500, azure("ServerError", 500001, "internal error"), fault.Error{Kind: fault.Internal, Code: "ServerError", Num: 500001, Msg: "internal error"}},
		// Older Azure bodies carry only Message.
		{404, `{"Message":"ErrorCode:DeviceNotFound;gone"}`, fault.Error{Kind: fault.NotFound, Code: "DeviceNotFound", Msg: "gone"}},
		// A proxy's page is not JSON: the status speaks.
		{502, `<html>bad gateway</html>`, fault.Error{Kind: fault.Internal, Msg: "GET /devices/x: 502 Bad Gateway"}},
	}
	for _, tt := range tests {
		t.Run(strconv.Itoa(tt.status)+tt.want.Code, func(t *testing.T) {
			c := serve(t, exchange{method: "GET", path: "/devices/x", status: tt.status, resp: tt.resp})
			_, err := c.GetDevice(context.Background(), "x")
			e := fault.As(err)
			if e == nil {
				t.Fatalf("error %v is not a *fault.Error", err)
			}
			if *e != tt.want {
				t.Errorf("error = %+v, want %+v", *e, tt.want)
			}
		})
	}
}

func TestCAFile(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"hostName":"`+r.Host+`"}`)
	}))
	defer srv.Close()
	ca := filepath.Join(t.TempDir(), "ca.pem")
	pemBytes := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	if err := os.WriteFile(ca, pemBytes, 0o600); err != nil {
		t.Fatal(err)
	}
	host := srv.Listener.Addr().String() // 127.0.0.1:port: the base URL comes from HostName

	c, err := api.NewClient(ownerConnString(host), api.ClientOptions{CAFile: ca})
	if err != nil {
		t.Fatal(err)
	}
	if info, err := c.Hub(context.Background()); err != nil || info.HostName != host {
		t.Fatalf("Hub with CA file = %+v, %v", info, err)
	}

	c, err = api.NewClient(ownerConnString(host), api.ClientOptions{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Hub(context.Background())
	if !fault.Is(err, fault.Unavailable) || !strings.Contains(err.Error(), "not trusted") {
		t.Errorf("Hub without the CA: %v, want an untrusted-certificate error", err)
	}

	// The test certificate names 127.0.0.1 and example.com, not localhost.
	_, port, _ := strings.Cut(host, ":")
	c, err = api.NewClient(ownerConnString("localhost:"+port), api.ClientOptions{CAFile: ca})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Hub(context.Background())
	if !fault.Is(err, fault.Unavailable) || !strings.Contains(err.Error(), "not valid for localhost") {
		t.Errorf("Hub by a name the certificate lacks: %v, want a host name error", err)
	}
}

func TestUnreachable(t *testing.T) {
	srv := httptest.NewTLSServer(http.NotFoundHandler())
	host := srv.Listener.Addr().String()
	srv.Close()
	c, err := api.NewClient(ownerConnString(host), api.ClientOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Hub(context.Background()); !fault.Is(err, fault.Unavailable) {
		t.Errorf("Hub of a closed server: %v, want Unavailable", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := c.Hub(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("Hub with a cancelled context: %v, want context.Canceled", err)
	}
}

func TestNewClientRefuses(t *testing.T) {
	for _, cs := range []string{
		"",
		"not a connection string",
		"HostName=h;DeviceId=d1;SharedAccessKey=" + testKey, // a device's
		"HostName=h;SharedAccessKeyName=p;SharedAccessKey=***",
	} {
		if _, err := api.NewClient(cs, api.ClientOptions{}); !fault.Is(err, fault.Invalid) {
			t.Errorf("NewClient(%q) = %v, want Invalid", cs, err)
		}
	}
	if _, err := api.NewClient(ownerConnString("h"), api.ClientOptions{CAFile: filepath.Join(t.TempDir(), "none.pem")}); err == nil {
		t.Error("NewClient with a missing CA file succeeded")
	}
}
