package hub_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/ferry-iot/ferry/internal/hubtest"
)

// TestConsoleModelView: the console's model-driven view reads the hub's
// model repository (a model added over REST shows up in the view's data).
func TestConsoleModelView(t *testing.T) {
	h := hubtest.Start(t)
	files, _ := filepath.Glob("../../examples/thermostat/models/*.json")
	if len(files) == 0 {
		t.Skip("no example models")
	}
	for _, f := range files {
		doc, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := h.Client.AddModels(context.Background(), doc); err != nil {
			t.Fatalf("add %s: %v", f, err)
		}
	}
	doc, err := h.ConsoleModel(context.Background(), "dtmi:ferry:example:Thermostat;1")
	if err != nil {
		t.Fatal(err)
	}
	var it struct {
		ID string `json:"@id"`
	}
	if err := json.Unmarshal(doc, &it); err != nil || it.ID != "dtmi:ferry:example:Thermostat;1" {
		t.Fatalf("console got %s (%v)", doc, err)
	}
}
