// Command thermostat is an IoT Plug and Play temperature controller built
// on Ferry's device SDK: a Go port of Microsoft's temperature controller
// sample (seed 003). It implements the model
// dtmi:ferry:example:TemperatureController;1 in models/: two thermostat
// components (thermostat1, thermostat2) and a deviceInformation component.
//
//   - telemetry per component every --interval: {"temperature": ...} from
//     each thermostat, {"workingSet": ...} from the default component;
//   - reported properties: serialNumber, each thermostat's
//     maxTempSinceLastReboot, the deviceInformation facts;
//   - the writable property targetTemperature of each thermostat,
//     acknowledged as Plug and Play asks ({"value", "ac", "av", "ad"});
//   - the commands reboot (clears the statistics after a delay) and
//     thermostat1*getMaxMinReport / thermostat2*getMaxMinReport (the
//     highest, lowest and average temperature since a time).
//
// It connects with a connection string, or registers through DPS with a
// symmetric-key enrollment group and its model id. See README.md.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/ferry-iot/ferry/device"
)

// ModelID is the model the device implements.
const ModelID = "dtmi:ferry:example:TemperatureController;1"

func main() {
	connStr := flag.String("connection-string", os.Getenv("FERRY_DEVICE_CONNECTION_STRING"),
		"device connection string (default $FERRY_DEVICE_CONNECTION_STRING)")
	dpsHost := flag.String("dps-host", "", "register through DPS at this `HOST:PORT` (a Ferry hub's MQTT address) instead of a connection string")
	idScope := flag.String("id-scope", "", "the DPS id scope (ferry provision dps)")
	regID := flag.String("registration-id", "", "the DPS registration id (default: the host name)")
	groupKey := flag.String("group-key", os.Getenv("FERRY_DPS_GROUP_KEY"), "the symmetric-key enrollment group's `KEY` (default $FERRY_DPS_GROUP_KEY)")
	store := flag.String("store", "thermostat.db", "local store file: unsent telemetry and reported properties survive restarts here")
	ca := flag.String("ca", "", "PEM file of the hub's CA (default: the system roots)")
	interval := flag.Duration("interval", 5*time.Second, "time between telemetry messages")
	serial := flag.String("serial", "ferry-thermostat-0001", "the serial number to report")
	flag.Parse()

	cfg := device.Config{StorePath: *store, CAFile: *ca, ModelID: ModelID}
	switch {
	case *dpsHost != "":
		if *idScope == "" || *groupKey == "" {
			log.Fatal("thermostat: DPS needs --id-scope and --group-key")
		}
		if *regID == "" {
			h, _ := os.Hostname()
			*regID = h
		}
		cfg.DPS = &device.DPS{Host: *dpsHost, IDScope: *idScope, RegistrationID: *regID, GroupKey: *groupKey, ModelID: ModelID}
	case *connStr != "":
		cfg.ConnectionString = *connStr
	default:
		log.Fatal("thermostat: give --connection-string (or $FERRY_DEVICE_CONNECTION_STRING), or --dps-host, --id-scope and --group-key")
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, cfg, *interval, *serial); err != nil {
		log.Fatal(err)
	}
}

func run(ctx context.Context, cfg device.Config, interval time.Duration, serial string) error {
	ctl := newController(serial, time.Now)
	cfg.OnStatus = func(s device.Status, err error) {
		if err != nil {
			log.Printf("status: %s: %v", s, err)
		} else {
			log.Printf("status: %s", s)
		}
	}
	cfg.OnDesired = ctl.onDesired
	cfg.Methods = ctl.methods()
	c, err := device.Start(ctx, cfg)
	if err != nil {
		return fmt.Errorf("thermostat: %w", err)
	}
	defer c.Close()
	ctl.client = c
	log.Printf("device %s implements %s", c.DeviceID(), ModelID)
	if err := ctl.reportStart(ctx); err != nil {
		return err
	}
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		if err := ctl.sendTelemetry(ctx); err != nil && ctx.Err() == nil {
			log.Printf("telemetry: %v", err)
		}
		select {
		case <-ctx.Done():
			log.Printf("stopping: flushing what is queued")
			fctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = c.Flush(fctx)
			return nil
		case <-tick.C:
		}
	}
}
