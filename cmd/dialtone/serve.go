package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"runtime/pprof"
	"syscall"
	"time"

	gometrics "github.com/hashicorp/go-metrics"
	gmprom "github.com/hashicorp/go-metrics/prometheus"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/spf13/cobra"

	"github.com/seed-7bfc04c2/dialtone/internal/config"
	"github.com/seed-7bfc04c2/dialtone/internal/node"
)

func newServe() *cobra.Command {
	var (
		cfgPath, nodeID, dataDir, logLevel, cpuProfile, sendLogPath string
	)
	cmd := &cobra.Command{
		Use:   "serve --config FILE --node ID",
		Short: "Run one node of the cluster described by a TOML config",
		Long: `serve runs one node of the cluster the TOML file describes. The config
path and the node id also come from the environment (DIALTONE_CONFIG,
DIALTONE_NODE), so a container image can run "dialtone serve" unchanged on
every node; a flag wins over the environment.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if nodeID == "" {
				return errors.New("--node (or DIALTONE_NODE): the id of this node's [[node]] block is required")
			}
			cfg, err := config.Load(cfgPath)
			if err != nil {
				return err
			}
			if dataDir != "" {
				cfg.Cluster.DataDir = dataDir
			}
			if logLevel != "" {
				cfg.Log.Level = logLevel
			}
			if err := cfg.Validate(); err != nil {
				return err
			}
			if _, err := cfg.Node(nodeID); err != nil {
				return err
			}
			if cpuProfile != "" {
				// For benchmarks (build/bench --cpuprofile): written at
				// a clean shutdown.
				f, err := os.Create(cpuProfile)
				if err != nil {
					return fmt.Errorf("--cpuprofile: %w", err)
				}
				defer f.Close()
				if err := pprof.StartCPUProfile(f); err != nil {
					return fmt.Errorf("--cpuprofile: %w", err)
				}
				defer pprof.StopCPUProfile()
			}
			var sl *sendLog
			if sendLogPath != "" {
				if sl, err = openSendLog(sendLogPath); err != nil {
					return fmt.Errorf("--send-log: %w", err)
				}
				defer sl.Close()
			}
			return serve(cfg, nodeID, sl)
		},
	}
	cmd.Flags().StringVar(&cfgPath, "config", envOr("DIALTONE_CONFIG", "cluster.example.toml"), "cluster configuration file (env DIALTONE_CONFIG)")
	cmd.Flags().StringVar(&nodeID, "node", os.Getenv("DIALTONE_NODE"), "id of this node's [[node]] block (required; env DIALTONE_NODE)")
	cmd.Flags().StringVar(&dataDir, "data-dir", "", "override cluster.data_dir")
	cmd.Flags().StringVar(&logLevel, "log-level", "", "override log.level (debug, info, warn, error)")
	cmd.Flags().StringVar(&cpuProfile, "cpuprofile", "", "write a CPU profile of the node's whole run to this file (at a clean shutdown)")
	cmd.Flags().StringVar(&sendLogPath, "send-log", "", "write a line per call this node sends, \"<gate Unix ns> <written Unix ns>\", to this file (for benchmarks: build/bench pairs it with a capture of the wire)")
	return cmd
}

func newLogger(c config.Log) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(c.Level))
	opts := &slog.HandlerOptions{Level: level}
	if c.Format == "json" {
		return slog.New(slog.NewJSONHandler(os.Stderr, opts))
	}
	return slog.New(slog.NewTextHandler(os.Stderr, opts))
}

// processMetrics gathers what belongs to the process rather than a node: the
// Go runtime, and Raft and memberlist internals, which report through the
// go-metrics global sink.
func processMetrics() (prometheus.Gatherer, error) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	sink, err := gmprom.NewPrometheusSinkFrom(gmprom.PrometheusOpts{Registerer: reg, Expiration: time.Minute})
	if err != nil {
		return nil, fmt.Errorf("metrics sink: %w", err)
	}
	mc := gometrics.DefaultConfig("dialtone")
	mc.EnableHostname = false
	mc.EnableRuntimeMetrics = false
	if _, err := gometrics.NewGlobal(mc, sink); err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	return reg, nil
}

// serve runs the node until a signal or its leaving; sendLog, when not
// nil, gets the dialer's line per call sent.
func serve(cfg config.Config, nodeID string, sendLog *sendLog) error {
	log := newLogger(cfg.Log)
	tuneGC(log)
	if len(cfg.Cluster.InitialVoters) == 0 && cfg.Cluster.BootstrapExpect == 0 {
		log.Info("no initial_voters or bootstrap_expect: waiting to be added to an existing cluster")
	}
	gatherer, err := processMetrics()
	if err != nil {
		return err
	}
	opts := node.Options{Config: cfg, NodeID: nodeID, Logger: log, Gatherer: gatherer}
	if sendLog != nil {
		opts.SendLog = sendLog
	}
	n, err := node.Start(opts)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	select {
	case <-ctx.Done():
		log.Info("signal received: shutting down")
	case <-n.Done():
		log.Info("node left the cluster")
	}
	sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return n.Shutdown(sctx)
}
