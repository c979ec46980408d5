package sqlite_test

import (
	"testing"

	"github.com/ferry-iot/ferry/internal/store/storetest"
)

func TestModule(t *testing.T) {
	for _, o := range openers {
		t.Run(o.name, func(t *testing.T) {
			storetest.RunModule(t, func(t *testing.T) storetest.ModuleStore { return mustOpen(t, o.path(t)) })
		})
	}
}
