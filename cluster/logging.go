package cluster

import (
	"log"
	"log/slog"

	"github.com/hashicorp/go-hclog"
)

// stdLogger adapts slog for libraries that take a *log.Logger (memberlist).
func stdLogger(l *slog.Logger, component string) *log.Logger {
	return slog.NewLogLogger(l.With("component", component).Handler(), slog.LevelInfo)
}

// hcLogger adapts slog for libraries that take an hclog.Logger (raft).
func hcLogger(l *slog.Logger, component string, level hclog.Level) hclog.Logger {
	return hclog.FromStandardLogger(stdLogger(l, component), &hclog.LoggerOptions{
		Name:  component,
		Level: level,
	})
}
