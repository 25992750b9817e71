package portpub

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	pb "github.com/seed-7bfc04c2/dialtone/api/dialtonev1"
)

// received is one report as a fake server saw it.
type received struct {
	at     time.Time
	server string
	seq    uint64
	total  uint32
	inUse  uint32
	acked  bool
	// stream numbers the Publish stream that carried the report, per
	// server: gRPC orders messages within a stream, not across streams,
	// and two streams' handlers may record their reports in either order
	// (the cache drops a report whose seq is not newer).
	stream int
}

// fakeServer is an in-process PortUsageService that records every report and
// acknowledges it unless hung.
type fakeServer struct {
	pb.UnimplementedPortUsageServiceServer
	t    *testing.T
	name string
	addr string
	// wantAuth, when set, is the authorization metadata every stream needs.
	wantAuth string

	mu      sync.Mutex
	hung    bool
	got     []received
	streams int
	srv     *grpc.Server
}

func newFake(t *testing.T, name string) *fakeServer {
	t.Helper()
	f := &fakeServer{t: t, name: name}
	f.start()
	t.Cleanup(f.stop)
	return f
}

// start serves on f.addr (a fresh port the first time, the same one after).
func (f *fakeServer) start() {
	f.t.Helper()
	addr := f.addr
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	var (
		l   net.Listener
		err error
	)
	for range 100 { // the old listener's port may take a moment to free
		if l, err = net.Listen("tcp", addr); err == nil {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err != nil {
		f.t.Fatal(err)
	}
	f.mu.Lock()
	f.addr = l.Addr().String()
	f.srv = grpc.NewServer()
	srv := f.srv
	f.mu.Unlock()
	pb.RegisterPortUsageServiceServer(srv, f)
	go func() { _ = srv.Serve(l) }()
}

// stop closes the listener and every connection, as a crash would.
func (f *fakeServer) stop() {
	f.mu.Lock()
	srv := f.srv
	f.srv = nil
	f.mu.Unlock()
	if srv != nil {
		srv.Stop()
	}
}

func (f *fakeServer) setHung(h bool) {
	f.mu.Lock()
	f.hung = h
	f.mu.Unlock()
}

func (f *fakeServer) Publish(stream pb.PortUsageService_PublishServer) error {
	if f.wantAuth != "" {
		md, _ := metadata.FromIncomingContext(stream.Context())
		if v := md.Get("authorization"); len(v) != 1 || v[0] != f.wantAuth {
			return status.Error(codes.Unauthenticated, "bad credentials")
		}
	}
	f.mu.Lock()
	f.streams++
	n := f.streams
	f.mu.Unlock()
	for {
		r, err := stream.Recv()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		f.mu.Lock()
		hung := f.hung
		f.got = append(f.got, received{at: time.Now(), server: f.name, seq: r.GetSeq(), total: r.GetTotalPorts(), inUse: r.GetPortsInUse(), acked: !hung, stream: n})
		f.mu.Unlock()
		if hung {
			continue
		}
		if err := stream.Send(&pb.PublishAck{Seq: r.GetSeq(), NodeId: f.name, TimeUnixMs: time.Now().UnixMilli()}); err != nil {
			return err
		}
	}
}

func (f *fakeServer) reports() []received {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.got)
}

func (f *fakeServer) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.got)
}

func testLogger() *slog.Logger {
	level := slog.LevelWarn
	if os.Getenv("DIALTONE_TEST_LOG") != "" {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
}

// eventually polls cond every 10ms until it holds or timeout passes.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() error) time.Time {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return time.Now()
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not reached within %s: %v", what, timeout, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// startPub runs a publisher until the test ends.
func startPub(t *testing.T, o Options) *Publisher {
	t.Helper()
	if o.ServerID == "" {
		o.ServerID = "vxml-1"
	}
	o.Tenant = "acme"
	o.Logger = testLogger()
	p := New(o)
	p.Set(100, 10)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Error("Run did not return after cancel")
		}
	})
	return p
}

func on(p *Publisher, addr string) func() error {
	return func() error {
		if c := p.Current(); c != addr {
			return fmt.Errorf("current %q, want %q", c, addr)
		}
		return nil
	}
}

// maxAckedGap is the longest time between two acknowledged reports (from
// any server) in [from, to]: how long the deployment had no fresh figures.
func maxAckedGap(from, to time.Time, servers ...*fakeServer) time.Duration {
	var ts []time.Time
	for _, s := range servers {
		for _, r := range s.reports() {
			if r.acked && !r.at.Before(from) && !r.at.After(to) {
				ts = append(ts, r.at)
			}
		}
	}
	slices.SortFunc(ts, func(a, b time.Time) int { return a.Compare(b) })
	var gap time.Duration
	for i := 1; i < len(ts); i++ {
		gap = max(gap, ts[i].Sub(ts[i-1]))
	}
	if len(ts) == 0 {
		return to.Sub(from)
	}
	return max(gap, ts[0].Sub(from), to.Sub(ts[len(ts)-1]))
}

// checkSeq: each stream to a server carried strictly increasing seqs, and
// every report a server received after the switch is newer than everything
// sent before it.
func checkSeq(t *testing.T, switchAt time.Time, servers ...*fakeServer) {
	t.Helper()
	var before uint64
	for _, s := range servers {
		last := map[int]uint64{} // per stream
		for _, r := range s.reports() {
			if prev, ok := last[r.stream]; ok && r.seq <= prev {
				t.Errorf("%s: seq %d after %d on one stream", s.name, r.seq, prev)
			}
			last[r.stream] = r.seq
			if r.at.Before(switchAt) {
				before = max(before, r.seq)
			}
		}
	}
	for _, s := range servers {
		for _, r := range s.reports() {
			if !r.at.Before(switchAt) && r.seq <= before {
				t.Errorf("%s: seq %d after the switch is not above %d", s.name, r.seq, before)
			}
		}
	}
}

func TestFailoverWhenPrimaryStopsAndReturn(t *testing.T) {
	s0, s1, s2 := newFake(t, "s0"), newFake(t, "s1"), newFake(t, "s2")
	const returnAfter = 2 * time.Second
	p := startPub(t, Options{Endpoints: []string{s0.addr, s1.addr, s2.addr}, ReturnAfter: returnAfter})
	eventually(t, 5*time.Second, "connected to the primary", on(p, s0.addr))
	eventually(t, 5*time.Second, "a few heartbeats", func() error {
		if n := s0.count(); n < 3 {
			return fmt.Errorf("%d reports", n)
		}
		return nil
	})

	stopped := time.Now()
	s0.stop()
	moved := eventually(t, 2*time.Second, "failover to s1", on(p, s1.addr))
	t.Logf("failover took %s", moved.Sub(stopped))
	p.Set(100, 42) // the new figures go to the secondary
	eventually(t, 2*time.Second, "s1 has the new figures", func() error {
		rs := s1.reports()
		if len(rs) == 0 || rs[len(rs)-1].inUse != 42 {
			return fmt.Errorf("last of %d reports is not 42", len(rs))
		}
		return nil
	})
	if f := p.Failovers(); f != 1 {
		t.Fatalf("failovers %d, want 1", f)
	}

	s0.start()
	restarted := time.Now()
	back := eventually(t, returnAfter+3*time.Second, "return to the primary", on(p, s0.addr))
	if d := back.Sub(restarted); d < returnAfter {
		t.Fatalf("returned %s after the primary came back, before ReturnAfter %s", d, returnAfter)
	}
	if r := p.Returns(); r != 1 {
		t.Fatalf("returns %d, want 1", r)
	}
	// Keep publishing a little on the primary, then check the whole run.
	n := s0.count()
	eventually(t, 3*time.Second, "reports on the primary", func() error {
		if s0.count() < n+2 {
			return fmt.Errorf("%d reports", s0.count())
		}
		return nil
	})
	if gap := maxAckedGap(stopped, time.Now(), s0, s1, s2); gap > 2*time.Second {
		t.Fatalf("gap of %s without acknowledged reports", gap)
	}
	if rs := s2.reports(); len(rs) != 0 {
		t.Fatalf("s2 got %d reports; the publisher should have stayed on s1", len(rs))
	}
	checkSeq(t, stopped, s0, s1)
	if last := s0.reports(); last[len(last)-1].inUse != 42 {
		t.Fatalf("primary has %d in use after the return, want 42", last[len(last)-1].inUse)
	}
}

func TestFailoverWhenPrimaryHangs(t *testing.T) {
	s0, s1, s2 := newFake(t, "s0"), newFake(t, "s1"), newFake(t, "s2")
	const returnAfter = 2 * time.Second
	p := startPub(t, Options{Endpoints: []string{s0.addr, s1.addr, s2.addr}, ReturnAfter: returnAfter})
	eventually(t, 5*time.Second, "connected to the primary", on(p, s0.addr))

	hung := time.Now()
	s0.setHung(true)
	moved := eventually(t, 2*time.Second, "failover to s1", on(p, s1.addr))
	t.Logf("failover took %s", moved.Sub(hung))
	// Stay on s1 while s0 is hung: the probe must not call it healthy.
	until := time.Now().Add(returnAfter + time.Second)
	for time.Now().Before(until) {
		if c := p.Current(); c != s1.addr {
			t.Fatalf("left s1 for %s while the primary was hung", c)
		}
		time.Sleep(50 * time.Millisecond)
	}
	recovered := time.Now()
	s0.setHung(false)
	back := eventually(t, returnAfter+3*time.Second, "return to the primary", on(p, s0.addr))
	if d := back.Sub(recovered); d < returnAfter {
		t.Fatalf("returned %s after recovery, before ReturnAfter", d)
	}
	if gap := maxAckedGap(hung, back, s0, s1, s2); gap > 2*time.Second {
		t.Fatalf("gap of %s without acknowledged reports", gap)
	}
	if p.Failovers() != 1 || p.Returns() != 1 {
		t.Fatalf("failovers %d returns %d, want 1 and 1", p.Failovers(), p.Returns())
	}
	checkSeq(t, hung, s0, s1)
}

func TestSkipsDeadEndpointsAndWrapsAround(t *testing.T) {
	s0, s2 := newFake(t, "s0"), newFake(t, "s2")
	dead := newFake(t, "dead")
	dead.stop() // a closed port
	var (
		mu       sync.Mutex
		switches []Switch
	)
	p := startPub(t, Options{
		Endpoints: []string{s0.addr, dead.addr, s2.addr},
		OnSwitch: func(s Switch) {
			mu.Lock()
			switches = append(switches, s)
			mu.Unlock()
		},
	})
	eventually(t, 5*time.Second, "connected to the primary", on(p, s0.addr))
	stopped := time.Now()
	s0.stop()
	eventually(t, 2*time.Second, "failover past the dead endpoint", on(p, s2.addr))
	if gap := maxAckedGap(stopped, time.Now(), s2); gap > 2*time.Second {
		t.Fatalf("gap %s", gap)
	}
	// s2 fails too, the primary is back: wrap around to it.
	s0.start()
	s2.stop()
	eventually(t, 3*time.Second, "wrap around to the primary", on(p, s0.addr))
	// OnSwitch may run just after the publisher reports its new endpoint.
	eventually(t, 2*time.Second, "three switches reported", func() error {
		mu.Lock()
		defer mu.Unlock()
		var kinds []string
		for _, s := range switches {
			kinds = append(kinds, s.Kind)
		}
		if !slices.Equal(kinds, []string{"connect", "failover", "failover"}) {
			return fmt.Errorf("switches %v", kinds)
		}
		return nil
	})
	mu.Lock()
	defer mu.Unlock()
	if switches[1].Reason == "" {
		t.Fatal("failover without a reason")
	}
}

func TestPrimaryDownAtStart(t *testing.T) {
	s0, s1 := newFake(t, "s0"), newFake(t, "s1")
	s0.stop()
	const returnAfter = time.Second
	p := startPub(t, Options{Endpoints: []string{s0.addr, s1.addr}, ReturnAfter: returnAfter})
	eventually(t, 3*time.Second, "connected to the secondary", on(p, s1.addr))
	s0.start()
	eventually(t, returnAfter+3*time.Second, "return to the primary", on(p, s0.addr))
	if p.Failovers() != 0 || p.Returns() != 1 {
		t.Fatalf("failovers %d returns %d", p.Failovers(), p.Returns())
	}
}

func TestChangeIsSentAtOnce(t *testing.T) {
	s0 := newFake(t, "s0")
	// Heartbeats every 10s: anything sooner is the change itself.
	p := startPub(t, Options{Endpoints: []string{s0.addr}, Interval: 10 * time.Second, AckTimeout: 30 * time.Second})
	eventually(t, 5*time.Second, "connected", on(p, s0.addr))
	for i := uint32(1); i <= 5; i++ {
		p.Set(100, 10+i)
		eventually(t, time.Second, "change reported", func() error {
			rs := s0.reports()
			if last := rs[len(rs)-1]; last.inUse != 10+i {
				return fmt.Errorf("last report has %d in use", last.inUse)
			}
			return nil
		})
	}
	if n := s0.count(); n > 8 {
		t.Fatalf("%d reports for 5 changes", n)
	}
}

func TestSourceAndHeartbeats(t *testing.T) {
	s0 := newFake(t, "s0")
	var (
		mu    sync.Mutex
		inUse uint32 = 7
	)
	p := startPub(t, Options{
		Endpoints: []string{s0.addr},
		Interval:  100 * time.Millisecond,
		Source: func() (uint32, uint32) {
			mu.Lock()
			defer mu.Unlock()
			return 20, inUse
		},
	})
	eventually(t, 5*time.Second, "heartbeats", func() error {
		if n := s0.count(); n < 5 {
			return fmt.Errorf("%d reports", n)
		}
		return nil
	})
	mu.Lock()
	inUse = 9
	mu.Unlock()
	eventually(t, 2*time.Second, "source change", func() error {
		rs := s0.reports()
		if last := rs[len(rs)-1]; last.total != 20 || last.inUse != 9 {
			return fmt.Errorf("last report %d/%d", last.inUse, last.total)
		}
		return nil
	})
	if st := p.Stats(); st.Acked == 0 || st.Sent < st.Acked {
		t.Fatalf("stats %+v", st)
	}
}

func TestCredentials(t *testing.T) {
	basic, bearer := newFake(t, "basic"), newFake(t, "bearer")
	basic.wantAuth = "Basic dnhtbDpzM2NyZXQ=" // vxml:s3cret
	bearer.wantAuth = "Bearer tok"
	p := startPub(t, Options{Endpoints: []string{basic.addr}, DialOptions: []grpc.DialOption{BasicAuth("vxml", "s3cret")}})
	eventually(t, 5*time.Second, "basic auth accepted", on(p, basic.addr))
	q := startPub(t, Options{Endpoints: []string{bearer.addr}, DialOptions: []grpc.DialOption{BearerToken("tok")}})
	eventually(t, 5*time.Second, "bearer accepted", on(q, bearer.addr))
	// Wrong credentials: refused, never current.
	r := startPub(t, Options{Endpoints: []string{basic.addr}, DialOptions: []grpc.DialOption{BasicAuth("vxml", "wrong")}})
	eventually(t, 3*time.Second, "attempts", func() error {
		if r.Stats().Sent < 2 {
			return fmt.Errorf("stats %+v", r.Stats())
		}
		return nil
	})
	if st := r.Stats(); st.Acked != 0 || st.Current != "" {
		t.Fatalf("wrong credentials accepted: %+v", st)
	}
	if _, err := WithCAFile("/nonexistent/ca.pem"); err == nil {
		t.Fatal("WithCAFile accepted a missing file")
	}
}

func TestRunValidates(t *testing.T) {
	if err := New(Options{ServerID: "x"}).Run(context.Background()); err == nil {
		t.Fatal("no endpoints accepted")
	}
	if err := New(Options{Endpoints: []string{"127.0.0.1:1"}}).Run(context.Background()); err == nil {
		t.Fatal("no server id accepted")
	}
}
