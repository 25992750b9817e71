package client

import (
	"context"
	"net/http"

	pb "github.com/seed-7bfc04c2/dialtone/api/dialtonev1"
)

// GetClusterStatus is the node's view of the cluster: leader, term,
// indexes, servers (GET /v1/cluster).
func (c *Client) GetClusterStatus(ctx context.Context) (*pb.ClusterStatus, error) {
	out := &pb.ClusterStatus{}
	return out, c.call(ctx, http.MethodGet, "/v1/cluster", nil, nil, out)
}

// ListMembers lists the gossip members (GET /v1/cluster/members).
func (c *Client) ListMembers(ctx context.Context) (*pb.ListMembersResponse, error) {
	out := &pb.ListMembersResponse{}
	return out, c.call(ctx, http.MethodGet, "/v1/cluster/members", nil, nil, out)
}

// Join makes the node join the cluster through in.Addresses (POST
// /v1/cluster/join).
func (c *Client) Join(ctx context.Context, in *pb.JoinRequest) (*pb.JoinResponse, error) {
	out := &pb.JoinResponse{}
	return out, c.call(ctx, http.MethodPost, "/v1/cluster/join", nil, in, out)
}

// Leave makes the node leave the cluster for good and stop (POST
// /v1/cluster/leave).
func (c *Client) Leave(ctx context.Context) error {
	return c.call(ctx, http.MethodPost, "/v1/cluster/leave", nil, &pb.LeaveRequest{}, &pb.LeaveResponse{})
}

// RemoveServer removes a server from the Raft configuration (DELETE
// /v1/cluster/servers/{id}).
func (c *Client) RemoveServer(ctx context.Context, id string) error {
	return c.call(ctx, http.MethodDelete, "/v1/cluster/servers/"+segment(id), nil, nil, &pb.RemoveServerResponse{})
}

// TransferLeadership hands leadership to in.TargetId, or to any up-to-date
// voter when empty (POST /v1/cluster/leadership:transfer). Only the leader
// takes the call: send it to the leader_http_address of GetClusterStatus.
func (c *Client) TransferLeadership(ctx context.Context, in *pb.TransferLeadershipRequest) (*pb.TransferLeadershipResponse, error) {
	out := &pb.TransferLeadershipResponse{}
	return out, c.call(ctx, http.MethodPost, "/v1/cluster/leadership:transfer", nil, in, out)
}
