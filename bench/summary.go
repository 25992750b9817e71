package main

import (
	"fmt"
	"strings"

	"github.com/seed-7bfc04c2/dialtone/bench/load"
	"github.com/seed-7bfc04c2/dialtone/internal/config"
	"github.com/seed-7bfc04c2/dialtone/internal/dialer/pacing"
)

// summary renders the report as Markdown.
func summary(r *Report) string {
	var b strings.Builder
	p := func(format string, a ...any) { fmt.Fprintf(&b, format, a...) }
	mode := "full"
	if r.Quick {
		mode = "quick"
	}
	p("# Dialtone benchmark report (%s)\n\n", mode)
	p("- Started %s, finished %s (%s).\n", r.Started.Format("2006-01-02 15:04:05Z"), r.Finished.Format("15:04:05Z"), r.Finished.Sub(r.Started).Round(1e9))
	p("- Command: `%s`\n", r.Command)
	p("- Machine: %d CPUs, %.1f GiB, %s %s/%s, load average at start %s.\n", r.Machine.NumCPU, r.Machine.MemGiB, r.Machine.GoVersion, r.Machine.OS, r.Machine.Arch, r.Machine.Load1)
	timeouts := "the `dialtone serve` defaults"
	if d := config.Default().Cluster; d.HeartbeatTimeout.Duration != r.Config.Heartbeat.Duration || d.ElectionTimeout.Duration != r.Config.Election.Duration ||
		d.LeaderLeaseTimeout.Duration != r.Config.Lease.Duration {
		timeouts = fmt.Sprintf("set by the harness in the generated config; the serve defaults are %s/%s/%s",
			d.HeartbeatTimeout.Duration, d.ElectionTimeout.Duration, d.LeaderLeaseTimeout.Duration)
	}
	p("- Clusters: three `dialtone serve` processes on 127.0.0.1 per scenario, fresh data, raft-boltdb with fsync; "+
		"Raft heartbeat/election/leader-lease timeouts %s/%s/%s (%s). "+
		"Calls go to one `dialtone mediasim` process per cluster; caps counts attempts on the wire (the packets to mediasim's gRPC port, captured with tcpdump on lo) "+
		"when it can capture, and every other figure comes from mediasim's call start times.\n\n",
		r.Config.Heartbeat.Duration, r.Config.Election.Duration, r.Config.Lease.Duration, timeouts)

	inv, tgt := 0, 0
	for _, c := range r.Checks {
		if !c.OK && !c.Target {
			inv++
		}
		if !c.OK && c.Target {
			tgt++
		}
	}
	switch {
	case len(r.Errors) > 0 || inv > 0:
		p("**FAILED**: %d scenario error(s), %d failed invariant(s).\n\n", len(r.Errors), inv)
	default:
		p("**Invariants: all held.** Performance targets missed: %d.\n\n", tgt)
	}
	for _, e := range r.Errors {
		p("- scenario error: %s\n", e)
	}

	if len(r.Caps) > 0 {
		p("## caps: CAPS accuracy\n\n")
		p("Backlog larger than the run can dial; `success` outcome only, ring %s, talk %s; %d ports per tenant (%d servers × %d). "+
			"The tenant's CAPS goes from 0.1 to the target at t=0; %s warm-up, then %s measured.\n\n",
			r.Config.Caps.Ring, r.Config.Caps.Talk, r.Config.Caps.Servers*r.Config.Caps.Ports, r.Config.Caps.Servers, r.Config.Caps.Ports,
			r.Config.Caps.Warmup.Duration, r.Config.Caps.Duration.Duration)
		p("| target | measured at | PLF | attempts | achieved/s | error | 1 s bins MAE | max in any 1 s | max in any 100 ms | interval p50 ms | p99 ms | max ms | at port budget | refused | concurrent |\n")
		p("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
		for _, c := range r.Caps {
			x := c.Rate
			p("| %s | %s | %d | %d | %.2f | %+.3f%% | %.2f%% | %d | %d | %.3f | %.3f | %.1f | %.0f%% | %d | %d |\n",
				c.Label, c.Measured, c.PLF, x.Count, x.Achieved, x.ErrorPct, x.BinMAEPct, x.MaxWindow, x.MaxWindow100ms, x.IntervalP50, x.IntervalP99, x.IntervalMax,
				c.CappedByPortsPct, c.Refused, c.Concurrent)
		}
		p("\n\"measured at\": `wire` is the capture time of the packet that carried each call's last byte to mediasim's socket; `mediasim` its receive loop's stamp, used only when there is no capture. " +
			"\"at port budget\": share of the 250 ms samples in which the engine's calls (in progress + armed) were at its port budget, i.e. ports, not CAPS, limited the rate.\n\n")
		p("On the wire and at mediasim (user space), the same calls (limits: floor(X)+1 in 1 s, ceil(X/8)+1 in 100 ms):\n\n")
		p("| target | attempts on the wire / at mediasim | in flight at start / end | achieved/s wire / mediasim | max in any 1 s wire / mediasim (limit) | max in any 100 ms wire / mediasim (limit) | mediasim after the wire p50 / p99 / max ms |\n")
		p("|---|---:|---:|---:|---:|---:|---:|\n")
		for _, c := range r.Caps {
			if c.Wire == nil {
				p("| %s | not measured on the wire: %s | | | | | |\n", c.Label, strings.ReplaceAll(c.WireNote, "|", "/"))
				continue
			}
			x, m, w := c.Rate, c.AtMediasim, c.Wire
			limSec, lim100ms := pacing.WindowLimits(x.Target)
			p("| %s | %d / %d | %d / %d | %.2f / %.2f | %d / %d (%d) | %d / %d (%d) | %.3f / %.3f / %.1f |\n",
				c.Label, w.OnWire, w.AtMediasim, w.InFlightStart, w.InFlightEnd, x.Achieved, m.Achieved,
				x.MaxWindow, m.MaxWindow, limSec, x.MaxWindow100ms, m.MaxWindow100ms, lim100ms, w.LagP50, w.LagP99, w.LagMax)
		}
		p("\n")
		charts(&b, r.Charts, "caps-")
	}

	if len(r.Ports) > 0 {
		p("## ports: port utilisation vs the SSG-style baseline\n\n")
		pc := r.Config.Ports
		p("Backlog of %d requests, %d ports (%d servers × %d), PortLoadFactor %d, CAPS %g, ring %s, talk %s, mix %s; %s run, the first %s (fill-up) left out. "+
			"`live` is the engine's port budget; `sampled-5s` (`dialer.port_view`) reads the ports once every 5 s and dispatches the available ports × PLF until the next sample, as the SSG does with EventResourceInfo. Both views ran at the same time on two clusters.\n\n",
			pc.Backlog, pc.Servers*pc.Ports, pc.Servers, pc.Ports, pc.PLF, pc.CAPS, pc.Ring, pc.Talk, pc.Mix, pc.Duration.Duration, pc.Skip.Duration)
		p("| view | budget | utilisation | mean in use | min | peak | calls placed | refused (oversubscription) |\n|---|---:|---:|---:|---:|---:|---:|---:|\n")
		for _, x := range r.Ports {
			p("| %s | %d | %.1f%% | %.1f | %d | %d | %d | %d |\n", x.View, x.Budget, x.UtilisationPct, x.MeanInUse, x.MinInUse, x.PeakInUse, x.Placed, x.Refused)
		}
		p("\n")
		charts(&b, r.Charts, "ports-")
	}

	if x := r.RawRaft; x != nil {
		p("## rawraft: the raw Raft baseline\n\n")
		p("Three hashicorp/raft nodes in the harness process on loopback TCP, raft-boltdb with fsync, the cluster's Raft settings, a state machine that does nothing; "+
			"entries are the bulk-create path's own (%d validated records, %d bytes), proposed on the leader by %d closed-loop writers; %s warm-up, %s measured.\n\n",
			x.RecordsPerEntry, x.EntryBytes, x.Writers, r.Config.Ingest.Warmup.Duration, r.Config.Ingest.Duration.Duration)
		p("| records per entry | entries/s | records/s | p50 ms | p99 ms | errors |\n|---:|---:|---:|---:|---:|---|\n")
		p("| %d | %.0f | %.0f | %.1f | %.1f | %s |\n\n", x.RecordsPerEntry, x.EntriesPerSec, x.RecordsPerSec, x.P50ms, x.P99ms, load.Counts(x.Errors))
	}

	if len(r.Ingest) > 0 {
		p("## ingest: creates per second\n\n")
		p("Closed-loop writers rotating over the three nodes (followers forward to the leader); %s warm-up, %s measured per row. gRPC `CreateRequests`, REST `POST /v1/tenants/{tenant}/requests`, SSG `POST /SSG?TenantName=` with CreateRequest elements.\n\n",
			r.Config.Ingest.Warmup.Duration, r.Config.Ingest.Duration.Duration)
		p("| protocol | shape | writers | per call | calls/s | records/s | p50 ms | p99 ms | failed calls | failed records |\n|---|---|---:|---:|---:|---:|---:|---:|---|---|\n")
		for _, x := range r.Ingest {
			p("| %s | %s | %d | %d | %.0f | %.0f | %.1f | %.1f | %s | %s |\n", x.Protocol, x.Shape, x.Writers, x.Batch, x.CallsPerSec, x.RecordsPerSec, x.P50ms, x.P99ms, load.Counts(x.Errors), load.Counts(x.ItemFailures))
		}
		p("\n")
		if r.RecordsPerEntry > 0 {
			p("gRPC bulk: %.1f records per Raft entry reached the state machine (Δ records ÷ Δ last log index on the leader).\n\n", r.RecordsPerEntry)
		}
	}

	if f := r.Failover; f != nil {
		p("## failover: leader SIGKILL while dialling\n\n")
		p("%d requests (MaxAttempts 3, `success` outcome), CAPS %g; the leader is SIGKILLed every %s and restarted %s later. "+
			"\"Resumed after\" is the time from the kill to the next call the platform saw; \"gap\" the pause between the last call before and the first after.\n\n",
			f.Requests, f.CAPS, r.Config.Failover.KillEvery.Duration, r.Config.Failover.RestartAfter.Duration)
		p("| kill | node | at s | new leader | elected after s | dialling resumed after s | gap s |\n|---:|---|---:|---|---:|---:|---:|\n")
		for i, k := range f.Kills {
			p("| %d | %s | %.1f | %s | %.2f | %.3f | %.3f |\n", i+1, k.Node, k.At, k.NewLeader, k.ElectedAfter, k.Gap.Resumed, k.Gap.Gap)
		}
		p("\nLargest resume time %.3f s. Over the run: %d attempts, %.1f/s. Every request finished %.1f s after the run.\n\n", f.MaxGap, f.Rate.Count, f.Rate.Achieved, f.SettleSeconds)
		p("Invariants: lost requests %d, not terminal %d, attempts over MaxAttempts %d, concurrent attempts of one request %d, calls refused by a full platform %d, "+
			"requests notified %d of %d; %d calls were hung up by a dying leader (interrupted, retried by the next).\n\n",
			f.Lost, f.NotTerminal, f.OverMaxAttempts, f.Concurrent, f.Refused, f.Notified, f.Requests, f.InterruptedCalls)
		charts(&b, r.Charts, "failover")
	}

	if len(r.Reads) > 0 {
		p("## reads: follower reads\n\n| read | node | workers | per second | p50 ms | p99 ms | node CPU µs/read | client CPU µs/read | errors |\n|---|---|---:|---:|---:|---:|---:|---:|---|\n")
		for _, x := range r.Reads {
			p("| %s | %s | %d | %.0f | %.2f | %.2f | %.1f | %.1f | %s |\n", x.Read, x.Node, x.Workers, x.PerSec, x.P50ms, x.P99ms, x.NodeCPUus, x.ClientCPUus, load.Counts(x.Errors))
		}
		p("\n")
	}
	if len(r.OpenReads) > 0 {
		p("Open loop: a fixed offered rate; latency from each call's intended send time (coordinated omission avoided).\n\n")
		p("| read | node | offered/s | achieved/s | p50 ms | p99 ms | max ms | generator late p99 ms | unfinished | errors |\n|---|---|---:|---:|---:|---:|---:|---:|---:|---|\n")
		for _, x := range r.OpenReads {
			p("| %s | %s | %.0f | %.0f | %.2f | %.2f | %.1f | %.2f | %d | %s |\n", x.Read, x.Node, x.OfferedRate, x.PerSec, x.P50ms, x.P99ms, x.Maxms, x.GenLateP99ms, x.Unfinished, load.Counts(x.Errors))
		}
		p("\n")
	}

	p("## Checks\n\nInvariants fail the run; targets (from the issue) are reported only.\n\n| scenario | kind | check | result | detail |\n|---|---|---|---|---|\n")
	for _, c := range r.Checks {
		kind, res := "invariant", "ok"
		if c.Target {
			kind = "target"
		}
		if !c.OK {
			res = "**FAIL**"
			if c.Target {
				res = "missed"
			}
		}
		p("| %s | %s | %s | %s | %s |\n", c.Scenario, kind, c.Name, res, c.Detail)
	}
	return b.String()
}

func charts(b *strings.Builder, all []string, prefix string) {
	for _, c := range all {
		if strings.HasPrefix(c, prefix) {
			fmt.Fprintf(b, "![%s](%s)\n\n", strings.TrimSuffix(strings.TrimSuffix(c, ".svg"), ".png"), c)
		}
	}
}
