package cluster

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
)

func TestLevelWriterMapsLibraryLevels(t *testing.T) {
	for _, tc := range []struct{ line, want string }{
		{"[ERR] memberlist: failed to send", "level=ERROR msg=\"memberlist: failed to send\""},
		{"[WARN]  raft: heartbeat timeout", "level=WARN msg=\"raft: heartbeat timeout\""},
		{"[DEBUG] memberlist: probe", ""},
		{"plain line", "level=INFO msg=\"plain line\""},
	} {
		var buf bytes.Buffer
		l := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo}))
		stdLogger(l, "x").Print(tc.line)
		got := buf.String()
		if tc.want == "" {
			if got != "" {
				t.Errorf("%q: logged %q below the level", tc.line, got)
			}
			continue
		}
		if !strings.Contains(got, tc.want) || !strings.Contains(got, "component=x") {
			t.Errorf("%q: got %q, want %q", tc.line, got, tc.want)
		}
	}
}
