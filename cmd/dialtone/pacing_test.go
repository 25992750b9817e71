package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	pb "github.com/seed-7bfc04c2/dialtone/api/dialtonev1"
	"github.com/seed-7bfc04c2/dialtone/internal/config"
	"github.com/seed-7bfc04c2/dialtone/test/cluster"
)

// oneNode starts a single-node cluster in this process (test/cluster)
// and returns its HTTP address.
func oneNode(t *testing.T) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := cluster.StartInProcess(ctx, cluster.InProcessOptions{Logger: slog.New(slog.DiscardHandler), Options: cluster.Options{
		Nodes: 1, Dir: t.TempDir(), Edit: func(c *config.Config) {
			c.Cluster.HeartbeatTimeout = config.Duration{Duration: 200 * time.Millisecond}
			c.Cluster.ElectionTimeout = config.Duration{Duration: 200 * time.Millisecond}
			c.Cluster.LeaderLeaseTimeout = config.Duration{Duration: 100 * time.Millisecond}
		},
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c.HTTPAddr("n1")
}

// run runs the CLI with args against addr and returns its output.
func run(t *testing.T, addr string, args ...string) (string, error) {
	t.Helper()
	root := newRoot()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(io.Discard)
	root.SetArgs(append([]string{"--addr", addr}, args...))
	err := root.ExecuteContext(context.Background())
	return out.String(), err
}

func mustRun(t *testing.T, addr string, args ...string) string {
	t.Helper()
	out, err := run(t, addr, args...)
	if err != nil {
		t.Fatalf("dialtone %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// pacingLine returns the STORED and EFFECTIVE columns of a setting in the
// output of pacing get or set.
func pacingLine(t *testing.T, out, setting string) string {
	t.Helper()
	for _, l := range strings.Split(out, "\n") {
		if f := strings.Fields(l); len(f) == 3 && f[0] == setting {
			return f[1] + " " + f[2]
		}
	}
	t.Fatalf("no %s in:\n%s", setting, out)
	return ""
}

func TestPacingVerbs(t *testing.T) {
	addr := oneNode(t)

	out := mustRun(t, addr, "pacing", "get")
	if !strings.Contains(out, "_global (no entry stored") || pacingLine(t, out, "caps") != "- 50" {
		t.Fatalf("defaults:\n%s", out)
	}
	mustRun(t, addr, "pacing", "set", "--caps", "300", "--clean-interval", "60s", "--slots", "EQUAL")
	out = mustRun(t, addr, "pacing", "set", "--tenant", "acme", "--caps", "50", "--port-load-factor", "90",
		"--batch-mode", "Fixed", "--batch-size", "40", "--low-watermark", "30", "--equal-new-old",
		"--next-retry-interval", "5s", "--retention", "1h")
	for setting, want := range map[string]string{
		"caps": "50 50", "port_load_factor": "90 90", "batch_size_mode": "Fixed Fixed", "batch_size": "40 40",
		"queue_low_watermark": "30 30", "slot_calculation": "- EQUAL", "equal_priority_new_and_old": "true true",
		"next_retry_interval": "5s 5s", "clean_interval": "- 60s", "retention": "3600s 3600s",
	} {
		if got := pacingLine(t, out, setting); got != want {
			t.Errorf("set acme: %s = %q, want %q", setting, got, want)
		}
	}

	// set merges: the other stored fields stay.
	out = mustRun(t, addr, "pacing", "set", "--tenant", "acme", "--caps", "20")
	if pacingLine(t, out, "caps") != "20 20" || pacingLine(t, out, "port_load_factor") != "90 90" || pacingLine(t, out, "batch_size") != "40 40" || pacingLine(t, out, "retention") != "3600s 3600s" {
		t.Fatalf("merge:\n%s", out)
	}
	// Leaving Fixed drops the batch size; zero makes a field inherit.
	out = mustRun(t, addr, "pacing", "set", "--tenant", "acme", "--batch-mode", "AvailablePorts", "--retention", "0s", "--port-load-factor", "0")
	if pacingLine(t, out, "batch_size") != "- -" || pacingLine(t, out, "batch_size_mode") != "AvailablePorts AvailablePorts" ||
		pacingLine(t, out, "retention") != "- 0s" || pacingLine(t, out, "port_load_factor") != "- 100" || pacingLine(t, out, "caps") != "20 20" {
		t.Fatalf("mode change:\n%s", out)
	}
	out = mustRun(t, addr, "pacing", "get", "--tenant", "acme")
	if pacingLine(t, out, "clean_interval") != "- 60s" || pacingLine(t, out, "queue_low_watermark") != "30 30" {
		t.Fatalf("get acme:\n%s", out)
	}

	out = mustRun(t, addr, "pacing", "list")
	if !strings.Contains(out, "300 attempts/s") || !strings.Contains(out, "_global") || !strings.Contains(out, "acme") {
		t.Fatalf("list:\n%s", out)
	}
	if i, j := strings.Index(out, "_global "), strings.Index(out, "acme "); i < 0 || j < i {
		t.Fatalf("list order:\n%s", out)
	}

	// Bad input: the server's message names the field; nothing changes.
	if _, err := run(t, addr, "pacing", "set", "--tenant", "acme", "--caps", "200001"); err == nil || !strings.Contains(err.Error(), "pacing.caps") {
		t.Fatalf("bad caps: %v", err)
	}
	if _, err := run(t, addr, "pacing", "set", "--tenant", "acme"); err == nil || !strings.Contains(err.Error(), "no setting given") {
		t.Fatalf("no flags: %v", err)
	}
	if out := mustRun(t, addr, "pacing", "get", "--tenant", "acme"); pacingLine(t, out, "caps") != "20 20" {
		t.Fatalf("changed by bad input:\n%s", out)
	}

	out = mustRun(t, addr, "pacing", "reset", "--tenant", "acme")
	if !strings.Contains(out, "pacing of acme reset") {
		t.Fatalf("reset: %s", out)
	}
	if out := mustRun(t, addr, "pacing", "get", "--tenant", "acme"); !strings.Contains(out, "no entry stored") || pacingLine(t, out, "caps") != "- 300" {
		t.Fatalf("after reset:\n%s", out)
	}
	if _, err := run(t, addr, "pacing", "reset", "--tenant", "acme"); err == nil || !strings.Contains(err.Error(), "404") {
		t.Fatalf("reset twice: %v", err)
	}
	mustRun(t, addr, "pacing", "reset")
	if out := mustRun(t, addr, "pacing", "list", "--json"); strings.Contains(out, "entries") {
		t.Fatalf("entries left:\n%s", out)
	}

	// The dialer verb reaches the leader; without an engine it says so.
	if out, err := run(t, addr, "dialer"); err != nil {
		if !strings.Contains(err.Error(), "dialer not running on this node (n1)") {
			t.Fatalf("dialer: %v", err)
		}
	} else if !strings.Contains(out, "leader") || !strings.Contains(out, "n1") {
		t.Fatalf("dialer:\n%s", out)
	}
}

func TestPrintDialerStatus(t *testing.T) {
	var out bytes.Buffer
	err := printDialerStatus(&out, &pb.DialerStatus{NodeId: "n2", Running: true, GlobalCaps: 300, Tenants: []*pb.DialerTenantStatus{{
		Tenant: "acme", Queued: 7, InProgress: 3, PortBudget: 45, PortsTotal: 50, PortsInUse: 5, Caps: 20, AttemptsPerSec: 19.54,
		Outcomes: map[string]uint64{"OUTCOME_SUCCESS": 11, "OUTCOME_BUSY": 2}, NotifyPending: 4,
		Waiting: map[string]uint32{"retry_wait": 2, "outside_window": 30, "caps_limit": 9}, LimitedBy: "sending",
	}}})
	if err != nil {
		t.Fatal(err)
	}
	s := out.String()
	for _, want := range []string{"n2 (engine running)", "300 attempts/s", "IN PROGRESS/BUDGET", "3/45", "5/50", "19.5", "BUSY=2 SUCCESS=11",
		"WAITING (BY REASON)", "41 (outside_window=30 caps_limit=9 retry_wait=2)", "LIMITED BY", " sending "} {
		if !strings.Contains(s, want) {
			t.Errorf("missing %q in:\n%s", want, s)
		}
	}
	if fields := strings.Fields(lastLine(s)); len(fields) != 14 || fields[0] != "acme" || fields[1] != "7" || fields[2] != "41" || fields[10] != "sending" || fields[13] != "4" {
		t.Errorf("row %q", lastLine(s))
	}
	out.Reset()
	_ = printDialerStatus(&out, &pb.DialerStatus{NodeId: "n1"})
	if !strings.Contains(out.String(), "engine not running") || !strings.Contains(out.String(), "none") {
		t.Errorf("idle:\n%s", out.String())
	}
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return lines[len(lines)-1]
}
