package mediasim

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"

	pb "github.com/seed-7bfc04c2/dialtone/api/dialtonev1"
	"github.com/seed-7bfc04c2/dialtone/internal/fsm/fsmpb"
	"github.com/seed-7bfc04c2/dialtone/internal/telephony"
	"github.com/seed-7bfc04c2/dialtone/internal/telephony/simcall"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", within, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func newPlatform(t *testing.T, o Options) *Platform {
	t.Helper()
	if o.Tenant == "" {
		o.Tenant = "acme"
	}
	if o.Logger == nil {
		o.Logger = quiet
	}
	p, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func inUse(p *Platform) uint32 {
	var n uint32
	for _, s := range p.Servers() {
		n += s.InUse()
	}
	return n
}

// placeAsync places c in the background; the result arrives on the channel.
type placed struct {
	out telephony.Outcome
	err error
	dur time.Duration
}

func placeAsync(ctx context.Context, b telephony.Backend, c telephony.Call) <-chan placed {
	ch := make(chan placed, 1)
	go func() {
		start := time.Now()
		out, err := b.Place(ctx, c)
		ch <- placed{out, err, time.Since(start)}
	}()
	return ch
}

func wait(t *testing.T, ch <-chan placed) placed {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(10 * time.Second):
		t.Fatal("call did not end")
		return placed{}
	}
}

// TestEveryOutcomeByRule scripts each outcome by telnum prefix and checks its
// class and reason (the table repeats the seed's mapping independently).
func TestEveryOutcomeByRule(t *testing.T) {
	want := []struct {
		name   string
		class  fsmpb.OutcomeClass
		reason string
	}{
		{Success, fsmpb.OutcomeClass_OUTCOME_SUCCESS, "TreatmentApplied"},
		{Busy, fsmpb.OutcomeClass_OUTCOME_BUSY, "DestinationBusy"},
		{NoAnswer, fsmpb.OutcomeClass_OUTCOME_TEMPORARY, "RingNoAnswer"},
		{AnsweringMachine, fsmpb.OutcomeClass_OUTCOME_TEMPORARY, "AnsweringMachineDetected"},
		{Fax, fsmpb.OutcomeClass_OUTCOME_TEMPORARY, "FaxDetected"},
		{SITInvalidNumber, fsmpb.OutcomeClass_OUTCOME_PERMANENT, "SITInvalidNumber"},
		{SITVacant, fsmpb.OutcomeClass_OUTCOME_PERMANENT, "SITVacantCircuit"},
		{SITReorder, fsmpb.OutcomeClass_OUTCOME_BUSY, "SITReorder"},
		{InvalidNumber, fsmpb.OutcomeClass_OUTCOME_PERMANENT, "InvalidNumber"},
		{InternalError, fsmpb.OutcomeClass_OUTCOME_INTERNAL, "InternalError"},
	}
	if len(want) != len(Outcomes()) {
		t.Fatalf("table has %d outcomes, package %d", len(want), len(Outcomes()))
	}
	var rules []Rule
	for i, w := range want {
		rules = append(rules, Rule{Prefix: fmt.Sprintf("555%04d", i), Outcome: w.name})
	}
	// The mix alone would always answer success: every other outcome comes
	// from its rule.
	p := newPlatform(t, Options{Servers: 1, PortsPerServer: 1, RingTime: Fixed(5 * time.Millisecond),
		TalkTime: Fixed(5 * time.Millisecond), Rules: rules, Mix: map[string]int{Success: 1}})
	for i, w := range want {
		out, err := p.Place(context.Background(), telephony.Call{RequestID: w.name, CallUUID: fmt.Sprint("c", i),
			Tenant: "acme", Telnum: fmt.Sprintf("555%04d99", i), Attempt: 1})
		if err != nil {
			t.Fatalf("%s: %v", w.name, err)
		}
		if out.Class != w.class || out.Reason != w.reason {
			t.Errorf("%s: got %v %q, want %v %q", w.name, out.Class, out.Reason, w.class, w.reason)
		}
		if o, ok := OutcomeOf(w.name); !ok || o != out {
			t.Errorf("OutcomeOf(%s) = %v %v", w.name, o, ok)
		}
		if n := inUse(p); n != 0 {
			t.Errorf("%s: %d ports in use after Place returned", w.name, n)
		}
	}
	st := p.Stats()
	if st.Placed != uint64(len(want)) || st.InProgress != 0 || st.PeakInProgress != 1 || st.Refused != 0 {
		t.Errorf("stats: %+v", st)
	}
	for _, w := range want {
		if st.ByOutcome[w.name] != 1 {
			t.Errorf("by_outcome[%s] = %d", w.name, st.ByOutcome[w.name])
		}
	}
	calls := p.Calls()
	if len(calls) != len(want) {
		t.Fatalf("%d calls logged", len(calls))
	}
	for i, c := range calls {
		if c.State != StateEnded || c.Outcome != want[i].name || c.Reason != want[i].reason || c.Class != want[i].class ||
			c.ServerID != "sim-1" || c.Tenant != "acme" || c.Attempt != 1 || c.End.Before(c.Start) {
			t.Errorf("call %d: %+v", i, c)
		}
	}
}

func TestFirstRuleWins(t *testing.T) {
	p := newPlatform(t, Options{Rules: []Rule{{Prefix: "555", Outcome: Busy}, {Prefix: "5550001", Outcome: Fax}}})
	out, err := p.Place(context.Background(), telephony.Call{RequestID: "r", Telnum: "5550001", Tenant: "acme"})
	if err != nil || out.Reason != "DestinationBusy" {
		t.Fatalf("%v %v", out, err)
	}
}

// TestMixAndSeed: the mix's weights are honoured, and one seed always gives
// the same sequence.
func TestMixAndSeed(t *testing.T) {
	seq := func(seed uint64) []string {
		p := newPlatform(t, Options{Seed: seed, Mix: map[string]int{Busy: 1, InternalError: 3}})
		var got []string
		for i := range 200 {
			out, err := p.Place(context.Background(), telephony.Call{RequestID: fmt.Sprint(i), Tenant: "acme"})
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, out.Reason)
		}
		return got
	}
	a, b := seq(42), seq(42)
	if !slices.Equal(a, b) {
		t.Fatal("the same seed gave different outcomes")
	}
	counts := map[string]int{}
	for _, r := range a {
		counts[r]++
	}
	if len(counts) != 2 || counts["DestinationBusy"] == 0 || counts["InternalError"] <= counts["DestinationBusy"] {
		t.Fatalf("mix 1:3 gave %v", counts)
	}

	for _, bad := range []Options{
		{Tenant: "acme", Mix: map[string]int{"loud": 1}},
		{Tenant: "acme", Mix: map[string]int{Busy: 0}},
		{Tenant: "acme", Mix: map[string]int{Busy: -1}},
		{Tenant: "acme", Rules: []Rule{{Prefix: "1", Outcome: "loud"}}},
		{},
	} {
		if _, err := New(bad); err == nil {
			t.Errorf("New(%+v) accepted", bad)
		}
	}
}

func TestParse(t *testing.T) {
	mix, err := ParseMix("success=60, busy=10,no_answer=15,busy=5")
	if err != nil || mix[Success] != 60 || mix[Busy] != 15 || mix[NoAnswer] != 15 {
		t.Fatalf("ParseMix: %v %v", mix, err)
	}
	for _, bad := range []string{"success", "loud=1", "busy=x", "busy=-1"} {
		if _, err := ParseMix(bad); err == nil {
			t.Errorf("ParseMix(%q) accepted", bad)
		}
	}
	if r, err := ParseRule("5550001=busy"); err != nil || r != (Rule{Prefix: "5550001", Outcome: Busy}) {
		t.Errorf("ParseRule: %v %v", r, err)
	}
	for _, bad := range []string{"5550001", "=busy", "1=loud"} {
		if _, err := ParseRule(bad); err == nil {
			t.Errorf("ParseRule(%q) accepted", bad)
		}
	}
	if r, err := ParseRange("1s-3s"); err != nil || r != (Range{time.Second, 3 * time.Second}) || r.String() != "1s-3s" {
		t.Errorf("ParseRange: %v %v", r, err)
	}
	if r, err := ParseRange("250ms"); err != nil || r != Fixed(250*time.Millisecond) || r.String() != "250ms" {
		t.Errorf("ParseRange: %v %v", r, err)
	}
	for _, bad := range []string{"", "3s-1s", "x", "1s-y", "-1s"} {
		if _, err := ParseRange(bad); err == nil {
			t.Errorf("ParseRange(%q) accepted", bad)
		}
	}
}

// TestSuccessHoldsPortForTalkTime: a success keeps its port for ring+talk,
// visible as in use while it lasts and free once Place has returned.
func TestSuccessHoldsPortForTalkTime(t *testing.T) {
	const ring, talk = 20 * time.Millisecond, 200 * time.Millisecond
	p := newPlatform(t, Options{Servers: 1, PortsPerServer: 2, RingTime: Fixed(ring), TalkTime: Fixed(talk)})
	ch := placeAsync(context.Background(), p, telephony.Call{RequestID: "r1", Tenant: "acme", Telnum: "1"})
	eventually(t, 5*time.Second, "the port in use", func() bool { return inUse(p) == 1 })
	if st := p.Stats(); st.InProgress != 1 || st.Servers[0].PortsInUse != 1 {
		t.Fatalf("during the call: %+v", st)
	}
	if calls := p.Calls(); len(calls) != 1 || calls[0].State != StateInProgress {
		t.Fatalf("during the call: %+v", calls)
	}
	r := wait(t, ch)
	if r.err != nil || r.out.Class != fsmpb.OutcomeClass_OUTCOME_SUCCESS {
		t.Fatalf("%v %v", r.out, r.err)
	}
	if r.dur < ring+talk {
		t.Fatalf("call lasted %s, want at least %s", r.dur, ring+talk)
	}
	if n := inUse(p); n != 0 {
		t.Fatalf("%d ports in use after the call", n)
	}
}

// TestShortRingAndRnaTimeout: failures before answer ring at most 500ms; a
// no-answer rings for the request's RNA timeout when it has one.
func TestShortRingAndRnaTimeout(t *testing.T) {
	p := newPlatform(t, Options{RingTime: Fixed(time.Hour), Rules: []Rule{{Prefix: "1", Outcome: Busy}, {Prefix: "2", Outcome: NoAnswer}}})
	start := time.Now()
	if out, err := p.Place(context.Background(), telephony.Call{RequestID: "a", Tenant: "acme", Telnum: "1"}); err != nil || out.Reason != "DestinationBusy" {
		t.Fatalf("%v %v", out, err)
	}
	if d := time.Since(start); d < shortRing || d > time.Minute {
		t.Fatalf("busy rang %s", d)
	}
	rna := int64(30)
	start = time.Now()
	out, err := p.Place(context.Background(), telephony.Call{RequestID: "b", Tenant: "acme", Telnum: "2", Cpd: &fsmpb.Cpd{RnaTimeoutMs: &rna}})
	if err != nil || out.Reason != "RingNoAnswer" {
		t.Fatalf("%v %v", out, err)
	}
	if d := time.Since(start); d < 30*time.Millisecond || d > time.Minute {
		t.Fatalf("no answer rang %s, want the 30ms RNA timeout", d)
	}
}

// TestRefusedWhenFull: with every port busy a call is refused at once with
// ErrFull, and counted.
func TestRefusedWhenFull(t *testing.T) {
	p := newPlatform(t, Options{Servers: 2, PortsPerServer: 1, RingTime: Fixed(time.Hour)})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var chs []<-chan placed
	for i := range 2 {
		chs = append(chs, placeAsync(ctx, p, telephony.Call{RequestID: fmt.Sprint("long", i), Tenant: "acme"}))
	}
	eventually(t, 5*time.Second, "both ports in use", func() bool { return inUse(p) == 2 })
	// The two calls went to different servers (most free ports first).
	for _, s := range p.Servers() {
		if s.InUse() != 1 {
			t.Fatalf("%s has %d ports in use", s.ID, s.InUse())
		}
	}
	_, err := p.Place(context.Background(), telephony.Call{RequestID: "extra", CallUUID: "u3", Tenant: "acme"})
	if !errors.Is(err, telephony.ErrFull) {
		t.Fatalf("want ErrFull, got %v", err)
	}
	st := p.Stats()
	if st.Refused != 1 || st.Placed != 2 || st.InProgress != 2 || st.PeakInProgress != 2 {
		t.Fatalf("stats: %+v", st)
	}
	refused := p.CallsOf("extra", 0)
	if len(refused) != 1 || refused[0].State != StateRefused || refused[0].ServerID != "" {
		t.Fatalf("log: %+v", refused)
	}
	if st := p.Starts(); len(st.Placed) != 2 || len(st.Refused) != 1 || st.Refused[0] != refused[0].Start.UnixNano() {
		t.Fatalf("starts: %+v", st)
	}
	cancel()
	for _, ch := range chs {
		if r := wait(t, ch); !errors.Is(r.err, context.Canceled) {
			t.Fatalf("cancelled call: %v", r.err)
		}
	}
}

// TestCancelReleasesPort: the caller hanging up ends the call at once and
// frees its port.
func TestCancelReleasesPort(t *testing.T) {
	p := newPlatform(t, Options{PortsPerServer: 1, RingTime: Fixed(time.Hour)})
	ctx, cancel := context.WithCancel(context.Background())
	ch := placeAsync(ctx, p, telephony.Call{RequestID: "r", Tenant: "acme"})
	eventually(t, 5*time.Second, "the port in use", func() bool { return inUse(p) == 1 })
	cancel()
	r := wait(t, ch)
	if !errors.Is(r.err, context.Canceled) {
		t.Fatalf("got %v", r.err)
	}
	if n := inUse(p); n != 0 {
		t.Fatalf("%d ports in use after hang-up", n)
	}
	if st := p.Stats(); st.Cancelled != 1 || st.InProgress != 0 || len(st.ByOutcome) != 0 {
		t.Fatalf("stats: %+v", st)
	}
	if c := p.Calls(); len(c) != 1 || c[0].State != StateCancelled || c[0].End.IsZero() {
		t.Fatalf("log: %+v", c)
	}
	// A context already done places nothing.
	if _, err := p.Place(ctx, telephony.Call{RequestID: "r2", Tenant: "acme"}); !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v", err)
	}
	if st := p.Stats(); st.Placed != 1 {
		t.Fatalf("placed %d", st.Placed)
	}
}

// TestConcurrentViolation: a second call for a request whose call is still
// in progress is counted and marked.
func TestConcurrentViolation(t *testing.T) {
	p := newPlatform(t, Options{RingTime: Fixed(time.Hour), Rules: []Rule{{Prefix: "9", Outcome: InternalError}}})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ch := placeAsync(ctx, p, telephony.Call{RequestID: "r", CallUUID: "u1", Attempt: 1, Tenant: "acme", Telnum: "1"})
	eventually(t, 5*time.Second, "the first call in progress", func() bool { return inUse(p) == 1 })
	if _, err := p.Place(context.Background(), telephony.Call{RequestID: "r", CallUUID: "u2", Attempt: 2, Tenant: "acme", Telnum: "9"}); err != nil {
		t.Fatal(err)
	}
	// Another request at the same time is fine.
	if _, err := p.Place(context.Background(), telephony.Call{RequestID: "other", Tenant: "acme", Telnum: "9"}); err != nil {
		t.Fatal(err)
	}
	cancel()
	wait(t, ch)
	// Sequential calls of one request are fine too.
	if _, err := p.Place(context.Background(), telephony.Call{RequestID: "r", CallUUID: "u3", Attempt: 3, Tenant: "acme", Telnum: "9"}); err != nil {
		t.Fatal(err)
	}
	if v := p.Stats().ConcurrentViolations; v != 1 {
		t.Fatalf("%d violations", v)
	}
	calls := p.CallsOf("r", 0)
	if len(calls) != 3 || calls[0].Concurrent || !calls[1].Concurrent || calls[1].CallUUID != "u2" || calls[2].Concurrent {
		t.Fatalf("log: %+v", calls)
	}
}

func TestCallLogBounded(t *testing.T) {
	p := newPlatform(t, Options{MaxLog: 3, Mix: map[string]int{InternalError: 1}})
	for i := range 7 {
		if _, err := p.Place(context.Background(), telephony.Call{RequestID: "r", Attempt: uint32(i + 1), Tenant: "acme"}); err != nil {
			t.Fatal(err)
		}
	}
	var got []uint32
	for _, c := range p.Calls() {
		got = append(got, c.Attempt)
	}
	if !slices.Equal(got, []uint32{5, 6, 7}) {
		t.Fatalf("log kept attempts %v", got)
	}
	if c := p.CallsOf("", 2); len(c) != 2 || c[0].Attempt != 6 {
		t.Fatalf("limit 2: %+v", c)
	}
	if p.Stats().ByOutcome[InternalError] != 7 {
		t.Fatal("counters must not be bounded by the log")
	}
}

// TestConcurrentPlaceNeverOversubscribes: many callers racing for few ports
// never exceed them; the excess is refused.
func TestConcurrentPlaceNeverOversubscribes(t *testing.T) {
	p := newPlatform(t, Options{Servers: 2, PortsPerServer: 3, RingTime: Fixed(20 * time.Millisecond), TalkTime: Fixed(20 * time.Millisecond)})
	var wg sync.WaitGroup
	for i := range 40 {
		wg.Go(func() {
			_, err := p.Place(context.Background(), telephony.Call{RequestID: fmt.Sprint(i), Tenant: "acme"})
			if err != nil && !errors.Is(err, telephony.ErrFull) {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	st := p.Stats()
	if st.PeakInProgress > 6 || st.Placed+st.Refused != 40 || st.InProgress != 0 || inUse(p) != 0 {
		t.Fatalf("stats: %+v", st)
	}
}

// portServer is a fake cluster endpoint recording the reports it receives.
type portServer struct {
	pb.UnimplementedPortUsageServiceServer
	mu  sync.Mutex
	got []*pb.PortReport
}

func (f *portServer) Publish(stream pb.PortUsageService_PublishServer) error {
	for {
		r, err := stream.Recv()
		if err != nil {
			return nil
		}
		f.mu.Lock()
		f.got = append(f.got, r)
		f.mu.Unlock()
		if err := stream.Send(&pb.PublishAck{Seq: r.GetSeq()}); err != nil {
			return err
		}
	}
}

// reports returns the ports-in-use figures received from server id.
func (f *portServer) reports(id string) []uint32 {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []uint32
	for _, r := range f.got {
		if r.GetServerId() == id {
			out = append(out, r.GetPortsInUse())
		}
	}
	return out
}

func serveGRPC(t *testing.T, register func(*grpc.Server)) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := grpc.NewServer()
	register(g)
	go func() { _ = g.Serve(l) }()
	t.Cleanup(g.Stop)
	return l.Addr().String()
}

// TestPublishesPortUsage: the ports a call holds are published to the
// cluster while it lasts, and their release after.
func TestPublishesPortUsage(t *testing.T) {
	fake := &portServer{}
	addr := serveGRPC(t, func(g *grpc.Server) { pb.RegisterPortUsageServiceServer(g, fake) })
	p := newPlatform(t, Options{PortsPerServer: 5, IDPrefix: "vxml", Endpoints: []string{addr},
		RingTime: Fixed(time.Hour), Interval: time.Hour})
	ctx, cancel := context.WithCancel(context.Background())
	runDone := make(chan error, 1)
	go func() { runDone <- p.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-runDone; err != nil {
			t.Error(err)
		}
	}()
	eventually(t, 10*time.Second, "the first report", func() bool { return len(fake.reports("vxml-1")) > 0 })

	callCtx, hangUp := context.WithCancel(context.Background())
	ch := placeAsync(callCtx, p, telephony.Call{RequestID: "r", Tenant: "acme"})
	eventually(t, 10*time.Second, "a report of 1 port in use", func() bool { return slices.Contains(fake.reports("vxml-1"), 1) })
	hangUp()
	wait(t, ch)
	eventually(t, 10*time.Second, "a report of 0 ports in use after the call", func() bool {
		r := fake.reports("vxml-1")
		return r[len(r)-1] == 0
	})
}

// TestGRPCRoundTrip drives a platform through Server and Client.
func TestGRPCRoundTrip(t *testing.T) {
	p := newPlatform(t, Options{Servers: 1, PortsPerServer: 1, RingTime: Fixed(time.Hour),
		Rules: []Rule{{Prefix: "1", Outcome: Success}, {Prefix: "2", Outcome: SITVacant}}, TalkTime: Fixed(10 * time.Millisecond)})
	other := newPlatform(t, Options{Tenant: "globex"})
	addr := serveGRPC(t, NewServer(p, other).Register)
	c, err := NewClient(addr, simcall.CallerDialOption("n2"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()

	// Outcomes come back as the platform chose them (a short ring for SIT).
	out, err := c.Place(ctx, telephony.Call{RequestID: "r1", CallUUID: "u1", Tenant: "acme", Telnum: "2", Attempt: 1})
	if err != nil || out != (telephony.Outcome{Class: fsmpb.OutcomeClass_OUTCOME_PERMANENT, Reason: "SITVacantCircuit"}) {
		t.Fatalf("place: %v %v", out, err)
	}
	// An unknown tenant is an ordinary error.
	if _, err := c.Place(ctx, telephony.Call{RequestID: "r", Tenant: "nobody"}); err == nil || errors.Is(err, telephony.ErrFull) {
		t.Fatalf("unknown tenant: %v", err)
	}

	// A call holding the only port; the next is refused with ErrFull.
	callCtx, hangUp := context.WithCancel(ctx)
	ch := placeAsync(callCtx, c, telephony.Call{RequestID: "long", Tenant: "acme", Telnum: "3"})
	eventually(t, 5*time.Second, "the port in use", func() bool { return inUse(p) == 1 })
	if _, err := c.Place(ctx, telephony.Call{RequestID: "r2", Tenant: "acme", Telnum: "1"}); !errors.Is(err, telephony.ErrFull) {
		t.Fatalf("want ErrFull, got %v", err)
	}
	// Hanging up on the client releases the port on the server.
	hangUp()
	if r := wait(t, ch); !errors.Is(r.err, context.Canceled) {
		t.Fatalf("hung-up call: %v", r.err)
	}
	eventually(t, 5*time.Second, "the port released on the server", func() bool { return inUse(p) == 0 })
	eventually(t, 5*time.Second, "the call counted as cancelled", func() bool { return p.Stats().Cancelled == 1 })

	stats, err := c.Stats(ctx, "")
	if err != nil || len(stats) != 2 || stats[0].Tenant != "acme" || stats[1].Tenant != "globex" {
		t.Fatalf("stats: %+v %v", stats, err)
	}
	if s := stats[0]; s.Placed != 2 || s.Refused != 1 || s.Cancelled != 1 || s.ByOutcome[SITVacant] != 1 ||
		len(s.Servers) != 1 || s.Servers[0].TotalPorts != 1 {
		t.Fatalf("acme stats: %+v", s)
	}
	if _, err := c.Stats(ctx, "nobody"); err == nil {
		t.Fatal("stats of an unknown tenant")
	}
	calls, err := c.Calls(ctx, "acme", "r1", 0)
	if err != nil || len(calls) != 1 || calls[0].CallUUID != "u1" || calls[0].Outcome != SITVacant ||
		calls[0].Class != fsmpb.OutcomeClass_OUTCOME_PERMANENT || calls[0].End.IsZero() || calls[0].Caller != "n2" {
		t.Fatalf("calls: %+v %v", calls, err)
	}
	if all, err := c.Calls(ctx, "", "", 0); err != nil || len(all) != 3 {
		t.Fatalf("all calls: %d %v", len(all), err)
	}
}

// TestClientUnavailable: a platform that cannot be reached is an ordinary
// error, not ErrFull.
func TestClientUnavailable(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	c, err := NewClient(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, err = c.Place(context.Background(), telephony.Call{RequestID: "r", Tenant: "acme"})
	if err == nil || errors.Is(err, telephony.ErrFull) || errors.Is(err, context.Canceled) {
		t.Fatalf("got %v", err)
	}
}

// TestRevoke: revoking hangs a call up (over gRPC too) and fences its call
// UUID; revoking a call that is not up only fences it.
func TestRevoke(t *testing.T) {
	p := newPlatform(t, Options{Servers: 1, PortsPerServer: 2, RingTime: Fixed(time.Hour)})
	addr := serveGRPC(t, NewServer(p).Register)
	c, err := NewClient(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()

	ch := placeAsync(ctx, c, telephony.Call{RequestID: "r1", CallUUID: "u1", Tenant: "acme"})
	eventually(t, 5*time.Second, "the call up", func() bool { return inUse(p) == 1 })
	if err := c.Revoke(ctx, "acme", "u1"); err != nil {
		t.Fatal(err)
	}
	// Revoke answers once the call has ended.
	if n := inUse(p); n != 0 {
		t.Fatalf("%d ports in use after the revoke answered", n)
	}
	if r := wait(t, ch); r.err == nil {
		t.Fatal("the revoked call ended normally")
	}
	// The same attempt cannot be placed again, in process or over gRPC.
	if _, err := c.Place(ctx, telephony.Call{RequestID: "r1", CallUUID: "u1", Tenant: "acme"}); !errors.Is(err, telephony.ErrRevoked) {
		t.Fatalf("gRPC place of a revoked call: %v", err)
	}
	if err := p.Revoke(ctx, "acme", "u2"); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Place(ctx, telephony.Call{RequestID: "r2", CallUUID: "u2", Tenant: "acme"}); !errors.Is(err, telephony.ErrRevoked) {
		t.Fatalf("place of a call revoked before it was placed: %v", err)
	}
	calls := p.CallsOf("r1", 0)
	if len(calls) != 2 || calls[0].State != StateCancelled || calls[1].State != StateRevoked {
		t.Fatalf("call log: %+v", calls)
	}
	if err := c.Revoke(ctx, "nobody", "u3"); err == nil {
		t.Fatal("revoke on an unknown tenant")
	}
}

// TestGRPCStreamManyCalls: concurrent calls share the client's one
// PlaceCalls stream, each answered with its own outcome and caller; a
// server going away breaks only its clients' streams, and a call placed
// then fails with an ordinary error (not ErrFull, not a hang).
func TestGRPCStreamManyCalls(t *testing.T) {
	p := newPlatform(t, Options{Servers: 1, PortsPerServer: 100, RingTime: Fixed(time.Millisecond),
		Rules: []Rule{{Prefix: "1", Outcome: Success}, {Prefix: "2", Outcome: SITVacant}}, TalkTime: Fixed(20 * time.Millisecond)})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := grpc.NewServer()
	NewServer(p).Register(g)
	go func() { _ = g.Serve(l) }()
	defer g.Stop()
	c, err := NewClient(l.Addr().String(), simcall.CallerDialOption("n1"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	const n = 50
	var chs []<-chan placed
	for i := 0; i < n; i++ {
		chs = append(chs, placeAsync(context.Background(), c, telephony.Call{
			RequestID: fmt.Sprintf("r%d", i), CallUUID: fmt.Sprintf("u%d", i), Tenant: "acme", Telnum: fmt.Sprint(1 + i%2), Attempt: 1}))
	}
	for i, ch := range chs {
		want := fsmpb.OutcomeClass_OUTCOME_SUCCESS
		if i%2 == 1 {
			want = fsmpb.OutcomeClass_OUTCOME_PERMANENT
		}
		if r := wait(t, ch); r.err != nil || r.out.Class != want {
			t.Fatalf("call %d: %v %v, want %s", i, r.out, r.err, want)
		}
	}
	if s := p.Stats(); s.Placed != n {
		t.Fatalf("placed %d, want %d", s.Placed, n)
	}
	if calls, err := c.Calls(context.Background(), "acme", "r7", 0); err != nil || len(calls) != 1 || calls[0].Caller != "n1" {
		t.Fatalf("caller over the stream: %+v %v", calls, err)
	}

	long := newPlatform(t, Options{Tenant: "globex", Servers: 1, PortsPerServer: 1, RingTime: Fixed(time.Hour)})
	addr := serveGRPC(t, NewServer(long).Register)
	c2, err := NewClient(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	ch := placeAsync(context.Background(), c2, telephony.Call{RequestID: "x", CallUUID: "ux", Tenant: "globex", Telnum: "3"})
	eventually(t, 5*time.Second, "the long call in progress", func() bool { return inUse(long) == 1 })
	g.Stop() // the first server: c's stream breaks, c2's is unaffected
	select {
	case r := <-ch:
		t.Fatalf("c2's call ended with c's server: %v %v", r.out, r.err)
	case <-time.After(50 * time.Millisecond):
	}
	if _, err := c.Place(context.Background(), telephony.Call{RequestID: "y", CallUUID: "uy", Tenant: "acme", Telnum: "1"}); err == nil || errors.Is(err, telephony.ErrFull) {
		t.Fatalf("place on a stopped server: %v", err)
	}
}

// TestGRPCStreamReportsWritten: the client queues each call in its turn
// at the gate (SendQueue) and reports it written exactly once, from the
// connection it follows as gRPC writes it.
func TestGRPCStreamReportsWritten(t *testing.T) {
	p := newPlatform(t, Options{Servers: 1, PortsPerServer: 1000, RingTime: Fixed(time.Millisecond),
		Rules: []Rule{{Prefix: "1", Outcome: Success}}, TalkTime: Fixed(time.Millisecond)})
	addr := serveGRPC(t, NewServer(p).Register)
	c, err := NewClient(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	const n = 200
	var (
		mu      sync.Mutex
		queued  int
		written = map[string]int{}
	)
	var chs []<-chan placed
	for i := range n {
		id := fmt.Sprintf("r%d", i)
		chs = append(chs, placeAsync(context.Background(), c, telephony.Call{
			RequestID: id, CallUUID: "u" + id, Tenant: "acme", Telnum: "1", Attempt: 1,
			Gate: func(ctx context.Context, write func() error, q bool) error {
				mu.Lock()
				if q {
					queued++
				}
				mu.Unlock()
				return write()
			},
			Sent: func() {
				mu.Lock()
				written[id]++
				mu.Unlock()
			},
		}))
	}
	for i, ch := range chs {
		if r := wait(t, ch); r.err != nil {
			t.Fatalf("call %d: %v", i, r.err)
		}
	}
	if !c.Followed() {
		t.Fatal("the call stream's connection is not followed")
	}
	mu.Lock()
	defer mu.Unlock()
	if queued != n || len(written) != n {
		t.Fatalf("%d sends queued, %d reported written, want %d", queued, len(written), n)
	}
	for id, k := range written {
		if k != 1 {
			t.Fatalf("%s reported written %d times", id, k)
		}
	}
}
