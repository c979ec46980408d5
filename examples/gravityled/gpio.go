package main

import (
	"fmt"

	"periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/gpio/gpioreg"
	"periph.io/x/conn/v3/physic"
	"periph.io/x/host/v3"
)

// gpioPWM drives a real pin through periph.io. On a Raspberry Pi,
// periph's bcm283x driver produces PWM on any pin (by DMA, or with the PWM
// clock on GPIO13 and GPIO19), which needs root.
type gpioPWM struct {
	pin  gpio.PinIO
	freq physic.Frequency
}

// openGPIO initialises periph's host drivers and opens the named pin
// (such as "GPIO18").
func openGPIO(name string, freq physic.Frequency) (*gpioPWM, error) {
	if _, err := host.Init(); err != nil {
		return nil, fmt.Errorf("gpio: %w", err)
	}
	p := gpioreg.ByName(name)
	if p == nil {
		return nil, fmt.Errorf("gpio: no pin %q", name)
	}
	if err := p.Out(gpio.Low); err != nil {
		return nil, fmt.Errorf("gpio: %s: %w", name, err)
	}
	return &gpioPWM{pin: p, freq: freq}, nil
}

func (g *gpioPWM) SetDuty(percent float64) error {
	d := gpio.Duty(percent / 100 * float64(gpio.DutyMax))
	return g.pin.PWM(d, g.freq)
}

func (g *gpioPWM) Close() error { return g.pin.Halt() }
