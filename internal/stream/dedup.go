package stream

import (
	"hash/maphash"
	"time"
)

// dedupKey identifies a message by a 128-bit hash of its device id, module
// id and message id. Two independent 64-bit hashes make a false match,
// which would drop a message, practically impossible, and keep Append free
// of allocations (no string keys to build). The low bit of the second
// word is always set, so the zero key marks an empty table slot.
type dedupKey [2]uint64

// dedupSlot is what the window remembers of one message.
type dedupSlot struct {
	at    int64  // EnqueuedTime in Unix nanoseconds
	batch uint64 // writer batch number holding the original; 0 = stored before start
}

type dedupEntry struct {
	key dedupKey
	dedupSlot
}

// dedup is a bounded window of recently appended message ids. It forgets a
// message when it is older than window (measured on EnqueuedTime) or when
// max newer messages have arrived. Not safe for concurrent use: the
// Writer's mutex guards it.
type dedup struct {
	window int64 // nanoseconds
	seeds  [2]maphash.Seed
	hash   [2]maphash.Hash
	slots  table
	ring   []dedupEntry // FIFO of keys in insertion order; fixed capacity
	head   int          // index of the oldest entry
	n      int          // entries in ring
}

func newDedup(window time.Duration, max int) *dedup {
	d := &dedup{
		window: int64(window),
		seeds:  [2]maphash.Seed{maphash.MakeSeed(), maphash.MakeSeed()},
		slots:  newTable(max),
		ring:   make([]dedupEntry, max),
	}
	d.hash[0].SetSeed(d.seeds[0])
	d.hash[1].SetSeed(d.seeds[1])
	return d
}

// key hashes the identity of a message. The parts are separated by a zero
// byte, which ids do not contain, so ("ab","c") and ("a","bc") differ.
func (d *dedup) key(device, module, msgID []byte) dedupKey {
	var k dedupKey
	for i := range d.hash {
		h := &d.hash[i]
		h.Reset()
		h.Write(device)
		h.WriteByte(0)
		h.Write(module)
		h.WriteByte(0)
		h.Write(msgID)
		k[i] = h.Sum64()
	}
	k[1] |= 1
	return k
}

// keyOf hashes m's identity without copying its strings.
func (d *dedup) keyOf(m *Message) dedupKey {
	var k dedupKey
	for i := range d.hash {
		h := &d.hash[i]
		h.Reset()
		h.WriteString(m.DeviceID)
		h.WriteByte(0)
		h.WriteString(m.ModuleID)
		h.WriteByte(0)
		h.WriteString(m.MessageID)
		k[i] = h.Sum64()
	}
	k[1] |= 1
	return k
}

// lookup returns the slot of k when k is in the window.
func (d *dedup) lookup(k dedupKey) (dedupSlot, bool) {
	return d.slots.get(k)
}

// add remembers k, first expiring what at makes too old and, when the
// window is full, the oldest entry.
func (d *dedup) add(k dedupKey, at int64, batch uint64) {
	for d.n > 0 && (d.n == len(d.ring) || d.ring[d.head].at < at-d.window) {
		d.evictOldest()
	}
	s := dedupSlot{at: at, batch: batch}
	d.slots.put(k, s)
	d.ring[(d.head+d.n)%len(d.ring)] = dedupEntry{key: k, dedupSlot: s}
	d.n++
}

func (d *dedup) evictOldest() {
	e := d.ring[d.head]
	// The key may have been forgotten and added again since; only drop
	// the map entry this ring entry created.
	if s, ok := d.slots.get(e.key); ok && s == e.dedupSlot {
		d.slots.del(e.key)
	}
	d.head = (d.head + 1) % len(d.ring)
	d.n--
}

// forget drops k if its original is in the given batch, which failed: a
// resend must then be stored, not dropped. The ring entry expires later.
func (d *dedup) forget(k dedupKey, batch uint64) {
	if s, ok := d.slots.get(k); ok && s.batch == batch {
		d.slots.del(k)
	}
}

// stored reports whether the original of a duplicate, remembered as
// being in batch, is known to be stored. It is false when the original's
// batch failed (forgotten) and also when the entry was evicted meanwhile:
// then the duplicate is failed too, and the device's next resend is stored.
func (d *dedup) stored(k dedupKey, batch uint64) bool {
	s, ok := d.slots.get(k)
	return ok && s.batch == batch
}
