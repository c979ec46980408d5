// Command ferry is a self-hosted IoT hub compatible with Azure IoT Hub's
// device protocol and service API, and the CLI that manages it. Run
// "ferry help" for its commands.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/ferry-iot/ferry/internal/cli"
)

func main() {
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
