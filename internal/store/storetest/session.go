package storetest

import (
	"cmp"
	"reflect"
	"slices"
	"testing"

	"github.com/ferry-iot/ferry/internal/session"
)

// RunSession runs the session.Store conformance tests. open must return a
// new, empty store for each call.
func RunSession(t *testing.T, open func(t *testing.T) session.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, st session.Store)
	}{
		{"Empty", testSessionEmpty},
		{"SaveLoad", testSaveLoad},
		{"SaveReplacesQoS", testSaveReplacesQoS},
		{"DeleteSubscriptions", testDeleteSubscriptions},
		{"DeleteSession", testDeleteSession},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { tt.fn(t, open(t)) })
	}
}

// Filters as Azure device SDKs subscribe them, plus odd ones a plain MQTT
// client may use.
var (
	c2d     = session.Subscription{ClientID: "d1", Filter: "devices/d1/messages/devicebound/#", QoS: 1}
	methods = session.Subscription{ClientID: "d1", Filter: "$iothub/methods/POST/#", QoS: 0}
	twinRes = session.Subscription{ClientID: "d1", Filter: "$iothub/twin/res/#", QoS: 0}
	module  = session.Subscription{ClientID: "d1/m1", Filter: "$iothub/methods/POST/#", QoS: 1}
	plain   = session.Subscription{ClientID: "sensor 7", Filter: "home/+/température/#", QoS: 1}
)

// checkLoad compares LoadSubscriptions with want, ignoring order within a
// client but requiring each client's subscriptions to be adjacent.
func checkLoad(t *testing.T, st session.Store, want ...session.Subscription) {
	t.Helper()
	got, err := st.LoadSubscriptions(t.Context())
	must(t, err)
	seen := map[string]bool{}
	for i, s := range got {
		if seen[s.ClientID] && got[i-1].ClientID != s.ClientID {
			t.Errorf("subscriptions of %q are not grouped: %v", s.ClientID, got)
		}
		seen[s.ClientID] = true
	}
	order := func(a, b session.Subscription) int {
		return cmp.Or(cmp.Compare(a.ClientID, b.ClientID), cmp.Compare(a.Filter, b.Filter))
	}
	got, want = slices.Clone(got), slices.Clone(want)
	slices.SortFunc(got, order)
	slices.SortFunc(want, order)
	if len(got) == 0 && len(want) == 0 {
		return
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("LoadSubscriptions =\n%+v\nwant\n%+v", got, want)
	}
}

func testSessionEmpty(t *testing.T, st session.Store) {
	checkLoad(t, st)
	ctx := t.Context()
	// Removing what does not exist is not an error: a clean-session connect
	// deletes whatever may be there.
	must(t, st.DeleteSession(ctx, "nobody"))
	must(t, st.DeleteSubscriptions(ctx, "nobody", []string{"a/#"}))
	must(t, st.SaveSubscriptions(ctx, nil))
	checkLoad(t, st)
}

func testSaveLoad(t *testing.T, st session.Store) {
	ctx := t.Context()
	must(t, st.SaveSubscriptions(ctx, []session.Subscription{c2d, methods}))
	must(t, st.SaveSubscriptions(ctx, []session.Subscription{twinRes, module, plain}))
	checkLoad(t, st, c2d, methods, twinRes, module, plain)
}

func testSaveReplacesQoS(t *testing.T, st session.Store) {
	ctx := t.Context()
	must(t, st.SaveSubscriptions(ctx, []session.Subscription{c2d, methods}))
	up := methods
	up.QoS = 1
	must(t, st.SaveSubscriptions(ctx, []session.Subscription{up}))
	checkLoad(t, st, c2d, up)
}

func testDeleteSubscriptions(t *testing.T, st session.Store) {
	ctx := t.Context()
	must(t, st.SaveSubscriptions(ctx, []session.Subscription{c2d, methods, twinRes, module}))
	// Only the named filters of the named client go; unknown filters are ignored.
	must(t, st.DeleteSubscriptions(ctx, "d1", []string{methods.Filter, twinRes.Filter, "no/such/#"}))
	checkLoad(t, st, c2d, module)
}

func testDeleteSession(t *testing.T, st session.Store) {
	ctx := t.Context()
	must(t, st.SaveSubscriptions(ctx, []session.Subscription{c2d, methods, twinRes, module, plain}))
	must(t, st.DeleteSession(ctx, "d1"))
	checkLoad(t, st, module, plain) // "d1/m1" is another client, not a prefix match
	must(t, st.SaveSubscriptions(ctx, []session.Subscription{c2d}))
	checkLoad(t, st, c2d, module, plain)
}
