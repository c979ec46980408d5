package sqlite_test

import (
	"testing"

	"github.com/ferry-iot/ferry/internal/store/storetest"
)

func TestTwin(t *testing.T) {
	for _, o := range openers {
		t.Run(o.name, func(t *testing.T) {
			storetest.RunTwin(t, func(t *testing.T) storetest.TwinStore { return mustOpen(t, o.path(t)) })
		})
	}
}
