package registry

import (
	"testing"
	"time"
)

func TestModuleKeyCacheBounded(t *testing.T) {
	c := newModuleKeyCache(3)
	now := time.Now()
	e := keyEntry{expires: now.Add(time.Hour)}
	for _, id := range [][2]string{{"a", "1"}, {"a", "2"}, {"b", "1"}, {"c", "1"}, {"c", "2"}, {"c", "3"}, {"c", "4"}} {
		c.put(id[0], id[1], e, c.generation())
		if n := c.len(); n > 3 {
			t.Fatalf("after put %v: %d entries, want at most 3", id, n)
		}
	}
	c.invalidate("c", "")
	if n := c.len(); n != 0 && c.m["c"] != nil {
		t.Errorf("invalidate of device c left %d entries of c", len(c.m["c"]))
	}
	// A fill that raced an invalidation is dropped.
	gen := c.generation()
	c.invalidate("x", "1")
	c.put("x", "1", e, gen)
	if _, ok := c.get("x", "1", now); ok {
		t.Error("a stale fill was cached")
	}
	c.put("x", "1", e, c.generation())
	if _, ok := c.get("x", "1", now); !ok {
		t.Error("a fresh fill was not cached")
	}
	if _, ok := c.get("x", "1", now.Add(2*time.Hour)); ok {
		t.Error("an expired entry was returned")
	}
	none := newModuleKeyCache(-1)
	none.put("a", "1", e, 0)
	if _, ok := none.get("a", "1", now); ok || none.len() != 0 {
		t.Error("a disabled cache cached")
	}
	zero := newModuleKeyCache(0)
	zero.put("a", "1", e, 0)
	if zero.len() != 0 {
		t.Error("a zero-size cache cached")
	}
}
