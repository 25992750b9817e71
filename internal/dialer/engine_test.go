package dialer

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/hashicorp/raft"

	"github.com/seed-7bfc04c2/dialtone/internal/dialer/pacing"
	"github.com/seed-7bfc04c2/dialtone/internal/fsm"
	"github.com/seed-7bfc04c2/dialtone/internal/fsm/fsmpb"
	"github.com/seed-7bfc04c2/dialtone/internal/notify"
	"github.com/seed-7bfc04c2/dialtone/internal/telephony"
)

// Engine tests run the engine against a real state machine applied in
// process (no Raft), a fake port-usage source and a fake media platform
// that records every call.

// localApplier applies commands straight to an FSM, stamping the time as a
// leader would.
type localApplier struct {
	mu  sync.Mutex
	f   *fsm.FSM
	idx uint64
	// fail, when set, fails every apply (a deposed leader).
	fail bool
	// clock stamps the entries (nil: the real clock), as the engine's.
	clock Clock
}

func (a *localApplier) ApplyLeader(ctx context.Context, cmd *fsmpb.Command) (*fsmpb.ApplyResult, uint64, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.fail {
		return nil, 0, fmt.Errorf("not the leader")
	}
	if err := ctx.Err(); err != nil {
		return nil, 0, err
	}
	cmd.NowUnixMs = time.Now().UnixMilli()
	if a.clock != nil {
		cmd.NowUnixMs = a.clock.Now().UnixMilli()
	}
	b, err := fsm.Encode(cmd)
	if err != nil {
		return nil, 0, err
	}
	a.idx++
	res := a.f.Apply(&raft.Log{Index: a.idx, Data: b, Type: raft.LogCommand})
	return res.(*fsmpb.ApplyResult), a.idx, nil
}

// store adds replicated pacing to the FSM reads.
type store struct {
	*fsm.FSM
	mu     sync.Mutex
	pacing map[string]*fsmpb.Pacing
}

func (s *store) Pacing(tenant string) (*fsmpb.Pacing, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.pacing[tenant]
	return p, ok
}

func (s *store) setPacing(p *fsmpb.Pacing) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pacing[p.Tenant] = p
}

// ports is a fixed port-usage source whose in-use figure follows the fake
// platform at once.
type ports struct {
	mu    sync.Mutex
	total map[string]uint32
	plat  *platform
}

func (p *ports) TenantPorts(tenant string) PortReport {
	p.mu.Lock()
	total, ok := p.total[tenant]
	p.mu.Unlock()
	if !ok {
		return PortReport{}
	}
	return PortReport{Total: total, InUse: uint32(p.plat.active(tenant)), ReceivedAt: time.Now(), OK: true}
}

type placed struct {
	call       telephony.Call
	start, end time.Time
}

// platform is a fake media platform: it holds each call for hold, answers
// by telnum script (a list of outcomes per telnum, one per attempt;
// success when the script runs out), refuses calls beyond its ports and
// records concurrent calls of one request.
type platform struct {
	mu         sync.Mutex
	ports      map[string]int
	hold       time.Duration
	script     map[string][]telephony.Outcome
	calls      []placed
	inProgress map[string]int // per request id
	activeN    map[string]int // per tenant
	refused    int
	concurrent int
	maxActive  int
	// preSend, when set, delays each call before its gate: the work and
	// jitter a real backend has between the hand-off and the socket.
	preSend func() time.Duration
	// postSend, when set, delays each call between its gate and its
	// receipt (a lock or preemption between the gate and the socket); the
	// call reports Written after it.
	postSend func() time.Duration
	// sendWrite: send with SendWrite, postSend's delay inside the write;
	// writing counts the writes in progress, overlapped records whether
	// two ever ran at once.
	sendWrite  bool
	writing    atomic.Int32
	overlapped atomic.Bool
}

func newPlatform(hold time.Duration) *platform {
	return &platform{ports: map[string]int{}, hold: hold, script: map[string][]telephony.Outcome{},
		inProgress: map[string]int{}, activeN: map[string]int{}}
}

func (p *platform) active(tenant string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.activeN[tenant]
}

func (p *platform) Place(ctx context.Context, c telephony.Call) (telephony.Outcome, error) {
	p.mu.Lock()
	pre, post := p.preSend, p.postSend
	p.mu.Unlock()
	if pre != nil {
		time.Sleep(pre())
	}
	// The far end logs a call when it receives it: with SendWrite inside
	// the write, which runs in the call's turn at the gate, so the log is
	// in the order the writes happened.
	var (
		idx     int
		out     telephony.Outcome
		refused error
	)
	if p.sendWrite {
		if err := c.SendWrite(ctx, func() error {
			if p.writing.Add(1) > 1 {
				p.overlapped.Store(true)
			}
			defer p.writing.Add(-1)
			if post != nil {
				time.Sleep(post())
			}
			idx, out, refused = p.receive(c, time.Now())
			return nil
		}); err != nil {
			return telephony.Outcome{}, err
		}
	} else {
		// Like a real backend: the gate runs right before the call leaves.
		if err := c.Send(ctx); err != nil {
			return telephony.Outcome{}, err
		}
		if post != nil {
			time.Sleep(post())
		}
		idx, out, refused = p.receive(c, time.Now())
		c.Written()
	}
	if refused != nil {
		return telephony.Outcome{}, refused
	}

	var err error
	select {
	case <-time.After(p.hold):
	case <-ctx.Done():
		err = ctx.Err()
	}
	p.mu.Lock()
	p.activeN[c.Tenant]--
	p.inProgress[c.RequestID]--
	p.calls[idx].end = time.Now()
	p.mu.Unlock()
	return out, err
}

// receive takes a call received at the far end at time received: it is
// refused when the tenant's ports are full, else logged (its index in
// calls) and given its scripted outcome.
func (p *platform) receive(c telephony.Call, received time.Time) (idx int, out telephony.Outcome, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.activeN[c.Tenant] >= p.ports[c.Tenant] {
		p.refused++
		return 0, telephony.Outcome{}, fmt.Errorf("platform: %w", telephony.ErrFull)
	}
	p.activeN[c.Tenant]++
	p.maxActive = max(p.maxActive, p.activeN[c.Tenant])
	p.inProgress[c.RequestID]++
	if p.inProgress[c.RequestID] > 1 {
		p.concurrent++
	}
	out = telephony.Outcome{Class: fsmpb.OutcomeClass_OUTCOME_SUCCESS, Reason: "TreatmentApplied"}
	if s := p.script[c.Telnum]; len(s) > 0 {
		out, p.script[c.Telnum] = s[0], s[1:]
	}
	p.calls = append(p.calls, placed{call: c, start: received})
	return len(p.calls) - 1, out, nil
}

func (p *platform) snapshot() []placed {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]placed(nil), p.calls...)
}

// receiver is a trigger application counting notifications.
type receiver struct {
	mu     sync.Mutex
	got    map[string][]url.Values
	failN  int // fail this many deliveries first
	failed int
}

func (r *receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.failed < r.failN {
		r.failed++
		w.WriteHeader(http.StatusInternalServerError)
		return
	}
	if r.got == nil {
		r.got = map[string][]url.Values{}
	}
	q := req.URL.Query()
	r.got[q.Get("RequestID")] = append(r.got[q.Get("RequestID")], q)
	w.WriteHeader(http.StatusOK)
}

func (r *receiver) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.got)
}

func (r *receiver) last(id string) url.Values {
	r.mu.Lock()
	defer r.mu.Unlock()
	v := r.got[id]
	if len(v) == 0 {
		return nil
	}
	return v[len(v)-1]
}

type harness struct {
	t    *testing.T
	st   *store
	app  *localApplier
	plat *platform
	// backend, when set, replaces plat as the engine's backend.
	backend telephony.Backend
	ports   *ports
	recv    *receiver
	srv     *httptest.Server
	engine  *Engine
	cancel  context.CancelFunc
	done    chan struct{}
	// opts, when set, changes the engine's options before start.
	opts func(*Options)
}

func newHarness(t *testing.T, hold time.Duration) *harness {
	t.Helper()
	f := fsm.New()
	h := &harness{t: t, st: &store{FSM: f, pacing: map[string]*fsmpb.Pacing{}}, app: &localApplier{f: f}, plat: newPlatform(hold), recv: &receiver{}}
	h.ports = &ports{total: map[string]uint32{}, plat: h.plat}
	h.srv = httptest.NewServer(h.recv)
	t.Cleanup(h.srv.Close)
	return h
}

func (h *harness) setPorts(tenant string, n int) {
	h.plat.mu.Lock()
	h.plat.ports[tenant] = n
	h.plat.mu.Unlock()
	h.ports.mu.Lock()
	h.ports.total[tenant] = uint32(n)
	h.ports.mu.Unlock()
}

func (h *harness) start() {
	var backend telephony.Backend = h.plat
	if h.backend != nil {
		backend = h.backend
	}
	o := Options{
		Logger: slog.New(slog.DiscardHandler),
		Store:  h.st, Apply: h.app, Ports: h.ports, Backend: backend,
		Sender:                notify.Sender{Timeout: time.Second},
		InterruptedRetryDelay: 50 * time.Millisecond,
		NotifyMaxBackoff:      100 * time.Millisecond,
		Housekeeping:          10 * time.Millisecond,
	}
	if h.opts != nil {
		h.opts(&o)
	}
	h.engine = New(o)
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel, h.done = cancel, make(chan struct{})
	go func() {
		defer close(h.done)
		h.engine.Run(ctx)
	}()
	h.t.Cleanup(h.stop)
}

func (h *harness) stop() {
	if h.cancel == nil {
		return
	}
	h.cancel()
	select {
	case <-h.done:
	case <-time.After(10 * time.Second):
		h.t.Fatal("engine did not stop within 10s")
	}
	h.cancel = nil
}

// submit creates n requests of tenant and profile; telnum(i) names each.
func (h *harness) submit(tenant, profile string, n int, maxAttempts uint32, ttl time.Duration, telnum func(i int) string) []string {
	h.t.Helper()
	var ids []string
	for start := 0; start < n; start += 500 {
		var reqs []*fsmpb.Request
		for i := start; i < min(n, start+500); i++ {
			r := &fsmpb.Request{
				Id: uuid.Must(uuid.NewV7()).String(), Tenant: tenant, Token: fmt.Sprintf("T%d", i), IvrProfile: profile,
				Telnum: telnum(i), NotificationUrl: h.srv.URL + "/result", MaxAttempts: maxAttempts, TtlMs: ttl.Milliseconds(),
			}
			r.Fingerprint = fsm.Fingerprint(r)
			reqs = append(reqs, r)
			ids = append(ids, r.Id)
		}
		res, _, err := h.app.ApplyLeader(context.Background(), fsm.CreateCommand(reqs, 0))
		if err != nil {
			h.t.Fatal(err)
		}
		for _, it := range res.Items {
			if it.Code != fsmpb.Code_CODE_OK {
				h.t.Fatalf("create: %v", it)
			}
		}
	}
	return ids
}

func eventually(t *testing.T, timeout time.Duration, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s: %v", what, timeout, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// allNotified waits until every id is PROCESSED, NOTIFIED and received.
func (h *harness) allNotified(ids []string, timeout time.Duration) {
	h.t.Helper()
	eventually(h.t, timeout, "every request finished and notified", func() error {
		for _, id := range ids {
			r, ok := h.st.Get(id)
			if !ok {
				return fmt.Errorf("%s missing", id)
			}
			if r.State != fsmpb.State_PROCESSED || r.NotifyState != fsmpb.NotifyState_NOTIFIED {
				return fmt.Errorf("%s is %s/%s (attempts %d)", id, r.State, r.NotifyState, r.AttemptsMade)
			}
			if h.recv.last(id) == nil {
				return fmt.Errorf("%s: no notification received", id)
			}
		}
		return nil
	})
}

func digits(i int) string { return fmt.Sprintf("9%09d", i) }

func TestEngineDialsPacedWithinPortsAndNotifies(t *testing.T) {
	h := newHarness(t, 60*time.Millisecond)
	h.setPorts("acme", 10)
	h.st.setPacing(&fsmpb.Pacing{Tenant: "acme", Caps: 100})
	ids := h.submit("acme", "Application", 300, 1, time.Hour, digits)
	h.start()
	h.allNotified(ids, 30*time.Second)

	calls := h.plat.snapshot()
	if len(calls) != len(ids) {
		t.Fatalf("the platform saw %d calls for %d requests with MaxAttempts 1", len(calls), len(ids))
	}
	var starts []time.Time
	for _, c := range calls {
		starts = append(starts, c.start)
	}
	if got := maxInWindow(starts); got > 101 {
		t.Errorf("a one-second window holds %d attempts at CAPS 100", got)
	}
	h.plat.mu.Lock()
	refused, concurrent, maxActive := h.plat.refused, h.plat.concurrent, h.plat.maxActive
	h.plat.mu.Unlock()
	if refused != 0 || maxActive > 10 {
		t.Errorf("platform refused %d calls, peak %d of 10 ports", refused, maxActive)
	}
	if concurrent != 0 {
		t.Errorf("%d concurrent attempts of one request", concurrent)
	}
	// Ports, not CAPS, bound this run: 10 ports / 60 ms talk ≈ 166/s > 100.
	q := h.recv.last(ids[7])
	for k, want := range map[string]string{"Result": "SUCCESS", "AttemptsMade": "1", "MaxAttempts": "1", "TenantName": "acme",
		"IVRProfileName": "Application", "Telnum": digits(7), "Token": "T7", "TimeToLive": "3600s", "Status": ""} {
		if q.Get(k) != want {
			t.Errorf("notification %s = %q, want %q", k, q.Get(k), want)
		}
	}
	r, _ := h.st.Get(ids[7])
	if q.Get("CallUUID") != r.LastCallUuid || r.LastCallUuid == "" {
		t.Errorf("notification CallUUID %q, record %q", q.Get("CallUUID"), r.LastCallUuid)
	}
}

func TestEngineOutcomesAndRetries(t *testing.T) {
	h := newHarness(t, 5*time.Millisecond)
	h.setPorts("acme", 5)
	h.st.setPacing(&fsmpb.Pacing{Tenant: "acme", Caps: 200, NextRetryIntervalMs: 100})
	busy := telephony.Outcome{Class: fsmpb.OutcomeClass_OUTCOME_BUSY, Reason: "DestinationBusy"}
	noAnswer := telephony.Outcome{Class: fsmpb.OutcomeClass_OUTCOME_TEMPORARY, Reason: "RingNoAnswer"}
	permanent := telephony.Outcome{Class: fsmpb.OutcomeClass_OUTCOME_PERMANENT, Reason: "SITInvalidNumber"}
	internal := telephony.Outcome{Class: fsmpb.OutcomeClass_OUTCOME_INTERNAL, Reason: "InternalError"}
	h.plat.script["1001"] = []telephony.Outcome{noAnswer, noAnswer}           // then success on the third
	h.plat.script["1002"] = []telephony.Outcome{permanent}                    // ends at once
	h.plat.script["1003"] = []telephony.Outcome{noAnswer, noAnswer, noAnswer} // all attempts used
	h.plat.script["1004"] = []telephony.Outcome{internal, internal, noAnswer} // internal ones do not count
	h.plat.script["1005"] = []telephony.Outcome{busy, busy, busy}             // busy retries fit the TTL
	tel := []string{"1001", "1002", "1003", "1004", "1005"}
	ids := h.submit("acme", "P", len(tel), 3, 3*time.Second, func(i int) string { return tel[i] })
	h.start()
	h.allNotified(ids, 20*time.Second)

	for i, want := range []struct {
		result   string
		attempts string
		status   string
	}{
		{"SUCCESS", "3", "RingNoAnswer:RingNoAnswer"},
		{"FAILURE", "1", "SITInvalidNumber"},
		{"FAILURE", "3", "RingNoAnswer:RingNoAnswer:RingNoAnswer:MaxAttempts Exceeded"},
		{"SUCCESS", "2", "InternalError:InternalError:RingNoAnswer"},
		{"FAILURE", "3", "DestinationBusy:DestinationBusy:DestinationBusy:MaxAttempts Exceeded"},
	} {
		q := h.recv.last(ids[i])
		if q.Get("Result") != want.result || q.Get("AttemptsMade") != want.attempts || q.Get("Status") != want.status {
			t.Errorf("telnum %s: Result=%s AttemptsMade=%s Status=%q, want %s %s %q", tel[i],
				q.Get("Result"), q.Get("AttemptsMade"), q.Get("Status"), want.result, want.attempts, want.status)
		}
	}
	// 1004: four calls placed, two counted; the internal retries waited
	// NextRetryInterval (100 ms).
	var at []time.Time
	for _, c := range h.plat.snapshot() {
		if c.call.Telnum == "1004" {
			at = append(at, c.start)
		}
	}
	if len(at) != 4 {
		t.Fatalf("telnum 1004 was called %d times, want 4", len(at))
	}
	if gap := at[1].Sub(at[0]); gap < 100*time.Millisecond {
		t.Errorf("internal failure retried after %s, want at least NextRetryInterval 100ms", gap)
	}
	// 1003: with 3 s of TTL and no answer, retries divide the remaining
	// TTL: about 1 s, then about 1 s.
	at = nil
	for _, c := range h.plat.snapshot() {
		if c.call.Telnum == "1003" {
			at = append(at, c.start)
		}
	}
	if len(at) != 3 {
		t.Fatalf("telnum 1003 was called %d times, want 3", len(at))
	}
	if gap := at[1].Sub(at[0]); gap < 800*time.Millisecond || gap > 1500*time.Millisecond {
		t.Errorf("no-answer retry after %s, want about a third of the 3s TTL", gap)
	}
}

func TestEngineReconcilesPreviousLeader(t *testing.T) {
	h := newHarness(t, 5*time.Millisecond)
	h.setPorts("acme", 5)
	ids := h.submit("acme", "P", 4, 2, time.Hour, digits)
	ctx := context.Background()
	// A previous leader fetched all four and started attempts on two.
	if _, _, err := h.app.ApplyLeader(ctx, fsm.ClaimCommand(ids)); err != nil {
		t.Fatal(err)
	}
	if _, _, err := h.app.ApplyLeader(ctx, fsm.StartAttemptsCommand([]*fsmpb.AttemptStart{
		{Id: ids[0], CallUuid: "old-0"}, {Id: ids[1], CallUuid: "old-1"},
	})); err != nil {
		t.Fatal(err)
	}
	h.start()
	h.allNotified(ids, 10*time.Second)
	for i, id := range ids {
		r, _ := h.st.Get(id)
		if r.Result != fsmpb.Result_SUCCESS || r.AttemptsMade != 1 {
			t.Errorf("request %d: %s after %d attempts, want SUCCESS after 1 (interrupted attempts do not count)", i, r.Result, r.AttemptsMade)
		}
		if i < 2 && (len(r.Attempts) != 2 || r.Attempts[0].Outcome != fsmpb.OutcomeClass_OUTCOME_INTERRUPTED) {
			t.Errorf("request %d history %v, want an interrupted attempt then the new one", i, r.Attempts)
		}
	}
}

func TestEngineExpiresWithoutPorts(t *testing.T) {
	h := newHarness(t, 5*time.Millisecond)
	// No port report at all: no capacity, nothing is dialled.
	ids := h.submit("acme", "P", 3, 2, time.Second, digits)
	h.start()
	h.allNotified(ids, 10*time.Second)
	if n := len(h.plat.snapshot()); n != 0 {
		t.Fatalf("%d calls placed without any port report", n)
	}
	for _, id := range ids {
		if q := h.recv.last(id); q.Get("Result") != "FAILURE" || q.Get("Status") != "TTL Expired" || q.Get("AttemptsMade") != "0" {
			t.Errorf("notification %v, want FAILURE / TTL Expired / 0 attempts", q)
		}
	}
}

func TestEngineNeverDialsCancelled(t *testing.T) {
	h := newHarness(t, 5*time.Millisecond)
	h.setPorts("acme", 1)
	h.st.setPacing(&fsmpb.Pacing{Tenant: "acme", Caps: 2})
	ids := h.submit("acme", "P", 20, 1, time.Hour, digits)
	h.start()
	// Cancel everything we can as soon as dialling starts; a cancel
	// succeeds only while no attempt is in progress.
	eventually(t, 5*time.Second, "first call", func() error {
		if len(h.plat.snapshot()) == 0 {
			return fmt.Errorf("no call yet")
		}
		return nil
	})
	res, _, err := h.app.ApplyLeader(context.Background(), fsm.CancelCommand("acme", ids))
	if err != nil {
		t.Fatal(err)
	}
	cancelled := map[string]bool{}
	for _, it := range res.Items {
		if it.Code == fsmpb.Code_CODE_OK {
			cancelled[it.Id] = true
		}
	}
	if len(cancelled) < 15 {
		t.Fatalf("only %d of 20 cancelled at CAPS 2", len(cancelled))
	}
	ackAt := time.Now()
	// Let the engine run on for a while: none of them may be dialled.
	eventually(t, 10*time.Second, "uncancelled requests finished", func() error {
		for _, id := range ids {
			if r, _ := h.st.Get(id); !cancelled[id] && r.State != fsmpb.State_PROCESSED {
				return fmt.Errorf("%s still %s", id, r.State)
			}
		}
		return nil
	})
	for _, c := range h.plat.snapshot() {
		if cancelled[c.call.RequestID] && c.start.After(ackAt) {
			t.Errorf("request %s dialled at %s after its cancel was acknowledged", c.call.RequestID, c.start)
		}
		if cancelled[c.call.RequestID] {
			t.Errorf("cancelled request %s was dialled", c.call.RequestID)
		}
	}
	// A result is committed before its notification is sent: wait for them.
	want := len(ids) - len(cancelled)
	eventually(t, 10*time.Second, "notifications of the uncancelled requests", func() error {
		if got := h.recv.count(); got < want {
			return fmt.Errorf("%d notifications, want %d", got, want)
		}
		return nil
	})
	if got := h.recv.count(); got != want {
		t.Errorf("%d notifications, want %d (cancelled requests get none)", got, want)
	}
}

func TestEngineStopHangsUpAndNextLeaderRetries(t *testing.T) {
	h := newHarness(t, time.Hour) // calls never end on their own
	h.setPorts("acme", 3)
	ids := h.submit("acme", "P", 3, 1, time.Hour, digits)
	h.start()
	eventually(t, 5*time.Second, "three calls up", func() error {
		if n := h.plat.active("acme"); n != 3 {
			return fmt.Errorf("%d calls up", n)
		}
		return nil
	})
	h.stop()
	if n := h.plat.active("acme"); n != 0 {
		t.Fatalf("%d calls still up after the engine stopped", n)
	}
	// The next term: calls are short now; interrupted attempts do not count.
	h.plat.mu.Lock()
	h.plat.hold = 5 * time.Millisecond
	h.plat.mu.Unlock()
	h.start()
	h.allNotified(ids, 10*time.Second)
	for _, id := range ids {
		r, _ := h.st.Get(id)
		if r.Result != fsmpb.Result_SUCCESS || r.AttemptsMade != 1 {
			t.Errorf("%s: %s with %d attempts, want SUCCESS with 1", id, r.Result, r.AttemptsMade)
		}
	}
}

func TestEngineNotificationRetries(t *testing.T) {
	h := newHarness(t, 5*time.Millisecond)
	h.recv.failN = 3
	h.setPorts("acme", 2)
	ids := h.submit("acme", "P", 1, 1, time.Hour, digits)
	h.start()
	h.allNotified(ids, 10*time.Second)
	if st := h.engine.Stats(); len(st.Tenants) > 0 && st.Tenants[0].NotifyRetries < 3 {
		t.Errorf("stats show %d notification retries, want at least 3", st.Tenants[0].NotifyRetries)
	}
}

func TestEnginePacingChangeTakesEffect(t *testing.T) {
	h := newHarness(t, 5*time.Millisecond)
	h.setPorts("acme", 50)
	h.st.setPacing(&fsmpb.Pacing{Tenant: "acme", Caps: 5})
	h.submit("acme", "P", 2000, 1, time.Hour, digits)
	h.start()
	eventually(t, 5*time.Second, "dialling starts", func() error {
		if len(h.plat.snapshot()) == 0 {
			return fmt.Errorf("no calls")
		}
		return nil
	})
	changed := time.Now()
	h.st.setPacing(&fsmpb.Pacing{Tenant: "acme", Caps: 200})
	// Within a second the rate is well above 5/s: the old rate allows at
	// most 6 in any second, so 20 shows the change took effect (the full
	// 200 is not reached on a loaded machine under -race).
	eventually(t, 3*time.Second, "faster dialling", func() error {
		n := 0
		for _, c := range h.plat.snapshot() {
			if c.start.After(changed) && c.start.Before(changed.Add(time.Second)) {
				n++
			}
		}
		if n < 20 {
			return fmt.Errorf("%d calls in the first second after the change", n)
		}
		return nil
	})
	if st := h.engine.Stats(); len(st.Tenants) != 1 || st.Tenants[0].CAPS != 200 {
		t.Errorf("stats %+v, want CAPS 200", st)
	}
}

// Profiles are served round robin with PROPORTIONATE slots: both make
// progress at once rather than one after the other.
func TestEngineServesProfilesRoundRobin(t *testing.T) {
	h := newHarness(t, 5*time.Millisecond)
	h.setPorts("acme", 20)
	h.st.setPacing(&fsmpb.Pacing{Tenant: "acme", Caps: 100, BatchSizeMode: pacing.BatchFixed, BatchSize: 20})
	a := h.submit("acme", "A", 300, 1, time.Hour, digits)
	b := h.submit("acme", "B", 100, 1, time.Hour, func(i int) string { return digits(i + 1000) })
	h.start()
	eventually(t, 10*time.Second, "first 100 calls", func() error {
		if n := len(h.plat.snapshot()); n < 100 {
			return fmt.Errorf("%d calls", n)
		}
		return nil
	})
	first := h.plat.snapshot()[:100]
	nb := 0
	for _, c := range first {
		if strings.HasPrefix(c.call.IVRProfile, "B") {
			nb++
		}
	}
	// B has a quarter of the pending requests and is served round robin:
	// it is neither starved nor served first.
	if nb < 15 || nb > 60 {
		t.Errorf("profile B got %d of the first 100 calls (A 300 pending, B 100)", nb)
	}
	h.allNotified(append(a, b...), 30*time.Second)
}
