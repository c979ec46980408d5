package stream

import (
	"encoding/binary"
	"fmt"
	"math/bits"
	"time"
)

// Batch encoding (version 1). One JetStream message holds one batch:
//
//	batch   = version:byte record*
//	record  = len:uvarint body            (len = byte length of body)
//	body    = enqueued:varint             (Unix nanoseconds; 0 = zero time)
//	          mask:uvarint                (bit i set = string field i present)
//	          (n:uvarint bytes)*          (the present string fields, in field order)
//	          props:uvarint (k:str v:str)*
//	          payload                     (the rest of the body)
//
// Absent fields cost nothing but their mask bit, which keeps a typical
// 64-byte telemetry message at about 100 bytes. Group and Stream equal to
// DefaultName are stored as absent. The record length lets a reader skip
// messages it filters out without decoding them.
const batchVersion = 1

// numFields is the number of string fields in a record; see fields.
const numFields = 17

// Indices of the fields that peek decodes without allocating.
const (
	fieldGroup = iota
	fieldStream
	fieldDevice
	fieldModule
	_ // AuthMethod
	fieldMessageID
)

// fields returns pointers to m's string fields in encoding order. Append
// only: the order is part of the stored format.
func (m *Message) fields() [numFields]*string {
	return [numFields]*string{
		&m.Group, &m.Stream, &m.DeviceID, &m.ModuleID, &m.AuthMethod,
		&m.MessageID, &m.CorrelationID, &m.UserID, &m.To, &m.ContentType,
		&m.ContentEncoding, &m.Expiry, &m.Component, &m.InterfaceID,
		&m.OutputName, &m.CreationTime, &m.MessageType,
	}
}

// stored returns the value of field i as stored: DefaultName becomes empty.
func stored(i int, s string) string {
	if (i == fieldGroup || i == fieldStream) && s == DefaultName {
		return ""
	}
	return s
}

func uvarintLen(x uint64) int { return (bits.Len64(x|1) + 6) / 7 }

func unixNano(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

// bodySize returns the length of m's record body.
func bodySize(m *Message) int {
	n := varintLen(unixNano(m.EnqueuedTime))
	var mask uint64
	for i, f := range m.fields() {
		if s := stored(i, *f); s != "" {
			mask |= 1 << i
			n += uvarintLen(uint64(len(s))) + len(s)
		}
	}
	n += uvarintLen(mask) + uvarintLen(uint64(len(m.Properties)))
	for _, p := range m.Properties {
		n += uvarintLen(uint64(len(p.Key))) + len(p.Key) + uvarintLen(uint64(len(p.Value))) + len(p.Value)
	}
	return n + len(m.Body)
}

func varintLen(x int64) int {
	ux := uint64(x) << 1
	if x < 0 {
		ux = ^ux
	}
	return uvarintLen(ux)
}

// recordSize returns the number of bytes appendRecord adds for m.
func recordSize(m *Message) int {
	n := bodySize(m)
	return uvarintLen(uint64(n)) + n
}

// appendRecord appends m's record to dst. It does not allocate when dst has
// room for recordSize(m) more bytes.
func appendRecord(dst []byte, m *Message) []byte {
	dst = binary.AppendUvarint(dst, uint64(bodySize(m)))
	dst = binary.AppendVarint(dst, unixNano(m.EnqueuedTime))
	var mask uint64
	fs := m.fields()
	for i, f := range fs {
		if stored(i, *f) != "" {
			mask |= 1 << i
		}
	}
	dst = binary.AppendUvarint(dst, mask)
	for i, f := range fs {
		if s := stored(i, *f); s != "" {
			dst = appendString(dst, s)
		}
	}
	dst = binary.AppendUvarint(dst, uint64(len(m.Properties)))
	for _, p := range m.Properties {
		dst = appendString(dst, p.Key)
		dst = appendString(dst, p.Value)
	}
	return append(dst, m.Body...)
}

func appendString(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

// Encode appends the batch encoding of msgs to dst and returns it. Cursor
// fields are not stored.
func Encode(dst []byte, msgs []Message) []byte {
	dst = append(dst, batchVersion)
	for i := range msgs {
		dst = appendRecord(dst, &msgs[i])
	}
	return dst
}

// DecodeRecord decodes one record as a Tap is shown it. The message shares
// no memory with rec; its Cursor is zero.
func DecodeRecord(rec []byte) (Message, error) {
	r := reader{b: rec}
	body := r.bytes()
	if r.err != nil || len(r.b) != 0 {
		return Message{}, fmt.Errorf("%w: not one record", ErrCorrupt)
	}
	return decodeRecord(body)
}

// Decode decodes a batch written by Encode. Each message's Cursor.Index is
// its index in the batch; Cursor.Seq is left zero for the caller to set.
// Decoded messages share no memory with data.
func Decode(data []byte) ([]Message, error) {
	var out []Message
	err := eachRecord(data, func(i uint32, rec []byte) error {
		m, err := decodeRecord(rec)
		if err != nil {
			return fmt.Errorf("record %d: %w", i, err)
		}
		m.Cursor.Index = i
		out = append(out, m)
		return nil
	})
	return out, err
}
