//go:build race

package console_test

// raceEnabled: timings are meaningless under the race detector.
const raceEnabled = true
