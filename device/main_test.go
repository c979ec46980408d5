package device_test

import (
	"context"
	"encoding/base64"
	"fmt"
	"os"
	"testing"

	"github.com/ferry-iot/ferry/internal/hubtest"
	"github.com/ferry-iot/ferry/internal/registry"
)

// TestMain starts one hub for the package's examples, which read their
// connection string and CA file from the environment as a device program
// would, so that `go test` runs them against a real hub.
func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	dir, err := os.MkdirTemp("", "ferry-examples-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	h, stop, err := hubtest.Launch(dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, "examples hub:", err)
		return 1
	}
	defer stop()
	d, err := h.Client.CreateDevice(context.Background(), registry.Device{DeviceID: "example-sensor"})
	if err != nil {
		fmt.Fprintln(os.Stderr, "examples device:", err)
		return 1
	}
	key, _ := base64.StdEncoding.DecodeString(d.Authentication.SymmetricKey.PrimaryKey)
	os.Setenv("FERRY_DEVICE_CONNECTION_STRING", fmt.Sprintf("HostName=%s;DeviceId=%s;SharedAccessKey=%s",
		h.DeviceHost(), d.DeviceID, base64.StdEncoding.EncodeToString(key)))
	os.Setenv("FERRY_CA_FILE", h.CAFile())
	os.Setenv("FERRY_SERVICE_CONNECTION_STRING", h.OwnerConnectionString())
	os.Setenv("FERRY_EXAMPLE_DIR", dir) // removed at the end
	return m.Run()
}
