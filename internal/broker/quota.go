package broker

import (
	"fmt"
	"slices"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// errQuotaExceeded is MQTT 5's SUBACK code for a filter over the per-client
// subscription cap; MQTT 3.1.1 can only say 0x80 (failure).
const errQuotaExceeded = 0x97

func quotaCode(v5 bool) byte {
	if v5 {
		return errQuotaExceeded
	}
	return 0x80
}

// subRefusal is what OnSubscribe decided for one SUBSCRIBE of a policy
// client: mochi asks OnACLCheck filter by filter (which answers false for
// these), and its SUBACK says 0x87 for them, which OnPacketEncode turns into
// 0x97 for MQTT 5 clients.
type subRefusal struct {
	packetID uint16
	filters  []string
	index    []int
}

// refuseQuota counts and logs a filter refused for the cap.
func (c *conn) refuseQuota(filter string) {
	c.b.cfg.Metrics.subscriptionRefused()
	if c.denied < 10 { // a hostile client must not flood the log
		c.denied++
		c.b.log.Warn("subscription refused", "client", c.clientID, "filter", filter,
			"reason", "quota", "max", c.b.cfg.MaxSubscriptions)
	}
}

func newQuotaReason(limit int) string {
	return fmt.Sprintf("subscription quota exceeded: at most %d topic filters per client", limit)
}

// OnSubscribe applies the per-client subscription cap to a policy client's
// SUBSCRIBE: filters it already holds, and ones the ACL refuses anyway, do
// not count; new ones beyond the cap are marked for refusal. mochi runs it
// on the client's read goroutine, before it looks at any filter.
func (h *hook) OnSubscribe(cl *mqtt.Client, pk packets.Packet) packets.Packet {
	c := h.b.connOf(cl)
	if c == nil {
		return pk
	}
	c.refusing.Store(nil)
	n := cl.State.Subscriptions.Len()
	var r *subRefusal
	var added []string
	for i, f := range pk.Filters {
		if reservedTopic(f.Filter) || !mqtt.IsValidFilter(f.Filter, false) {
			continue // refused for another reason
		}
		if _, ok := cl.State.Subscriptions.Get(f.Filter); ok || slices.Contains(added, f.Filter) {
			continue // re-subscribing never counts twice
		}
		if n < h.b.cfg.MaxSubscriptions {
			n++
			added = append(added, f.Filter)
			continue
		}
		if r == nil {
			r = &subRefusal{packetID: pk.PacketID}
		}
		r.filters = append(r.filters, f.Filter)
		r.index = append(r.index, i)
		c.refuseQuota(f.Filter)
	}
	if r != nil {
		c.refusing.Store(r)
	}
	return pk
}

// quotaRefused reports a filter OnSubscribe refused for the cap.
func (c *conn) quotaRefused(filter string, write bool) bool {
	if write {
		return false
	}
	r := c.refusing.Load()
	return r != nil && slices.Contains(r.filters, filter)
}

// OnPacketEncode gives MQTT 5 policy clients the cap's own SUBACK code and
// reason; every other packet passes untouched.
func (h *hook) OnPacketEncode(cl *mqtt.Client, pk packets.Packet) packets.Packet {
	if pk.FixedHeader.Type != packets.Suback {
		return pk
	}
	c := h.b.connOf(cl)
	if c == nil {
		return pk
	}
	r := c.refusing.Load()
	if r == nil || r.packetID != pk.PacketID {
		return pk
	}
	c.refusing.Store(nil)
	if cl.Properties.ProtocolVersion < 5 {
		return pk // mochi already answers 0x80
	}
	for _, i := range r.index {
		if i < len(pk.ReasonCodes) && pk.ReasonCodes[i] == packets.ErrNotAuthorized.Code {
			pk.ReasonCodes[i] = errQuotaExceeded
		}
	}
	pk.Properties.ReasonString = h.b.quotaReason
	return pk
}
