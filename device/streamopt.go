package device

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"fmt"

	"github.com/klauspost/compress/gzip"
)

// Limits of a Stream's messages.
const (
	// DefaultChunkSize is the largest body sent as one message; larger
	// bodies are chunked. It leaves room under the hub's 256 KiB limit (which
	// Azure IoT Hub applies to body and properties together).
	DefaultChunkSize = 250_000
	// DefaultMaxMessageBytes is the largest body Enqueue accepts before
	// compression and chunking (64 MiB).
	DefaultMaxMessageBytes = 64 << 20
)

// Compression is a Stream's body compression.
type Compression int

// Compression levels. A compressed body is stored and sent with the
// content encoding "gzip" ($.ce), so the hub's routing and readers know to
// decompress it; a body that compression would not make smaller is sent
// as it is.
const (
	// Uncompressed sends bodies as they are (the default).
	Uncompressed Compression = iota
	// Fastest compresses with gzip's fastest level.
	Fastest
	// SmallestSize compresses with gzip's best level: several times slower
	// than Fastest for a few percent smaller bodies.
	SmallestSize
)

// StreamOption configures a Stream.
type StreamOption func(*streamOptions)

type streamOptions struct {
	compression Compression
	chunkSize   int // 0: chunking off
	maxMessage  int
}

// WithCompression compresses the stream's bodies at Enqueue, before they
// are stored, when that makes them smaller.
func WithCompression(c Compression) StreamOption {
	return func(o *streamOptions) { o.compression = c }
}

// WithChunkSize sets the largest body sent as one message (at most
// [MaxBodyBytes]); a larger body is split into chunks of that size, stored
// together and sent as messages with the properties "message-id",
// "chunk-id" (0, 1, ...) and "chunk-count". 0 turns chunking off: a body
// over MaxBodyBytes is then refused with ErrInvalidMessage.
func WithChunkSize(n int) StreamOption {
	return func(o *streamOptions) { o.chunkSize = min(max(n, 0), MaxBodyBytes) }
}

// WithMaxMessageBytes sets the largest body Enqueue accepts (default
// [DefaultMaxMessageBytes]).
func WithMaxMessageBytes(n int) StreamOption {
	return func(o *streamOptions) { o.maxMessage = max(n, 0) }
}

// compress replaces m's body by its gzip form when the stream compresses
// and the result is smaller. A message that already has a content
// encoding other than a charset is left alone: it is compressed already.
func (s *Stream) compress(m *Message) error {
	if s.opt.compression == Uncompressed || len(m.Body) == 0 {
		return nil
	}
	switch m.ContentEncoding {
	case "", "utf-8", "UTF-8", "utf8":
	default:
		return nil
	}
	level := gzip.BestSpeed
	if s.opt.compression == SmallestSize {
		level = gzip.BestCompression
	}
	var buf bytes.Buffer
	buf.Grow(len(m.Body) / 2)
	w, err := gzip.NewWriterLevel(&buf, level)
	if err != nil {
		return fmt.Errorf("device: compress: %w", err)
	}
	if _, err := w.Write(m.Body); err != nil {
		return fmt.Errorf("device: compress: %w", err)
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("device: compress: %w", err)
	}
	if buf.Len() >= len(m.Body) {
		return nil
	}
	m.Body = buf.Bytes()
	m.ContentEncoding = "gzip"
	return nil
}

// newMessageID returns a random 16-byte id in hex, like the store's.
func newMessageID() string {
	var b [16]byte
	rand.Read(b[:]) // never returns an error (crypto/rand, Go 1.24+)
	return hex.EncodeToString(b[:])
}
