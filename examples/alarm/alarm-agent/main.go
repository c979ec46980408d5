// Command alarm-agent is seed 000's alarm agent on the Ferry device SDK: it
// simulates a door alarm and, whenever the alarm's state changes, packs an
// AlarmStatus into a protobuf Parcel and sends it to the hub, addressed to
// the alarm monitor. A route in the hub (see ../setup.sh) delivers the
// parcel to the monitor's ProcessMessage method. Events go to events.log
// with UTC timestamps, as in the seed.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"math/rand/v2"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/ferry-iot/ferry/device"
	"github.com/ferry-iot/ferry/examples/alarm/internal/parcel"
)

const usage = `alarm-agent simulates a door alarm and sends a protobuf parcel to the alarm
monitor every time the alarm switches on or off.

Usage:
  alarm-agent --connection-string "HostName=...;DeviceId=alarm-agent;SharedAccessKey=..." \
      --ca ferry-data/pki/ca.pem [flags]

Each step of its state machine (idle, new event, sending, sent) takes one
--interval. When idle it draws a random alarm state; a change is packed into a
Parcel{source, destination, type "pb_AlarmStatus", content AlarmStatus} and
sent as telemetry with content type application/x-protobuf and the properties
proto-type=pb_Parcel (the schema the hub decodes it with) and
destination=DEVICE (the device the route delivers it to). "sent" means the
hub acknowledged the parcel: it is stored and will be routed. Parcels wait in
--store while the hub is unreachable and go out when it is back.

The hub needs (../setup.sh does it):
  ferry device create alarm-agent && ferry device create alarm-monitor
  ferry schema add pb_Parcel --descriptor-set alarmpb/alarm.pb --message ferry.examples.alarm.Parcel
  ferry route add parcels --condition "proto-type = 'pb_Parcel' AND \$body.type = 'pb_AlarmStatus'" \
      --endpoint method:ProcessMessage --target-from property:destination --allow-target alarm-monitor

Flags:
`

type state int

const (
	idle state = iota
	newEvent
	sending
	sent
)

func (s state) String() string {
	return [...]string{"idle", "new event", "sending", "sent"}[s]
}

func main() {
	fs := flag.CommandLine
	fs.Usage = func() { fmt.Fprint(fs.Output(), usage); fs.PrintDefaults() }
	connStr := fs.String("connection-string", os.Getenv("FERRY_DEVICE_CONNECTION_STRING"),
		"the agent device's connection string (default $FERRY_DEVICE_CONNECTION_STRING)")
	store := fs.String("store", "alarm-agent.db", "local store `FILE`: parcels not yet acknowledged survive restarts here")
	ca := fs.String("ca", os.Getenv("FERRY_CA_FILE"), "PEM `FILE` of the hub's CA, e.g. ferry-data/pki/ca.pem (default $FERRY_CA_FILE, else the system roots)")
	to := fs.String("to", "alarm-monitor", "the `DEVICE` the parcels are for (the destination property)")
	logPath := fs.String("log", "events.log", "events log `FILE` (appended; - for standard output)")
	interval := fs.Duration("interval", 500*time.Millisecond, "time each step of the state machine takes")
	changes := fs.Int("changes", 0, "stop after sending `N` parcels (0: run until interrupted)")
	fs.Parse(os.Args[1:])
	if *connStr == "" {
		fs.Usage()
		fmt.Fprintln(os.Stderr, "\nalarm-agent: give --connection-string or set FERRY_DEVICE_CONNECTION_STRING")
		os.Exit(2)
	}
	events, closeLog, err := parcel.OpenLog(*logPath)
	if err != nil {
		log.Fatalf("alarm-agent: %v", err)
	}
	defer closeLog.Close()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	c, err := device.Start(ctx, device.Config{
		ConnectionString: *connStr,
		StorePath:        *store,
		CAFile:           *ca,
		Window:           1, // parcels reach the monitor in the order the alarm changed
		OnStatus: func(s device.Status, err error) {
			if err != nil {
				log.Printf("alarm-agent: %s: %v", s, err)
			} else {
				log.Printf("alarm-agent: %s", s)
			}
		},
	})
	if err != nil {
		log.Fatalf("alarm-agent: %v", err)
	}
	defer c.Close()
	events.Printf("App Started... agent %s, parcels for %s", c.DeviceID(), *to)
	if n, _ := c.Pending(); n > 0 {
		events.Printf("%d parcels from an earlier run wait to be sent", n)
	}

	a := &agent{id: c.DeviceID(), to: *to, log: events, stream: c.Stream("", "parcels")}
	tick := time.NewTicker(*interval)
	defer tick.Stop()
	for *changes == 0 || a.sent < *changes {
		select {
		case <-ctx.Done():
			events.Printf("App Stopped! %d parcels sent", a.sent)
			return
		case <-tick.C:
		}
		if err := a.step(ctx); err != nil {
			if ctx.Err() != nil {
				continue
			}
			log.Fatalf("alarm-agent: %v", err)
		}
	}
	events.Printf("App Stopped! %d parcels sent", a.sent)
}

// agent is the seed's AlarmAgent state machine.
type agent struct {
	id, to  string
	log     *parcel.Log
	stream  *device.Stream
	state   state
	current bool   // the alarm's state last packed
	pending []byte // the parcel being sent
	sent    int
}

// step does one step of work, as the seed's do_work.
func (a *agent) step(ctx context.Context) error {
	switch a.state {
	case idle, sent:
		// Nothing pending: simulate the alarm; a change is a new event.
		if next := rand.N(2) == 1; next != a.current {
			a.current = next
			a.state = newEvent
		} else {
			a.state = idle
		}
	case newEvent:
		a.log.Printf("Packing event: %s", parcel.Py(a.current))
		st := parcel.Status(a.current, time.Now())
		a.log.Stars()
		a.log.Printf("Packing event: Active: %s, time: %s, date: %s",
			parcel.Py(st.AlarmActive), parcel.Py(st.TimeUtc), parcel.Py(st.DateUtc))
		a.log.Stars()
		b, err := parcel.Pack(st, a.id, a.to)
		if err != nil {
			return err
		}
		a.pending = b
		a.state = sending
	case sending:
		// Send returns once the hub stored the parcel (its PUBACK); while
		// the hub is unreachable the parcel waits in the store.
		err := a.stream.Send(ctx, device.Message{Body: a.pending, ContentType: parcel.ContentType,
			Properties: map[string]string{
				parcel.ProtoTypeProperty:   parcel.ParcelSchema,
				parcel.DestinationProperty: a.to,
			}})
		if err != nil {
			if errors.Is(err, context.Canceled) {
				return err
			}
			return fmt.Errorf("send parcel: %w", err)
		}
		a.sent++
		a.log.Printf("Parcel sent to %s (%d bytes, %s)", a.to, len(a.pending), parcel.ContentType)
		a.pending = nil
		a.state = sent
	}
	return nil
}
