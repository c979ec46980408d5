package cli

import (
	"flag"
	"testing"
	"time"
)

func TestProvisionVerbsHaveHelp(t *testing.T) {
	for _, n := range []*noun{provisionNoun(), provisionTokenNoun(), enrollmentGroupNoun(), enrollmentNoun()} {
		for _, c := range n.verbs {
			fs := newFlagSet(c)
			c.setup(fs)
			fs.VisitAll(func(f *flag.Flag) {
				if f.Usage == "" {
					t.Errorf("ferry %s --%s has no usage text", c.path, f.Name)
				}
			})
			if c.summary == "" || c.help == "" {
				t.Errorf("ferry %s lacks a summary or help", c.path)
			}
		}
	}
}

func TestParseExpiry(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for in, want := range map[string]time.Time{
		"30d":                  now.Add(30 * 24 * time.Hour),
		"12h":                  now.Add(12 * time.Hour),
		"90m":                  now.Add(90 * time.Minute),
		"2026-12-31T00:00:00Z": time.Date(2026, 12, 31, 0, 0, 0, 0, time.UTC),
	} {
		got, err := parseExpiry(in, now)
		if err != nil || !got.Equal(want) {
			t.Errorf("parseExpiry(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "0d", "-1h", "xd", "soon", "1y"} {
		if _, err := parseExpiry(in, now); err == nil {
			t.Errorf("parseExpiry(%q) succeeded", in)
		}
	}
}
