package stream

import (
	"encoding/binary"
	"fmt"
	"time"
)

// reader consumes a record body. Every method checks bounds, so a corrupt
// or hostile batch yields ErrCorrupt, never a panic or a huge allocation.
type reader struct {
	b   []byte
	err error
}

func (r *reader) uvarint() uint64 {
	if r.err != nil {
		return 0
	}
	x, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.err = ErrCorrupt
		return 0
	}
	r.b = r.b[n:]
	return x
}

func (r *reader) varint() int64 {
	if r.err != nil {
		return 0
	}
	x, n := binary.Varint(r.b)
	if n <= 0 {
		r.err = ErrCorrupt
		return 0
	}
	r.b = r.b[n:]
	return x
}

func (r *reader) bytes() []byte {
	n := r.uvarint()
	if r.err != nil {
		return nil
	}
	if n > uint64(len(r.b)) {
		r.err = ErrCorrupt
		return nil
	}
	s := r.b[:n:n]
	r.b = r.b[n:]
	return s
}

// eachRecord calls fn with the index and body of every record of a batch.
func eachRecord(data []byte, fn func(i uint32, rec []byte) error) error {
	if len(data) == 0 || data[0] != batchVersion {
		return fmt.Errorf("%w: unknown version", ErrCorrupt)
	}
	r := reader{b: data[1:]}
	for i := uint32(0); len(r.b) > 0; i++ {
		rec := r.bytes()
		if r.err != nil {
			return fmt.Errorf("%w: record %d truncated", ErrCorrupt, i)
		}
		if err := fn(i, rec); err != nil {
			return err
		}
	}
	return nil
}

// header is the part of a record that readers filter on and dedup keys
// on, decoded without allocating. The byte slices alias the record.
type header struct {
	enqueued int64
	f        [fieldMessageID + 1][]byte // Group .. MessageID; nil when absent
}

// peek decodes the header of a record body.
func peek(rec []byte) (header, error) {
	r := reader{b: rec}
	h := header{enqueued: r.varint()}
	mask := r.uvarint()
	for i := range h.f {
		if mask&(1<<i) != 0 {
			h.f[i] = r.bytes()
		}
	}
	return h, r.err
}

// matchName reports whether a stored group or stream name equals want,
// where an absent name means DefaultName.
func matchName(stored []byte, want string) bool {
	if len(stored) == 0 {
		return want == DefaultName
	}
	return string(stored) == want
}

// decodeRecord decodes one record body into a Message. Its strings share
// one allocation, a copy of the record's part before the body: a message
// costs three allocations (strings, properties, body) however many fields
// it carries, which matters to every reader of the store and the router.
func decodeRecord(rec []byte) (Message, error) {
	// First pass: check the record and find where its body starts.
	r := reader{b: rec}
	r.varint()
	mask := r.uvarint()
	if mask>>numFields != 0 {
		return Message{}, fmt.Errorf("%w: unknown fields %#x", ErrCorrupt, mask)
	}
	for i := range numFields {
		if mask&(1<<i) != 0 {
			r.bytes()
		}
	}
	n := r.uvarint()
	if r.err == nil && n > uint64(len(r.b)/2) { // each property takes at least 2 bytes
		r.err = ErrCorrupt
	}
	for i := uint64(0); i < n && r.err == nil; i++ {
		r.bytes()
		r.bytes()
	}
	if r.err != nil {
		return Message{}, r.err
	}
	body := r.b
	head := string(rec[:len(rec)-len(body)])

	// Second pass: the strings, as parts of head.
	r = reader{b: rec}
	str := func() string {
		b := r.bytes()
		end := len(rec) - len(r.b)
		return head[end-len(b) : end]
	}
	var m Message
	if ns := r.varint(); ns != 0 {
		m.EnqueuedTime = time.Unix(0, ns).UTC()
	}
	r.uvarint()
	for i, f := range m.fields() {
		if mask&(1<<i) != 0 {
			*f = str()
		}
	}
	m.Group, m.Stream = orDefault(m.Group), orDefault(m.Stream)
	r.uvarint()
	if n > 0 {
		m.Properties = make([]Property, n)
		for i := range m.Properties {
			m.Properties[i].Key = str()
			m.Properties[i].Value = str()
		}
	}
	if len(body) > 0 {
		m.Body = append([]byte(nil), body...)
	}
	return m, nil
}
