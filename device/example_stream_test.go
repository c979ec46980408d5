package device_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/ferry-iot/ferry/device"
)

// storePath returns a fresh store file for an example; a device program
// keeps one fixed path, such as /var/lib/sensor/ferry.db.
func storePath() string {
	dir, err := os.MkdirTemp(os.Getenv("FERRY_EXAMPLE_DIR"), "ferry-example-")
	if err != nil {
		log.Fatal(err)
	}
	return filepath.Join(dir, "ferry.db")
}

// startExample starts a client for the example device.
func startExample(opts ...func(*device.Config)) *device.Client {
	cfg := device.Config{
		ConnectionString: os.Getenv("FERRY_DEVICE_CONNECTION_STRING"),
		CAFile:           os.Getenv("FERRY_CA_FILE"),
		StorePath:        storePath(),
	}
	for _, o := range opts {
		o(&cfg)
	}
	c, err := device.Start(context.Background(), cfg)
	if err != nil {
		log.Fatal(err)
	}
	return c
}

// Start works without a network: messages are stored and wait for the hub.
func ExampleStart_offline() {
	c, err := device.Start(context.Background(), device.Config{
		// Nothing answers at this host; Start does not care.
		ConnectionString: "HostName=hub.invalid;DeviceId=sensor-1;SharedAccessKey=c2VjcmV0",
		StorePath:        storePath(),
	})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	for _, reading := range []string{"20.5", "20.7", "21.0"} {
		if _, err := c.Stream("", "temperature").Enqueue(context.Background(), device.Message{Body: []byte(reading)}); err != nil {
			log.Fatal(err)
		}
	}
	n, bytes := c.Pending()
	fmt.Println(n, "messages stored, waiting for the hub:", bytes > 0)
	// Output: 3 messages stored, waiting for the hub: true
}

// A producer with several readings at hand stores them in one durable
// write: far faster than one Enqueue each.
func ExampleStream_EnqueueBatch() {
	c := startExample()
	defer c.Close()
	batch := make([]device.Message, 100)
	for i := range batch {
		batch[i] = device.Message{Body: fmt.Appendf(nil, `{"sample":%d}`, i), ContentType: "application/json"}
	}
	infos, err := c.Stream("", "vibration").EnqueueBatch(context.Background(), batch)
	if err != nil {
		log.Fatal(err) // none of them was stored
	}
	fmt.Println(len(infos), "stored; sequence numbers consecutive:", infos[99].Seq-infos[0].Seq == 99)
	// Output: 100 stored; sequence numbers consecutive: true
}

// Bodies over the hub's limit are split into chunks automatically; the
// hub's readers put them together by "message-id" and "chunk-id".
func ExampleWithChunkSize() {
	c := startExample()
	defer c.Close()
	image := make([]byte, 600_000) // a camera frame, say
	s := c.Stream("", "frames")    // default chunk size: 250,000 bytes
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.Send(ctx, device.Message{Body: image, ID: "frame-42"}); err != nil {
		log.Fatal(err)
	}
	fmt.Println("all chunks stored by the hub")

	strict := c.Stream("", "frames", device.WithChunkSize(0)) // no chunking
	_, err := strict.Enqueue(ctx, device.Message{Body: image})
	fmt.Println(strings.Contains(err.Error(), "chunking is off"))
	// Output:
	// all chunks stored by the hub
	// true
}

// Compression is applied before a message is stored, and only when it
// makes the body smaller; the hub sees content encoding "gzip".
func ExampleWithCompression() {
	c := startExample()
	defer c.Close()
	logs := c.Stream("", "logs", device.WithCompression(device.Fastest))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	line := strings.Repeat("2026-11-23T05:00:00Z INFO pump 3 pressure nominal\n", 100)
	if err := logs.Send(ctx, device.Message{Body: []byte(line), ContentType: "text/plain"}); err != nil {
		log.Fatal(err)
	}
	fmt.Println("sent compressed")
	// Output: sent compressed
}

// Messages of a batch carry its id; a completion message closes it.
func ExampleStream_CompleteBatch() {
	c := startExample()
	defer c.Close()
	ctx := context.Background()
	s := c.Stream("", "recordings")
	for i := range 3 {
		if _, err := s.Enqueue(ctx, device.Message{Body: []byte{byte(i)}, BatchID: "shift-2026-11-23"}); err != nil {
			log.Fatal(err)
		}
	}
	if _, err := s.CompleteBatch(ctx, "shift-2026-11-23"); err != nil {
		log.Fatal(err)
	}
	flushCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := c.Flush(flushCtx); err != nil {
		log.Fatal(err)
	}
	fmt.Println("batch sent and completed")
	// Output: batch sent and completed
}

// Over a WebSocket on port 443, for networks that let only HTTPS out.
func ExampleConfig_webSocket() {
	cfg := device.Config{
		ConnectionString: "HostName=hub.example.com;DeviceId=sensor-1;SharedAccessKey=c2VjcmV0",
		StorePath:        "/var/lib/sensor/ferry.db",
		WebSocket:        true, // wss://hub.example.com:443/$iothub/websocket
	}
	_ = cfg
}

// A device without credentials asks for them with a provisioning token;
// an operator approves it (`ferry provision list --pending`, then
// `ferry provision approve OPERATION`), comparing the verification code
// the device shows. Later starts use the stored credentials, offline too.
func ExampleProvisioning() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Hour) // how long to wait for the operator
	defer cancel()
	c, err := device.Start(ctx, device.Config{
		Provisioning: &device.Provisioning{
			Token:    os.Getenv("FERRY_PROVISIONING_TOKEN"),
			URL:      "https://hub.example:8080",
			DeviceID: "line3-sensor", // a wish: the operator may choose another
			OnOperation: func(op device.ProvisioningOperation) {
				fmt.Printf("ask the operator to approve code %s\n", op.VerificationCode)
			},
		},
		StorePath: "/var/lib/sensor/ferry.db",
	})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	fmt.Println("running as", c.DeviceID())
}

// A fleet shares one enrollment group key; each device derives its own key
// from it and its registration id, and the service assigns it a hub.
func ExampleDPS() {
	c, err := device.Start(context.Background(), device.Config{
		DPS: &device.DPS{
			Host:           "hub.example:8883",
			IDScope:        "0ne0000A1B2",
			RegistrationID: "thermostat-0042",
			GroupKey:       os.Getenv("FERRY_GROUP_KEY"),
			ModelID:        "dtmi:com:example:Thermostat;1",
		},
		StorePath: "/var/lib/thermostat/ferry.db",
	})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
}
