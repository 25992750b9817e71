package cluster

import (
	"time"

	"github.com/hashicorp/raft"
)

// Server is one entry of the Raft configuration.
type Server struct {
	ID       string
	RaftAddr string
	Suffrage string
	Leader   bool
}

// Status is this node's view of the cluster.
type Status struct {
	NodeID        string
	State         string
	LeaderID      string
	LeaderRaft    string
	LeaderHTTP    string
	Term          uint64
	CommitIndex   uint64
	AppliedIndex  uint64
	LastLogIndex  uint64
	LastContactMs int64 // 0 on the leader, -1 when never in contact
	Servers       []Server
}

// Status reports this node's Raft state and configuration.
func (c *Cluster) Status() Status {
	addr, id := c.raft.LeaderWithID()
	st := Status{
		NodeID:       c.cfg.NodeID,
		State:        c.raft.State().String(),
		LeaderID:     string(id),
		LeaderRaft:   string(addr),
		Term:         c.raft.CurrentTerm(),
		CommitIndex:  c.raft.CommitIndex(),
		AppliedIndex: c.fsm.AppliedIndex(),
		LastLogIndex: c.raft.LastIndex(),
	}
	st.LastContactMs = c.LastContactMs()
	if id != "" {
		if m, ok := c.member(string(id)); ok {
			st.LeaderHTTP = m.HTTPAddr
		}
	}
	if f := c.raft.GetConfiguration(); f.Error() == nil {
		for _, s := range f.Configuration().Servers {
			st.Servers = append(st.Servers, Server{
				ID:       string(s.ID),
				RaftAddr: string(s.Address),
				Suffrage: s.Suffrage.String(),
				Leader:   s.ID == id,
			})
		}
	}
	return st
}

// LastContactMs is the time since this node last heard from the leader in
// milliseconds: 0 on the leader, -1 if never.
func (c *Cluster) LastContactMs() int64 {
	if c.raft.State() == raft.Leader {
		return 0
	}
	lc := c.raft.LastContact()
	if lc.IsZero() {
		return -1
	}
	return time.Since(lc).Milliseconds()
}

// HasLeader reports whether a leader is known.
func (c *Cluster) HasLeader() bool {
	_, id := c.raft.LeaderWithID()
	return id != ""
}
