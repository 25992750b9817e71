package chaos

// The SIP variant (issue 15): the compose deployment with the SIP backend
// (deploy/compose/sip.yml, cluster-sip.toml), the leader holding the
// floating service address on the client network, and two SIPp far ends
// on the host (the client network's gateway): one answers and holds every
// call, the other rings until CANCEL. Each round places calls until the
// first far end has `Up` calls up and the second `Ringing` calls ringing,
// applies one fault to the leader (SIGKILL, docker pause, or cutting it
// off the cluster network), heals it, waits for every request to be
// processed and notified, and compares what the cluster recorded and
// notified with what the far ends saw.

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	pb "github.com/seed-7bfc04c2/dialtone/api/dialtonev1"
	"github.com/seed-7bfc04c2/dialtone/internal/sim/notifysink"
	"github.com/seed-7bfc04c2/dialtone/test/sipjudge"
)

// SIPOptions configure a SIP run.
type SIPOptions struct {
	OutDir         string
	ComposeFile    string
	Override       string // deploy/compose/sip.yml
	ConfigTemplate string // deploy/compose/cluster-sip.toml
	Scenarios      string // directory of the SIPp scenarios
	Seed           int64
	Up, Ringing    int      // calls up and ringing at each fault
	Faults         []string // kill-leader, pause-leader, partition-leader
	Hold           time.Duration
	Keep           bool
	Log            func(format string, args ...any)
}

// SIPFaultNames are the faults a SIP run knows.
var SIPFaultNames = []string{"kill-leader", "pause-leader", "partition-leader"}

// SIPRound is what one fault did to the calls: the far ends' judgement
// (sipjudge.Result's counts and Details) of the round's requests.
type SIPRound struct {
	Fault, Leader, NewLeader string
	Up, Ringing              int // at the far ends when the fault struck
	sipjudge.Result
}

// OK reports whether the round kept every promise of issue 15.
func (r SIPRound) OK(up, ringing int) bool {
	return r.Up >= up && r.Ringing >= ringing && r.Dropped == 0 && r.Duplicates == 0 && r.ExtraAttempts == 0 &&
		r.WrongOutcome == 0 && r.Unnotified == 0 && r.OverBudget == 0 && r.EarlyCancels == 0
}

func (r SIPRound) String() string {
	return fmt.Sprintf("%s of %s (new leader %s): up %d, ringing %d, dropped %d, duplicate INVITEs %d, extra attempts %d (uncounted %d), outcome not the far end's %d, unnotified %d, notified again %d, most dialogs %d of budget %d (%d far ends over), CANCELs before the ring timeout %d",
		r.Fault, r.Leader, r.NewLeader, r.Up, r.Ringing, r.Dropped, r.Duplicates, r.ExtraAttempts, r.Uncounted, r.WrongOutcome, r.Unnotified, r.Renotified, r.MaxDialogs, r.Budget, r.OverBudget, r.EarlyCancels)
}

// sipFar is one SIPp far end on the host.
type sipFar struct {
	tenant  string
	port    int
	n       int // calls per round: its port budget
	answers bool
	log     string
	cmd     *exec.Cmd
	done    chan struct{}
}

const (
	sipRNA      = 15 * time.Second // the ringing requests' ring timeout
	sipSettle   = 30 * time.Second
	sipDeadline = 3 * time.Minute
)

// RunSIP performs a SIP run; the deployment and the far ends are removed
// at the end (unless Keep).
func RunSIP(ctx context.Context, o SIPOptions) (rounds []SIPRound, err error) {
	if o.Log == nil {
		o.Log = func(string, ...any) {}
	}
	if err := os.MkdirAll(o.OutDir, 0o755); err != nil {
		return nil, err
	}
	out, err := filepath.Abs(o.OutDir)
	if err != nil {
		return nil, err
	}
	abs := func(p string) string { a, _ := filepath.Abs(p); return a }
	tmpl, err := os.ReadFile(o.ConfigTemplate)
	if err != nil {
		return nil, fmt.Errorf("cluster TOML: %w", err)
	}
	rng := rand.New(rand.NewPCG(uint64(o.Seed), 15))
	// The first call of a round must still be up when the fault strikes
	// and until the new leader adopted it.
	hold := 30*time.Second + time.Duration(o.Up)*time.Second/5 + o.Hold
	fars := []*sipFar{
		{tenant: "acme", port: 5070, n: o.Up, answers: true},
		{tenant: "ring", port: 5071, n: o.Ringing},
	}
	var dep *Deployment
	for try := 0; ; try++ {
		b, c := 100+rng.IntN(150), rng.IntN(250)
		clusterNet, clientNet := fmt.Sprintf("10.%d.%d", b, c), fmt.Sprintf("10.%d.%d", b, c+1)
		toml := strings.ReplaceAll(string(tmpl), "10.213.1.", clusterNet+".")
		toml = strings.ReplaceAll(toml, "10.213.2.", clientNet+".")
		for _, f := range fars {
			toml += fmt.Sprintf("\n[[telephony.sip.trunk]]\nname = %q\naddress = \"%s.1:%d\"\ntenants = [%q]\nports = %d\n", f.tenant, clientNet, f.port, f.tenant, f.n)
		}
		toml = strings.Replace(toml, "[telephony.sip]\n", fmt.Sprintf("[telephony.sip]\nmax_call_duration = %q\n", (3*hold).String()), 1)
		cfg := filepath.Join(out, "cluster.toml")
		if err := os.WriteFile(cfg, []byte(toml), 0o644); err != nil {
			return nil, err
		}
		dep = &Deployment{
			Project: fmt.Sprintf("dtchaossip%d", time.Now().UnixNano()%1_000_000_000), ComposeFile: abs(o.ComposeFile),
			Overrides: []string{abs(o.Override)}, Config: cfg, ClusterNet: clusterNet, ClientNet: clientNet,
			MediasimArgs: fmt.Sprintf("--seed %d", o.Seed), Log: o.Log,
		}
		o.Log("deployment %s: cluster net %s.0/24, client net %s.0/24, service address %s.100:5060", dep.Project, clusterNet, clientNet, clientNet)
		if err = dep.Up(ctx); err == nil {
			break
		}
		_ = dep.Down()
		if try == 2 || !strings.Contains(err.Error(), "overlap") {
			return nil, fmt.Errorf("deployment: %w", err)
		}
	}
	defer func() {
		for _, f := range fars {
			if f.cmd != nil {
				_ = f.cmd.Process.Kill()
				<-f.done
			}
		}
		if lerr := dep.Logs(filepath.Join(out, "containers.log")); lerr != nil {
			o.Log("saving container logs: %v", lerr)
		}
		if o.Keep {
			o.Log("deployment %s left running (--keep)", dep.Project)
			return
		}
		if derr := dep.Down(); derr != nil && err == nil {
			err = derr
		}
	}()
	for _, f := range fars {
		if err := f.start(dep.ClientNet+".1", o.Scenarios, out, hold); err != nil {
			return nil, err
		}
	}
	apis := map[string]*api{}
	for _, f := range fars {
		apis[f.tenant] = newAPI(f.tenant)
	}
	ids := []string{"n1", "n2", "n3"}
	base := func(id string) string { return fmt.Sprintf("http://%s.%d:8080", dep.ClientNet, 10+int(id[1]-'0')) }
	leaderOf := func(ctx context.Context, exclude string) (string, error) {
		deadline := time.Now().Add(sipSettle)
		for {
			for _, id := range ids {
				if id == exclude {
					continue
				}
				cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
				st, err := apis["acme"].status(cctx, base(id))
				cancel()
				if err == nil && st.GetLeaderId() != "" && st.GetLeaderId() != exclude {
					return st.GetLeaderId(), nil
				}
			}
			if time.Now().After(deadline) {
				return "", errNoLeader
			}
			if err := sleep(ctx, 200*time.Millisecond); err != nil {
				return "", err
			}
		}
	}
	if _, err := leaderOf(ctx, ""); err != nil {
		return nil, err
	}
	sim := "http://" + dep.ClientNet + ".10:8089/notifications"
	for k, fault := range o.Faults {
		leader, err := leaderOf(ctx, "")
		if err != nil {
			return rounds, err
		}
		via := ids[0]
		for _, id := range ids {
			if id != leader {
				via = id
				break
			}
		}
		want := map[string]*sipFar{} // this round's requests
		place := func(f *sipFar) error {
			for i := range f.n {
				s := &pb.RequestSpec{Token: fmt.Sprintf("K%d%s%d", k, f.tenant, i), IvrProfile: "Sales",
					Telnum: fmt.Sprintf("49%d%02d%04d", f.port, k, i), NotificationUrl: "http://mediasim:8089/notify",
					MaxAttempts: 3, TimeToLive: "600s", IdempotencyKey: fmt.Sprintf("sip-%d-%d-%s-%d", o.Seed, k, f.tenant, i)}
				if !f.answers {
					s.MaxAttempts = 1
					s.Cpd = &pb.Cpd{RnaTimeout: sipRNA.String()}
				}
				var id string
				err := retry(ctx, 30*time.Second, func() (err error) {
					cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
					defer cancel()
					id, err = apis[f.tenant].create(cctx, base(via), s)
					return err
				})
				if err != nil {
					return fmt.Errorf("create: %w", err)
				}
				want[id] = f
			}
			return nil
		}
		count := func(f *sipFar, kind string) int {
			n := 0
			for _, e := range f.entries() {
				if e.Kind == kind && want[e.RID] == f {
					n++
				}
			}
			return n
		}
		if err := place(fars[0]); err != nil {
			return rounds, err
		}
		if err := retry(ctx, 2*time.Minute, func() error {
			if n := count(fars[0], "ACKED"); n < fars[0].n {
				return fmt.Errorf("%d of %d calls up", n, fars[0].n)
			}
			return nil
		}); err != nil {
			return rounds, err
		}
		if err := place(fars[1]); err != nil {
			return rounds, err
		}
		if err := retry(ctx, time.Minute, func() error {
			if n := count(fars[1], "INVITE"); n < fars[1].n {
				return fmt.Errorf("%d of %d calls ringing", n, fars[1].n)
			}
			return nil
		}); err != nil {
			return rounds, err
		}
		if err := sleep(ctx, 300*time.Millisecond); err != nil { // the dialogs' state committed
			return rounds, err
		}
		r := SIPRound{Fault: fault, Leader: leader, Up: count(fars[0], "ACKED") - count(fars[0], "END"), Ringing: count(fars[1], "INVITE") - count(fars[1], "END")}
		o.Log("round %d: %s of %s with %d calls up and %d ringing", k+1, fault, leader, r.Up, r.Ringing)
		switch fault {
		case "kill-leader":
			err = dep.Kill(ctx, leader)
		case "pause-leader":
			if err = dep.Pause(ctx, leader); err == nil {
				r.NewLeader, err = leaderOf(ctx, leader)
				if e := sleep(ctx, o.Hold); e != nil {
					return rounds, e
				}
				err = errors.Join(err, dep.Unpause(ctx, leader))
			}
		case "partition-leader":
			if err = dep.Disconnect(ctx, leader); err == nil {
				r.NewLeader, err = leaderOf(ctx, leader)
				if e := sleep(ctx, o.Hold); e != nil {
					return rounds, e
				}
				err = errors.Join(err, dep.Connect(ctx, leader, fmt.Sprintf("%s.%d", dep.ClusterNet, 10+int(leader[1]-'0'))))
			}
		default:
			err = fmt.Errorf("unknown SIP fault %q", fault)
		}
		if err != nil {
			return rounds, fmt.Errorf("round %d %s: %w", k+1, fault, err)
		}
		if r.NewLeader == "" {
			if r.NewLeader, err = leaderOf(ctx, leader); err != nil {
				return rounds, err
			}
		}
		// Every request processed and notified.
		reqs := map[string]*pb.Request{}
		var notes []notifysink.Notification
		err = retry(ctx, sipDeadline+hold, func() error {
			for id, f := range want {
				if reqs[id] != nil {
					continue
				}
				cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
				req, found, err := apis[f.tenant].get(cctx, base(r.NewLeader), id)
				cancel()
				if err != nil || !found {
					return fmt.Errorf("request %s: found %v, %v", id, found, err)
				}
				if req.GetState() != "PROCESSED" {
					return fmt.Errorf("request %s: %s", id, req.GetState())
				}
				reqs[id] = req
			}
			var got struct {
				Notifications []notifysink.Notification `json:"notifications"`
			}
			cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			if err := apis["acme"].simJSON(cctx, sim, &got); err != nil {
				return err
			}
			notes = got.Notifications
			seen := map[string]bool{}
			for _, n := range notes {
				seen[n.RequestID] = true
			}
			for id := range want {
				if !seen[id] {
					return fmt.Errorf("request %s not notified", id)
				}
			}
			return nil
		})
		if err != nil {
			o.Log("round %d: %v", k+1, err)
		}
		r.judge(fars, want, reqs, notes)
		o.Log("round %d: %s", k+1, r)
		for _, d := range r.Details {
			o.Log("round %d:   %s", k+1, d)
		}
		rounds = append(rounds, r)
		if fault == "kill-leader" {
			if err := dep.Start(ctx, leader); err != nil {
				return rounds, err
			}
		}
		if err := sleep(ctx, 3*time.Second); err != nil { // the restarted or healed node catches up
			return rounds, err
		}
	}
	return rounds, nil
}

// judge compares the cluster's records with what the far ends saw.
func (r *SIPRound) judge(fars []*sipFar, want map[string]*sipFar, reqs map[string]*pb.Request, notes []notifysink.Notification) {
	ns := map[string][]sipjudge.Note{}
	for _, n := range notes {
		ns[n.RequestID] = append(ns[n.RequestID], sipjudge.Note{Result: n.Result, Status: n.Status})
	}
	var js []sipjudge.Far
	for _, f := range fars {
		// Every far end's CANCELs are held to the ringing requests' timeout.
		j := sipjudge.Far{Name: f.tenant, Budget: f.n, Answers: f.answers, RingTimeout: sipRNA, Entries: f.entries()}
		for id, g := range want {
			if g == f {
				j.Requests = append(j.Requests, id)
			}
		}
		js = append(js, j)
	}
	r.Result = sipjudge.Judge(js, reqs, ns)
}

// retry calls f until it succeeds or d passed.
func retry(ctx context.Context, d time.Duration, f func() error) error {
	deadline := time.Now().Add(d)
	for {
		err := f()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return err
		}
		if e := sleep(ctx, 250*time.Millisecond); e != nil {
			return e
		}
	}
}

// start runs SIPp on the host's address of the client network.
func (f *sipFar) start(ip, scenarios, out string, hold time.Duration) error {
	name := "uas_ring"
	if f.answers {
		name = "uas_takeover"
	}
	b, err := os.ReadFile(filepath.Join(scenarios, name+".xml"))
	if err != nil {
		return err
	}
	sf := filepath.Join(out, name+".xml")
	s := strings.Replace(string(b), `timeout="10000"`, fmt.Sprintf(`timeout="%d"`, hold.Milliseconds()), 1)
	if err := os.WriteFile(sf, []byte(s), 0o644); err != nil {
		return err
	}
	f.log = filepath.Join(out, "sipp-"+f.tenant+".log")
	// -abortunexp off: a repeated ACK (one a new leader re-sends when it
	// adopts a call, which a UA discards) must not abort SIPp's call.
	f.cmd = exec.Command("sipp", "-sf", sf, "-i", ip, "-p", strconv.Itoa(f.port), "-buff_size", "4194304", "-nostdin", "-default_behaviors", "all,-abortunexp",
		"-trace_logs", "-log_file", f.log, "-trace_err", "-error_file", filepath.Join(out, "sipp-"+f.tenant+".err"))
	if err := f.cmd.Start(); err != nil {
		return fmt.Errorf("sipp: %w", err)
	}
	f.done = make(chan struct{})
	go func() { _ = f.cmd.Wait(); close(f.done) }()
	return nil
}

// entries parses the far end's log. It is read again until the round's
// checks pass, so a read error shows as entries missing, not as a failure.
func (f *sipFar) entries() []sipjudge.Entry {
	es, _ := sipjudge.ReadLog(f.log)
	return es
}
