// Command gravityled drives two PWM LEDs from a phone's tilt, like seed
// 004's Raspberry Pi project: phones (controllers) connect over a
// WebSocket and stream the direction of gravity as text frames "x y z" or
// binary frames of three little-endian float32 (each in percent of g,
// -100 to 100). The y component lights the right LED when positive and the
// left one when negative, brighter the more the phone tilts.
//
// It serves a page at / that streams a phone's motion sensor to /ws,
// accepts at most --max-controllers phones at once (refusing more with
// close code 1013, try again later) and stops cleanly on Ctrl-C.
//
// With a connection string it is also a Ferry device implementing
// dtmi:ferry:example:GravityLed;1 (model.json): the duty cycles as
// telemetry (at most --telemetry-rate messages a second, only on change),
// the connection limit as the writable property maxControllers and the
// direct method setMaxControllers, and connectedControllers reported.
//
// The LEDs are simulated unless --gpio is given; then the pins are driven
// through periph.io (on a Raspberry Pi, as root). See README.md.
package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	"periph.io/x/conn/v3/physic"

	"github.com/ferry-iot/ferry/device"
)

// options are the command line's settings.
type options struct {
	listen         string
	maxControllers int
	gpio           bool
	pinLeft        string
	pinRight       string
	pwmFreq        int
	cert, key      string
	selfSigned     bool
	connStr        string
	ca             string
	store          string
	telemetryRate  float64
	onListen       func(net.Addr) // for tests: hears the server's address
}

func main() {
	var o options
	flag.StringVar(&o.listen, "listen", ":8080", "serve the page and the WebSocket on this `ADDRESS`")
	flag.IntVar(&o.maxControllers, "max-controllers", 1, "controllers accepted at once (changeable at run time)")
	flag.BoolVar(&o.gpio, "gpio", false, "drive real pins through periph.io (default: simulated LEDs)")
	flag.StringVar(&o.pinLeft, "pin-left", "GPIO5", "the left (red) LED's pin with --gpio")
	flag.StringVar(&o.pinRight, "pin-right", "GPIO18", "the right (green) LED's pin with --gpio")
	flag.IntVar(&o.pwmFreq, "pwm-freq", 200, "PWM frequency in Hz with --gpio")
	flag.StringVar(&o.cert, "cert", "", "serve HTTPS with this certificate `FILE` (phones give motion sensors to secure pages only)")
	flag.StringVar(&o.key, "key", "", "the certificate's key `FILE`")
	flag.BoolVar(&o.selfSigned, "self-signed", false, "serve HTTPS with a throwaway self-signed certificate")
	flag.StringVar(&o.connStr, "connection-string", os.Getenv("FERRY_DEVICE_CONNECTION_STRING"),
		"Ferry device connection string (default $FERRY_DEVICE_CONNECTION_STRING); none: no hub")
	flag.StringVar(&o.ca, "ca", "", "PEM file of the hub's CA (default: the system roots)")
	flag.StringVar(&o.store, "store", "gravityled.db", "the device SDK's local store file")
	flag.Float64Var(&o.telemetryRate, "telemetry-rate", 10, "at most this many telemetry messages a second")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o); err != nil {
		log.Fatal(err)
	}
}

func run(ctx context.Context, o options) error {
	l, err := openLEDs(o)
	if err != nil {
		return err
	}
	defer func() {
		if err := l.Close(); err != nil {
			log.Printf("LEDs: %v", err)
		}
	}()
	srv := NewServer(l, o.maxControllers)
	if err := srv.SetMaxControllers(o.maxControllers); err != nil {
		return fmt.Errorf("gravityled: --max-controllers: %w", err)
	}
	tlsCfg, err := tlsConfig(o)
	if err != nil {
		return err
	}
	counts := make(chan int, 1)
	srv.OnControllers = controllersChanged(counts)

	var link *hubLink
	if o.connStr != "" {
		link = &hubLink{srv: srv}
		cfg := link.config(device.Config{ConnectionString: o.connStr, CAFile: o.ca, StorePath: o.store})
		cfg.OnStatus = func(s device.Status, err error) { log.Printf("hub: %s %v", s, errOrEmpty(err)) }
		c, err := device.Start(ctx, cfg)
		if err != nil {
			return fmt.Errorf("gravityled: %w", err)
		}
		defer c.Close()
		link.client = c
		if err := link.reportStart(ctx); err != nil {
			return err
		}
		log.Printf("device %s implements %s", c.DeviceID(), ModelID)
	} else {
		log.Printf("no connection string: not connected to a hub")
	}

	addr, err := srv.Start(o.listen, tlsCfg)
	if err != nil {
		return err
	}
	scheme := "http"
	if tlsCfg != nil {
		scheme = "https"
	}
	log.Printf("serving %s://%s/ (WebSocket /ws), at most %d controllers", scheme, addr, srv.MaxControllers())
	if o.onListen != nil {
		o.onListen(addr)
	}

	if link != nil {
		period := time.Duration(float64(time.Second) / max(o.telemetryRate, 0.01))
		done := make(chan struct{})
		go func() { defer close(done); link.sendLoop(ctx, period, counts) }()
		defer func() { <-done }()
	}
	<-ctx.Done()
	log.Printf("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("gravityled: shutdown: %w", err)
	}
	if link != nil {
		_ = link.client.Flush(sctx)
	}
	return nil
}

func errOrEmpty(err error) any {
	if err == nil {
		return ""
	}
	return err
}

func openLEDs(o options) (*leds, error) {
	if !o.gpio {
		return newLEDs(&simPWM{}, &simPWM{}), nil
	}
	f := physic.Frequency(o.pwmFreq) * physic.Hertz
	left, err := openGPIO(o.pinLeft, f)
	if err != nil {
		return nil, err
	}
	right, err := openGPIO(o.pinRight, f)
	if err != nil {
		_ = left.Close()
		return nil, err
	}
	return newLEDs(left, right), nil
}

func tlsConfig(o options) (*tls.Config, error) {
	switch {
	case o.cert != "":
		c, err := tls.LoadX509KeyPair(o.cert, o.key)
		if err != nil {
			return nil, fmt.Errorf("gravityled: %w", err)
		}
		return &tls.Config{Certificates: []tls.Certificate{c}}, nil
	case o.selfSigned:
		c, err := selfSigned()
		if err != nil {
			return nil, err
		}
		return &tls.Config{Certificates: []tls.Certificate{c}}, nil
	}
	return nil, nil
}
