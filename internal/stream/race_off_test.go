//go:build !race

package stream

// raceEnabled reports a -race build, whose runtime allocates on its own.
const raceEnabled = false
