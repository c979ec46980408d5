package sqlite_test

import (
	"testing"

	"github.com/ferry-iot/ferry/internal/provision"
	"github.com/ferry-iot/ferry/internal/store/storetest"
)

func TestProvision(t *testing.T) {
	for _, o := range openers {
		t.Run(o.name, func(t *testing.T) {
			storetest.RunProvision(t, func(t *testing.T) provision.Store { return mustOpen(t, o.path(t)) })
		})
	}
}

func TestEnrollments(t *testing.T) {
	for _, o := range openers {
		t.Run(o.name, func(t *testing.T) {
			storetest.RunEnrollments(t, func(t *testing.T) provision.EnrollmentStore { return mustOpen(t, o.path(t)) })
		})
	}
}
