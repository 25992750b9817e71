//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	pb "github.com/seed-7bfc04c2/dialtone/api/dialtonev1"
	"github.com/seed-7bfc04c2/dialtone/internal/config"
	"github.com/seed-7bfc04c2/dialtone/test/cluster"
)

// TestContactRulesOnShiftedClock runs three real nodes whose clock is
// shifted (dialer.test_clock_offset, test only) to 07:59:30 New York time
// on a winter Tuesday, with the us-tcpa window (08:00-21:00 local) and a
// cap of one attempt per number per hour. Requests for numbers in four US
// zones submitted at one instant wait for their window (each to 08:00
// local, in the order the windows open); at 08:00 New York the New York
// ones are due, and of the two for one number only one is dialled (the
// state machine refuses the other's start: frequency_cap). After the
// leader is killed, a new request to that number waits for the cap on the
// new leader too. A New York request whose number is put on the
// suppression list after its create, while it waits for the window, is
// never dialled: it ends FAILURE Suppressed with no attempt.
func TestContactRulesOnShiftedClock(t *testing.T) {
	ny, err := time.LoadLocation("America/New_York")
	if err != nil {
		t.Fatal(err)
	}
	opening := time.Date(2031, time.January, 14, 8, 0, 0, 0, ny)
	// Nodes boot in a few seconds: "now" is then about 20 s before 09:00.
	offset := time.Until(opening.Add(-30 * time.Second))
	simAddr, err := cluster.FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	c := startCluster(t, func(cfg *config.Config) {
		cfg.Telephony = config.Telephony{Backend: "sim", SimAddr: simAddr}
		cfg.Dialer.TestClockOffset = config.Duration{Duration: offset}
	})
	var grpcAddrs []string
	for _, id := range c.IDs() {
		grpcAddrs = append(grpcAddrs, c.GRPCAddr(id))
	}
	startMediasim(t, nil, "--listen", simAddr, "--http", "",
		"--tenant", "acme", "--servers", "1", "--ports", "20", "--ring", "100ms-300ms", "--talk", "200ms-500ms",
		"--endpoints", strings.Join(grpcAddrs, ","), "--seed", "7")

	addr := c.HTTPAddr(c.IDs()[0])
	api := rest(t, addr)
	if _, err := api.SetCallingWindow(t.Context(), "acme", "", &pb.CallingWindow{Preset: "us-tcpa"}); err != nil {
		t.Fatal(err)
	}
	if _, err := api.SetFrequencyCap(t.Context(), "acme", &pb.FrequencyCap{MaxAttempts: 1, Period: "1h"}); err != nil {
		t.Fatal(err)
	}
	spec := func(token, telnum string) *pb.RequestSpec {
		return &pb.RequestSpec{Token: token, IvrProfile: "Application", Telnum: telnum,
			NotificationUrl: "http://127.0.0.1:9/result", MaxAttempts: 1, TimeToLive: "5h"}
	}
	// New York, Chicago, Denver, Los Angeles (zones from the area codes),
	// and New York's number again.
	zones := []string{"America/New_York", "America/Chicago", "America/Denver", "America/Los_Angeles"}
	tokens := []string{"ny", "chi", "den", "la", "ny-again", "ny-dnc"}
	got := submit(t, addr, "acme",
		spec("ny", "+12125550101"), spec("chi", "+13125550102"), spec("den", "+13035550103"),
		spec("la", "+12135550104"), spec("ny-again", "+12125550101"), spec("ny-dnc", "+12125550199"))

	get := func(id string) (*pb.Request, error) {
		for _, n := range c.Running() {
			if r, err := getRequest(t, c.HTTPAddr(n), "acme", id); err == nil {
				return r, nil
			}
		}
		return nil, fmt.Errorf("no node answers for %s", id)
	}
	// The ids in token order (the answer's order is the specs').
	byToken := map[string]string{}
	for _, id := range got {
		r, err := get(id)
		if err != nil {
			t.Fatal(err)
		}
		byToken[r.GetSpec().GetToken()] = id
	}
	var ids []string
	for _, tok := range tokens {
		ids = append(ids, byToken[tok])
	}
	// Every request first waits for its window, to 08:00 in its zone.
	var nexts []time.Time
	for i, id := range ids[:4] {
		loc, _ := time.LoadLocation(zones[i])
		want := time.Date(2031, time.January, 14, 8, 0, 0, 0, loc)
		eventually(t, 30*time.Second, zones[i]+" request deferred to its opening", func() error {
			r, err := get(id)
			if err != nil {
				return err
			}
			if r.AttemptsMade == 0 && (r.WaitReason != "outside_window" || !at(r.NextRetry).Equal(want)) {
				return fmt.Errorf("wait %q next %v, want %v", r.WaitReason, at(r.NextRetry), want)
			}
			return nil
		})
		nexts = append(nexts, want)
	}
	if !slices.IsSortedFunc(nexts, func(a, b time.Time) int { return a.Compare(b) }) {
		t.Fatalf("openings out of order: %v", nexts)
	}
	// Listed after its create, before its window opens.
	if _, err := api.AddSuppressions(t.Context(), "acme", []string{"+12125550199"}, ""); err != nil {
		t.Fatal(err)
	}

	// 08:00 New York: one of its two requests is dialled, at or after the
	// opening; the other waits for the cap.
	var dialled, held string
	var started time.Time
	eventually(t, 90*time.Second, "a New York request dialled at its opening", func() error {
		a, err := get(ids[0])
		if err != nil {
			return err
		}
		b, err := get(ids[4])
		if err != nil {
			return err
		}
		// A started attempt counts for the cap even when a leader change
		// interrupts it (its call may have rung): then it is not counted
		// against max_attempts and that request waits for the cap too.
		switch {
		case len(a.Attempts) == 1 && len(b.Attempts) == 0 && b.WaitReason == "frequency_cap":
			dialled, held, started = a.Id, b.Id, at(a.Attempts[0].Started)
		case len(b.Attempts) == 1 && len(a.Attempts) == 0 && a.WaitReason == "frequency_cap":
			dialled, held, started = b.Id, a.Id, at(b.Attempts[0].Started)
		default:
			return fmt.Errorf("ny: attempts %v wait %q; ny-again: attempts %v wait %q", a.Attempts, a.WaitReason, b.Attempts, b.WaitReason)
		}
		return nil
	})
	if started.Before(opening) {
		t.Fatalf("dialled at %v, before the window opened at %v", started, opening)
	}
	eventually(t, 30*time.Second, "the listed New York request ended without a call", func() error {
		r, err := get(ids[5])
		if err != nil {
			return err
		}
		if r.State != "PROCESSED" || r.Result != "FAILURE" || r.ResultReason != "Suppressed" || r.AttemptsMade != 0 {
			return fmt.Errorf("state %s result %s reason %q attempts %d", r.State, r.Result, r.ResultReason, r.AttemptsMade)
		}
		return nil
	})
	// Held until an hour after the dialled call: after its start while it
	// was in progress when the cap held the other back, after its end once
	// it had ended (docs/compliance.md).
	capUntil := func() []time.Time {
		until := []time.Time{started.Add(time.Hour).Truncate(time.Millisecond)}
		if d, err := get(dialled); err == nil && d.Attempts[0].Ended != nil {
			until = append(until, at(d.Attempts[0].Ended).Add(time.Hour).Truncate(time.Millisecond))
		}
		return until
	}
	if r, _ := get(held); !slices.ContainsFunc(capUntil(), at(r.NextRetry).Equal) {
		t.Fatalf("held until %v, want one of %v (the dialled call's start or end + 1h)", at(r.NextRetry), capUntil())
	}

	// The cap holds across a leader kill: the history is replicated.
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	leader, err := c.WaitLeader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Kill(leader); err != nil {
		t.Fatal(err)
	}
	var via string
	for _, n := range c.Running() {
		via = c.HTTPAddr(n)
	}
	var late []string
	eventually(t, 30*time.Second, "a request accepted after the kill", func() error {
		late, err = create(t.Context(), t, via, "acme", spec("ny-late", "+12125550101"))
		return err
	})
	eventually(t, 30*time.Second, "the new leader holds the late request for the cap", func() error {
		r, err := get(late[0])
		if err != nil {
			return err
		}
		if r.AttemptsMade != 0 || r.WaitReason != "frequency_cap" || !slices.ContainsFunc(capUntil(), at(r.NextRetry).Equal) {
			return fmt.Errorf("%d attempts, wait %q, next %v, want one of %v", r.AttemptsMade, r.WaitReason, at(r.NextRetry), capUntil())
		}
		return nil
	})
}
