// Command ferry is a self-hosted IoT hub compatible with Azure IoT Hub's
// device protocol and service API, and the CLI that manages it. Run
// "ferry help" for its commands.
package main

import (
	"context"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/ferry-iot/ferry/internal/cli"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "serve" {
		smallStacks()
	}
	// The first SIGINT or SIGTERM cancels ctx so commands stop cleanly (the
	// hub shuts down, monitor commits its position); stop() then restores
	// the default handling, so a second ctrl-c kills at once.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		<-ctx.Done()
		stop()
	}()
	os.Exit(cli.Main(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

// smallStacks restarts the process with GODEBUG=adaptivestackstart=0 unless
// it is set. By default Go starts new goroutines with the average stack size
// seen at the last GC; the hub's few deep goroutines (NATS, SQLite) then make
// every MQTT connection's goroutines start large, and memory per idle
// connection is what a hub of many devices pays for. The runtime reads this
// setting only at start-up, hence the exec.
func smallStacks() {
	godebug := os.Getenv("GODEBUG")
	if strings.Contains(godebug, "adaptivestackstart=") {
		return
	}
	self, err := os.Executable()
	if err != nil {
		return
	}
	if godebug != "" {
		godebug += ","
	}
	env := append(os.Environ(), "GODEBUG="+godebug+"adaptivestackstart=0")
	_ = syscall.Exec(self, os.Args, env) // on failure, run as we are
}
