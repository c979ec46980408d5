package device

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ferry-iot/ferry/device/internal/queue"
	"github.com/ferry-iot/ferry/internal/protocol"
	"github.com/ferry-iot/ferry/internal/twin"
)

// TwinProperties is one side of the device twin (desired or reported
// properties): a JSON object and the version the hub gave it.
type TwinProperties struct {
	// Version is the document's "$version" at the hub.
	Version int64
	// JSON is the document, a JSON object without "$version".
	JSON json.RawMessage
}

// Twin is the device twin as the hub holds it.
type Twin struct {
	Desired, Reported TwinProperties
}

// ErrInvalidPatch is returned by UpdateReported for a patch the hub would
// refuse: not a JSON object, or breaking a twin rule (key characters,
// nesting, value sizes).
var ErrInvalidPatch = errors.New("device: invalid reported properties patch")

// Store buckets and keys of the twin state.
const (
	twinBucket     = "twin"     // "desired": the last known desired document
	reportedBucket = "reported" // pending reported patches by 8-byte sequence number
)

var desiredKey = []byte("desired")

// Twin request timing.
const (
	// twinTimeout is how long a twin request waits for its answer on a
	// live connection before it is sent again.
	twinTimeout = 30 * time.Second
	// twinRetryDelay is the pause after the hub answered a twin request
	// with an error (429, 5xx).
	twinRetryDelay = 5 * time.Second
)

// twinSync keeps the device's view of its twin in step with the hub, on
// one goroutine (run): on every new connection, token renewals included,
// it GETs the whole twin; it applies desired-property notifications in
// version order (a gap triggers another GET); and it sends the stored
// reported-property patches one at a time, oldest first, deleting each
// once the hub answered 204.
//
// Everything it learns about desired properties is written to the store
// before the application hears of it. Config.OnDesired runs on a goroutine
// of its own (notify), which always delivers the newest document: a slow
// callback makes it skip versions, never block the twin or the transport.
type twinSync struct {
	c      *Client
	wake   chan struct{} // capacity 1: events or reported patches are waiting
	done   chan struct{} // closed when run returns
	notify chan struct{} // capacity 1: wakes the notifier
	ndone  chan struct{} // closed when the notifier returns
	rids   atomic.Uint64

	mu      sync.Mutex
	desired TwinProperties            // the newest desired document known; guarded by mu
	known   bool                      // desired was loaded or received; guarded by mu
	events  []twinEvent               // from the read goroutine, for run; guarded by mu
	gets    map[string]chan twinEvent // Twin calls waiting for their answer, by $rid; guarded by mu

	// repMu orders UpdateReported calls against run's choice of the patch
	// to send: a patch that was handed to the hub is never changed again
	// (its 204 deletes it), so later updates go into a newer one.
	repMu   sync.Mutex
	pending []uint64 // sequence numbers of the stored patches, ascending; guarded by repMu
	lastRep uint64   // highest sequence number used; guarded by repMu
	sent    uint64   // highest sequence number handed to the hub; guarded by repMu
}

// twinEvent is a twin message from the hub (a response or a desired
// notification) or a document fetched by Twin.
type twinEvent struct {
	kind    int // evResponse, evDesired or evFetched
	rid     string
	status  int
	version int64
	body    []byte
}

const (
	evResponse = iota
	evDesired
	evFetched
)

// newTwinSync loads the twin state from the store.
func newTwinSync(c *Client) (*twinSync, error) {
	s := &twinSync{c: c, wake: make(chan struct{}, 1), done: make(chan struct{}),
		notify: make(chan struct{}, 1), ndone: make(chan struct{}), gets: make(map[string]chan twinEvent)}
	v, err := c.q.Get(twinBucket, desiredKey)
	if err != nil {
		return nil, err
	}
	if len(v) >= 8 {
		s.desired = TwinProperties{Version: int64(binary.BigEndian.Uint64(v)), JSON: v[8:]}
		s.known = true
		s.notify <- struct{}{} // the callback at start
	}
	err = c.q.ForEach(reportedBucket, func(k, _ []byte) error {
		if len(k) != 8 {
			return fmt.Errorf("%w: reported patch key %x", queue.ErrCorrupt, k)
		}
		s.pending = append(s.pending, binary.BigEndian.Uint64(k))
		return nil
	})
	if err != nil {
		return nil, err
	}
	if n := len(s.pending); n > 0 {
		s.lastRep = s.pending[n-1]
	}
	return s, nil
}

func (s *twinSync) start() {
	go s.run()
	go s.notifier()
}

func (s *twinSync) signal() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// message takes a twin topic from the read goroutine: answers to Twin
// calls go straight to them, the rest to run. It never blocks.
func (s *twinSync) message(t protocol.Topic, payload []byte) {
	ev := twinEvent{kind: evResponse, rid: t.RID, status: t.Status, version: t.Version, body: bytes.Clone(payload)}
	if t.Kind == protocol.TopicTwinDesiredPatch {
		ev.kind = evDesired
	}
	s.mu.Lock()
	if ch, ok := s.gets[ev.rid]; ok && ev.kind == evResponse {
		delete(s.gets, ev.rid)
		s.mu.Unlock()
		ch <- ev // capacity 1, and only one answer is taken per $rid
		return
	}
	s.events = append(s.events, ev)
	s.mu.Unlock()
	s.signal()
}

// run is the twin goroutine; it ends when the Client closes.
func (s *twinSync) run() {
	defer close(s.done)
	var (
		tr      = s.c.tr
		log     = s.c.cfg.Logger
		sess    <-chan struct{} // the connection the requests below went out on; nil offline
		needGet bool            // a full GET is due (new connection, version gap, failed GET)
		wantVer int64           // the highest desired version announced by a notification
		getRID  string          // the outstanding GET, "" when none
		getAt   time.Time       // when it was sent, or when to retry after an error
		repRID  string          // the outstanding reported patch, "" when none
		repSeq  uint64
		repAt   time.Time // when it was sent, or when to retry after an error
	)
	for {
		ch, up := tr.Session()
		switch {
		case !up:
			sess, getRID, repRID = nil, "", ""
		case ch != sess:
			// A new connection: answers to requests sent on the old one will
			// not come, and notifications may have been missed.
			sess, getRID, repRID = ch, "", ""
			needGet = !s.c.cfg.noResync
		}

		s.mu.Lock()
		events := s.events
		s.events = nil
		s.mu.Unlock()
		for _, ev := range events {
			switch {
			case ev.kind == evDesired:
				wantVer = max(wantVer, ev.version)
				if s.applyPatch(ev.version, ev.body) {
					needGet = true
				}
			case ev.kind == evFetched:
				s.applyFull(ev.body)
			case ev.rid == getRID && getRID != "":
				getRID = ""
				if ev.status != 200 {
					log.Warn("device: twin GET failed; retrying", "status", ev.status, "body", string(ev.body))
					getAt = time.Now().Add(twinRetryDelay)
					break
				}
				s.applyFull(ev.body)
				needGet = s.version() < wantVer
				if needGet {
					// A notification announced a newer version than the GET
					// brought (they crossed): one more GET, a little later.
					getAt, wantVer = time.Now().Add(twinRetryDelay/5), 0
				}
			case ev.rid == repRID && repRID != "":
				repRID = ""
				switch {
				case ev.status == 200 || ev.status == 204:
					s.reportedDone(repSeq)
				case ev.status >= 400 && ev.status < 500 && ev.status != 429:
					// The hub will never take it: keeping it would block
					// every later patch.
					log.Error("device: the hub refused a reported properties patch; dropped",
						"status", ev.status, "body", string(ev.body))
					s.reportedDone(repSeq)
				default:
					log.Warn("device: reported properties patch failed; retrying", "status", ev.status, "body", string(ev.body))
					repAt = time.Now().Add(twinRetryDelay)
				}
			}
		}

		now := time.Now()
		if getRID != "" && now.Sub(getAt) >= twinTimeout {
			getRID = "" // unanswered: send again
		}
		if repRID != "" && now.Sub(repAt) >= twinTimeout {
			repRID = ""
		}
		if sess != nil && needGet && getRID == "" && !now.Before(getAt) {
			rid := s.rid("g")
			if err := tr.PublishQoS0(protocol.TwinGetTopic(rid), nil); err == nil {
				getRID, getAt = rid, now
			}
		}
		if sess != nil && repRID == "" && !now.Before(repAt) {
			if seq, patch, ok := s.nextReported(); ok {
				rid := "r" + strconv.FormatUint(seq, 10)
				if err := tr.PublishQoS0(protocol.TwinPatchReportedTopic(rid), patch); err == nil {
					repRID, repSeq, repAt = rid, seq, now
				}
			}
		}

		// Sleep until something happens or a deadline passes.
		var next time.Time
		later := func(t time.Time) {
			if t.After(now) && (next.IsZero() || t.Before(next)) {
				next = t
			}
		}
		if getRID != "" {
			later(getAt.Add(twinTimeout))
		} else if needGet {
			later(getAt)
		}
		if repRID != "" {
			later(repAt.Add(twinTimeout))
		} else if s.pendingCount() > 0 {
			later(repAt)
		}
		var timer *time.Timer
		var expired <-chan time.Time
		if !next.IsZero() {
			timer = time.NewTimer(time.Until(next))
			expired = timer.C
		}
		select {
		case <-s.wake:
		case <-ch:
		case <-expired:
		case <-s.c.ctx.Done():
			return
		}
		if timer != nil {
			timer.Stop()
		}
	}
}

func (s *twinSync) rid(prefix string) string {
	return prefix + strconv.FormatUint(s.rids.Add(1), 10)
}

func (s *twinSync) version() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.desired.Version
}

// applyPatch applies a desired-properties notification when it is the
// next version, ignores it when it is not newer, and reports a gap (a
// full GET is needed) otherwise.
func (s *twinSync) applyPatch(version int64, body []byte) (gap bool) {
	patch, bodyVersion, err := splitVersion(body)
	if err != nil {
		s.c.cfg.Logger.Warn("device: undecodable desired properties notification", "err", err)
		return true
	}
	if version == 0 {
		version = bodyVersion
	}
	s.mu.Lock()
	cur, known := s.desired, s.known
	s.mu.Unlock()
	switch {
	case known && version <= cur.Version:
		return false // already applied, or older than what a GET brought
	case !known || version != cur.Version+1:
		return true
	}
	doc, err := twin.MergePatch(cur.JSON, patch)
	if err != nil {
		s.c.cfg.Logger.Warn("device: desired properties notification does not apply", "err", err)
		return true
	}
	s.setDesired(TwinProperties{Version: version, JSON: doc})
	return false
}

// applyFull takes a twin GET answer: its desired document replaces the
// known one when it is newer.
func (s *twinSync) applyFull(body []byte) {
	var doc struct {
		Desired json.RawMessage `json:"desired"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		s.c.cfg.Logger.Warn("device: undecodable twin document", "err", err)
		return
	}
	props, version, err := splitVersion(doc.Desired)
	if err != nil {
		s.c.cfg.Logger.Warn("device: undecodable desired properties", "err", err)
		return
	}
	s.mu.Lock()
	cur, known := s.desired, s.known
	s.mu.Unlock()
	if known && version <= cur.Version {
		if version < cur.Version {
			s.c.cfg.Logger.Warn("device: the hub's desired properties are older than the stored ones; keeping the stored",
				"hub", version, "stored", cur.Version)
		}
		return
	}
	s.setDesired(TwinProperties{Version: version, JSON: props})
}

// setDesired stores d, makes it the known document and wakes the
// notifier. A failed write is logged: d still applies in this run.
func (s *twinSync) setDesired(d TwinProperties) {
	v := binary.BigEndian.AppendUint64(make([]byte, 0, 8+len(d.JSON)), uint64(d.Version))
	if err := s.c.q.Put(twinBucket, desiredKey, append(v, d.JSON...)); err != nil {
		s.c.cfg.Logger.Error("device: storing desired properties", "err", err)
	}
	s.mu.Lock()
	s.desired, s.known = d, true
	s.mu.Unlock()
	select {
	case s.notify <- struct{}{}:
	default:
	}
}

// notifier calls Config.OnDesired with the newest desired document each
// time it changed, until the Client closes.
func (s *twinSync) notifier() {
	defer close(s.ndone)
	var last int64 = -1
	for {
		select {
		case <-s.notify:
		case <-s.c.ctx.Done():
			return
		}
		s.mu.Lock()
		d := s.desired
		s.mu.Unlock()
		if d.Version == last || s.c.cfg.OnDesired == nil {
			continue
		}
		last = d.Version
		s.c.cfg.OnDesired(d)
	}
}

// nextReported returns the oldest stored patch and marks it sent: from
// now on UpdateReported leaves it alone.
func (s *twinSync) nextReported() (uint64, []byte, bool) {
	s.repMu.Lock()
	defer s.repMu.Unlock()
	for len(s.pending) > 0 {
		seq := s.pending[0]
		s.sent = max(s.sent, seq)
		patch, err := s.c.q.Get(reportedBucket, seqBytes(seq))
		if err == nil && patch != nil {
			return seq, patch, true
		}
		if errors.Is(err, queue.ErrClosed) {
			return 0, nil, false
		}
		s.c.cfg.Logger.Error("device: reading a stored reported patch; dropped", "seq", seq, "err", err)
		s.pending = s.pending[1:]
	}
	return 0, nil, false
}

// reportedDone deletes an acknowledged patch.
func (s *twinSync) reportedDone(seq uint64) {
	s.repMu.Lock()
	defer s.repMu.Unlock()
	if err := s.c.q.Delete(reportedBucket, seqBytes(seq)); err != nil {
		// It stays stored and is sent again by the next Start; patches
		// are idempotent.
		s.c.cfg.Logger.Error("device: deleting an acknowledged reported patch", "seq", seq, "err", err)
	}
	for i, p := range s.pending {
		if p == seq {
			s.pending = append(s.pending[:i], s.pending[i+1:]...)
			break
		}
	}
}

// PendingReported returns the number of stored reported-property patches
// the hub has not acknowledged yet. Updates made while one patch is on its
// way are merged into the next, so this is not the number of
// UpdateReported calls.
func (c *Client) PendingReported() int { return c.twin.pendingCount() }

func (s *twinSync) pendingCount() int {
	s.repMu.Lock()
	defer s.repMu.Unlock()
	return len(s.pending)
}

// UpdateReported stores a reported-properties patch and returns once it is
// durably written; it is sent whenever the hub is reachable, across
// restarts and crashes, until the hub acknowledges it. patch is a JSON
// merge patch (RFC 7396: a null value deletes the key, objects merge): a
// json.RawMessage, []byte holding JSON, or any value encoding/json
// encodes as an object.
//
// Updates are coalesced: an update made while earlier ones wait (offline,
// or while one patch is on its way) is merged into the newest waiting
// patch, so a device that was offline sends one patch with the net effect.
// The one case a single merge patch cannot express (an object where an
// earlier update deleted the key or set a non-object) starts a new patch,
// sent after the earlier one. Patches are sent in order, one at a time.
//
// It returns ErrInvalidPatch for a patch the hub would refuse. ctx is
// checked before the write, which is not interrupted.
func (c *Client) UpdateReported(ctx context.Context, patch any) error {
	var raw []byte
	switch p := patch.(type) {
	case json.RawMessage:
		raw = p
	case []byte:
		raw = p
	default:
		var err error
		if raw, err = json.Marshal(patch); err != nil {
			return fmt.Errorf("%w: %w", ErrInvalidPatch, err)
		}
	}
	obj, err := twin.Limits{}.ParsePatch(twin.Reported, raw)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidPatch, err)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("device: update reported: %w", err)
	}
	if c.isClosed() {
		return ErrClosed
	}
	if err := c.twin.storeReported(obj); err != nil {
		if errors.Is(err, queue.ErrClosed) {
			return ErrClosed
		}
		return fmt.Errorf("device: update reported: %w", err)
	}
	c.twin.signal()
	return nil
}

// storeReported merges obj into the newest patch not yet sent, or stores
// it as a new one.
func (s *twinSync) storeReported(obj map[string]any) error {
	s.repMu.Lock()
	defer s.repMu.Unlock()
	if n := len(s.pending); n > 0 && s.pending[n-1] > s.sent {
		last := s.pending[n-1]
		stored, err := s.c.q.Get(reportedBucket, seqBytes(last))
		if err != nil {
			return err
		}
		var prev map[string]any
		if err := decodeJSON(stored, &prev); err == nil {
			if merged, ok := composePatch(prev, obj); ok {
				if b := encodeJSON(merged); len(b) <= twin.DefaultMaxProperties {
					return s.c.q.Put(reportedBucket, seqBytes(last), b)
				}
			}
		}
	}
	seq := s.lastRep + 1
	if err := s.c.q.Put(reportedBucket, seqBytes(seq), encodeJSON(obj)); err != nil {
		return err
	}
	s.lastRep = seq
	s.pending = append(s.pending, seq)
	return nil
}

// composePatch returns one merge patch with the effect of applying a and
// then b, and false when there is none: b holds an object for a key that a
// deletes or sets to a non-object, and a merge patch cannot replace a
// value by an object without merging into what was there before a.
func composePatch(a, b map[string]any) (map[string]any, bool) {
	out := maps.Clone(a)
	for k, bv := range b {
		bo, bObj := bv.(map[string]any)
		av, inA := a[k]
		if !bObj || !inA {
			out[k] = bv
			continue
		}
		ao, aObj := av.(map[string]any)
		if !aObj {
			return nil, false
		}
		m, ok := composePatch(ao, bo)
		if !ok {
			return nil, false
		}
		out[k] = m
	}
	return out, true
}

// DesiredIfNewer returns the newest desired properties known to the
// device (received, or stored by an earlier run) when their version is
// greater than version, and false otherwise, also when none are known yet.
// Intermediate versions are not kept: it returns only the newest.
func (c *Client) DesiredIfNewer(version int64) (TwinProperties, bool) {
	s := c.twin
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.known || s.desired.Version <= version {
		return TwinProperties{}, false
	}
	return s.desired, true
}

// Twin fetches the whole twin from the hub (a twin GET). It waits for a
// connection and sends the request again on a new one if the connection
// drops first, until ctx ends or the Client closes. The desired properties
// it brings also update the device's own view (and Config.OnDesired) when
// they are newer.
func (c *Client) Twin(ctx context.Context) (Twin, error) {
	s := c.twin
	for {
		if c.isClosed() {
			return Twin{}, ErrClosed
		}
		sess, up := c.tr.Session()
		if up {
			rid := s.rid("a")
			answer := make(chan twinEvent, 1)
			s.mu.Lock()
			s.gets[rid] = answer
			s.mu.Unlock()
			ev, err := c.awaitTwin(ctx, rid, sess, answer)
			s.mu.Lock()
			delete(s.gets, rid)
			s.mu.Unlock()
			switch {
			case err != nil:
				return Twin{}, err
			case ev == nil:
				continue // the connection ended: ask again on the next one
			case ev.status != 200:
				return Twin{}, fmt.Errorf("device: twin: the hub answered %d: %s", ev.status, ev.body)
			}
			t, err := parseTwin(ev.body)
			if err != nil {
				return Twin{}, fmt.Errorf("device: twin: %w", err)
			}
			s.mu.Lock()
			s.events = append(s.events, twinEvent{kind: evFetched, body: ev.body})
			s.mu.Unlock()
			s.signal()
			return t, nil
		}
		select {
		case <-sess:
		case <-c.closed:
			return Twin{}, ErrClosed
		case <-ctx.Done():
			return Twin{}, fmt.Errorf("device: twin: %w", ctx.Err())
		}
	}
}

// awaitTwin sends a GET with rid on the connection of sess and waits for
// its answer; nil and no error means the connection ended first.
func (c *Client) awaitTwin(ctx context.Context, rid string, sess <-chan struct{}, answer chan twinEvent) (*twinEvent, error) {
	if err := c.tr.PublishQoS0(protocol.TwinGetTopic(rid), nil); err != nil {
		return nil, nil // the connection is going; Session moves on
	}
	select {
	case ev := <-answer:
		return &ev, nil
	case <-sess:
		return nil, nil
	case <-c.closed:
		return nil, ErrClosed
	case <-ctx.Done():
		return nil, fmt.Errorf("device: twin: %w", ctx.Err())
	}
}

func parseTwin(body []byte) (Twin, error) {
	var doc struct {
		Desired, Reported json.RawMessage
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		return Twin{}, err
	}
	var t Twin
	var err error
	if t.Desired.JSON, t.Desired.Version, err = splitVersion(doc.Desired); err != nil {
		return Twin{}, err
	}
	if t.Reported.JSON, t.Reported.Version, err = splitVersion(doc.Reported); err != nil {
		return Twin{}, err
	}
	return t, nil
}

// splitVersion takes "$version" out of a JSON object. An empty document
// counts as {}.
func splitVersion(b []byte) (json.RawMessage, int64, error) {
	if len(bytes.TrimSpace(b)) == 0 {
		return json.RawMessage(`{}`), 0, nil
	}
	var obj map[string]any
	if err := decodeJSON(b, &obj); err != nil {
		return nil, 0, err
	}
	if obj == nil {
		return nil, 0, errors.New("not a JSON object")
	}
	var version int64
	if v, ok := obj["$version"].(json.Number); ok {
		version, _ = v.Int64()
	}
	delete(obj, "$version")
	return encodeJSON(obj), version, nil
}

// decodeJSON decodes keeping numbers as json.Number, so integers keep
// their exact text.
func decodeJSON(b []byte, v any) error {
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	return d.Decode(v)
}

// encodeJSON encodes decoded JSON compactly without HTML escaping.
func encodeJSON(v any) []byte {
	var b bytes.Buffer
	e := json.NewEncoder(&b)
	e.SetEscapeHTML(false)
	_ = e.Encode(v) // decoded JSON always encodes
	return bytes.TrimSuffix(b.Bytes(), []byte("\n"))
}

func seqBytes(seq uint64) []byte { return binary.BigEndian.AppendUint64(make([]byte, 0, 8), seq) }
