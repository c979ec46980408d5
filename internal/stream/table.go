package stream

import "math/bits"

// table is a fixed-size open-addressing hash set of dedupKey to dedupSlot,
// with linear probing and backward-shift deletion (no tombstones). The
// window's churn (one insert and one delete per message) makes a Go map
// rehash now and then, which allocates; this table never allocates after
// newTable, keeping Append allocation-free. Keys are already uniform
// hashes, so their low bits index the table directly.
type table struct {
	slots []tableSlot // len is a power of two, at least twice the entries
	mask  uint64
}

type tableSlot struct {
	key dedupKey // zero = empty
	val dedupSlot
}

// newTable returns a table for at most max entries, at most half full.
func newTable(max int) table {
	n := uint64(1) << bits.Len64(uint64(2*max-1))
	return table{slots: make([]tableSlot, n), mask: n - 1}
}

// find returns the index of k's slot, or of the empty slot where it goes.
func (t *table) find(k dedupKey) uint64 {
	i := k[0] & t.mask
	for t.slots[i].key != k && t.slots[i].key != (dedupKey{}) {
		i = (i + 1) & t.mask
	}
	return i
}

func (t *table) get(k dedupKey) (dedupSlot, bool) {
	s := &t.slots[t.find(k)]
	return s.val, s.key == k
}

// put sets k's value. The caller keeps the entry count at most the max
// given to newTable.
func (t *table) put(k dedupKey, v dedupSlot) {
	t.slots[t.find(k)] = tableSlot{key: k, val: v}
}

// del removes k, moving later entries of its probe run back so that every
// entry stays reachable from its home slot.
func (t *table) del(k dedupKey) {
	i := t.find(k)
	if t.slots[i].key != k {
		return
	}
	for j := (i + 1) & t.mask; t.slots[j].key != (dedupKey{}); j = (j + 1) & t.mask {
		home := t.slots[j].key[0] & t.mask
		// The entry at j may move to the hole at i unless its home lies
		// cyclically in (i, j].
		if (j-home)&t.mask >= (j-i)&t.mask {
			t.slots[i] = t.slots[j]
			i = j
		}
	}
	t.slots[i] = tableSlot{}
}
