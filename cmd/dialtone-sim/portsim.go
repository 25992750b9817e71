package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc"

	"github.com/seed-7bfc04c2/dialtone/portpub"
)

// devGRPCEndpoints are the gRPC addresses of the cluster `dialtone dev`
// runs (a test in cmd/dialtone keeps them in step).
const devGRPCEndpoints = "127.0.0.1:9081,127.0.0.1:9082,127.0.0.1:9083"

type portsimFlags struct {
	servers     int
	ports       uint32
	tenant      string
	prefix      string
	endpoints   string
	load        string
	step        time.Duration
	interval    time.Duration
	ackTimeout  time.Duration
	returnAfter time.Duration
	useTLS      bool
	logLevel    string
}

func newPortsim(cl *creds) *cobra.Command {
	var f portsimFlags
	cmd := &cobra.Command{
		Use:   "portsim",
		Short: "Simulate media servers publishing their port usage to the cluster",
		Long: `portsim runs --servers simulated media (VXML) servers of --ports ports each.
Each publishes its port usage over the PortUsageService.Publish gRPC stream
with the portpub library: a report every --interval and on change, failover to
the next endpoint when the current one stops acknowledging, and a return to
its primary once that has been healthy for --return-after. Server i uses the
--endpoints list rotated by i, so the servers' primaries spread over the
nodes. --load walk moves each server's ports in use by a bounded random walk
every --step; --load idle keeps them at 0. A line is printed per endpoint
change. Credentials: --user (password from DIALTONE_PASSWORD) or --bearer, for
a principal with the publish role; --ca-file or --tls for TLS.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return runPortsim(ctx, cmd.OutOrStdout(), cl, f)
		},
	}
	fl := cmd.Flags()
	fl.IntVar(&f.servers, "servers", 2, "simulated media servers")
	fl.Uint32Var(&f.ports, "ports", 50, "ports per server")
	fl.StringVar(&f.tenant, "tenant", "acme", "tenant the ports belong to")
	fl.StringVar(&f.prefix, "id-prefix", "sim", "server ids are <prefix>-1, <prefix>-2, ...")
	fl.StringVar(&f.endpoints, "endpoints", devGRPCEndpoints, "comma-separated gRPC addresses of the nodes (server i starts at the i-th)")
	fl.StringVar(&f.load, "load", "walk", "synthetic load: walk (bounded random walk) or idle")
	fl.DurationVar(&f.step, "step", time.Second, "random-walk step")
	fl.DurationVar(&f.interval, "interval", time.Second, "report interval when nothing changes")
	fl.DurationVar(&f.ackTimeout, "ack-timeout", time.Second, "missed-heartbeat deadline before failing over")
	fl.DurationVar(&f.returnAfter, "return-after", 5*time.Second, "how long the primary must be healthy before returning to it")
	fl.BoolVar(&f.useTLS, "tls", false, "use TLS (system roots unless --ca-file)")
	fl.StringVar(&f.logLevel, "log-level", "error", "publisher log level (debug, info, warn, error)")
	return cmd
}

// publishDialOptions turns the global credential flags into dial options.
func publishDialOptions(cl *creds, useTLS bool) ([]grpc.DialOption, error) {
	var opts []grpc.DialOption
	if useTLS || cl.caFile != "" {
		o, err := portpub.WithCAFile(cl.caFile)
		if err != nil {
			return nil, err
		}
		opts = append(opts, o)
	}
	switch {
	case cl.user != "" && cl.token != "":
		return nil, fmt.Errorf("give --user or --bearer, not both")
	case cl.user != "":
		opts = append(opts, portpub.BasicAuth(cl.user, cl.password))
	case cl.token != "":
		opts = append(opts, portpub.BearerToken(cl.token))
	}
	return opts, nil
}

func runPortsim(ctx context.Context, out io.Writer, cl *creds, f portsimFlags) error {
	var eps []string
	for e := range strings.SplitSeq(f.endpoints, ",") {
		if e = strings.TrimSpace(e); e != "" {
			eps = append(eps, e)
		}
	}
	if len(eps) == 0 {
		return fmt.Errorf("--endpoints: no address")
	}
	if f.servers < 1 || f.ports < 1 {
		return fmt.Errorf("--servers and --ports must be at least 1")
	}
	if f.load != "walk" && f.load != "idle" {
		return fmt.Errorf("--load %q: want walk or idle", f.load)
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(f.logLevel)); err != nil {
		return fmt.Errorf("--log-level: %w", err)
	}
	dial, err := publishDialOptions(cl, f.useTLS)
	if err != nil {
		return err
	}
	var outMu sync.Mutex
	printf := func(format string, a ...any) {
		outMu.Lock()
		defer outMu.Unlock()
		fmt.Fprintf(out, format, a...)
	}
	sim := portpub.NewSim(portpub.SimOptions{
		Servers: f.servers, Ports: f.ports, Tenant: f.tenant, IDPrefix: f.prefix,
		Endpoints: eps, Interval: f.interval, AckTimeout: f.ackTimeout, ReturnAfter: f.returnAfter,
		DialOptions: dial,
		Logger:      slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level})),
		OnSwitch: func(server string, sw portpub.Switch) {
			switch sw.Kind {
			case "connect":
				printf("portsim: %s publishing to %s\n", server, sw.To)
			case "return":
				printf("portsim: %s returned to its primary %s (from %s)\n", server, sw.To, sw.From)
			default:
				printf("portsim: %s FAILOVER %s -> %s (%s)\n", server, sw.From, sw.To, sw.Reason)
			}
		},
	})
	printf("portsim: %d servers x %d ports, tenant %q, load %s, endpoints %s\n", f.servers, f.ports, f.tenant, f.load, strings.Join(eps, ","))

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	if f.load == "walk" {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sim.RandomWalk(ctx, f.step, rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 0)))
		}()
	}
	err = sim.Run(ctx)
	cancel()
	wg.Wait()
	if err != nil {
		return err
	}
	var fo, ret uint64
	for _, s := range sim.Servers() {
		fo += s.Publisher.Failovers()
		ret += s.Publisher.Returns()
	}
	printf("portsim: stopped (%d failovers, %d returns)\n", fo, ret)
	return nil
}
