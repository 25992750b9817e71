package chaos

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	pb "github.com/seed-7bfc04c2/dialtone/api/dialtonev1"
	"github.com/seed-7bfc04c2/dialtone/test/chaos/history"
)

// known is a request whose create was acknowledged.
type known struct{ token, id string }

// recorder collects the history of client operations.
type recorder struct {
	mu    sync.Mutex
	ops   []history.Op
	known []known
}

func (r *recorder) add(o history.Op) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ops = append(r.ops, o)
	if o.Kind == history.Create && o.Outcome == history.OK {
		r.known = append(r.known, known{o.Token, o.ID})
	}
}

// pick chooses a known request: mostly recent ones, which the dialer is
// still working on.
func (r *recorder) pick(rng *rand.Rand) (known, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := len(r.known)
	if n == 0 {
		return known{}, false
	}
	if rng.IntN(10) < 7 {
		return r.known[n-1-rng.IntN(min(n, 40))], true
	}
	return r.known[rng.IntN(n)], true
}

func (r *recorder) snapshot() ([]history.Op, []known) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]history.Op(nil), r.ops...), append([]known(nil), r.known...)
}

// load is the steady client load: creates, linearizable gets and cancels
// at fixed rates, spread over a pool of clients and over the nodes that
// are up.
type load struct {
	r       *Runner
	rec     *recorder
	jobs    chan history.Kind
	tokenMu sync.Mutex
	next    int
	prefix  string
	dropped [3]int
}

func (l *load) run(ctx context.Context, clients int) {
	var wg sync.WaitGroup
	l.jobs = make(chan history.Kind)
	for c := range clients {
		wg.Go(func() { l.client(ctx, c) })
	}
	o := l.r.opts
	for i, g := range []struct {
		kind history.Kind
		rate float64
	}{{history.Create, o.CreateRate}, {history.Get, o.GetRate}, {history.Cancel, o.CancelRate}} {
		if g.rate <= 0 {
			continue
		}
		wg.Go(func() {
			t := time.NewTicker(time.Duration(float64(time.Second) / g.rate))
			defer t.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-t.C:
				}
				select {
				case l.jobs <- g.kind:
				default:
					l.tokenMu.Lock()
					l.dropped[i]++ // every client is busy: the load stays open-loop bounded
					l.tokenMu.Unlock()
				}
			}
		})
	}
	wg.Wait()
}

func (l *load) token() string {
	l.tokenMu.Lock()
	defer l.tokenMu.Unlock()
	l.next++
	return fmt.Sprintf("%s-%06d", l.prefix, l.next)
}

func (l *load) client(ctx context.Context, c int) {
	rng := rand.New(rand.NewPCG(uint64(l.r.opts.Seed), uint64(c)+1))
	for {
		var kind history.Kind
		select {
		case <-ctx.Done():
			return
		case kind = <-l.jobs:
		}
		switch kind {
		case history.Create:
			l.create(ctx, c, rng)
		case history.Get:
			if k, ok := l.rec.pick(rng); ok {
				l.get(ctx, c, rng, k)
			}
		case history.Cancel:
			if k, ok := l.rec.pick(rng); ok {
				l.cancel(ctx, c, rng, k)
			}
		}
	}
}

// create submits one request with its token as the idempotency key and,
// when the answer is not definite, retries it (on any node) until it is or
// the retry budget runs out: the idempotency key makes the retries one
// operation.
func (l *load) create(ctx context.Context, c int, rng *rand.Rand) {
	o := l.r.opts
	tok := l.token()
	s := &pb.RequestSpec{
		Token: tok, IvrProfile: "Chaos", Telnum: contactTelnum(rng),
		MaxAttempts: o.MaxAttempts, TimeToLive: fmt.Sprintf("%dms", o.TTL.Milliseconds()),
		NotificationUrl: "http://mediasim:8089/notify", IdempotencyKey: tok,
	}
	op := history.Op{Client: c, Kind: history.Create, Token: tok, Telnum: s.Telnum, Invoke: time.Now()}
	deadline := op.Invoke.Add(o.CreateRetry)
	for {
		node, base := l.r.pickNode(rng)
		op.Node = node
		cctx, cancel := context.WithTimeout(ctx, o.OpTimeout)
		id, err := l.r.api.create(cctx, base, s)
		cancel()
		if err == nil {
			op.ID, op.Outcome, op.Return, op.Error = id, history.OK, time.Now(), ""
			break
		}
		op.Outcome, op.Error = history.Unknown, truncate(err.Error(), 160)
		if ctx.Err() != nil || time.Now().After(deadline) {
			break
		}
		select {
		case <-ctx.Done():
		case <-time.After(200 * time.Millisecond):
		}
	}
	l.rec.add(op)
}

func (l *load) get(ctx context.Context, c int, rng *rand.Rand, k known) {
	node, base := l.r.pickNode(rng)
	op := history.Op{Client: c, Kind: history.Get, Token: k.token, ID: k.id, Node: node, Invoke: time.Now()}
	cctx, cancel := context.WithTimeout(ctx, l.r.opts.OpTimeout)
	r, found, err := l.r.api.get(cctx, base, k.id)
	cancel()
	switch {
	case err != nil:
		op.Outcome, op.Error = history.Unknown, truncate(err.Error(), 160)
	case !found:
		op.Outcome, op.Return = history.NotFound, time.Now()
	default:
		op.Outcome, op.Return = history.OK, time.Now()
		op.State, op.Result, op.Telnum, op.Attempts = r.GetState(), r.GetResult(), r.GetSpec().GetTelnum(), r.GetAttemptsMade()
	}
	if ctx.Err() != nil && op.Outcome == history.Unknown {
		return // cut off by the end of the load: not an operation
	}
	l.rec.add(op)
}

func (l *load) cancel(ctx context.Context, c int, rng *rand.Rand, k known) {
	node, base := l.r.pickNode(rng)
	op := history.Op{Client: c, Kind: history.Cancel, Token: k.token, ID: k.id, Node: node, Invoke: time.Now()}
	cctx, cancel := context.WithTimeout(ctx, l.r.opts.OpTimeout)
	out, err := l.r.api.cancel(cctx, base, k.id)
	cancel()
	if err != nil {
		op.Outcome, op.Error = history.Unknown, truncate(err.Error(), 160)
	} else {
		op.Outcome, op.Return = out, time.Now()
	}
	l.rec.add(op)
}
