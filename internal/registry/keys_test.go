package registry_test

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/ferry-iot/ferry/internal/fault"
	"github.com/ferry-iot/ferry/internal/registry"
)

func TestKeys(t *testing.T) {
	svc, _ := newService(t, registry.Options{})
	ctx := t.Context()
	d, err := svc.Create(ctx, registry.Device{DeviceID: "k1"})
	must(t, err)
	for range 2 { // miss, then hit
		p, s, st, err := svc.Keys(ctx, "k1")
		must(t, err)
		wantP, _ := base64.StdEncoding.DecodeString(d.Authentication.SymmetricKey.PrimaryKey)
		wantS, _ := base64.StdEncoding.DecodeString(d.Authentication.SymmetricKey.SecondaryKey)
		if !bytes.Equal(p, wantP) || !bytes.Equal(s, wantS) || st != registry.StatusEnabled {
			t.Fatalf("Keys = %x %x %s, want the decoded keys and enabled", p, s, st)
		}
		p[0] ^= 0xff // the caller owns the slices; the cache must not change
	}

	_, err = svc.Create(ctx, registry.Device{DeviceID: "x509", Authentication: registry.Authentication{Type: registry.AuthCA}})
	must(t, err)
	p, s, st, err := svc.Keys(ctx, "x509")
	if err != nil || p != nil || s != nil || st != registry.StatusEnabled {
		t.Errorf("Keys of a CA device = %x, %x, %s, %v; want no keys", p, s, st, err)
	}
	for _, id := range []string{"ghost", "", string(make([]byte, 200))} {
		_, _, _, err = svc.Keys(ctx, id)
		wantFault(t, err, fault.NotFound)
	}
}

// TestKeysInvalidation checks that every write through the Service is seen by
// the next Keys call, cached or not.
func TestKeysInvalidation(t *testing.T) {
	svc, _ := newService(t, registry.Options{})
	ctx := t.Context()
	d, err := svc.Create(ctx, registry.Device{DeviceID: "k1"})
	must(t, err)
	old, _, _, err := svc.Keys(ctx, "k1")
	must(t, err)

	newKey := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{7}, 32))
	auth := d.Authentication
	auth.SymmetricKey = &registry.SymmetricKey{PrimaryKey: newKey, SecondaryKey: newKey}
	_, err = svc.Update(ctx, registry.Device{DeviceID: "k1", Status: registry.StatusDisabled, Authentication: auth}, "*")
	must(t, err)
	p, _, st, err := svc.Keys(ctx, "k1")
	must(t, err)
	if bytes.Equal(p, old) || p[0] != 7 || st != registry.StatusDisabled {
		t.Errorf("after update Keys = %x, %s; want the new key and disabled", p, st)
	}

	must(t, svc.Delete(ctx, "k1", "*"))
	_, _, _, err = svc.Keys(ctx, "k1")
	wantFault(t, err, fault.NotFound)

	// Same id, new device: new keys.
	d2, err := svc.Create(ctx, registry.Device{DeviceID: "k1"})
	must(t, err)
	p, _, _, err = svc.Keys(ctx, "k1")
	must(t, err)
	if base64.StdEncoding.EncodeToString(p) != d2.Authentication.SymmetricKey.PrimaryKey {
		t.Error("Keys after re-create returned stale keys")
	}
}

// TestKeysTTL checks that a change made behind the Service's back (by another
// hub node sharing the database) is seen once the cache TTL has passed.
func TestKeysTTL(t *testing.T) {
	clk := newClock()
	svc, db := newService(t, registry.Options{Now: clk.Now, CacheTTL: 30 * time.Second})
	ctx := t.Context()
	_, err := svc.Create(ctx, registry.Device{DeviceID: "k1"})
	must(t, err)
	_, _, _, err = svc.Keys(ctx, "k1")
	must(t, err)

	d, err := db.GetDevice(ctx, "k1")
	must(t, err)
	d.Status = registry.StatusDisabled
	must(t, db.UpdateDevice(ctx, d, "*"))

	clk.Advance(29 * time.Second)
	if _, _, st, _ := svc.Keys(ctx, "k1"); st != registry.StatusEnabled {
		t.Errorf("within the TTL status = %s, want the cached enabled", st)
	}
	clk.Advance(time.Second)
	if _, _, st, _ := svc.Keys(ctx, "k1"); st != registry.StatusDisabled {
		t.Errorf("after the TTL status = %s, want disabled", st)
	}
}

// TestKeysConcurrentUpdate hammers Keys while a writer flips the status;
// after the writer's last Update returns, Keys must report its status.
func TestKeysConcurrentUpdate(t *testing.T) {
	svc, _ := newService(t, registry.Options{})
	ctx := t.Context()
	d, err := svc.Create(ctx, registry.Device{DeviceID: "k1"})
	must(t, err)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
					svc.Keys(ctx, "k1")
				}
			}
		})
	}
	for i := range 30 {
		status := registry.StatusEnabled
		if i%2 == 0 {
			status = registry.StatusDisabled
		}
		_, err := svc.Update(ctx, registry.Device{DeviceID: "k1", Status: status, Authentication: d.Authentication}, "*")
		must(t, err)
		if _, _, st, err := svc.Keys(ctx, "k1"); err != nil || st != status {
			t.Fatalf("update %d: Keys status = %s, %v; want %s", i, st, err, status)
		}
	}
	close(stop)
	wg.Wait()
}

// BenchmarkKeys measures the connect-path lookup. "cached" is the steady
// state; "uncached" is a cold cache (each lookup reads SQLite). The parallel
// variants use all GOMAXPROCS, as concurrent connects do.
func BenchmarkKeys(b *testing.B) {
	const devices = 1000
	for _, bc := range []struct {
		name string
		size int
	}{{"cached", 0}, {"uncached", -1}} {
		svc, _ := newService(b, registry.Options{KeyCacheSize: bc.size})
		ids := make([]string, devices)
		for i := range ids {
			ids[i] = fmt.Sprintf("bench-device-%04d", i)
			if _, err := svc.Create(b.Context(), registry.Device{DeviceID: ids[i]}); err != nil {
				b.Fatal(err)
			}
			svc.Keys(b.Context(), ids[i]) // warm
		}
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if _, _, _, err := svc.Keys(b.Context(), ids[i%devices]); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
		b.Run(bc.name+"-parallel", func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				i := 0
				for pb.Next() {
					if _, _, _, err := svc.Keys(b.Context(), ids[i%devices]); err != nil {
						b.Error(err)
						return
					}
					i++
				}
			})
		})
	}
}

// BenchmarkSetConnected measures the write every connect and disconnect
// makes; "parallel" shows what the single SQLite writer sustains when many
// connections write at once.
func BenchmarkSetConnected(b *testing.B) {
	const devices = 100
	svc, _ := newService(b, registry.Options{})
	for i := range devices {
		if _, err := svc.Create(b.Context(), registry.Device{DeviceID: fmt.Sprint("d", i)}); err != nil {
			b.Fatal(err)
		}
	}
	b.Run("serial", func(b *testing.B) {
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			if err := svc.SetConnected(b.Context(), fmt.Sprint("d", i%devices), i%2 == 0); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.SetParallelism(8)
		b.RunParallel(func(pb *testing.PB) {
			i := 0
			for pb.Next() {
				if err := svc.SetConnected(b.Context(), fmt.Sprint("d", i%devices), i%2 == 0); err != nil {
					b.Error(err)
					return
				}
				i++
			}
		})
	})
}
