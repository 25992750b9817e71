package node

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/seed-7bfc04c2/dialtone/internal/cluster"
	"github.com/seed-7bfc04c2/dialtone/internal/fsm"
)

// raftCollector exports this node's Raft position and store size at scrape
// time, so an operator can graph lag and leadership per node.
type raftCollector struct {
	c *cluster.Cluster
	f *fsm.FSM

	leader, term, commit, applied, lastIndex, lastContact, records, servers, skipped *prometheus.Desc
}

func newRaftCollector(c *cluster.Cluster, f *fsm.FSM) *raftCollector {
	d := func(name, help string) *prometheus.Desc {
		return prometheus.NewDesc("dialtone_"+name, help, nil, nil)
	}
	return &raftCollector{
		c: c, f: f,
		leader:      d("raft_leader", "1 if this node is the Raft leader."),
		term:        d("raft_term", "Current Raft term."),
		commit:      d("raft_commit_index", "Raft commit index known to this node."),
		applied:     d("raft_applied_index", "Last log index applied to this node's state machine."),
		lastIndex:   d("raft_last_log_index", "Last index in this node's Raft log."),
		lastContact: d("raft_last_contact_seconds", "Seconds since this node last heard from the leader (0 on the leader, -1 never)."),
		records:     d("records", "Stored request records."),
		servers:     d("raft_servers", "Servers in the Raft configuration."),
		skipped:     d("fsm_skipped_entries_total", "Log entries this node's binary did not know and skipped (flagged ignore-unknown): a newer binary in the cluster uses commands this one cannot apply."),
	}
}

func (r *raftCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{r.leader, r.term, r.commit, r.applied, r.lastIndex, r.lastContact, r.records, r.servers, r.skipped} {
		ch <- d
	}
}

func (r *raftCollector) Collect(ch chan<- prometheus.Metric) {
	st := r.c.Status()
	leader := 0.0
	if st.State == "Leader" {
		leader = 1
	}
	lc := float64(st.LastContactMs) / 1000
	if st.LastContactMs < 0 {
		lc = -1
	}
	g := prometheus.GaugeValue
	ch <- prometheus.MustNewConstMetric(r.leader, g, leader)
	ch <- prometheus.MustNewConstMetric(r.term, g, float64(st.Term))
	ch <- prometheus.MustNewConstMetric(r.commit, g, float64(st.CommitIndex))
	ch <- prometheus.MustNewConstMetric(r.applied, g, float64(st.AppliedIndex))
	ch <- prometheus.MustNewConstMetric(r.lastIndex, g, float64(st.LastLogIndex))
	ch <- prometheus.MustNewConstMetric(r.lastContact, g, lc)
	ch <- prometheus.MustNewConstMetric(r.records, g, float64(r.f.Count()))
	ch <- prometheus.MustNewConstMetric(r.servers, g, float64(len(st.Servers)))
	ch <- prometheus.MustNewConstMetric(r.skipped, prometheus.CounterValue, float64(r.f.Skipped()))
}
