package cli

import (
	"context"
	"flag"
	"fmt"
	"runtime"
	"runtime/debug"
)

// Version is Ferry's version, set at build time with
// -ldflags "-X github.com/ferry-iot/ferry/internal/cli.Version=v1.2.3".
// The hub reports it too (GET /api/v1/hub).
var Version = "dev"

// versionInfo is what "ferry version" prints.
type versionInfo struct {
	Version  string `json:"version"`
	Revision string `json:"revision,omitempty"` // VCS commit the binary was built from
	Go       string `json:"go"`
	Platform string `json:"platform"`
}

// buildVersion reads the version facts of the running binary.
func buildVersion() versionInfo {
	v := versionInfo{Version: Version, Go: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" {
				v.Revision = s.Value
			}
		}
	}
	return v
}

func versionNoun() *noun {
	return &noun{name: "version", summary: "print ferry's version", cmd: versionCommand()}
}

func versionCommand() *command {
	return &command{
		path: "version", nargs: 0,
		summary: "print ferry's version",
		setup: func(fs *flag.FlagSet) func(context.Context, *env, []string) error {
			asJSON := fs.Bool("json", false, "print the version as JSON")
			return func(_ context.Context, e *env, _ []string) error {
				v := buildVersion()
				if *asJSON {
					return writeJSON(e.stdout, v)
				}
				s := "ferry " + v.Version
				if v.Revision != "" {
					s += " (" + v.Revision[:min(12, len(v.Revision))] + ")"
				}
				_, err := fmt.Fprintf(e.stdout, "%s %s %s\n", s, v.Go, v.Platform)
				return err
			}
		},
	}
}
