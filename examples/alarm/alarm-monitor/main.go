// Command alarm-monitor is seed 000's alarm monitor on the Ferry device SDK:
// it answers the ProcessMessage direct method, through which the hub's
// route delivers the agent's parcels as protobuf bytes, and logs each alarm
// status it receives to events.log with UTC timestamps, as in the seed.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"syscall"

	"github.com/ferry-iot/ferry/device"
	"github.com/ferry-iot/ferry/examples/alarm/internal/parcel"
)

const usage = `alarm-monitor answers the ProcessMessage direct method: the hub's route
hands it every parcel alarm-agent sends, as protobuf bytes.

Usage:
  alarm-monitor --connection-string "HostName=...;DeviceId=alarm-monitor;SharedAccessKey=..." \
      --ca ferry-data/pki/ca.pem [flags]

Answers:
  200 {"result": true, "data": "parcel handled"}           a Parcel of type pb_AlarmStatus
  400 {"result": false, "data": "bad parcel received"}      anything else
  404 {"result": false, "data": "unknown method request"}   any other method

Unlike Azure IoT Hub (seed 000), the payload is not JSON: Ferry's method
endpoint passes the parcel's bytes and their content type
(application/x-protobuf) unchanged. Try it by hand:
  ferry invoke alarm-monitor ProcessMessage --content-type application/x-protobuf --payload @parcel.bin

Flags:
`

func main() {
	fs := flag.CommandLine
	fs.Usage = func() { fmt.Fprint(fs.Output(), usage); fs.PrintDefaults() }
	connStr := fs.String("connection-string", os.Getenv("FERRY_DEVICE_CONNECTION_STRING"),
		"the monitor device's connection string (default $FERRY_DEVICE_CONNECTION_STRING)")
	store := fs.String("store", "alarm-monitor.db", "the device SDK's local store `FILE`")
	ca := fs.String("ca", os.Getenv("FERRY_CA_FILE"), "PEM `FILE` of the hub's CA, e.g. ferry-data/pki/ca.pem (default $FERRY_CA_FILE, else the system roots)")
	logPath := fs.String("log", "events.log", "events log `FILE` (appended; - for standard output)")
	fs.Parse(os.Args[1:])
	if *connStr == "" {
		fs.Usage()
		fmt.Fprintln(os.Stderr, "\nalarm-monitor: give --connection-string or set FERRY_DEVICE_CONNECTION_STRING")
		os.Exit(2)
	}
	events, closeLog, err := parcel.OpenLog(*logPath)
	if err != nil {
		log.Fatalf("alarm-monitor: %v", err)
	}
	defer closeLog.Close()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	m := &monitor{log: events}
	c, err := device.Start(ctx, device.Config{
		ConnectionString: *connStr,
		StorePath:        *store,
		CAFile:           *ca,
		Methods: map[string]device.MethodHandler{
			parcel.Method: m.processMessage,
			"":            m.unknown,
		},
		OnStatus: func(s device.Status, err error) {
			if err != nil {
				log.Printf("alarm-monitor: %s: %v", s, err)
			} else {
				log.Printf("alarm-monitor: %s", s)
			}
			if s == device.Connected {
				events.Printf("Connected; waiting for parcels on %s", parcel.Method)
			}
		},
	})
	if err != nil {
		log.Fatalf("alarm-monitor: %v", err)
	}
	events.Printf("App Started... monitor %s", c.DeviceID())
	<-ctx.Done()
	c.Close()
	events.Printf("App Stopped!")
}

type monitor struct{ log *parcel.Log }

// result is the seed's method response body.
type result struct {
	Result bool   `json:"result"`
	Data   string `json:"data"`
}

func answer(status int, ok bool, data string) device.MethodResponse {
	b, _ := json.Marshal(result{Result: ok, Data: data})
	return device.MethodResponse{Status: status, Payload: b}
}

func (m *monitor) processMessage(_ context.Context, req device.MethodRequest) device.MethodResponse {
	ct := req.ContentType
	if ct == "" {
		ct = "application/json"
	}
	m.log.Printf("Parcel received: %d bytes of %s", len(req.Payload), ct)
	p, st, err := parcel.Unpack(req.Payload)
	if err != nil {
		m.log.Printf("Bad parcel: %v", err)
		return answer(400, false, "bad parcel received")
	}
	m.log.Stars()
	m.log.Printf("Alarm status received from: %s (%s)", parcel.Py(p.GetSource().GetName()),
		p.GetSource().GetDomainAgent())
	m.log.Printf("alarm_active: %s, time_utc: %s, date_utc: %s",
		parcel.Py(st.GetAlarmActive()), parcel.Py(st.GetTimeUtc()), parcel.Py(st.GetDateUtc()))
	m.log.Stars()
	return answer(200, true, "parcel handled")
}

func (m *monitor) unknown(_ context.Context, req device.MethodRequest) device.MethodResponse {
	m.log.Printf("Unknown method request: %s", parcel.Py(req.Name))
	return answer(404, false, "unknown method request")
}
