package server

import (
	"context"
	"errors"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/seed-7bfc04c2/dialtone/api/dialtonev1"
	"github.com/seed-7bfc04c2/dialtone/internal/cluster"
)

// ClusterControl is what the cluster service operates on.
type ClusterControl interface {
	Status() cluster.Status
	Members() []cluster.Member
	Join(addrs []string) (int, error)
	Leave(ctx context.Context) error
	RemoveServer(ctx context.Context, id string) error
	TransferLeadership(ctx context.Context, target string) (string, error)
}

// Cluster implements ClusterService.
type Cluster struct {
	pb.UnimplementedClusterServiceServer
	c       ClusterControl
	store   Store
	onLeave func()
}

// NewCluster returns the cluster service. onLeave runs after a successful
// Leave, to stop the node.
func NewCluster(c ClusterControl, store Store, onLeave func()) *Cluster {
	return &Cluster{c: c, store: store, onLeave: onLeave}
}

// GetStatus reports this node's view of the cluster.
func (s *Cluster) GetStatus(ctx context.Context, _ *pb.GetStatusRequest) (*pb.ClusterStatus, error) {
	st := s.c.Status()
	out := &pb.ClusterStatus{
		NodeId:            st.NodeID,
		State:             st.State,
		LeaderId:          st.LeaderID,
		LeaderRaftAddress: st.LeaderRaft,
		LeaderHttpAddress: st.LeaderHTTP,
		Term:              st.Term,
		CommitIndex:       st.CommitIndex,
		AppliedIndex:      st.AppliedIndex,
		LastLogIndex:      st.LastLogIndex,
		LastContactMs:     st.LastContactMs,
		Records:           uint64(s.store.Count()),
	}
	for _, sv := range st.Servers {
		out.Servers = append(out.Servers, &pb.Server{Id: sv.ID, RaftAddress: sv.RaftAddr, Suffrage: sv.Suffrage, Leader: sv.Leader})
	}
	return out, nil
}

// ListMembers lists gossip members.
func (s *Cluster) ListMembers(ctx context.Context, _ *pb.ListMembersRequest) (*pb.ListMembersResponse, error) {
	out := &pb.ListMembersResponse{}
	for _, m := range s.c.Members() {
		out.Members = append(out.Members, &pb.Member{
			Id: m.ID, GossipAddress: m.GossipAddr, Status: m.Status,
			HttpAddress: m.HTTPAddr, GrpcAddress: m.GRPCAddr, RaftAddress: m.RaftAddr,
		})
	}
	return out, nil
}

// Join joins this node's gossip to the given addresses.
func (s *Cluster) Join(ctx context.Context, req *pb.JoinRequest) (*pb.JoinResponse, error) {
	if len(req.GetAddresses()) == 0 {
		return nil, FieldErrorStatus("addresses", "at least one gossip address is required")
	}
	n, err := s.c.Join(req.GetAddresses())
	if err != nil {
		return nil, status.Errorf(codes.Unavailable, "join: %v", err)
	}
	return &pb.JoinResponse{Joined: int32(n)}, nil
}

// Leave removes this node from the cluster and stops it.
func (s *Cluster) Leave(ctx context.Context, _ *pb.LeaveRequest) (*pb.LeaveResponse, error) {
	if err := s.c.Leave(ctx); err != nil {
		return nil, clusterError(err)
	}
	if s.onLeave != nil {
		s.onLeave()
	}
	return &pb.LeaveResponse{}, nil
}

// RemoveServer removes a server from the Raft configuration.
func (s *Cluster) RemoveServer(ctx context.Context, req *pb.RemoveServerRequest) (*pb.RemoveServerResponse, error) {
	if req.GetId() == "" {
		return nil, FieldErrorStatus("id", "is required")
	}
	if err := s.c.RemoveServer(ctx, req.GetId()); err != nil {
		return nil, clusterError(err)
	}
	return &pb.RemoveServerResponse{}, nil
}

// TransferLeadership hands leadership to another voter; it must be sent to
// the leader.
func (s *Cluster) TransferLeadership(ctx context.Context, req *pb.TransferLeadershipRequest) (*pb.TransferLeadershipResponse, error) {
	id, err := s.c.TransferLeadership(ctx, req.GetTargetId())
	if err != nil {
		return nil, clusterError(err)
	}
	return &pb.TransferLeadershipResponse{NewLeaderId: id}, nil
}

func clusterError(err error) error {
	switch {
	case errors.Is(err, cluster.ErrUnknownServer):
		return status.Error(codes.NotFound, err.Error())
	case errors.Is(err, cluster.ErrNoLeader), errors.Is(err, cluster.ErrShutdown):
		return status.Error(codes.Unavailable, err.Error())
	case errors.Is(err, cluster.ErrNotLeader):
		return status.Error(codes.FailedPrecondition, err.Error())
	case errors.Is(err, context.DeadlineExceeded):
		return status.Error(codes.DeadlineExceeded, err.Error())
	}
	return status.Error(codes.Internal, err.Error())
}
