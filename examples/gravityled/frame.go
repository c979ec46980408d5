package main

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/gorilla/websocket"
)

// MaxFrameBytes bounds a frame from a controller: a text frame "x y z" is
// a few dozen bytes, a binary one 12. Larger frames close the connection
// with 1009 (message too big).
const MaxFrameBytes = 256

// BinaryFrameBytes is the size of a binary frame: x, y and z as
// little-endian IEEE 754 float32.
const BinaryFrameBytes = 12

// errFrame marks a frame that is not a tilt.
var errFrame = errors.New("malformed frame")

// parseFrame reads one tilt from a WebSocket message: a text frame of
// three decimal numbers separated by white space ("12.5 -40 90.1"), or a
// binary frame of three little-endian float32. Each component must be a
// finite number in [-100, 100].
func parseFrame(kind int, data []byte) (Tilt, error) {
	var v [3]float64
	switch kind {
	case websocket.TextMessage:
		f := strings.Fields(string(data))
		if len(f) != 3 {
			return Tilt{}, fmt.Errorf("%w: want three numbers \"x y z\", got %d fields", errFrame, len(f))
		}
		for i, s := range f {
			x, err := strconv.ParseFloat(s, 64)
			if err != nil {
				return Tilt{}, fmt.Errorf("%w: %q is not a number", errFrame, s)
			}
			v[i] = x
		}
	case websocket.BinaryMessage:
		if len(data) != BinaryFrameBytes {
			return Tilt{}, fmt.Errorf("%w: a binary frame is %d bytes (three little-endian float32), got %d", errFrame, BinaryFrameBytes, len(data))
		}
		for i := range v {
			v[i] = float64(math.Float32frombits(binary.LittleEndian.Uint32(data[4*i:])))
		}
	default:
		return Tilt{}, fmt.Errorf("%w: unexpected message type %d", errFrame, kind)
	}
	for i, x := range v {
		if math.IsNaN(x) || math.IsInf(x, 0) || x < -100 || x > 100 {
			return Tilt{}, fmt.Errorf("%w: %c = %v is not in [-100, 100]", errFrame, "xyz"[i], x)
		}
	}
	return Tilt{v[0], v[1], v[2]}, nil
}

// binaryFrame encodes a tilt as a binary frame.
func binaryFrame(t Tilt) []byte {
	b := make([]byte, BinaryFrameBytes)
	for i, x := range [3]float64{t.X, t.Y, t.Z} {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(float32(x)))
	}
	return b
}
