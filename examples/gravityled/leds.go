package main

import (
	"fmt"
	"math"
	"sync"
)

// pwm is one LED's pulse-width modulated output.
type pwm interface {
	// SetDuty sets the duty cycle in percent, 0 (off) to 100 (fully on).
	SetDuty(percent float64) error
	Close() error
}

// simPWM is a simulated output: it only remembers its duty cycle.
type simPWM struct{ duty float64 }

func (s *simPWM) SetDuty(p float64) error { s.duty = p; return nil }
func (s *simPWM) Close() error            { return nil }

// Duty is the pair of duty cycles, in percent.
type Duty struct {
	Left  float64 `json:"left"`
	Right float64 `json:"right"`
}

// Tilt is one gravity reading: the direction of gravity in the phone's
// frame, each component in percent of g (-100 to 100), as seed 004's
// client sends it.
type Tilt struct{ X, Y, Z float64 }

// dutyFor maps a tilt to the LEDs like seed 004: the y component drives
// the right LED when positive and the left one when negative, brighter
// the more the phone is tilted.
func dutyFor(t Tilt) Duty {
	y := math.Round(t.Y*10) / 10
	if y > 0 {
		return Duty{Right: y}
	}
	return Duty{Left: -y + 0} // +0 turns -0 into 0
}

// leds drives the two outputs. Its methods are safe for concurrent use.
type leds struct {
	left, right pwm

	mu      sync.Mutex
	duty    Duty   // guarded by mu
	version uint64 // guarded by mu; counts changes, for the telemetry loop
}

func newLEDs(left, right pwm) *leds { return &leds{left: left, right: right} }

// Set drives both LEDs; an unchanged duty cycle is not written again.
func (l *leds) Set(d Duty) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if d == l.duty {
		return nil
	}
	if err := l.left.SetDuty(d.Left); err != nil {
		return fmt.Errorf("left LED: %w", err)
	}
	if err := l.right.SetDuty(d.Right); err != nil {
		return fmt.Errorf("right LED: %w", err)
	}
	l.duty = d
	l.version++
	return nil
}

// Get returns the current duty cycles and the change counter.
func (l *leds) Get() (Duty, uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.duty, l.version
}

// Close turns both LEDs off and releases the outputs.
func (l *leds) Close() error {
	err := l.Set(Duty{})
	if e := l.left.Close(); err == nil {
		err = e
	}
	if e := l.right.Close(); err == nil {
		err = e
	}
	return err
}
