package cli_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ferry-iot/ferry/internal/api"
	"github.com/ferry-iot/ferry/internal/registry"
)

const ownerKey = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="

// fakeHub is an in-memory stand-in for the hub's REST API, enough to drive
// the CLI's encoding and its flows (paging, etags, long polls, consumer
// groups). The hub's real behaviour is proven end to end elsewhere.
type fakeHub struct {
	t      *testing.T
	srv    *httptest.Server
	host   string // HostName of the owner connection string
	caFile string

	mu       sync.Mutex
	devices  map[string]*registry.Device // guarded by mu
	etags    int                         // guarded by mu
	messages []api.Message               // guarded by mu; cursor of messages[i] is i+1
	arrived  chan struct{}               // guarded by mu; closed and replaced when a message arrives
	cgPos    map[string]int              // guarded by mu; consumer group -> messages consumed
	commits  []string                    // guarded by mu; every committed cursor, in order
}

func newFakeHub(t *testing.T) *fakeHub {
	h := &fakeHub{t: t, devices: map[string]*registry.Device{}, arrived: make(chan struct{}), cgPos: map[string]int{}}
	h.srv = httptest.NewTLSServer(h.authorize(h.routes()))
	t.Cleanup(h.srv.Close)
	h.host = h.srv.Listener.Addr().String()
	h.caFile = filepath.Join(t.TempDir(), "ca.pem")
	pemBytes := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: h.srv.Certificate().Raw})
	if err := os.WriteFile(h.caFile, pemBytes, 0o600); err != nil {
		t.Fatal(err)
	}
	return h
}

// connString is the owner connection string of the hub.
func (h *fakeHub) connString() string {
	return "HostName=" + h.host + ";SharedAccessKeyName=iothubowner;SharedAccessKey=" + ownerKey
}

// flags are the hub flags a test passes to every verb.
func (h *fakeHub) flags() []string { return []string{"--hub", h.connString(), "--ca", h.caFile} }

// authorize checks the service SAS token the way the hub does.
func (h *fakeHub) authorize(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f, _ := url.ParseQuery(strings.TrimPrefix(r.Header.Get("Authorization"), "SharedAccessSignature "))
		key, _ := base64.StdEncoding.DecodeString(ownerKey)
		mac := hmac.New(sha256.New, key)
		mac.Write([]byte(f.Get("sr") + "\n" + f.Get("se")))
		if f.Get("sr") != h.host || f.Get("skn") != "iothubowner" ||
			!hmac.Equal([]byte(f.Get("sig")), []byte(base64.StdEncoding.EncodeToString(mac.Sum(nil)))) {
			writeError(w, 401, "IotHubUnauthorizedAccess", 401002, "token rejected")
			return
		}
		if r.URL.Query().Get("api-version") != api.APIVersion {
			writeError(w, 400, "ArgumentInvalid", 400004, "api-version missing")
			return
		}
		next.ServeHTTP(w, r)
	})
}

func writeError(w http.ResponseWriter, status int, code string, num int, msg string) {
	writeBody(w, status, map[string]any{"Message": "ErrorCode:" + code + ";" + msg, "ExceptionMessage": "",
		"errorCode": num, "message": msg, "trackingId": "t", "timestampUtc": "2026-11-23T05:00:00Z"})
}

func writeBody(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func (h *fakeHub) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /devices/{$}", h.listDevices)
	mux.HandleFunc("GET /devices/{id}", h.getDevice)
	mux.HandleFunc("PUT /devices/{id}", h.putDevice)
	mux.HandleFunc("DELETE /devices/{id}", h.deleteDevice)
	mux.HandleFunc("GET /api/v1/hub", func(w http.ResponseWriter, r *http.Request) {
		writeBody(w, 200, api.HubInfo{HostName: h.host, DeviceHostName: "hub.test:8884"})
	})
	mux.HandleFunc("GET /api/v1/streams/{stream}/messages", h.readStream)
	mux.HandleFunc("GET /api/v1/consumergroups/{cg}/streams/{stream}/messages", h.readConsumerGroup)
	mux.HandleFunc("PUT /api/v1/consumergroups/{cg}/streams/{stream}/position", h.commit)
	return mux
}

func (h *fakeHub) getDevice(w http.ResponseWriter, r *http.Request) {
	h.mu.Lock()
	defer h.mu.Unlock()
	d, ok := h.devices[r.PathValue("id")]
	if !ok {
		writeError(w, 404, "DeviceNotFound", 404001, fmt.Sprintf("device %q not found", r.PathValue("id")))
		return
	}
	writeBody(w, 200, d)
}

func (h *fakeHub) putDevice(w http.ResponseWriter, r *http.Request) {
	var d registry.Device
	if err := json.NewDecoder(r.Body).Decode(&d); err != nil || d.DeviceID != r.PathValue("id") {
		writeError(w, 400, "ArgumentInvalid", 400004, "bad device JSON")
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	old, exists := h.devices[d.DeviceID]
	match := r.Header.Get("If-Match")
	switch {
	case match == "" && exists:
		writeError(w, 409, "DeviceAlreadyExists", 409001, fmt.Sprintf("device %q already exists", d.DeviceID))
		return
	case match != "" && !exists:
		writeError(w, 404, "DeviceNotFound", 404001, fmt.Sprintf("device %q not found", d.DeviceID))
		return
	case match != "" && match != `"*"` && match != `"`+old.ETag+`"`:
		writeError(w, 412, "PreconditionFailed", 412002, "etag mismatch")
		return
	}
	if sk := d.Authentication.SymmetricKey; sk != nil && sk.PrimaryKey == "" {
		sk.PrimaryKey, sk.SecondaryKey = ownerKey, base64.StdEncoding.EncodeToString([]byte("secondary-key-of-"+d.DeviceID))
	}
	h.etags++
	d.ETag = "etag" + strconv.Itoa(h.etags)
	d.ConnectionState = registry.Disconnected
	h.devices[d.DeviceID] = &d
	writeBody(w, 200, d)
}

func (h *fakeHub) deleteDevice(w http.ResponseWriter, r *http.Request) {
	h.mu.Lock()
	defer h.mu.Unlock()
	d, ok := h.devices[r.PathValue("id")]
	if !ok {
		writeError(w, 404, "DeviceNotFound", 404001, "not found")
		return
	}
	if m := r.Header.Get("If-Match"); m != `"*"` && m != `"`+d.ETag+`"` {
		writeError(w, 412, "PreconditionFailed", 412002, "etag mismatch")
		return
	}
	delete(h.devices, d.DeviceID)
	w.WriteHeader(204)
}

func (h *fakeHub) listDevices(w http.ResponseWriter, r *http.Request) {
	top, _ := strconv.Atoi(r.URL.Query().Get("top"))
	h.mu.Lock()
	defer h.mu.Unlock()
	var ids []string
	for id := range h.devices {
		if id > r.Header.Get("x-ms-continuation") {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	if len(ids) > top {
		ids = ids[:top]
		w.Header().Set("x-ms-continuation", ids[top-1])
	}
	list := []registry.Device{}
	for _, id := range ids {
		list = append(list, *h.devices[id])
	}
	writeBody(w, 200, list)
}

// addMessage appends a message from device, waking long polls.
func (h *fakeHub) addMessage(device string, body string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := len(h.messages) + 1
	h.messages = append(h.messages, api.Message{Stream: "default", Group: "default", DeviceID: device,
		EnqueuedTime: time.Date(2026, 11, 23, 5, 0, n, 0, time.UTC), Cursor: strconv.Itoa(n),
		SystemProperties: api.SystemProperties{MessageID: "m" + strconv.Itoa(n)}, Body: []byte(body)})
	close(h.arrived)
	h.arrived = make(chan struct{})
}

func (h *fakeHub) readStream(w http.ResponseWriter, r *http.Request) {
	after := 0
	if s := r.URL.Query().Get("after"); s != "" {
		after, _ = strconv.Atoi(s)
	} else {
		after = h.start(r.URL.Query().Get("from"))
	}
	h.page(w, r, after)
}

func (h *fakeHub) readConsumerGroup(w http.ResponseWriter, r *http.Request) {
	h.mu.Lock()
	after, ok := h.cgPos[r.PathValue("cg")]
	h.mu.Unlock()
	if !ok {
		after = h.start(r.URL.Query().Get("from"))
	}
	h.page(w, r, after)
}

// start is where a read without a position begins.
func (h *fakeHub) start(from string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	if from == "now" {
		return len(h.messages)
	}
	return 0
}

// page answers a read after position after, long-polling up to wait.
func (h *fakeHub) page(w http.ResponseWriter, r *http.Request, after int) {
	limit, _ := strconv.Atoi(r.URL.Query().Get("limit"))
	wait, _ := time.ParseDuration(r.URL.Query().Get("wait"))
	device := r.URL.Query().Get("device")
	deadline := time.After(wait)
	for {
		h.mu.Lock()
		var msgs []api.Message
		next := after
		for _, m := range h.messages[after:] {
			if len(msgs) == limit {
				break
			}
			next, _ = strconv.Atoi(m.Cursor)
			if device == "" || m.DeviceID == device {
				msgs = append(msgs, m)
			}
		}
		arrived := h.arrived
		h.mu.Unlock()
		if len(msgs) > 0 || wait == 0 {
			writeBody(w, 200, api.MessagePage{Messages: msgs, Next: strconv.Itoa(next)})
			return
		}
		select {
		case <-arrived:
		case <-deadline:
			wait = 0
		case <-r.Context().Done():
			return
		}
	}
}

func (h *fakeHub) commit(w http.ResponseWriter, r *http.Request) {
	var p api.Position
	_ = json.NewDecoder(r.Body).Decode(&p)
	n, err := strconv.Atoi(p.Cursor)
	if err != nil {
		writeError(w, 400, "ArgumentInvalid", 400004, "bad cursor")
		return
	}
	h.mu.Lock()
	h.cgPos[r.PathValue("cg")] = n
	h.commits = append(h.commits, p.Cursor)
	h.mu.Unlock()
	writeBody(w, 200, p)
}
