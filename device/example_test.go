package device_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"time"

	"github.com/ferry-iot/ferry/device"
)

// Start a client and send one message, waiting for the hub to store it.
func Example() {
	ctx := context.Background()
	c, err := device.Start(ctx, device.Config{
		ConnectionString: os.Getenv("FERRY_DEVICE_CONNECTION_STRING"),
		CAFile:           os.Getenv("FERRY_CA_FILE"), // the hub's CA; empty: the system's roots
		StorePath:        storePath(),                // e.g. /var/lib/sensor/ferry.db
	})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	sendCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	err = c.Stream("", "temperature").Send(sendCtx, device.Message{
		Body:            []byte(`{"celsius":21.5}`),
		ContentType:     "application/json",
		ContentEncoding: "utf-8",
	})
	if err != nil {
		// Only an enqueue error means the message was lost; after a timeout
		// it is still stored and will be sent.
		log.Fatal(err)
	}
	fmt.Println("stored by the hub")
	// Output: stored by the hub
}

// Enqueue readings while offline or online, then wait until the hub has
// acknowledged all of them.
func ExampleClient_Flush() {
	ctx := context.Background()
	c, err := device.Start(ctx, device.Config{
		ConnectionString: os.Getenv("FERRY_DEVICE_CONNECTION_STRING"),
		CAFile:           os.Getenv("FERRY_CA_FILE"),
		StorePath:        storePath(),
		OnStatus: func(s device.Status, err error) {
			log.Printf("connection %s (%v)", s, err)
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	s := c.Stream("", "") // the default stream
	for i := range 10 {
		if _, err := s.Enqueue(ctx, device.Message{Body: []byte{byte('0' + i)}}); err != nil {
			log.Fatal(err) // not stored
		}
	}
	flushCtx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := c.Flush(flushCtx); err != nil {
		n, _ := c.Pending()
		log.Printf("%d messages still pending, kept for the next start: %v", n, err)
	}
	n, _ := c.Pending()
	fmt.Println(n, "pending")
	// Output: 0 pending
}
