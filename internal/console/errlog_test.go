package console_test

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/ferry-iot/ferry/internal/console"
)

// ErrorLog keeps the newest error records with their component and cause,
// and passes every record on.
func TestErrorLog(t *testing.T) {
	el := console.NewErrorLog(3)
	var out bytes.Buffer
	log := slog.New(el.Handler(slog.NewTextHandler(&out, &slog.HandlerOptions{Level: slog.LevelWarn})))
	log.Info("hello")
	c := log.With("component", "stream")
	for i := range 5 {
		c.Error(fmt.Sprintf("append failed %d", i), "error", errors.New("disk full"))
	}
	got := el.Recent(10)
	if len(got) != 3 || got[0].Message != "append failed 4" || got[2].Message != "append failed 2" {
		t.Fatalf("recent = %+v, want the last three, newest first", got)
	}
	if got[0].Component != "stream" || got[0].Detail != "disk full" {
		t.Errorf("record %+v lacks its component or cause", got[0])
	}
	if strings.Contains(out.String(), "hello") || strings.Count(out.String(), "append failed") != 5 {
		t.Errorf("the wrapped handler's level was not kept:\n%s", out.String())
	}
}
