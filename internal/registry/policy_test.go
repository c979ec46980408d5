package registry_test

import (
	"encoding/base64"
	"reflect"
	"testing"
	"time"

	"github.com/ferry-iot/ferry/internal/fault"
	"github.com/ferry-iot/ferry/internal/registry"
)

func TestEnsureDefaultPolicies(t *testing.T) {
	svc, db := newService(t, registry.Options{})
	ctx := t.Context()
	ps, err := svc.EnsureDefaultPolicies(ctx)
	must(t, err)
	want := map[string][]registry.Right{
		"iothubowner":       registry.AllRights,
		"service":           {registry.ServiceConnect},
		"device":            {registry.DeviceConnect},
		"registryRead":      {registry.RegistryRead},
		"registryReadWrite": {registry.RegistryRead, registry.RegistryWrite},
	}
	if len(ps) != len(want) {
		t.Fatalf("got %d policies, want %d", len(ps), len(want))
	}
	for _, p := range ps {
		if !reflect.DeepEqual(p.Rights, want[p.KeyName]) {
			t.Errorf("policy %s rights = %v, want %v", p.KeyName, p.Rights, want[p.KeyName])
		}
		for _, k := range []string{p.PrimaryKey, p.SecondaryKey} {
			if b, err := base64.StdEncoding.DecodeString(k); err != nil || len(b) != registry.KeyLen {
				t.Errorf("policy %s key %q is not %d bytes of base64", p.KeyName, k, registry.KeyLen)
			}
		}
	}

	// Idempotent: a second call (a restart) keeps the keys.
	again, err := svc.EnsureDefaultPolicies(ctx)
	must(t, err)
	if !reflect.DeepEqual(again, ps) {
		t.Errorf("second EnsureDefaultPolicies changed the policies:\n%+v\n%+v", again, ps)
	}
	// Also through a new Service over the same store.
	again, err = registry.NewService(db, registry.Options{}).EnsureDefaultPolicies(ctx)
	must(t, err)
	if !reflect.DeepEqual(again, ps) {
		t.Error("EnsureDefaultPolicies after a restart changed the policies")
	}

	// Existing policies are left alone, even if the defaults are missing.
	custom := registry.Policy{KeyName: "only", PrimaryKey: "a2V5", SecondaryKey: "a2V5", Rights: []registry.Right{registry.RegistryRead}}
	svc2, db2 := newService(t, registry.Options{})
	must(t, db2.PutPolicy(ctx, custom))
	ps, err = svc2.EnsureDefaultPolicies(ctx)
	must(t, err)
	if len(ps) != 1 || ps[0].KeyName != "only" {
		t.Errorf("EnsureDefaultPolicies over a custom policy = %+v, want it alone", ps)
	}
}

func TestPolicy(t *testing.T) {
	clk := newClock()
	svc, db := newService(t, registry.Options{Now: clk.Now, CacheTTL: time.Minute})
	ctx := t.Context()
	_, err := svc.Policy(ctx, "iothubowner")
	wantFault(t, err, fault.Unauthorized, "iothubowner")

	ps, err := svc.EnsureDefaultPolicies(ctx)
	must(t, err)
	p, err := svc.Policy(ctx, "service")
	must(t, err)
	if !p.Has(registry.ServiceConnect) || p.Has(registry.RegistryWrite) {
		t.Errorf("service policy = %+v", p)
	}
	p.Rights[0] = registry.RegistryWrite // a caller's copy; the cache must not change
	if p, _ := svc.Policy(ctx, "service"); p.Has(registry.RegistryWrite) {
		t.Error("modifying a returned policy changed the cache")
	}

	// Policies are served from memory until the TTL, then re-read.
	rolled := ps[0]
	rolled.PrimaryKey = "cm9sbGVk"
	must(t, db.PutPolicy(ctx, rolled))
	if p, _ := svc.Policy(ctx, rolled.KeyName); p.PrimaryKey == "cm9sbGVk" {
		t.Error("Policy read the store within the TTL")
	}
	clk.Advance(time.Minute)
	if p, _ := svc.Policy(ctx, rolled.KeyName); p == nil || p.PrimaryKey != "cm9sbGVk" {
		t.Errorf("Policy after the TTL = %+v, want the rolled key", p)
	}
}

func TestPolicyHas(t *testing.T) {
	tests := []struct {
		rights []registry.Right
		has    []registry.Right
		hasNot []registry.Right
	}{
		{registry.AllRights, registry.AllRights, nil},
		{[]registry.Right{registry.RegistryWrite}, []registry.Right{registry.RegistryRead, registry.RegistryWrite},
			[]registry.Right{registry.ServiceConnect, registry.DeviceConnect}},
		{[]registry.Right{registry.RegistryRead}, []registry.Right{registry.RegistryRead},
			[]registry.Right{registry.RegistryWrite, registry.ServiceConnect}},
		{nil, nil, registry.AllRights},
	}
	for _, tt := range tests {
		p := registry.Policy{KeyName: "p", Rights: tt.rights}
		for _, r := range tt.has {
			if !p.Has(r) {
				t.Errorf("%v: Has(%s) = false", tt.rights, r)
			}
		}
		for _, r := range tt.hasNot {
			if p.Has(r) {
				t.Errorf("%v: Has(%s) = true", tt.rights, r)
			}
		}
	}
}
