package natsd

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"github.com/nats-io/nats-server/v2/server"
)

// logger routes nats-server's log calls to slog. Debug and trace are never
// enabled on the server (they cost CPU on every message), so those calls
// only happen for the few lines nats logs unconditionally at that level.
type logger struct {
	log *slog.Logger

	mu        sync.Mutex
	lastFatal string // guarded by mu; the last Fatalf line, reported by Start
}

var _ server.Logger = (*logger)(nil)

const attrSource = "source"

func (l *logger) emit(level slog.Level, format string, v []any) {
	if !l.log.Enabled(context.Background(), level) {
		return
	}
	l.log.Log(context.Background(), level, fmt.Sprintf(format, v...), attrSource, "nats")
}

// Noticef implements server.Logger. The embedded server's notices (its
// start-up banner, stream restores) are debug detail for a hub operator.
func (l *logger) Noticef(format string, v ...any) { l.emit(slog.LevelDebug, format, v) }

// Warnf implements server.Logger.
func (l *logger) Warnf(format string, v ...any) { l.emit(slog.LevelWarn, format, v) }

// Errorf implements server.Logger.
func (l *logger) Errorf(format string, v ...any) { l.emit(slog.LevelError, format, v) }

// Fatalf implements server.Logger. nats-server calls it when it cannot
// start (port in use, unusable store); it does not exit the process here,
// Start reports the line as its error instead.
func (l *logger) Fatalf(format string, v ...any) {
	msg := fmt.Sprintf(format, v...)
	l.mu.Lock()
	l.lastFatal = msg
	l.mu.Unlock()
	l.log.Error(msg, attrSource, "nats", "fatal", true)
}

// Debugf implements server.Logger.
func (l *logger) Debugf(format string, v ...any) { l.emit(slog.LevelDebug, format, v) }

// Tracef implements server.Logger.
func (l *logger) Tracef(format string, v ...any) { l.emit(slog.LevelDebug-4, format, v) }

// fatal returns the last fatal line as an error, or nil.
func (l *logger) fatal() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.lastFatal == "" {
		return nil
	}
	return errors.New(l.lastFatal)
}
