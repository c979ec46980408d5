package device_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log"
	"os"
	"time"

	"github.com/ferry-iot/ferry/device"
)

// Follow the desired properties (also offline, from the last known
// document) and report the applied state back. Reported properties are
// stored first and sent whenever the hub is reachable.
func ExampleClient_UpdateReported() {
	type settings struct {
		IntervalSeconds int `json:"intervalSeconds"`
	}
	applied := make(chan settings, 1)
	c, err := device.Start(context.Background(), device.Config{
		ConnectionString: os.Getenv("FERRY_DEVICE_CONNECTION_STRING"),
		CAFile:           os.Getenv("FERRY_CA_FILE"),
		StorePath:        storePath(),
		OnDesired: func(d device.TwinProperties) {
			var s settings
			if err := json.Unmarshal(d.JSON, &s); err != nil || s.IntervalSeconds == 0 {
				return // not (yet) settings of ours
			}
			select { // keep only the newest settings
			case <-applied:
			default:
			}
			applied <- s
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	// Elsewhere an operator sets the desired properties
	// (ferry twin update example-sensor --desired '{"intervalSeconds":30}').
	operator.setDesired(`{"intervalSeconds":30}`)

	s := <-applied
	// ... apply s ...
	err = c.UpdateReported(context.Background(), map[string]any{
		"intervalSeconds": s.IntervalSeconds,
		"lastError":       nil, // null deletes the key at the hub
	})
	if err != nil {
		log.Fatal(err) // not stored: an invalid patch or a closed client
	}
	for c.PendingReported() > 0 { // stored; sent as soon as the hub is reachable
		time.Sleep(10 * time.Millisecond)
	}
	fmt.Println("applied and reported interval", s.IntervalSeconds)
	// Output: applied and reported interval 30
}

// Answer direct methods. Each call runs on its own goroutine; an unknown
// method gets status 404 and a panic status 500.
func ExampleClient_HandleMethod() {
	c, err := device.Start(context.Background(), device.Config{
		ConnectionString: os.Getenv("FERRY_DEVICE_CONNECTION_STRING"),
		CAFile:           os.Getenv("FERRY_CA_FILE"),
		StorePath:        storePath(),
		// Handlers in the Config are in place before the first call can come.
		Methods: map[string]device.MethodHandler{
			"reboot": func(ctx context.Context, req device.MethodRequest) device.MethodResponse {
				var args struct {
					DelaySeconds int `json:"delaySeconds"`
				}
				if err := json.Unmarshal(req.Payload, &args); err != nil {
					return device.MethodResponse{Status: 400, Payload: []byte(`{"error":"bad arguments"}`)}
				}
				// ... schedule the reboot ...
				return device.MethodResponse{Status: 200, Payload: fmt.Appendf(nil, `{"inSeconds":%d}`, args.DelaySeconds)}
			},
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	// Handlers can change while the client runs; this one takes bytes.
	c.HandleMethod("uploadConfig", func(ctx context.Context, req device.MethodRequest) device.MethodResponse {
		if req.ContentType != "application/octet-stream" {
			return device.MethodResponse{Status: 415}
		}
		// ... store req.Payload ...
		return device.MethodResponse{Status: 204}
	})

	// Elsewhere: ferry invoke example-sensor reboot --payload '{"delaySeconds":5}'
	fmt.Println(operator.invoke("reboot", `{"delaySeconds":5}`))
	fmt.Println(operator.invoke("selfDestruct", `{}`))
	// Output:
	// 200 {"inSeconds":5}
	// 404 {"errorCode":404,"message":"method \"selfDestruct\" is not implemented by this device"}
}

// Handle cloud-to-device messages. Each one is stored on the device before
// the hub hears it arrived, so a crash does not lose it; it stays in the
// device's inbox until the handler completes or rejects it.
func ExampleC2DHandler() {
	got := make(chan string, 1)
	c, err := device.Start(context.Background(), device.Config{
		ConnectionString: os.Getenv("FERRY_DEVICE_CONNECTION_STRING"),
		CAFile:           os.Getenv("FERRY_CA_FILE"),
		StorePath:        storePath(),
		OnC2D: func(ctx context.Context, m device.C2DMessage) device.Disposition {
			if m.ContentType != "application/json" {
				return device.Reject // never handled again
			}
			if err := apply(ctx, m.Body); err != nil {
				log.Printf("message %s, delivery %d: %v", m.ID, m.DeliveryCount, err)
				return device.Abandon // handed over again later, up to MaxC2DDeliveries times
			}
			got <- string(m.Body)
			return device.Complete
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	// Elsewhere: ferry c2d send example-sensor '{"led":"on"}' --content-type application/json
	operator.sendC2D(`{"led":"on"}`)
	fmt.Println("received", <-got)
	// Output: received {"led":"on"}
}

// apply stands for the application's work on a command.
func apply(ctx context.Context, body []byte) error { return ctx.Err() }
