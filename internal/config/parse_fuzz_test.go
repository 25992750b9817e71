package config

import (
	"strings"
	"testing"
)

// FuzzParse checks that no configuration text crashes the loader and that
// whatever it accepts passes validation.
func FuzzParse(f *testing.F) {
	f.Add(threeNodes)
	f.Add("[cluster]\nbootstrap_expect = 3\n[[node]]\nid=\"a\"\nhttp=\"h:1\"\ngrpc=\"h:2\"\nraft=\"h:3\"\ngossip=\"h:4\"\n")
	f.Add("[cluster]\nheartbeat_timeout = \"1h\"\n")
	f.Fuzz(func(t *testing.T, text string) {
		cfg, err := Parse(text)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "config: ") {
				t.Fatalf("error without prefix: %v", err)
			}
			return
		}
		if err := cfg.Validate(); err != nil {
			t.Fatalf("accepted config fails validation: %v", err)
		}
		for _, n := range cfg.Nodes {
			if _, err := cfg.Node(n.ID); err != nil {
				t.Fatal(err)
			}
		}
	})
}
