package registry

import (
	"fmt"
	"testing"
	"time"
)

// TestKeyCacheBounded checks the size cap and that a fill racing an
// invalidation is dropped; both are invisible through the Service API.
func TestKeyCacheBounded(t *testing.T) {
	now := time.Now()
	c := newKeyCache(10, time.Minute)
	for i := range 100 {
		c.put(fmt.Sprint(i), keyEntry{status: StatusEnabled, expires: now.Add(time.Minute)}, c.generation())
		if c.len() > 10 {
			t.Fatalf("cache holds %d entries, cap 10", c.len())
		}
	}
	if _, ok := c.get("99", now); !ok {
		t.Error("the newest entry was evicted")
	}

	gen := c.generation()
	c.invalidate("unrelated")
	c.put("late", keyEntry{expires: now.Add(time.Minute)}, gen)
	if _, ok := c.get("late", now); ok {
		t.Error("a fill that started before an invalidation was cached")
	}
	if _, ok := c.get("99", now.Add(time.Minute)); ok {
		t.Error("an expired entry was returned")
	}

	var disabled *keyCache = newKeyCache(-1, time.Minute)
	disabled.put("x", keyEntry{expires: now.Add(time.Minute)}, 0)
	if _, ok := disabled.get("x", now); ok {
		t.Error("a disabled cache returned an entry")
	}
}
