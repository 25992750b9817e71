package cluster

import (
	"context"
	"log"
	"log/slog"
	"strings"

	"github.com/hashicorp/go-hclog"
)

// levelWriter turns the "[LEVEL] message" lines that memberlist and
// hclog's standard-logger bridge print into slog records at that level.
type levelWriter struct{ l *slog.Logger }

var levelPrefixes = []struct {
	prefix string
	level  slog.Level
}{
	{"[ERR]", slog.LevelError}, {"[ERROR]", slog.LevelError},
	{"[WARN]", slog.LevelWarn},
	{"[INFO]", slog.LevelInfo},
	{"[DEBUG]", slog.LevelDebug}, {"[TRACE]", slog.LevelDebug},
}

func (w levelWriter) Write(p []byte) (int, error) {
	msg := strings.TrimSpace(string(p))
	level := slog.LevelInfo
	for _, lp := range levelPrefixes {
		if strings.HasPrefix(msg, lp.prefix) {
			level, msg = lp.level, strings.TrimSpace(msg[len(lp.prefix):])
			break
		}
	}
	w.l.Log(context.Background(), level, msg)
	return len(p), nil
}

// stdLogger adapts slog for libraries that take a *log.Logger (memberlist).
func stdLogger(l *slog.Logger, component string) *log.Logger {
	return log.New(levelWriter{l.With("component", component)}, "", 0)
}

// hcLogger adapts slog for libraries that take an hclog.Logger (raft).
func hcLogger(l *slog.Logger, component string, level hclog.Level) hclog.Logger {
	return hclog.FromStandardLogger(stdLogger(l, component), &hclog.LoggerOptions{
		Name:  component,
		Level: level,
	})
}
