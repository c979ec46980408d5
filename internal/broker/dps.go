package broker

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/ferry-iot/ferry/internal/fault"
	"github.com/ferry-iot/ferry/internal/protocol"
	"github.com/ferry-iot/ferry/internal/provision"
)

// DPS registration connections (PROTOCOL.md §4) run on a loop of their own,
// apart from the device loop: they are short-lived, may publish to the
// $dps/registrations/... topics only, and are bounded in number, lifetime,
// requests and request rate, so that a registration storm cannot slow the
// telemetry path. Device creation (AssignDPS) runs off the loop on a bounded
// number of goroutines; the loop answers a register request with 202 and an
// operation id, and a poll with 202 while the assignment runs, then 200 with
// the registration state.

// Limits of DPS registration connections.
const (
	dpsMaxConns       = 4096             // registration connections at once; more are refused (server busy)
	dpsLifetime       = 2 * time.Minute  // a registration connection is closed after this
	dpsMaxRequests    = 32               // register and poll requests on one connection
	dpsMaxOps         = 4                // operations one connection may start
	dpsBurst          = 8                // requests allowed at once...
	dpsRate           = 4.0              // ...then this many per second (more: 429)
	dpsMaxPacket      = 16 << 10         // larger packets end the connection
	dpsMaxBody        = 8 << 10          // a larger register body is answered 413
	dpsAssignSlots    = 16               // assignments that run at once, hub-wide
	dpsAssignTimeout  = 30 * time.Second // bound of one assignment
	dpsHold           = 2 * time.Second  // a response waits this long for a running assignment
	dpsRetryAfter     = 1                // seconds a device is told to wait while assigning
	dpsDefaultKeepAlv = 60 * time.Second // keep-alive of a client that asks for none
)

// dpsState is the broker's bookkeeping of registration connections.
type dpsState struct {
	mu    sync.Mutex
	conns map[*dpsConn]struct{} // guarded by mu
	slots chan struct{}         // one token per running assignment
	wg    sync.WaitGroup        // connection loops and assignments
	ctx   context.Context       // cancelled by Close
	stop  context.CancelFunc
}

func newDPSState() *dpsState {
	ctx, stop := context.WithCancel(context.Background())
	return &dpsState{conns: make(map[*dpsConn]struct{}), slots: make(chan struct{}, dpsAssignSlots), ctx: ctx, stop: stop}
}

// close ends every registration connection and waits for them and for the
// running assignments.
func (s *dpsState) close() {
	s.stop()
	s.mu.Lock()
	for d := range s.conns {
		_ = d.nc.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

// dpsConn is one registration connection.
type dpsConn struct {
	b       *Broker
	nc      net.Conn
	regID   string
	version byte
	id      *provision.DPSIdentity // nil when refusal is set
	refusal error                  // a disabled enrollment: every register is refused with it
	since   time.Time
	keep    time.Duration

	wmu    sync.Mutex // one writer at a time
	mu     sync.Mutex
	subQoS int               // guarded by mu: QoS granted to $dps/registrations/res/#, -1 when not subscribed
	ops    map[string]*dpsOp // guarded by mu
	pid    uint16            // guarded by mu
	tokens float64           // owned by the loop: request rate bucket
	last   time.Time         // owned by the loop
	reqs   int               // owned by the loop
}

// dpsOp is one registration operation.
type dpsOp struct {
	id    string
	done  chan struct{}
	state *provision.RegistrationState // set before done is closed
	err   error                        // set before done is closed
}

// startDPS answers a registration's CONNECT and serves it on its own loop.
func (b *Broker) startDPS(c *conn, nc net.Conn, pk *packets.Packet) {
	d := c.dps
	d.b, d.nc, d.version, d.since, d.subQoS = b, nc, pk.ProtocolVersion, c.since, -1
	d.ops = make(map[string]*dpsOp)
	d.tokens, d.last = dpsBurst, time.Now()
	d.keep = time.Duration(pk.Connect.Keepalive) * time.Second
	if d.keep <= 0 {
		d.keep = dpsDefaultKeepAlv
	}
	s := b.dps
	s.mu.Lock()
	full := len(s.conns) >= dpsMaxConns || s.ctx.Err() != nil
	if !full {
		s.conns[d] = struct{}{}
		s.wg.Add(1)
	}
	s.mu.Unlock()
	if full {
		b.cfg.Metrics.authFailure(reasonDPSBusy)
		_ = writeConnack(nc, pk.ProtocolVersion, packets.ErrServerBusy, false, 0)
		_ = nc.Close()
		return
	}
	if err := writeConnack(nc, d.version, packets.CodeSuccess, false, dpsMaxOps); err != nil {
		d.finish()
		return
	}
	go d.loop()
}

// finish closes the connection and forgets it.
func (d *dpsConn) finish() {
	_ = d.nc.Close()
	s := d.b.dps
	s.mu.Lock()
	delete(s.conns, d)
	s.mu.Unlock()
	s.wg.Done()
}

// loop reads and handles the registration's packets until it disconnects,
// breaks a rule, goes quiet, or reaches the end of its lifetime.
func (d *dpsConn) loop() {
	defer d.finish()
	r := bufio.NewReaderSize(d.nc, 1024)
	end := d.since.Add(dpsLifetime)
	for {
		_ = d.nc.SetReadDeadline(minTime(time.Now().Add(d.keep*3/2), end))
		pk, err := readDPSPacket(r, d.version)
		if err != nil {
			var ne net.Error
			if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) && !(errors.As(err, &ne) && ne.Timeout()) {
				d.b.log.Info("dps connection ended", "registration", d.regID, "error", err)
			}
			return
		}
		if done := d.handle(pk); done {
			return
		}
	}
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// readDPSPacket reads one packet of at most dpsMaxPacket bytes.
func readDPSPacket(r *bufio.Reader, version byte) (*packets.Packet, error) {
	first, err := r.ReadByte()
	if err != nil {
		return nil, err
	}
	n := 0
	for i := 0; ; i++ {
		if i == 4 {
			return nil, packets.ErrMalformedVariableByteInteger
		}
		v, err := r.ReadByte()
		if err != nil {
			return nil, err
		}
		n |= int(v&0x7f) << (7 * i)
		if v&0x80 == 0 {
			break
		}
	}
	if n > dpsMaxPacket {
		return nil, packets.ErrPacketTooLarge
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(r, body); err != nil {
		return nil, err
	}
	pk := &packets.Packet{ProtocolVersion: version}
	if err := pk.FixedHeader.Decode(first); err != nil {
		return nil, err
	}
	pk.FixedHeader.Remaining = n
	if err := decodeBody(pk, body); err != nil {
		return nil, err
	}
	return pk, nil
}

// handle acts on one packet; it reports whether the connection must end.
func (d *dpsConn) handle(pk *packets.Packet) (done bool) {
	switch pk.FixedHeader.Type {
	case packets.Publish:
		return d.publish(pk)
	case packets.Subscribe:
		return d.subscribe(pk) != nil
	case packets.Unsubscribe:
		d.mu.Lock()
		d.subQoS = -1
		d.mu.Unlock()
		codes := make([]byte, len(pk.Filters))
		return d.writePacket(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Unsuback},
			PacketID: pk.PacketID, ReasonCodes: codes}) != nil
	case packets.Pingreq:
		return d.writeRaw([]byte{packets.Pingresp << 4, 0}) != nil
	case packets.Puback:
		return false // a response the device received
	case packets.Disconnect:
		return true
	}
	return true
}

// subscribe grants $dps/registrations/res/... filters at QoS 0 or 1 and
// refuses every other.
func (d *dpsConn) subscribe(pk *packets.Packet) error {
	codes := make([]byte, len(pk.Filters))
	for i, f := range pk.Filters {
		if !protocol.RegistrationOwnsFilter(f.Filter) {
			d.b.cfg.Metrics.aclDenied()
			codes[i] = 0x80
			if d.version >= 5 {
				codes[i] = packets.ErrNotAuthorized.Code
			}
			continue
		}
		codes[i] = min(f.Qos, 1)
		d.mu.Lock()
		d.subQoS = int(codes[i])
		d.mu.Unlock()
	}
	return d.writePacket(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Suback},
		PacketID: pk.PacketID, ReasonCodes: codes})
}

// publish handles a register request or an operation status poll; any
// other topic ends the connection (MQTT 5 clients are told why).
func (d *dpsConn) publish(pk *packets.Packet) (done bool) {
	if pk.FixedHeader.Qos == 2 {
		d.refuse(packets.ErrQosNotSupported, pk.TopicName)
		return true
	}
	if !protocol.RegistrationMayPublish(pk.TopicName) {
		d.refuse(packets.ErrNotAuthorized, pk.TopicName)
		return true
	}
	if pk.FixedHeader.Qos == 1 {
		if err := d.writeRaw([]byte{packets.Puback << 4, 2, byte(pk.PacketID >> 8), byte(pk.PacketID)}); err != nil {
			return true
		}
	}
	d.reqs++
	if d.reqs > dpsMaxRequests {
		d.refuse(packets.ErrQuotaExceeded, pk.TopicName)
		return true
	}
	t, _ := protocol.ParseTopic(pk.TopicName) // RegistrationMayPublish parsed it already
	if !d.allow() {
		d.respondError(t.RID, fault.New(fault.Throttled, "ThrottlingException", 429001,
			"too many requests on this connection; at most %g per second", dpsRate))
		return false
	}
	if t.Kind == protocol.TopicDPSRegister {
		d.register(t.RID, pk.Payload)
	} else {
		d.poll(t.RID, t.OperationID)
	}
	return false
}

// allow takes a token from the connection's request bucket.
func (d *dpsConn) allow() bool {
	now := time.Now()
	d.tokens = min(dpsBurst, d.tokens+now.Sub(d.last).Seconds()*dpsRate)
	d.last = now
	if d.tokens < 1 {
		return false
	}
	d.tokens--
	return true
}

// refuse logs a refused publish and ends the connection; MQTT 5 clients
// get a DISCONNECT with the reason first.
func (d *dpsConn) refuse(code packets.Code, topic string) {
	d.b.cfg.Metrics.aclDenied()
	d.b.log.Info("dps publish refused", "registration", d.regID, "topic", topic, "reason", code.Reason)
	if d.version >= 5 {
		pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Disconnect}, ReasonCode: code.Code}
		pk.Properties.ReasonString = code.Reason
		_ = d.writePacket(pk)
	}
}

// registerRequest is the body of a register request. Node sends
// {"registrationId":..,"payload":..} (payload omitted when unset), Python
// {"payload":null|{..},"registrationId":..}.
type registerRequest struct {
	RegistrationID *string         `json:"registrationId"`
	Payload        json.RawMessage `json:"payload"`
}

// register starts an operation for a register request.
func (d *dpsConn) register(rid string, body []byte) {
	if d.refusal != nil {
		// Azure DPS answers a disabled enrollment with 401; Node turns it
		// into an UnauthorizedError.
		d.respondError(rid, fault.New(fault.Unauthorized, "DPSUnauthorized", 401002, "%s", fault.Public(d.refusal)))
		return
	}
	if len(body) > dpsMaxBody {
		d.respondError(rid, fault.TooLargef("the register request is %d bytes; the limit is %d", len(body), dpsMaxBody))
		return
	}
	req, err := parseRegisterRequest(body)
	if err != nil {
		d.respondError(rid, err)
		return
	}
	if *req.RegistrationID != d.regID {
		d.respondError(rid, fault.Invalidf("registrationId %q in the request is not %q, the registration of this connection", *req.RegistrationID, d.regID))
		return
	}
	if _, err := provision.ParseDPSPayload(req.Payload); err != nil {
		d.respondError(rid, err)
		return
	}
	d.mu.Lock()
	if len(d.ops) >= dpsMaxOps {
		d.mu.Unlock()
		d.respondError(rid, fault.New(fault.Throttled, "ThrottlingException", 429002,
			"at most %d registrations per connection", dpsMaxOps))
		return
	}
	op := &dpsOp{id: newOperationID(), done: make(chan struct{})}
	d.ops[op.id] = op
	d.mu.Unlock()
	payload := bytes.Clone(req.Payload)
	s := d.b.dps
	s.wg.Add(2)
	go func() {
		defer s.wg.Done()
		d.assign(op, payload)
	}()
	go func() {
		defer s.wg.Done()
		d.answerWhenDone(rid, op)
	}()
}

// parseRegisterRequest decodes a register request body; registrationId is
// required.
func parseRegisterRequest(body []byte) (*registerRequest, error) {
	var req registerRequest
	if err := json.Unmarshal(body, &req); err != nil {
		var se *json.SyntaxError
		if errors.As(err, &se) {
			return nil, fault.Invalidf("the register request is not JSON: %v (at byte %d)", err, se.Offset)
		}
		return nil, fault.Invalidf(`the register request must be a JSON object {"registrationId":...,"payload":...}`)
	}
	if req.RegistrationID == nil {
		return nil, fault.Invalidf("the register request has no registrationId")
	}
	return &req, nil
}

// newOperationID returns an id shaped like Azure DPS's operation ids.
func newOperationID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	h := hex.EncodeToString(b[:])
	return "4." + h[:16] + "." + h[16:24] + "-" + h[24:28] + "-" + h[28:]
}

// assign runs the assignment on one of the hub-wide slots.
func (d *dpsConn) assign(op *dpsOp, payload json.RawMessage) {
	s := d.b.dps
	defer close(op.done)
	select {
	case s.slots <- struct{}{}:
	case <-s.ctx.Done():
		op.err = fault.New(fault.Unavailable, "ServiceUnavailable", 503000, "the hub is shutting down")
		return
	}
	defer func() { <-s.slots }()
	ctx, cancel := context.WithTimeout(s.ctx, dpsAssignTimeout)
	defer cancel()
	op.state, op.err = d.b.cfg.DPS.AssignDPS(ctx, d.id, payload)
	if op.err != nil && !fault.Is(op.err, fault.Invalid) && !fault.Is(op.err, fault.TooLarge) {
		d.b.log.Error("dps assignment failed", "registration", d.regID, "error", op.err)
	}
}

// answerWhenDone answers a register request with 202 once the assignment
// finished or dpsHold passed: a device then polls at once (retry-after=0)
// and finds its assignment done, or waits the retry-after.
func (d *dpsConn) answerWhenDone(rid string, op *dpsOp) {
	finished := d.wait(op)
	body, _ := json.Marshal(struct {
		OperationID string `json:"operationId"`
		Status      string `json:"status"`
	}{op.id, "assigning"})
	d.respond(202, rid, retryAfter(finished), body)
}

// wait waits up to dpsHold for an operation; it reports whether it is done.
func (d *dpsConn) wait(op *dpsOp) bool {
	t := time.NewTimer(dpsHold)
	defer t.Stop()
	select {
	case <-op.done:
		return true
	case <-t.C:
		return false
	case <-d.b.dps.ctx.Done():
		return false
	}
}

func retryAfter(finished bool) int {
	if finished {
		return 0
	}
	return dpsRetryAfter
}

// poll answers an operation status request: 404 for an unknown operation,
// 202 while it is assigning (after waiting up to dpsHold for it), then 200
// with the registration state.
func (d *dpsConn) poll(rid, opID string) {
	d.mu.Lock()
	op := d.ops[opID]
	d.mu.Unlock()
	if op == nil {
		d.respondError(rid, fault.New(fault.NotFound, "OperationNotFound", 404203,
			"operation %q is not a registration of this connection", opID))
		return
	}
	select {
	case <-op.done:
		d.answerPoll(rid, op)
		return
	default:
	}
	s := d.b.dps
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		if !d.wait(op) {
			body, _ := json.Marshal(struct {
				OperationID string `json:"operationId"`
				Status      string `json:"status"`
			}{op.id, "assigning"})
			d.respond(202, rid, dpsRetryAfter, body)
			return
		}
		d.answerPoll(rid, op)
	}()
}

// dpsStateBody is the registrationState of a 200 response.
type dpsStateBody struct {
	*provision.RegistrationState
	ErrorCode    int    `json:"errorCode,omitempty"`
	ErrorMessage string `json:"errorMessage,omitempty"`
}

// answerPoll answers with a finished operation: assigned, or failed with
// the error in the registration state (Node raises
// DeviceRegistrationFailedError for "failed").
func (d *dpsConn) answerPoll(rid string, op *dpsOp) {
	res := struct {
		OperationID string       `json:"operationId"`
		Status      string       `json:"status"`
		State       dpsStateBody `json:"registrationState"`
	}{OperationID: op.id, Status: "assigned"}
	if op.err != nil {
		e := asFault(op.err)
		res.Status = "failed"
		res.State = dpsStateBody{RegistrationState: &provision.RegistrationState{RegistrationID: d.regID, Status: "failed"},
			ErrorCode: e.Num, ErrorMessage: fault.Public(op.err)}
	} else {
		res.State = dpsStateBody{RegistrationState: op.state}
	}
	body, err := json.Marshal(res)
	if err != nil {
		d.respondError(rid, err)
		return
	}
	d.respond(200, rid, 0, body)
}

// asFault returns err's *fault.Error, or an internal one.
func asFault(err error) *fault.Error {
	if e := fault.As(err); e != nil && e.Kind != fault.Internal {
		if e.Num == 0 {
			e = &fault.Error{Kind: e.Kind, Code: e.Code, Num: dpsStatus(e.Kind) * 1000, Msg: e.Msg}
		}
		return e
	}
	return fault.New(fault.Internal, "ServerError", 500000, "internal error")
}

// dpsStatus maps an error kind to the response status.
func dpsStatus(k fault.Kind) int {
	switch k {
	case fault.Invalid:
		return 400
	case fault.Unauthorized:
		return 401
	case fault.Forbidden:
		return 403
	case fault.NotFound:
		return 404
	case fault.Conflict:
		return 409
	case fault.TooLarge:
		return 413
	case fault.Throttled:
		return 429
	case fault.Unavailable:
		return 503
	}
	return 500
}

// respondError answers a request with an error status and
// {"errorCode":..,"message":..}, as Azure DPS does.
func (d *dpsConn) respondError(rid string, err error) {
	e := asFault(err)
	body, _ := json.Marshal(struct {
		ErrorCode int    `json:"errorCode"`
		Message   string `json:"message"`
	}{e.Num, fault.Public(err)})
	status := dpsStatus(e.Kind)
	ra := 0
	if status == 429 || status == 503 {
		ra = dpsRetryAfter
	}
	d.respond(status, rid, ra, body)
}

// respond publishes a response to the registration when it subscribed to
// the responses (as Azure, nothing is sent otherwise).
func (d *dpsConn) respond(status int, rid string, retryAfter int, body []byte) {
	topic := protocol.DPSResponseTopic(status, rid, retryAfter)
	if status == 202 && retryAfter == 0 {
		topic += "&retry-after=0"
	}
	d.mu.Lock()
	qos := d.subQoS
	var id uint16
	if qos == 1 {
		d.pid++
		if d.pid == 0 {
			d.pid = 1
		}
		id = d.pid
	}
	d.mu.Unlock()
	if qos < 0 {
		return
	}
	pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: byte(qos)},
		TopicName: topic, Payload: body, PacketID: id}
	if err := d.writePacket(pk); err != nil {
		_ = d.nc.Close()
	}
}

func (d *dpsConn) writeRaw(p []byte) error {
	d.wmu.Lock()
	defer d.wmu.Unlock()
	_ = d.nc.SetWriteDeadline(time.Now().Add(writeTimeout))
	_, err := d.nc.Write(p)
	return err
}

func (d *dpsConn) writePacket(pk packets.Packet) error {
	pk.ProtocolVersion = d.version
	pk.Mods.AllowResponseInfo = true
	var buf bytes.Buffer
	var err error
	switch pk.FixedHeader.Type {
	case packets.Publish:
		err = pk.PublishEncode(&buf)
	case packets.Suback:
		err = pk.SubackEncode(&buf)
	case packets.Unsuback:
		err = pk.UnsubackEncode(&buf)
	case packets.Disconnect:
		err = pk.DisconnectEncode(&buf)
	default:
		err = fmt.Errorf("broker: cannot write packet type %d", pk.FixedHeader.Type)
	}
	if err != nil {
		return err
	}
	return d.writeRaw(buf.Bytes())
}

// DPSConnections returns the number of open registration connections.
func (b *Broker) DPSConnections() int {
	b.dps.mu.Lock()
	defer b.dps.mu.Unlock()
	return len(b.dps.conns)
}
