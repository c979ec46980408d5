// Package storetest is the conformance suite for Ferry's stores. Every
// implementation of registry.Store and session.Store (SQLite, PostgreSQL)
// runs the same tests from its own _test.go file:
//
//	func TestRegistry(t *testing.T) {
//		storetest.RunRegistry(t, func(t *testing.T) registry.Store { return openTestDB(t) })
//	}
//
// The suite assumes only the interfaces' documented contracts: open must
// return an empty store that lives until the test ends, and stores must keep
// times to at least microsecond precision.
package storetest

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/ferry-iot/ferry/internal/fault"
	"github.com/ferry-iot/ferry/internal/registry"
)

// base is a fixed instant with microsecond precision, the finest that every
// supported database keeps.
var base = time.Date(2026, 3, 14, 15, 9, 26, 535897000, time.UTC)

func ptr[T any](v T) *T { return &v }

// newDevice returns a SAS device with every field set, as the registry
// service would hand it to a store.
func newDevice(id string) *registry.Device {
	return &registry.Device{
		DeviceID:                   id,
		GenerationID:               "637546501104263193",
		ETag:                       "MzE4NzUxOTU1",
		ConnectionState:            registry.Disconnected,
		Status:                     registry.StatusEnabled,
		ConnectionStateUpdatedTime: base,
		StatusUpdatedTime:          base,
		Authentication: registry.Authentication{
			Type: registry.AuthSAS,
			SymmetricKey: &registry.SymmetricKey{
				PrimaryKey:   "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
				SecondaryKey: "HxweHRwbGhkYFxYVFBMSERAPDg0MCwoJCAcGBQQDAgE=",
			},
		},
		ParentScopes: []string{},
	}
}

// wantKind fails t unless err carries fault kind k and Azure code name code.
func wantKind(t *testing.T, err error, k fault.Kind, code string) {
	t.Helper()
	if err == nil {
		t.Fatalf("err = nil, want kind %v (%s)", k, code)
	}
	fe := fault.As(err)
	if fe == nil || fe.Kind != k || fe.Code != code {
		t.Fatalf("err = %v (%#v), want kind %v with code %s", err, fe, k, code)
	}
}

// must fails t on a non-nil error.
func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// normalize makes two equal devices compare equal with reflect.DeepEqual:
// times in UTC, and an empty parentScopes whether stored as nil or [].
func normalize(d registry.Device) registry.Device {
	d.ConnectionStateUpdatedTime = d.ConnectionStateUpdatedTime.UTC()
	d.StatusUpdatedTime = d.StatusUpdatedTime.UTC()
	d.LastActivityTime = d.LastActivityTime.UTC()
	if len(d.ParentScopes) == 0 {
		d.ParentScopes = nil
	}
	return d
}

// diffDevice returns "" if got equals want, else both as JSON.
func diffDevice(got, want *registry.Device) string {
	if got == nil || want == nil {
		if got == want {
			return ""
		}
		return fmt.Sprintf("got %v, want %v", got, want)
	}
	g, w := normalize(*got), normalize(*want)
	if reflect.DeepEqual(g, w) {
		return ""
	}
	gj, _ := json.MarshalIndent(g, "", "  ")
	wj, _ := json.MarshalIndent(w, "", "  ")
	return fmt.Sprintf("got:\n%s\nwant:\n%s", gj, wj)
}

// errNil reports errors from goroutines without calling t.Fatal off the test goroutine.
func errNil(errs <-chan error) error {
	var all []error
	for err := range errs {
		if err != nil {
			all = append(all, err)
		}
	}
	return errors.Join(all...)
}
