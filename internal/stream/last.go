package stream

import (
	"context"
	"fmt"
	"math"
)

// Last returns the position after every message stored so far: reading
// after it returns only messages that arrive later ("from now").
func (s *Store) Last(ctx context.Context) (Cursor, error) {
	info, err := s.st.Info(ctx)
	if err != nil {
		return Cursor{}, fmt.Errorf("stream: last position: %w", err)
	}
	if info.State.LastSeq == 0 {
		return Cursor{}, nil // empty: the beginning is now
	}
	return Cursor{Seq: info.State.LastSeq, Index: math.MaxUint32}, nil
}
