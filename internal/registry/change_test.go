package registry_test

import (
	"testing"

	"github.com/ferry-iot/ferry/internal/registry"
)

func TestSubscribe(t *testing.T) {
	svc, _ := newService(t, registry.Options{})
	ctx := t.Context()
	var got []registry.Change
	var seenStatus registry.Status
	cancel := svc.Subscribe(func(c registry.Change) {
		got = append(got, c)
		// The broker reacts by looking the device up; it must see the new
		// state, including through the key cache.
		if c.Kind == registry.ChangeUpdated {
			_, _, seenStatus, _ = svc.Keys(ctx, c.DeviceID)
		}
	})
	var second int
	cancel2 := svc.Subscribe(func(registry.Change) { second++ })

	d, err := svc.Create(ctx, registry.Device{DeviceID: "s1"})
	must(t, err)
	if len(got) != 0 {
		t.Fatalf("Create notified %v; only updates and deletes notify", got)
	}
	_, _, _, err = svc.Keys(ctx, "s1") // warm the cache
	must(t, err)
	_, err = svc.Update(ctx, registry.Device{DeviceID: "s1", Status: registry.StatusDisabled, Authentication: d.Authentication}, "*")
	must(t, err)
	must(t, svc.SetConnected(ctx, "s1", true)) // not an identity change
	must(t, svc.Delete(ctx, "s1", "*"))

	if len(got) != 2 {
		t.Fatalf("changes = %+v, want an update and a delete", got)
	}
	if c := got[0]; c.Kind != registry.ChangeUpdated || c.DeviceID != "s1" || c.Device == nil || c.Device.Status != registry.StatusDisabled {
		t.Errorf("first change = %+v, want the update to disabled", c)
	}
	if seenStatus != registry.StatusDisabled {
		t.Errorf("subscriber read status %q through Keys, want disabled (cache not invalidated first)", seenStatus)
	}
	if c := got[1]; c.Kind != registry.ChangeDeleted || c.DeviceID != "s1" || c.Device != nil {
		t.Errorf("second change = %+v, want the delete with no device", c)
	}
	if second != 2 {
		t.Errorf("second subscriber called %d times, want 2", second)
	}

	// Failed writes notify nobody; cancelled subscribers hear nothing.
	_, err = svc.Update(ctx, registry.Device{DeviceID: "s1"}, "*")
	if err == nil {
		t.Fatal("update of a deleted device succeeded")
	}
	cancel()
	cancel() // idempotent
	_, err = svc.Create(ctx, registry.Device{DeviceID: "s2"})
	must(t, err)
	must(t, svc.Delete(ctx, "s2", ""))
	if len(got) != 2 {
		t.Errorf("cancelled subscriber got %d changes, want 2", len(got))
	}
	if second != 3 {
		t.Errorf("remaining subscriber called %d times, want 3", second)
	}
	cancel2()
}
