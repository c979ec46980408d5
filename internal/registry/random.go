package registry

import (
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"io"
	"strconv"
)

// KeyLen is the length in bytes of the keys the hub generates.
const KeyLen = 32

// random fills b from the service's random source. The source is locked
// because Options.Rand need not be safe for concurrent use (tests pass a
// seeded math/rand reader); generation is rare, so the lock costs nothing.
func (s *Service) random(b []byte) error {
	s.randMu.Lock()
	defer s.randMu.Unlock()
	if _, err := io.ReadFull(s.rand, b); err != nil {
		return fmt.Errorf("registry: read random bytes: %w", err)
	}
	return nil
}

// newKey returns KeyLen random bytes, base64 (standard encoding).
func (s *Service) newKey() (string, error) {
	b := make([]byte, KeyLen)
	if err := s.random(b); err != nil {
		return "", err
	}
	return base64.StdEncoding.EncodeToString(b), nil
}

// randomUint64 returns 64 random bits.
func (s *Service) randomUint64() (uint64, error) {
	var b [8]byte
	if err := s.random(b[:]); err != nil {
		return 0, err
	}
	return binary.BigEndian.Uint64(b[:]), nil
}

// newGenerationID returns 18 random decimal digits, the shape of Azure's
// generationId (e.g. "637546501104263193").
func (s *Service) newGenerationID() (string, error) {
	n, err := s.randomUint64()
	if err != nil {
		return "", err
	}
	const lo, span = 100_000_000_000_000_000, 900_000_000_000_000_000 // 18 digits, no leading zero
	return strconv.FormatUint(lo+n%span, 10), nil
}

// newETag returns base64 of a random decimal number, Azure's etag shape
// ("MzE4NzUxOTU1" is base64 of "318751955"). 64 random bits make an accidental
// repeat, which would let a stale If-Match through, negligible.
func (s *Service) newETag() (string, error) {
	n, err := s.randomUint64()
	if err != nil {
		return "", err
	}
	return base64.StdEncoding.EncodeToString([]byte(strconv.FormatUint(n, 10))), nil
}
