package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime/pprof"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc"

	"github.com/seed-7bfc04c2/dialtone/internal/sim/mediasim"
	"github.com/seed-7bfc04c2/dialtone/internal/sim/notifysink"
	"github.com/seed-7bfc04c2/dialtone/portpub"
)

const defaultMix = "success=60,busy=10,no_answer=15,answering_machine=5,sit_reorder=2,invalid_number=3,internal_error=5"

type mediasimFlags struct {
	listen       string
	httpAddr     string
	notifyListen string
	endpoints    string
	tenants      string
	servers      int
	ports        uint32
	prefix       string
	ring         string
	talk         string
	mix          string
	rules        []string
	seed         uint64
	maxLog       int
	notifyFail   int
	interval     time.Duration
	ackTimeout   time.Duration
	returnAfter  time.Duration
	useTLS       bool
	logLevel     string
	cpuProfile   string

	// ready, when set, is called with the bound addresses once everything
	// listens ("" for a listener not started). For tests.
	ready func(grpcAddr, httpAddr, notifyAddr string)
}

func newMediasim(cl *creds) *cobra.Command {
	var f mediasimFlags
	cmd := &cobra.Command{
		Use:   "mediasim",
		Short: "Run the simulated media platform the dialer places calls on (and a notification receiver)",
		Long: `mediasim runs a simulated media (IVR) platform per --tenant (comma-separated
for several): --servers media servers of --ports ports each, named
<id-prefix>-1, <id-prefix>-2, ... (<id-prefix>-<tenant>-1, ... with several
tenants). Tenant "*" is a shared platform (<id-prefix>-shared-1, ...): it
serves every tenant without a platform of its own, and its servers report
tenant "*", which the dialer's port budget counts for such tenants. The dialer places calls on it over gRPC at --listen (telephony
backend "sim"): a call takes a port, rings for --ring, and holds the port for
--talk when answered; its outcome follows the --rule telnum prefixes
(repeatable, e.g. --rule 5550001=busy), else the weighted --mix. With every
port busy a call is refused (the oversubscription the dialer must never
cause). Port usage is published to the cluster's --endpoints (empty: not
published) on every change, as portsim does. GET /stats and /calls on --http
show what the platform saw (/starts: every call's start time, compactly). --notify-listen also runs a notification receiver
(the simulated trigger application: any path records a notification; GET
/notifications and /notifications/stats show them). A line is printed per
notification and per publisher endpoint change. Credentials for publishing:
--user (password from DIALTONE_PASSWORD) or --bearer, for a principal with the
publish role; --ca-file or --tls for TLS.

Outcomes: ` + strings.Join(mediasim.Outcomes(), ", ") + `.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			if f.cpuProfile != "" {
				// For benchmarks (build/bench --cpuprofile): the far end's
				// cost shares the machine with the nodes'.
				pf, err := os.Create(f.cpuProfile)
				if err != nil {
					return fmt.Errorf("--cpuprofile: %w", err)
				}
				defer pf.Close()
				if err := pprof.StartCPUProfile(pf); err != nil {
					return fmt.Errorf("--cpuprofile: %w", err)
				}
				defer pprof.StopCPUProfile()
			}
			return runMediasim(ctx, cmd.OutOrStdout(), cl, f)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.listen, "listen", "127.0.0.1:9090", "gRPC address of the MediaSim service (PlaceCall)")
	fl.StringVar(&f.httpAddr, "http", "127.0.0.1:9091", `HTTP address of GET /stats and /calls ("" for none)`)
	fl.StringVar(&f.notifyListen, "notify-listen", "", `also run the notification receiver on this HTTP address ("" for none)`)
	fl.StringVar(&f.endpoints, "endpoints", devGRPCEndpoints, `comma-separated gRPC addresses of the nodes to publish port usage to ("" for none)`)
	fl.StringVar(&f.tenants, "tenant", "acme", "tenant the platform serves (comma-separated: a platform per tenant)")
	fl.IntVar(&f.servers, "servers", 2, "media servers per platform")
	fl.Uint32Var(&f.ports, "ports", 50, "ports per server")
	fl.StringVar(&f.prefix, "id-prefix", "vxml", "server ids are <prefix>-1, <prefix>-2, ...")
	fl.StringVar(&f.ring, "ring", "1s-3s", "ring time: a duration or a uniform range min-max")
	fl.StringVar(&f.talk, "talk", "5s-15s", "talk time of an answered call: a duration or a range min-max")
	fl.StringVar(&f.mix, "mix", defaultMix, "outcome weights, outcome=weight,...")
	fl.StringArrayVar(&f.rules, "rule", nil, "force an outcome by telnum prefix, prefix=outcome (repeatable; the first match wins)")
	fl.Uint64Var(&f.seed, "seed", 0, "seed of the random choices (0: from the clock)")
	fl.IntVar(&f.maxLog, "max-log", mediasim.DefaultMaxLog, "calls kept in the call log per platform")
	fl.IntVar(&f.notifyFail, "notify-fail-first", 0, "the notification receiver answers 500 to its first N deliveries")
	fl.DurationVar(&f.interval, "interval", time.Second, "port-usage report interval when nothing changes")
	fl.DurationVar(&f.ackTimeout, "ack-timeout", time.Second, "missed-heartbeat deadline before a publisher fails over")
	fl.DurationVar(&f.returnAfter, "return-after", 5*time.Second, "how long the primary must be healthy before a publisher returns to it")
	fl.BoolVar(&f.useTLS, "tls", false, "publish over TLS (system roots unless --ca-file)")
	fl.StringVar(&f.cpuProfile, "cpuprofile", "", "write a CPU profile of the whole run to this file (at a clean shutdown)")
	fl.StringVar(&f.logLevel, "log-level", "warn", "log level (debug, info, warn, error); publishers log at error unless debug or info")
	return cmd
}

func splitList(s string) []string {
	var out []string
	for e := range strings.SplitSeq(s, ",") {
		if e = strings.TrimSpace(e); e != "" {
			out = append(out, e)
		}
	}
	return out
}

func runMediasim(ctx context.Context, out io.Writer, cl *creds, f mediasimFlags) error {
	tenants := splitList(f.tenants)
	if len(tenants) == 0 {
		return errors.New("--tenant: no tenant")
	}
	for i, t := range tenants {
		if slices.Contains(tenants[:i], t) {
			return fmt.Errorf("--tenant: %q given twice", t)
		}
	}
	if f.servers < 1 || f.ports < 1 {
		return errors.New("--servers and --ports must be at least 1")
	}
	if f.listen == "" {
		return errors.New("--listen: no address")
	}
	ring, err := mediasim.ParseRange(f.ring)
	if err != nil {
		return fmt.Errorf("--ring: %w", err)
	}
	talk, err := mediasim.ParseRange(f.talk)
	if err != nil {
		return fmt.Errorf("--talk: %w", err)
	}
	mix, err := mediasim.ParseMix(f.mix)
	if err != nil {
		return fmt.Errorf("--mix: %w", err)
	}
	var rules []mediasim.Rule
	for _, r := range f.rules {
		rule, err := mediasim.ParseRule(r)
		if err != nil {
			return fmt.Errorf("--rule: %w", err)
		}
		rules = append(rules, rule)
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(f.logLevel)); err != nil {
		return fmt.Errorf("--log-level: %w", err)
	}
	eps := splitList(f.endpoints)
	var dial []grpc.DialOption
	if len(eps) > 0 {
		if dial, err = publishDialOptions(cl, f.useTLS); err != nil {
			return err
		}
	}

	var outMu sync.Mutex
	printf := func(format string, a ...any) {
		outMu.Lock()
		defer outMu.Unlock()
		fmt.Fprintf(out, format, a...)
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	pubLevel := slog.LevelError
	if level < slog.LevelWarn {
		pubLevel = level
	}
	pubLogger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: pubLevel}))

	// Named tenants' servers are <prefix>-N when there is one, else
	// <prefix>-<tenant>-N; the shared platform's are <prefix>-shared-N.
	named := 0
	for _, t := range tenants {
		if t != mediasim.AnyTenant {
			named++
		}
	}
	var plats []*mediasim.Platform
	for _, tenant := range tenants {
		prefix := f.prefix
		switch {
		case tenant == mediasim.AnyTenant:
			prefix = f.prefix + "-shared"
		case named > 1:
			prefix = f.prefix + "-" + tenant
		}
		p, err := mediasim.New(mediasim.Options{
			Tenant: tenant, Servers: f.servers, PortsPerServer: f.ports, IDPrefix: prefix,
			Endpoints: eps, Interval: f.interval, AckTimeout: f.ackTimeout, ReturnAfter: f.returnAfter,
			DialOptions: dial,
			OnSwitch: func(server string, sw portpub.Switch) {
				switch sw.Kind {
				case "connect":
					printf("mediasim: %s publishing to %s\n", server, sw.To)
				case "return":
					printf("mediasim: %s returned to its primary %s (from %s)\n", server, sw.To, sw.From)
				default:
					printf("mediasim: %s FAILOVER %s -> %s (%s)\n", server, sw.From, sw.To, sw.Reason)
				}
			},
			RingTime: ring, TalkTime: talk, Mix: mix, Rules: rules, Seed: f.seed, MaxLog: f.maxLog,
			Logger: logger, PublisherLogger: pubLogger,
		})
		if err != nil {
			return err
		}
		plats = append(plats, p)
	}

	// Listen on everything first, so a taken port fails before anything runs.
	var lc net.ListenConfig
	gl, err := lc.Listen(ctx, "tcp", f.listen)
	if err != nil {
		return fmt.Errorf("--listen: %w", err)
	}
	var servers []*http.Server
	var listeners []net.Listener
	closeAll := func() {
		gl.Close()
		for _, l := range listeners {
			l.Close()
		}
	}
	var httpAddr, notifyAddr string
	if f.httpAddr != "" {
		l, err := lc.Listen(ctx, "tcp", f.httpAddr)
		if err != nil {
			closeAll()
			return fmt.Errorf("--http: %w", err)
		}
		listeners = append(listeners, l)
		servers = append(servers, &http.Server{Handler: mediasim.StatsHandler(plats...), ReadHeaderTimeout: 10 * time.Second})
		httpAddr = l.Addr().String()
	}
	if f.notifyListen != "" {
		l, err := lc.Listen(ctx, "tcp", f.notifyListen)
		if err != nil {
			closeAll()
			return fmt.Errorf("--notify-listen: %w", err)
		}
		sink := notifysink.New(notifysink.Options{
			FailFirst: f.notifyFail, Logger: logger,
			OnNotification: func(n notifysink.Notification) {
				printf("mediasim: notification #%d for %s: Result=%s Status=%s AttemptsMade=%s/%s CallUUID=%s (answered %d)\n",
					n.Seq, n.RequestID, n.Result, n.Status, n.Params["AttemptsMade"], n.Params["MaxAttempts"], n.CallUUID, n.Answered)
			},
		})
		listeners = append(listeners, l)
		servers = append(servers, &http.Server{Handler: sink, ReadHeaderTimeout: 10 * time.Second})
		notifyAddr = l.Addr().String()
	}

	g := grpc.NewServer()
	mediasim.NewServer(plats...).Register(g)

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	errc := make(chan error, len(plats)+len(servers)+1)
	wg.Go(func() {
		if err := g.Serve(gl); err != nil {
			errc <- fmt.Errorf("gRPC: %w", err)
		}
	})
	for i, s := range servers {
		wg.Go(func() {
			if err := s.Serve(listeners[i]); err != nil && !errors.Is(err, http.ErrServerClosed) {
				errc <- fmt.Errorf("HTTP: %w", err)
			}
		})
	}
	for _, p := range plats {
		wg.Go(func() {
			if err := p.Run(ctx); err != nil {
				errc <- fmt.Errorf("publishing %s: %w", p.Tenant(), err)
			}
		})
	}

	published := "not published"
	if len(eps) > 0 {
		published = "published to " + strings.Join(eps, ",")
	}
	printf("mediasim: %d platform(s) (%s) x %d servers x %d ports; ring %s, talk %s; port usage %s\n",
		len(plats), strings.Join(tenants, ","), f.servers, f.ports, ring, talk, published)
	printf("mediasim: PlaceCall gRPC on %s\n", gl.Addr())
	if httpAddr != "" {
		printf("mediasim: stats http://%s/stats, calls http://%s/calls\n", httpAddr, httpAddr)
	}
	if notifyAddr != "" {
		printf("mediasim: notification receiver http://%s/notify (any path); http://%s/notifications, /notifications/stats\n", notifyAddr, notifyAddr)
	}
	if f.ready != nil {
		f.ready(gl.Addr().String(), httpAddr, notifyAddr)
	}

	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-errc:
	}
	// Stop hangs up the calls in progress; the clients see them fail.
	g.Stop()
	for _, s := range servers {
		sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
		if err := s.Shutdown(sctx); err != nil {
			_ = s.Close()
		}
		scancel()
	}
	cancel()
	wg.Wait()
	for _, p := range plats {
		st := p.Stats()
		printf("mediasim: %s: placed %d, refused %d (full), hung up %d, concurrent violations %d, peak in progress %d, outcomes %v\n",
			st.Tenant, st.Placed, st.Refused, st.Cancelled, st.ConcurrentViolations, st.PeakInProgress, st.ByOutcome)
	}
	if runErr != nil {
		return runErr
	}
	printf("mediasim: stopped\n")
	return nil
}
