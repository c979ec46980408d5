package queue

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"time"
)

// Record is one outgoing message as stored in the queue.
type Record struct {
	// Seq is assigned by the queue when the record is committed. It is
	// strictly increasing and never reused, even across restarts.
	Seq uint64
	// Stream is the name of the stream the message goes to.
	Stream string
	// ID is the stable message id the hub uses to drop duplicates. Enqueue
	// generates a random 16-byte hex id when it is empty.
	ID string
	// Props are the message's user properties, in order.
	Props []Property
	// Body is the message payload.
	Body []byte
	// Enqueued is when the message was enqueued; Enqueue sets it to
	// time.Now() when it is zero.
	Enqueued time.Time
}

// Property is one user property of a message. A slice rather than a map
// keeps the order and allows repeated keys, as MQTT v5 user properties do.
type Property struct {
	Key   string
	Value string
}

// recordFormat is the first byte of every stored record, so a future
// encoding can be told apart from this one.
const recordFormat = 1

// castagnoli is the CRC-32C table; bbolt checksums only its meta pages, so
// each record carries its own checksum to turn bit rot into an error.
var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// errBadRecord is wrapped by decode errors.
var errBadRecord = errors.New("bad record encoding")

// encode returns the stored form of r (without Seq, which is the key):
//
//	format byte | enqueued unix nanos (8, big-endian) | stream | id |
//	nprops | (key | value)* | body | crc32c of everything before (4)
//
// where every string and the body are a uvarint length then the bytes.
func encode(r Record) []byte {
	n := 1 + 8 + 4 + 3*binary.MaxVarintLen64 + len(r.Stream) + len(r.ID) + len(r.Body)
	for _, p := range r.Props {
		n += 2*binary.MaxVarintLen64 + len(p.Key) + len(p.Value)
	}
	b := make([]byte, 0, n)
	b = append(b, recordFormat)
	b = binary.BigEndian.AppendUint64(b, uint64(r.Enqueued.UnixNano()))
	b = appendBytes(b, []byte(r.Stream))
	b = appendBytes(b, []byte(r.ID))
	b = binary.AppendUvarint(b, uint64(len(r.Props)))
	for _, p := range r.Props {
		b = appendBytes(b, []byte(p.Key))
		b = appendBytes(b, []byte(p.Value))
	}
	b = appendBytes(b, r.Body)
	return binary.BigEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
}

func appendBytes(b, s []byte) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// decode parses a stored record. The result shares no memory with b, which
// bbolt only lends for the length of a transaction.
func decode(seq uint64, b []byte) (Record, error) {
	if len(b) < 1+8+4 {
		return Record{}, fmt.Errorf("%w: %d bytes is too short", errBadRecord, len(b))
	}
	body, sum := b[:len(b)-4], binary.BigEndian.Uint32(b[len(b)-4:])
	if crc32.Checksum(body, castagnoli) != sum {
		return Record{}, fmt.Errorf("%w: checksum mismatch", errBadRecord)
	}
	if body[0] != recordFormat {
		return Record{}, fmt.Errorf("%w: unknown format %d", errBadRecord, body[0])
	}
	d := decoder{b: body[9:]}
	r := Record{Seq: seq, Enqueued: time.Unix(0, int64(binary.BigEndian.Uint64(body[1:9])))}
	r.Stream = string(d.bytes())
	r.ID = string(d.bytes())
	if n := d.uvarint(); n > 0 && d.err == nil {
		if n > uint64(len(d.b)) { // each property takes at least one byte
			d.fail()
		} else {
			r.Props = make([]Property, n)
			for i := range r.Props {
				r.Props[i] = Property{Key: string(d.bytes()), Value: string(d.bytes())}
			}
		}
	}
	r.Body = append([]byte{}, d.bytes()...)
	if d.err == nil && len(d.b) != 0 {
		d.fail()
	}
	if d.err != nil {
		return Record{}, d.err
	}
	return r, nil
}

// decoder reads uvarint-prefixed fields, remembering the first error so
// the caller checks once.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail() {
	if d.err == nil {
		d.err = fmt.Errorf("%w: truncated or malformed field", errBadRecord)
	}
	d.b = nil
}

func (d *decoder) uvarint() uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail()
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) bytes() []byte {
	n := d.uvarint()
	if n > uint64(len(d.b)) {
		d.fail()
		return nil
	}
	s := d.b[:n]
	d.b = d.b[n:]
	return s
}

// newID returns a random 16-byte id in hex.
func newID() string {
	var b [16]byte
	rand.Read(b[:]) // never returns an error (crypto/rand, Go 1.24+)
	return hex.EncodeToString(b[:])
}

// seqKey is the bucket key for seq: big-endian, so bbolt's byte order is
// Seq order.
func seqKey(seq uint64) []byte {
	return binary.BigEndian.AppendUint64(make([]byte, 0, 8), seq)
}
