package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log"
	"strconv"
	"sync"
	"time"

	"github.com/ferry-iot/ferry/device"
)

// ModelID is the Plug and Play model the device implements (model.json).
const ModelID = "dtmi:ferry:example:GravityLed;1"

// hubLink is what ties the LED server to a Ferry hub: duty cycles as
// telemetry, the connection limit as a writable property and a direct
// method, the number of connected controllers as a reported property.
type hubLink struct {
	srv    *Server
	client *device.Client

	mu     sync.Mutex
	ackedV int64 // guarded by mu: desired $version of the last maxControllers acknowledged
	lastV  int64 // guarded by mu: newest desired $version seen
}

// config returns the SDK configuration's callbacks and methods.
func (h *hubLink) config(cfg device.Config) device.Config {
	cfg.ModelID = ModelID
	cfg.OnDesired = h.onDesired
	cfg.Methods = map[string]device.MethodHandler{"setMaxControllers": h.setMaxControllers}
	return cfg
}

// reportStart reports the starting limit as set by the device (ac 203),
// unless a desired value is acknowledged meanwhile.
func (h *hubLink) reportStart(ctx context.Context) error {
	h.mu.Lock() // held while reporting, so an acknowledgement is never overwritten
	defer h.mu.Unlock()
	if h.ackedV != 0 {
		return nil
	}
	return h.report(ctx, map[string]any{
		"maxControllers":       ack(h.srv.MaxControllers(), 203, h.lastV, "the device's starting value"),
		"connectedControllers": h.srv.Controllers(),
	})
}

func ack(value any, code int, version int64, desc string) map[string]any {
	return map[string]any{"value": value, "ac": code, "av": version, "ad": desc}
}

func (h *hubLink) report(ctx context.Context, patch map[string]any) error {
	if err := h.client.UpdateReported(ctx, patch); err != nil {
		return fmt.Errorf("gravityled: report properties: %w", err)
	}
	return nil
}

// onDesired applies a desired maxControllers and acknowledges it: ac 200
// with the desired $version, or ac 400 for a value out of range.
func (h *hubLink) onDesired(d device.TwinProperties) {
	var doc map[string]json.RawMessage
	if err := json.Unmarshal(d.JSON, &doc); err != nil {
		return
	}
	h.mu.Lock() // held while reporting, so acknowledgements go out in order
	defer h.mu.Unlock()
	h.lastV = d.Version
	raw, ok := doc["maxControllers"]
	if !ok || h.ackedV == d.Version {
		return
	}
	h.ackedV = d.Version

	var a map[string]any
	n, err := strconv.Atoi(string(raw))
	if err == nil {
		err = h.srv.SetMaxControllers(n)
	}
	if err != nil {
		a = ack(json.RawMessage(raw), 400, d.Version, "maxControllers must be an integer between 0 and "+strconv.Itoa(MaxControllersLimit))
	} else {
		a = ack(n, 200, d.Version, "connection limit applied")
	}
	log.Printf("maxControllers %s (desired $version %d): ac %v", raw, d.Version, a["ac"])
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := h.report(ctx, map[string]any{"maxControllers": a}); err != nil {
		log.Print(err)
	}
}

func jsonResponse(status int, v any) device.MethodResponse {
	b, _ := json.Marshal(v)
	return device.MethodResponse{Status: status, Payload: b}
}

// setMaxControllers is the direct method: the payload is the new limit,
// the answer {"maxControllers": n}. The reported property follows with
// ac 203 (set by the device, not by a desired value).
func (h *hubLink) setMaxControllers(ctx context.Context, req device.MethodRequest) device.MethodResponse {
	h.mu.Lock() // held while reporting, so reports go out in the order the limit changed
	defer h.mu.Unlock()
	n, err := strconv.Atoi(string(req.Payload))
	if err == nil {
		err = h.srv.SetMaxControllers(n)
	}
	if err != nil {
		return jsonResponse(400, map[string]string{"error": "the payload must be an integer between 0 and " + strconv.Itoa(MaxControllersLimit)})
	}
	if err := h.report(ctx, map[string]any{"maxControllers": ack(n, 203, h.lastV, "set by the setMaxControllers command")}); err != nil {
		log.Print(err)
	}
	return jsonResponse(200, map[string]int{"maxControllers": n})
}

// controllersChanged hands the number of connected controllers to the
// reporter without blocking the server (only the newest count matters).
func controllersChanged(ch chan int) func(int) {
	return func(n int) {
		for {
			select {
			case ch <- n:
				return
			default:
				select { // full: drop the stale count and retry
				case <-ch:
				default:
				}
			}
		}
	}
}

// sendLoop reports what changed until ctx ends: the duty cycles as
// telemetry, at most once per period and only when they changed, and the
// number of connected controllers as a reported property.
func (h *hubLink) sendLoop(ctx context.Context, period time.Duration, counts <-chan int) {
	tick := time.NewTicker(period)
	defer tick.Stop()
	var sent uint64
	s := h.client.Stream("", "")
	for {
		select {
		case <-ctx.Done():
			return
		case n := <-counts:
			if err := h.report(ctx, map[string]any{"connectedControllers": n}); err != nil && ctx.Err() == nil {
				log.Print(err)
			}
		case <-tick.C:
			d, v := h.srv.LEDs.Get()
			if v == sent {
				continue
			}
			sent = v
			body, _ := json.Marshal(d)
			if _, err := s.Enqueue(ctx, device.Message{Body: body, ContentType: "application/json", ContentEncoding: "utf-8"}); err != nil && ctx.Err() == nil {
				log.Printf("telemetry: %v", err)
			}
		}
	}
}
