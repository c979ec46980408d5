package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log"
	"math"
	"math/rand/v2"
	"runtime"
	"strconv"
	"sync"
	"time"

	"github.com/ferry-iot/ferry/device"
)

// reading is one temperature measurement.
type reading struct {
	at   time.Time
	temp float64
}

// thermostat is one thermostat component's state.
type thermostat struct {
	name     string
	temp     float64
	target   float64
	max      float64
	readings []reading // since the last reboot
}

// controller is the temperature controller: its thermostats and the SDK
// client they report through.
type controller struct {
	serial string
	now    func() time.Time
	client *device.Client

	mu          sync.Mutex
	thermostats []*thermostat
	ackedV      map[string]int64 // desired $version each thermostat's target was acknowledged for
}

func newController(serial string, now func() time.Time) *controller {
	return &controller{serial: serial, now: now, ackedV: map[string]int64{},
		thermostats: []*thermostat{
			{name: "thermostat1", temp: 21, target: 21, max: 21},
			{name: "thermostat2", temp: 18, target: 18, max: 18},
		}}
}

func (c *controller) find(name string) *thermostat {
	for _, t := range c.thermostats {
		if t.name == name {
			return t
		}
	}
	return nil
}

// reportStart reports the device's read-only properties, component ones
// marked "__t": "c" as Plug and Play asks.
func (c *controller) reportStart(ctx context.Context) error {
	c.mu.Lock()
	patch := map[string]any{
		"serialNumber": c.serial,
		"deviceInformation": map[string]any{
			"__t": "c", "manufacturer": "Ferry example devices", "model": "Go temperature controller",
			"swVersion": "1.0", "osName": runtime.GOOS, "processorArchitecture": runtime.GOARCH,
			"processorManufacturer": "unknown", "totalStorage": 1024.0, "totalMemory": 512.0,
		},
	}
	for _, t := range c.thermostats {
		patch[t.name] = map[string]any{"__t": "c", "maxTempSinceLastReboot": t.max}
	}
	c.mu.Unlock()
	if err := c.client.UpdateReported(ctx, patch); err != nil {
		return fmt.Errorf("thermostat: report properties: %w", err)
	}
	log.Printf("reported serialNumber %s, maxTempSinceLastReboot and deviceInformation", c.serial)
	return nil
}

// sendTelemetry moves each thermostat towards its target, enqueues one
// message per component and reports a new maximum.
func (c *controller) sendTelemetry(ctx context.Context) error {
	type msg struct {
		comp string
		body map[string]any
	}
	var (
		msgs   []msg
		newMax = map[string]any{}
	)
	c.mu.Lock()
	now := c.now()
	for _, t := range c.thermostats {
		t.temp += (t.target-t.temp)*0.3 + (rand.Float64() - 0.5)
		t.temp = math.Round(t.temp*100) / 100
		t.readings = append(t.readings, reading{now, t.temp})
		if len(t.readings) > 100_000 {
			t.readings = t.readings[1:]
		}
		if t.temp > t.max {
			t.max = t.temp
			newMax[t.name] = map[string]any{"__t": "c", "maxTempSinceLastReboot": t.max}
		}
		msgs = append(msgs, msg{t.name, map[string]any{"temperature": t.temp}})
	}
	c.mu.Unlock()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	msgs = append(msgs, msg{"", map[string]any{"workingSet": float64(ms.Sys / 1024)}})

	s := c.client.Stream("", "")
	for _, m := range msgs {
		body, _ := json.Marshal(m.body)
		// The component travels as $.sub, as Azure's SDKs send it.
		dm := device.Message{Body: body, ContentType: "application/json", ContentEncoding: "utf-8", Component: m.comp}
		if _, err := s.Enqueue(ctx, dm); err != nil {
			return err
		}
	}
	if len(newMax) > 0 {
		return c.client.UpdateReported(ctx, newMax)
	}
	return nil
}

// onDesired applies targetTemperature of each thermostat component and
// acknowledges it: ac 200 with the desired $version as av, or ac 400 for
// a value that is not a number.
func (c *controller) onDesired(d device.TwinProperties) {
	var doc map[string]json.RawMessage
	if err := json.Unmarshal(d.JSON, &doc); err != nil {
		return
	}
	ack := map[string]any{}
	c.mu.Lock()
	for _, t := range c.thermostats {
		var comp map[string]json.RawMessage
		if json.Unmarshal(doc[t.name], &comp) != nil || comp["targetTemperature"] == nil {
			continue
		}
		if c.ackedV[t.name] == d.Version {
			continue // already acknowledged (the SDK hands the whole document over again after a reconnect)
		}
		c.ackedV[t.name] = d.Version
		raw := comp["targetTemperature"]
		var v float64
		a := map[string]any{"value": raw, "av": d.Version}
		if err := json.Unmarshal(raw, &v); err != nil {
			a["ac"], a["ad"] = 400, "targetTemperature must be a number"
		} else {
			t.target = v
			a["value"], a["ac"], a["ad"] = v, 200, "Successfully updated target temperature"
		}
		ack[t.name] = map[string]any{"__t": "c", "targetTemperature": a}
		log.Printf("%s: targetTemperature %s (desired $version %d): ac %v", t.name, raw, d.Version, a["ac"])
	}
	c.mu.Unlock()
	if len(ack) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.client.UpdateReported(ctx, ack); err != nil {
		log.Printf("acknowledge targetTemperature: %v", err)
	}
}

func (c *controller) methods() map[string]device.MethodHandler {
	m := map[string]device.MethodHandler{"reboot": c.reboot}
	for _, t := range c.thermostats {
		m[t.name+"*getMaxMinReport"] = c.maxMinReport(t.name)
	}
	return m
}

func jsonResponse(status int, v any) device.MethodResponse {
	b, _ := json.Marshal(v)
	return device.MethodResponse{Status: status, Payload: b}
}

// reboot waits for the delay (seconds, from the request) and clears the
// thermostats' statistics, as a real reboot would.
func (c *controller) reboot(ctx context.Context, req device.MethodRequest) device.MethodResponse {
	var delay int
	if err := json.Unmarshal(req.Payload, &delay); err != nil && string(req.Payload) != "null" {
		return jsonResponse(400, map[string]string{"error": "the payload must be the delay in seconds"})
	}
	log.Printf("reboot in %d s", delay)
	go func() {
		time.Sleep(time.Duration(delay) * time.Second)
		c.mu.Lock()
		for _, t := range c.thermostats {
			t.readings, t.max = nil, t.temp
		}
		c.mu.Unlock()
		log.Printf("rebooted: statistics cleared")
	}()
	return jsonResponse(200, map[string]any{"rebootingIn": delay})
}

// maxMinReport answers thermostatN*getMaxMinReport: the highest, lowest
// and average temperature since the requested time (null: since reboot).
func (c *controller) maxMinReport(name string) device.MethodHandler {
	return func(ctx context.Context, req device.MethodRequest) device.MethodResponse {
		var since time.Time
		var s *string
		if err := json.Unmarshal(req.Payload, &s); err != nil {
			return jsonResponse(400, map[string]string{"error": "the payload must be a date-time string or null"})
		}
		if s != nil {
			t, err := time.Parse(time.RFC3339Nano, *s)
			if err != nil {
				return jsonResponse(400, map[string]string{"error": "since: " + strconv.Quote(*s) + " is not an RFC 3339 date-time"})
			}
			since = t
		}
		c.mu.Lock()
		t := c.find(name)
		var sum, lo, hi float64
		var n int
		var first, last time.Time
		for _, r := range t.readings {
			if r.at.Before(since) {
				continue
			}
			if n == 0 {
				lo, hi, first = r.temp, r.temp, r.at
			}
			lo, hi, sum, last = math.Min(lo, r.temp), math.Max(hi, r.temp), sum+r.temp, r.at
			n++
		}
		c.mu.Unlock()
		if n == 0 {
			return jsonResponse(404, map[string]string{"error": "no readings since " + since.Format(time.RFC3339)})
		}
		log.Printf("%s: getMaxMinReport since %s: %d readings", name, since.Format(time.RFC3339), n)
		return jsonResponse(200, map[string]any{
			"maxTemp": hi, "minTemp": lo, "avgTemp": math.Round(sum/float64(n)*100) / 100,
			"startTime": first.UTC().Format(time.RFC3339Nano), "endTime": last.UTC().Format(time.RFC3339Nano),
		})
	}
}
