package chaos

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"github.com/seed-7bfc04c2/dialtone/test/chaos/history"
)

// faultSchedule applies the faults in turn, Rounds times (membership only
// in the last round: nodes that left do not come back).
func (r *Runner) faultSchedule(ctx context.Context, rng *rand.Rand) error {
	o := r.opts
	if err := sleep(ctx, o.Warmup); err != nil {
		return err
	}
	for round := 1; round <= max(o.Rounds, 1); round++ {
		for _, name := range o.Faults {
			if name == "membership" && round < o.Rounds {
				continue
			}
			f := history.Fault{Name: name, Start: time.Now()}
			r.log("round %d: %s", round, name)
			err := r.apply(ctx, name, &f)
			r.mu.Lock()
			r.faults = append(r.faults, f)
			r.mu.Unlock()
			if err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
			r.log("  %s on %s: healed after %v, settled after %v", name, f.Target, f.Healed.Sub(f.Start).Round(time.Millisecond), f.Settled.Sub(f.Start).Round(time.Millisecond))
			if err := sleep(ctx, o.Recover); err != nil {
				return err
			}
		}
	}
	return nil
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

const settleTimeout = 60 * time.Second

var errNoLeader = errors.New("no leader")

func (r *Runner) apply(ctx context.Context, name string, f *history.Fault) error {
	o := r.opts
	l := r.leader()
	if l == "" {
		var ok bool
		if l, ok = r.waitLeader(ctx, time.Now().Add(-time.Second), settleTimeout); !ok {
			return errNoLeader
		}
	}
	switch name {
	case "kill-leader", "kill-follower":
		target := l
		if name == "kill-follower" {
			target = r.follower(l)
		}
		f.Target = target
		f.Start = time.Now()
		r.setUp(target, false)
		if err := r.dep.Kill(ctx, target); err != nil {
			return err
		}
		if _, ok := r.waitLeader(ctx, f.Start, settleTimeout, target); !ok {
			return errNoLeader
		}
		f.Settled = time.Now()
		if err := sleep(ctx, o.Hold); err != nil {
			return err
		}
		f.Healed = time.Now()
		if err := r.dep.Start(ctx, target); err != nil {
			return err
		}
		if !r.waitFollowing(ctx, target, f.Healed, settleTimeout) {
			return fmt.Errorf("%s did not rejoin", target)
		}
		r.setUp(target, true)

	case "pause-leader":
		f.Target = l
		f.Start = time.Now()
		r.setUp(l, false)
		if err := r.dep.Pause(ctx, l); err != nil {
			return err
		}
		if _, ok := r.waitLeader(ctx, f.Start, settleTimeout, l); !ok {
			_ = r.dep.Unpause(context.Background(), l)
			return errNoLeader
		}
		f.Settled = time.Now()
		// Longer than the election timeout, and than the new leader's
		// interrupted_retry_delay, so the attempts the paused leader
		// holds are retried by its successor before it wakes up.
		if err := sleep(ctx, max(o.Hold, 4*time.Second)-time.Since(f.Start)); err != nil {
			_ = r.dep.Unpause(context.Background(), l)
			return err
		}
		f.Healed = time.Now()
		if err := r.dep.Unpause(ctx, l); err != nil {
			return err
		}
		if !r.waitFollowing(ctx, l, f.Healed, settleTimeout) {
			return fmt.Errorf("%s did not rejoin", l)
		}
		r.setUp(l, true)

	case "partition-leader":
		f.Target = l
		f.Start = time.Now()
		ip := r.nodes[l].clusterIP
		if err := r.dep.Disconnect(ctx, l); err != nil {
			return err
		}
		nl, ok := r.waitLeader(ctx, f.Start, settleTimeout, l)
		if !ok {
			_ = r.dep.Connect(context.Background(), l, ip)
			return errNoLeader
		}
		f.Settled = time.Now()
		f.Note = "new leader " + nl
		if err := sleep(ctx, o.Hold); err != nil {
			_ = r.dep.Connect(context.Background(), l, ip)
			return err
		}
		f.Healed = time.Now()
		if err := r.dep.Connect(ctx, l, ip); err != nil {
			return err
		}
		if !waitFor(ctx, settleTimeout, func() bool {
			r.mu.Lock()
			defer r.mu.Unlock()
			o := r.latest[l]
			return o.Time.After(f.Healed) && o.Leader != "" && (o.Leader != l || o.State == "Leader")
		}) {
			return fmt.Errorf("%s did not rejoin", l)
		}

	case "restart-all":
		var targets []string
		r.mu.Lock()
		for _, id := range []string{"n1", "n2", "n3", "n4", "n5"} {
			if n := r.nodes[id]; n.started && !n.removed {
				targets = append(targets, id)
			}
		}
		r.mu.Unlock()
		f.Target = fmt.Sprint(targets)
		f.Start = time.Now()
		if err := r.each(targets, func(id string) error { r.setUp(id, false); return r.dep.Kill(ctx, id) }); err != nil {
			return err
		}
		if err := sleep(ctx, time.Second); err != nil {
			return err
		}
		f.Healed = time.Now()
		if err := r.each(targets, func(id string) error { return r.dep.Start(ctx, id) }); err != nil {
			return err
		}
		for _, id := range targets {
			r.setUp(id, true)
		}
		if _, ok := r.waitLeader(ctx, f.Healed, settleTimeout); !ok {
			return errNoLeader
		}
		f.Settled = time.Now()

	case "membership":
		f.Start = time.Now()
		r.mu.Lock()
		r.nodes["n4"].started, r.nodes["n5"].started = true, true
		r.mu.Unlock()
		if err := r.dep.Up(ctx, "n4", "n5"); err != nil {
			return err
		}
		for _, id := range []string{"n4", "n5"} {
			if _, err := r.dep.Container(ctx, id); err != nil {
				return err
			}
		}
		if !waitFor(ctx, settleTimeout, func() bool { return r.voters(ctx, "n4", "n5") }) {
			return fmt.Errorf("n4 and n5 did not become voters")
		}
		r.setUp("n4", true)
		r.setUp("n5", true)
		f.Note = "n4, n5 voters after " + time.Since(f.Start).Round(time.Millisecond).String()
		if err := sleep(ctx, o.Hold); err != nil {
			return err
		}
		// Remove two of the original nodes: a follower, then the leader
		// (which hands over leadership as it leaves).
		l = r.leader()
		var gone []string
		for _, id := range []string{"n1", "n2", "n3"} {
			if id != l && len(gone) == 0 {
				gone = append(gone, id)
			}
		}
		gone = append(gone, l)
		f.Target = fmt.Sprintf("+n4 +n5 -%s -%s", gone[0], gone[1])
		f.Healed = time.Now()
		for _, id := range gone {
			r.setUp(id, false)
			base := r.base(r.nodes[id])
			err := r.retry(ctx, 30*time.Second, func(ctx context.Context, _ string) error {
				return r.api.leave(ctx, base)
			})
			if err != nil {
				return fmt.Errorf("%s leave: %w", id, err)
			}
			r.mu.Lock()
			r.nodes[id].removed = true
			r.mu.Unlock()
		}
		if _, ok := r.waitLeader(ctx, f.Healed, settleTimeout, gone...); !ok {
			return errNoLeader
		}
		if !waitFor(ctx, settleTimeout, func() bool { return r.votersExactly(ctx, gone) }) {
			return fmt.Errorf("%v still voters after leaving", gone)
		}
		f.Settled = time.Now()
	default:
		return fmt.Errorf("unknown fault %q", name)
	}
	return nil
}

// follower is an up node other than leader.
func (r *Runner) follower(leader string) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, id := range []string{"n1", "n2", "n3", "n4", "n5"} {
		if n := r.nodes[id]; id != leader && n.up && !n.removed && n.started {
			return id
		}
	}
	return ""
}

func (r *Runner) each(ids []string, f func(id string) error) error {
	var wg sync.WaitGroup
	errs := make([]error, len(ids))
	for i, id := range ids {
		wg.Go(func() { errs[i] = f(id) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

// servers answers the leader's Raft voters.
func (r *Runner) servers(ctx context.Context) ([]string, bool) {
	l := r.leader()
	if l == "" {
		return nil, false
	}
	cctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	st, err := r.api.status(cctx, r.base(r.nodes[l]))
	if err != nil {
		return nil, false
	}
	var out []string
	for _, s := range st.GetServers() {
		if s.GetSuffrage() == "Voter" {
			out = append(out, s.GetId())
		}
	}
	return out, true
}

func (r *Runner) voters(ctx context.Context, ids ...string) bool {
	vs, ok := r.servers(ctx)
	if !ok {
		return false
	}
	for _, id := range ids {
		if !slices.Contains(vs, id) {
			return false
		}
	}
	return true
}

func (r *Runner) votersExactly(ctx context.Context, gone []string) bool {
	vs, ok := r.servers(ctx)
	if !ok {
		return false
	}
	for _, id := range gone {
		if slices.Contains(vs, id) {
			return false
		}
	}
	return true
}
