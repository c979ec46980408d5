package broker

import (
	"bytes"
	"context"
	"errors"
	"strings"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/storage"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/ferry-iot/ferry/internal/session"
)

// hook connects mochi's events to the broker.
type hook struct {
	mqtt.HookBase
	b *Broker
}

func (h *hook) ID() string { return "ferry" }

func (h *hook) Provides(b byte) bool {
	return bytes.Contains([]byte{
		mqtt.OnConnect, mqtt.OnConnectAuthenticate, mqtt.OnSessionEstablished, mqtt.OnDisconnect, mqtt.OnACLCheck,
		mqtt.OnPacketRead, mqtt.OnPacketEncode,
		mqtt.OnSubscribe, mqtt.OnSubscribed, mqtt.OnClientExpired, mqtt.OnUnsubscribed, mqtt.StoredClients, mqtt.StoredSubscriptions,
	}, []byte{b})
}

// OnConnect authenticates the CONNECT. mochi's own authenticate hook can only
// answer "bad user name or password", and Ferry also needs "not authorized"
// (a disabled device), so the CONNACK is sent from here on refusal.
func (h *hook) OnConnect(cl *mqtt.Client, pk packets.Packet) error {
	c, code, reason := h.b.authenticateOffStack(cl.ID, &pk)
	if c != nil && c.kind != identClient {
		// Devices are served by the broker's own connection loop (see
		// serveConn); one reaching mochi came through an unexpected path.
		c, code, reason = nil, packets.ErrNotAuthorized, reasonWrongDevice
	}
	if c == nil {
		h.b.cfg.Metrics.authFailure(reason)
		h.b.log.Info("mqtt connection refused", "client", cl.ID, "remote", cl.Net.Remote, "reason", reason)
		_ = h.b.server.SendConnack(cl, connackFor(cl, code), false, nil)
		return code
	}
	c.cl = cl
	h.b.mu.Lock()
	h.b.conns[cl] = c
	h.b.byID[cl.ID] = c
	h.b.mu.Unlock()
	h.b.cfg.Metrics.connected()
	return nil
}

// connackFor maps a refusal to MQTT 3.1.1's return codes for 3.1.1 clients
// (mochi's own table sends 0x05 for bad credentials and passes 0x87 through).
func connackFor(cl *mqtt.Client, code packets.Code) packets.Code {
	if cl.Properties.ProtocolVersion >= 5 {
		return code
	}
	switch code.Code {
	case packets.ErrBadUsernameOrPassword.Code:
		return packets.ErrMalformedUsernameOrPassword // 0x04: bad user name or password
	case packets.ErrNotAuthorized.Code:
		return packets.Err3NotAuthorized // 0x05
	case packets.ErrServerUnavailable.Code:
		return packets.Err3ServerUnavailable
	}
	return code
}

// OnConnectAuthenticate accepts what OnConnect authenticated (mochi refuses
// every client when no hook answers here).
func (h *hook) OnConnectAuthenticate(cl *mqtt.Client, _ packets.Packet) bool {
	return h.b.connOf(cl) != nil
}

// OnSessionEstablished forgets the persisted subscriptions of a client that
// asked for a clean session, and schedules the end of its credential: here,
// after the CONNACK (a DISCONNECT must not overtake it) and on the goroutine
// whose OnDisconnect takes it out of the schedule again.
func (h *hook) OnSessionEstablished(cl *mqtt.Client, pk packets.Packet) {
	if pk.Connect.Clean {
		h.b.forgetSession(cl.ID)
	} else {
		h.b.sessionResumed(cl.ID)
	}
	if c := h.b.connOf(cl); c != nil && c.expires != 0 {
		h.b.sched.add(c)
	}
}

func (h *hook) OnDisconnect(cl *mqtt.Client, err error, expire bool) {
	h.b.mu.Lock()
	c, ok := h.b.conns[cl]
	if ok {
		delete(h.b.conns, cl)
		if h.b.byID[cl.ID] == c {
			delete(h.b.byID, cl.ID)
		}
	}
	h.b.mu.Unlock()
	if ok {
		h.b.sched.remove(c)
		h.b.cfg.Metrics.disconnected()
	}
	if !cl.IsTakenOver() && cl.Net.Conn != nil {
		if expire {
			h.b.forgetSession(cl.ID)
		} else if ok {
			h.b.policyClientLeft(cl)
		}
	}
}

// OnPacketRead refuses QoS 2 publishes before mochi quietly downgrades them:
// Azure IoT Hub closes the connection, and so does Ferry.
func (h *hook) OnPacketRead(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	if pk.FixedHeader.Type == packets.Publish && pk.FixedHeader.Qos == 2 {
		h.b.cfg.Metrics.refused("qos2")
		h.b.log.Info("qos 2 publish refused", "client", cl.ID, "topic", pk.TopicName)
		h.b.disconnect(cl, packets.ErrQosNotSupported)
		return pk, packets.ErrRejectPacket // mochi ignores other errors from this hook
	}
	return pk, nil
}

// OnACLCheck keeps policy clients (the only clients mochi serves; devices
// run on the broker's own loop, see serveConn) out of the device namespaces.
func (h *hook) OnACLCheck(cl *mqtt.Client, topic string, write bool) bool {
	c := h.b.connOf(cl)
	if c == nil {
		return false
	}
	if c.quotaRefused(topic, write) {
		return false // counted as a quota refusal, not an ACL one
	}
	if reservedTopic(topic) {
		h.b.cfg.Metrics.aclDenied()
		if c.denied < 10 { // a hostile client must not flood the log
			c.denied++
			h.b.log.Warn("topic refused", "client", cl.ID, "topic", topic, "publish", write)
		}
		return false
	}
	return true
}

// reservedTopic reports topics that belong to the device protocol, which
// plain broker clients may neither publish to nor read.
func reservedTopic(t string) bool {
	return t == "#" || strings.HasPrefix(t, "devices/") || strings.HasPrefix(t, "$iothub/") ||
		strings.HasPrefix(t, "$dps/") || strings.HasPrefix(t, "+/") || strings.HasPrefix(t, "$")
}

// disconnect ends a mochi client's connection for a protocol reason: MQTT 5
// clients get a DISCONNECT with the reason code; MQTT 3.1.1 has no server
// DISCONNECT, so the connection is closed.
func (b *Broker) disconnect(cl *mqtt.Client, code packets.Code) {
	if cl.Properties.ProtocolVersion >= 5 {
		_ = b.server.DisconnectClient(cl, code)
		return
	}
	cl.Stop(code)
}

func (h *hook) OnSubscribed(cl *mqtt.Client, pk packets.Packet, reasonCodes []byte) {
	if cl.Properties.Clean || h.b.cfg.Sessions == nil {
		return
	}
	var subs []session.Subscription
	for i, f := range pk.Filters {
		if i < len(reasonCodes) && reasonCodes[i] <= 2 {
			subs = append(subs, session.Subscription{ClientID: cl.ID, Filter: f.Filter, QoS: reasonCodes[i]})
		}
	}
	if len(subs) == 0 {
		return
	}
	h.b.offStack(func() {
		if err := h.b.cfg.Sessions.SaveSubscriptions(context.Background(), subs); err != nil {
			h.b.log.Error("persist subscriptions", "client", cl.ID, "error", err)
			return
		}
		h.b.sessMu.Lock()
		for _, sub := range subs {
			h.b.persisted[cl.ID] = replaceSub(h.b.persisted[cl.ID], sub)
		}
		h.b.sessMu.Unlock()
	})
}

func (h *hook) OnUnsubscribed(cl *mqtt.Client, pk packets.Packet) {
	if cl.Properties.Clean || h.b.cfg.Sessions == nil {
		return
	}
	filters := make([]string, 0, len(pk.Filters))
	for _, f := range pk.Filters {
		filters = append(filters, f.Filter)
	}
	h.b.offStack(func() {
		if err := h.b.cfg.Sessions.DeleteSubscriptions(context.Background(), cl.ID, filters); err != nil {
			h.b.log.Error("forget subscriptions", "client", cl.ID, "error", err)
		}
	})
}

// StoredClients gives mochi one offline session per policy client with
// persisted subscriptions, so that a CleanSession=0 reconnect inherits them
// and mochi ends the ones whose clients do not come back. Devices' sessions
// stay with the broker, which serves devices itself.
func (h *hook) StoredClients() ([]storage.Client, error) {
	subs, err := h.loadSubs()
	if err != nil {
		return nil, err
	}
	devices := deviceClients(subs)
	now := h.b.cfg.Now()
	seen := make(map[string]bool)
	var out []storage.Client
	for _, s := range subs {
		if seen[s.ClientID] || devices[s.ClientID] {
			continue
		}
		seen[s.ClientID] = true
		out = append(out, h.b.storedClient(s.ClientID, now))
	}
	return out, nil
}

func (h *hook) StoredSubscriptions() ([]storage.Subscription, error) {
	subs, err := h.loadSubs()
	if err != nil {
		return nil, err
	}
	devices := deviceClients(subs)
	out := make([]storage.Subscription, 0, len(subs))
	for _, s := range subs {
		if !devices[s.ClientID] {
			out = append(out, storage.Subscription{Client: s.ClientID, Filter: s.Filter, Qos: s.QoS})
		}
	}
	return out, nil
}

// deviceSession reports subscriptions of a device (or module): filters in
// the device namespaces, which policy clients may not subscribe to.
func deviceSession(subs []session.Subscription) bool {
	for _, s := range subs {
		if reservedTopic(s.Filter) {
			return true
		}
	}
	return false
}

// deviceClients are the client ids with device sessions among subs.
func deviceClients(subs []session.Subscription) map[string]bool {
	out := make(map[string]bool)
	for _, s := range subs {
		if reservedTopic(s.Filter) {
			out[s.ClientID] = true
		}
	}
	return out
}

func (h *hook) loadSubs() ([]session.Subscription, error) {
	if h.b.cfg.Sessions == nil {
		return nil, nil
	}
	subs, err := h.b.cfg.Sessions.LoadSubscriptions(context.Background())
	if err != nil {
		return nil, errors.Join(errors.New("broker: load sessions"), err)
	}
	h.b.sessMu.Lock()
	for _, s := range subs {
		h.b.persisted[s.ClientID] = replaceSub(h.b.persisted[s.ClientID], s)
	}
	h.b.sessMu.Unlock()
	return subs, nil
}

// forgetSession deletes a client's persisted subscriptions, when it has any:
// the common clean-session connect costs no database write.
func (b *Broker) forgetSession(clientID string) {
	if b.cfg.Sessions == nil {
		return
	}
	b.sessMu.Lock()
	had := len(b.persisted[clientID]) > 0
	delete(b.persisted, clientID)
	b.sessMu.Unlock()
	if !had {
		return
	}
	b.offStack(func() {
		if err := b.cfg.Sessions.DeleteSession(context.Background(), clientID); err != nil {
			b.log.Error("forget session", "client", clientID, "error", err)
		}
	})
}

func (b *Broker) connOf(cl *mqtt.Client) *conn {
	b.mu.RLock()
	c := b.conns[cl]
	b.mu.RUnlock()
	return c
}
