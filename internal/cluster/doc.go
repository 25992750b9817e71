// Package cluster runs one Dialtone node's membership in the replicated
// cluster: a hashicorp/raft instance over raft-boltdb with file snapshots,
// hashicorp/memberlist gossip for membership and failure detection, write
// forwarding from followers to the leader, linearizable read indexes, and
// the leadership watch that starts and stops leader-only work.
//
// # Design
//
// Membership has two layers. Gossip (memberlist) says who is out there and
// carries each node's metadata (id and its Raft, gRPC and HTTP addresses).
// Raft's configuration says who votes. The leader reconciles the two: an
// alive gossip member that is not a Raft server is added as a voter. Gossip
// never removes a voter — a node that is merely down or partitioned keeps its
// vote; only an explicit leave (the node asks the leader to remove it) or an
// operator's RemoveServer takes a voter out.
//
// Writes go through Apply. On the leader the command is encoded by
// fsm.EncodeAt (the one owner of the log encoding) with the leader's clock
// and applied through Raft. On a follower the command is sent
// to the leader over the internal gRPC service, retrying while an election
// runs until the caller's deadline. Commands are built to be replayed safely
// (a create carries its request ids, so a replay answers "duplicate"), which
// is what makes retrying after an unknown outcome safe for the callers that
// need it.
//
// The node acts as leader (IsLeader) once it leads and a Raft barrier has
// applied every earlier entry, until leadership is lost. Leadership changes
// come from raft.Config.NotifyCh. The cluster's own leader-only work
// (membership reconciliation) runs in that window; other packages run
// theirs by watching Leadership (package node starts the dialer engine so).
//
// Raft's TCP connections go through raftStream: TLS when configured, and a
// mutual HMAC challenge-response with a key derived from the cluster secret
// before Raft reads a byte, so only holders of the secret take part.
package cluster
