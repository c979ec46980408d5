package cli

import (
	"strings"
	"testing"
)

// TestMainUsageListsEveryCommand keeps 'ferry help' in step with the
// commands there are.
func TestMainUsageListsEveryCommand(t *testing.T) {
	for _, n := range nouns() {
		if !strings.Contains(mainUsage, "\n  "+n.name+" ") {
			t.Errorf("'ferry help' does not list %q", n.name)
		}
	}
}
