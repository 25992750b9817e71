package main

import (
	"strings"
	"testing"
)

// TestServeEnvironment: the container image runs "dialtone serve" with the
// config path and node id from DIALTONE_CONFIG and DIALTONE_NODE; flags win.
func TestServeEnvironment(t *testing.T) {
	for _, tc := range []struct {
		name       string
		env        map[string]string
		args       []string
		wantErrHas string
	}{
		{"no node anywhere", nil, nil, "DIALTONE_NODE"},
		{"config from env", map[string]string{"DIALTONE_CONFIG": "/nonexistent/env.toml", "DIALTONE_NODE": "n1"}, nil, "/nonexistent/env.toml"},
		{"flag beats env", map[string]string{"DIALTONE_CONFIG": "/nonexistent/env.toml", "DIALTONE_NODE": "n1"}, []string{"--config", "/nonexistent/flag.toml"}, "/nonexistent/flag.toml"},
		{"node from env is checked", map[string]string{"DIALTONE_CONFIG": "../../cluster.example.toml", "DIALTONE_NODE": "n9"}, nil, "n9"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("DIALTONE_CONFIG", "")
			t.Setenv("DIALTONE_NODE", "")
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			root := newRoot()
			root.SetArgs(append([]string{"serve"}, tc.args...))
			err := root.Execute()
			if err == nil || !strings.Contains(err.Error(), tc.wantErrHas) {
				t.Fatalf("error = %v, want it to mention %q", err, tc.wantErrHas)
			}
		})
	}
}
