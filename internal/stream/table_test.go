package stream

import (
	"math/rand/v2"
	"testing"
)

// TestTableMatchesMap drives the table and a Go map with the same random
// operations, with keys crowded into few home slots so that probe runs
// wrap around and deletions shift entries.
func TestTableMatchesMap(t *testing.T) {
	const max = 64
	tb := newTable(max)
	ref := make(map[dedupKey]dedupSlot)
	rng := rand.New(rand.NewPCG(1, 2))
	key := func() dedupKey { return dedupKey{tb.mask - 3 + rng.Uint64N(8), rng.Uint64N(200) | 1} } // homes wrap past the end
	for i := range 200000 {
		k := key()
		switch {
		case rng.IntN(2) == 0 && len(ref) < max:
			v := dedupSlot{at: int64(i), batch: uint64(i)}
			tb.put(k, v)
			ref[k] = v
		default:
			tb.del(k)
			delete(ref, k)
		}
		if i%97 == 0 {
			for k, want := range ref {
				if got, ok := tb.get(k); !ok || got != want {
					t.Fatalf("op %d: get(%v) = %v, %v; want %v", i, k, got, ok, want)
				}
			}
			n := 0
			for _, s := range tb.slots {
				if s.key != (dedupKey{}) {
					n++
				}
			}
			if n != len(ref) {
				t.Fatalf("op %d: table holds %d entries, map %d", i, n, len(ref))
			}
		}
	}
}
