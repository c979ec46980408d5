// Command telemetry is a small device that enqueues a JSON reading every
// interval with the Ferry device SDK and prints connection changes and the
// backlog. Stop the hub while it runs to watch the backlog grow; start the
// hub again to watch it drain. See README.md.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"math"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/ferry-iot/ferry/device"
)

func main() {
	connStr := flag.String("connection-string", os.Getenv("FERRY_DEVICE_CONNECTION_STRING"),
		"device connection string (default $FERRY_DEVICE_CONNECTION_STRING)")
	store := flag.String("store", "telemetry.db", "local store file: unsent readings survive restarts here")
	ca := flag.String("ca", "", "PEM file of the hub's CA (default: the system roots)")
	interval := flag.Duration("interval", time.Second, "time between readings")
	flag.Parse()
	if *connStr == "" {
		log.Fatal("telemetry: give --connection-string or set FERRY_DEVICE_CONNECTION_STRING")
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	c, err := device.Start(ctx, device.Config{
		ConnectionString: *connStr,
		StorePath:        *store,
		CAFile:           *ca,
		OnStatus: func(s device.Status, err error) {
			if err != nil {
				log.Printf("status: %s: %v", s, err)
			} else {
				log.Printf("status: %s", s)
			}
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	if n, b := c.Pending(); n > 0 {
		log.Printf("resuming with %d readings (%d bytes) from an earlier run", n, b)
	}

	s := c.Stream("", "telemetry")
	tick := time.NewTicker(*interval)
	defer tick.Stop()
	for i := 0; ; i++ {
		select {
		case <-ctx.Done():
			n, _ := c.Pending()
			log.Printf("stopping; %d readings stay stored for the next run", n)
			return
		case now := <-tick.C:
			body, _ := json.Marshal(map[string]any{
				"n":       i,
				"time":    now.UTC().Format(time.RFC3339Nano),
				"celsius": math.Round((20+5*math.Sin(float64(i)/10))*100) / 100,
			})
			_, err := s.Enqueue(ctx, device.Message{Body: body,
				ContentType: "application/json", ContentEncoding: "utf-8"})
			if err != nil {
				if ctx.Err() != nil {
					continue
				}
				log.Fatal(err)
			}
			n, b := c.Pending()
			fmt.Printf("reading %d stored; pending %d (%d bytes)\n", i, n, b)
		}
	}
}
