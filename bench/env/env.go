// Package env runs the processes a benchmark measures: a three-node cluster
// of separate `dialtone serve` processes (test/cluster's multi-process
// implementation) and a `dialtone-sim mediasim` process (the simulated
// media platform and notification receiver), built from this source tree,
// on free loopback ports, so that any number of runs go side by side and
// beside `dialtone dev`.
//
// Every process writes its output to a log file in the run's directory;
// Pdeathsig makes the kernel stop them if the harness dies.
package env

import (
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"time"

	"github.com/seed-7bfc04c2/dialtone/internal/config"
	"github.com/seed-7bfc04c2/dialtone/test/cluster"
)

// SimAddrs are the loopback addresses of one environment's mediasim: its
// gRPC server (the call backend the nodes dial), its stats HTTP server and
// the notification receiver.
type SimAddrs struct{ GRPC, HTTP, Notify string }

// FreeSimAddrs picks free loopback ports for a mediasim.
func FreeSimAddrs() (SimAddrs, error) {
	var a SimAddrs
	for _, p := range []*string{&a.GRPC, &a.HTTP, &a.Notify} {
		addr, err := cluster.FreeAddr()
		if err != nil {
			return SimAddrs{}, err
		}
		*p = addr
	}
	return a, nil
}

// ClusterOptions configure a cluster.
type ClusterOptions struct {
	Bin string
	Dir string // data and logs
	// Sim is the mediasim the nodes place calls through.
	Sim SimAddrs
	// Raft timeouts (heartbeat, election, leader lease).
	Heartbeat, Election, Lease time.Duration
	// PortView is dialer.port_view.
	PortView string
	// CPUProfile, when set, names each node's CPU profile file (serve
	// --cpuprofile; written when the node stops cleanly).
	CPUProfile func(id string) string
	// SendLog, when set, names each node's send log (serve --send-log: a
	// line per call the node sent, gate and written times).
	SendLog func(id string) string
}

// StartCluster starts three `dialtone serve` processes with the harness's
// settings; it returns once a leader is elected and every node sees all
// three.
func StartCluster(ctx context.Context, o ClusterOptions) (*cluster.Processes, error) {
	po := cluster.ProcessOptions{Binary: o.Bin, Options: cluster.Options{Dir: o.Dir, Edit: func(cfg *config.Config) {
		cfg.Cluster.HeartbeatTimeout = config.Duration{Duration: o.Heartbeat}
		cfg.Cluster.ElectionTimeout = config.Duration{Duration: o.Election}
		cfg.Cluster.LeaderLeaseTimeout = config.Duration{Duration: o.Lease}
		cfg.Limits.MaxRecords = 20_000_000
		cfg.Log.Level = "warn"
		cfg.Telephony = config.Telephony{Backend: "sim", SimAddr: o.Sim.GRPC}
		if o.PortView != "" {
			cfg.Dialer.PortView = o.PortView
		}
	}, Poll: 50 * time.Millisecond}}
	po.Args = func(id string) []string {
		var args []string
		if o.CPUProfile != nil {
			args = append(args, "--cpuprofile", o.CPUProfile(id))
		}
		if o.SendLog != nil {
			args = append(args, "--send-log", o.SendLog(id))
		}
		return args
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	return cluster.StartProcesses(ctx, po)
}

// Mediasim is a `dialtone-sim mediasim` process.
type Mediasim struct {
	p    *cluster.Proc
	Addr SimAddrs
}

// StartMediasim runs mediasim (the dialtone-sim beside bin) on addrs with
// args (--tenant, --servers, ...), publishing to the nodes at endpoints
// (gRPC), and waits until its HTTP answers.
func StartMediasim(ctx context.Context, bin, dir string, addrs SimAddrs, endpoints []string, args ...string) (*Mediasim, error) {
	full := []string{"mediasim", "--listen", addrs.GRPC, "--http", addrs.HTTP, "--notify-listen", addrs.Notify,
		"--endpoints", strings.Join(endpoints, ","), "--log-level", "error"}
	logPath := filepath.Join(dir, "log-mediasim.txt")
	p, err := cluster.StartProc(logPath, filepath.Join(filepath.Dir(bin), "dialtone-sim"), append(full, args...)...)
	if err != nil {
		return nil, fmt.Errorf("start mediasim: %w", err)
	}
	m := &Mediasim{p: p, Addr: addrs}
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get("http://" + addrs.HTTP + "/stats")
		if err == nil {
			resp.Body.Close()
			return m, nil
		}
		if !p.Running() || time.Now().After(deadline) {
			m.Stop()
			return nil, fmt.Errorf("mediasim did not start (see %s)", logPath)
		}
		select {
		case <-ctx.Done():
			m.Stop()
			return nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Stop stops mediasim. Idempotent.
func (m *Mediasim) Stop() { m.p.Stop(context.Background(), 10*time.Second) }
