package storetest

import (
	"testing"
	"time"

	"github.com/ferry-iot/ferry/internal/fault"
	"github.com/ferry-iot/ferry/internal/registry"
)

func testConnectionState(t *testing.T, st registry.Store) {
	ctx := t.Context()
	d := newDevice("c1")
	must(t, st.CreateDevice(ctx, d))

	steps := []struct {
		connected bool
		at        time.Time
		want      string
	}{
		{true, base.Add(time.Minute), registry.Connected},
		{true, base.Add(2 * time.Minute), registry.Connected}, // a reconnect refreshes the times
		{false, base.Add(3 * time.Minute), registry.Disconnected},
		{true, base.Add(4*time.Minute + time.Microsecond), registry.Connected},
	}
	for i, s := range steps {
		must(t, st.SetConnectionState(ctx, "c1", s.connected, s.at))
		got, err := st.GetDevice(ctx, "c1")
		must(t, err)
		if got.ConnectionState != s.want || !got.ConnectionStateUpdatedTime.Equal(s.at) || !got.LastActivityTime.Equal(s.at) {
			t.Errorf("step %d: state %s, updated %v, activity %v; want %s at %v",
				i, got.ConnectionState, got.ConnectionStateUpdatedTime, got.LastActivityTime, s.want, s.at)
		}
		// Connection state is not an identity change: the etag and the rest stay.
		want := *d
		want.ConnectionState, want.ConnectionStateUpdatedTime, want.LastActivityTime = s.want, s.at, s.at
		if diff := diffDevice(got, &want); diff != "" {
			t.Errorf("step %d: device:\n%s", i, diff)
		}
	}
	wantKind(t, st.SetConnectionState(ctx, "ghost", true, base), fault.NotFound, "DeviceNotFound")
}
