package cli

import (
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/ferry-iot/ferry/internal/api"
	"github.com/ferry-iot/ferry/internal/fault"
)

// Where the hub connection comes from when no flag names it.
const (
	envHub          = "FERRY_HUB"
	envData         = "FERRY_DATA"
	envCA           = "FERRY_CA"
	defaultDataDir  = "ferry-data"
	ownerConnFile   = "owner-connection-string" // written by ferry serve into the data directory
	dataDirCAFile   = "pki/ca.pem"              // the hub's CA, relative to the data directory
	noHubConnection = "no hub connection: pass --hub, set " + envHub +
		", or run in the directory where `ferry serve` keeps ./ferry-data"
)

// hubFlags are the flags every verb that talks to the hub declares.
type hubFlags struct {
	hub  string // --hub: service connection string
	data string // --data: the hub's data directory
	ca   string // --ca: PEM file of the CA to trust
}

// register declares the flags on fs.
func (h *hubFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&h.hub, "hub", "", "connect with the service connection string `CONNSTR` (default $"+envHub+", then <data>/"+ownerConnFile+")")
	fs.StringVar(&h.data, "data", "", "the hub's data `DIR`, where the owner connection string and CA are read (default $"+envData+", then ./"+defaultDataDir+")")
	fs.StringVar(&h.ca, "ca", "", "PEM `FILE` of the CA to trust (default $"+envCA+", then <data>/"+dataDirCAFile+" if it exists, then the system roots)")
}

// hubTarget is a resolved hub connection.
type hubTarget struct {
	connString string // service connection string
	source     string // where connString came from, for error messages
	caFile     string // CA to trust; "" means the system roots
}

// resolve finds the hub connection: --hub, else $FERRY_HUB, else the owner
// connection string in the data directory; and the CA: --ca, else
// $FERRY_CA, else the data directory's CA when it exists.
func (h *hubFlags) resolve(getenv func(string) string) (hubTarget, error) {
	var t hubTarget
	data := firstOf(h.data, getenv(envData), defaultDataDir)
	switch {
	case h.hub != "":
		t.connString, t.source = h.hub, "--hub"
	case getenv(envHub) != "":
		t.connString, t.source = getenv(envHub), envHub
	default:
		path := filepath.Join(data, ownerConnFile)
		b, err := os.ReadFile(path)
		if errors.Is(err, fs.ErrNotExist) {
			return t, fault.New(fault.Invalid, "", 0, "%s (%s does not exist)", noHubConnection, path)
		}
		if err != nil {
			return t, fmt.Errorf("reading the hub connection: %w", err)
		}
		t.connString, t.source = strings.TrimSpace(string(b)), path
	}
	t.connString = strings.TrimSpace(t.connString)

	switch {
	case h.ca != "":
		t.caFile = h.ca
	case getenv(envCA) != "":
		t.caFile = getenv(envCA)
	default:
		path := filepath.Join(data, dataDirCAFile)
		if _, err := os.Stat(path); err == nil {
			t.caFile = path
		}
	}
	return t, nil
}

// client resolves the hub connection and returns a client for it.
func (e *env) client(h *hubFlags) (*api.Client, error) {
	t, err := h.resolve(e.getenv)
	if err != nil {
		return nil, err
	}
	c, err := api.NewClient(t.connString, api.ClientOptions{
		CAFile:    t.caFile,
		UserAgent: "ferry/" + Version,
		Now:       e.now,
	})
	if err != nil {
		// Name the source: a stale FERRY_HUB is a common surprise. The
		// message names keys, never the secret values.
		return nil, fmt.Errorf("%w (from %s)", err, t.source)
	}
	return c, nil
}

// firstOf returns the first non-empty string.
func firstOf(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}
