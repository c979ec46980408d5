package cli_test

import (
	"strings"
	"testing"

	"github.com/ferry-iot/ferry/internal/hubtest"
)

// TestE2EEmptyLists: every list verb built on listCommand prints [] (not
// null) with --json and its table header without, on a hub that has none.
func TestE2EEmptyLists(t *testing.T) {
	t.Parallel()
	h := hubtest.Start(t)
	for noun, header := range map[string]string{"ca": "NAME", "model": "ID", "route": "NAME", "schema": "NAME"} {
		if r := ferry(t, h, noun, "list", "--json").expect(t, 0); strings.TrimSpace(r.stdout) != "[]" {
			t.Errorf("%s list --json = %q, want []", noun, r.stdout)
		}
		if r := ferry(t, h, noun, "list").expect(t, 0); !strings.HasPrefix(r.stdout, header) {
			t.Errorf("%s list = %q, want the table header", noun, r.stdout)
		}
	}
}
