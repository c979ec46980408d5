package stream

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"

	"github.com/ferry-iot/ferry/internal/fault"
	"github.com/nats-io/nats.go/jetstream"
)

// positionKey maps a (consumer group, stream) pair to a KV key. KV keys
// allow few characters, so both names are base64url-encoded, which also
// keeps "a.b"+"c" apart from "a"+"b.c".
func positionKey(consumerGroup, stream string) (string, error) {
	if consumerGroup == "" {
		return "", fault.Invalidf("stream: consumer group name is required")
	}
	enc := base64.RawURLEncoding
	return enc.EncodeToString([]byte(consumerGroup)) + "." + enc.EncodeToString([]byte(orDefault(stream))), nil
}

// Position returns the committed cursor of a consumer group on a stream;
// ok is false when the group never committed one.
func (s *Store) Position(ctx context.Context, consumerGroup, stream string) (c Cursor, ok bool, err error) {
	key, err := positionKey(consumerGroup, stream)
	if err != nil {
		return Cursor{}, false, err
	}
	e, err := s.positions.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return Cursor{}, false, nil
	}
	if err != nil {
		return Cursor{}, false, fmt.Errorf("stream: position of %q on %q: %w", consumerGroup, stream, err)
	}
	c, err = ParseCursor(string(e.Value()))
	if err != nil {
		return Cursor{}, false, fmt.Errorf("stream: position of %q on %q: %w", consumerGroup, stream, err)
	}
	return c, true, nil
}

// Commit stores c as the position of a consumer group on a stream. The
// write is durable when it returns (KV buckets are file streams). Any
// cursor may be committed, also one before the current position.
func (s *Store) Commit(ctx context.Context, consumerGroup, stream string, c Cursor) error {
	key, err := positionKey(consumerGroup, stream)
	if err != nil {
		return err
	}
	if _, err := s.positions.Put(ctx, key, []byte(c.String())); err != nil {
		return fmt.Errorf("stream: commit %q on %q: %w", consumerGroup, stream, err)
	}
	return nil
}
