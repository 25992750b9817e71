package server

import (
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// notAppliedStatus answers a write that was committed but that the node
// which took it had not applied within its bound (cluster.ErrNotAppliedLocally):
// DeadlineExceeded, whose gRPC meaning ("the operation may have completed")
// fits, with a message saying that it did take effect, so a client neither
// retries it blindly nor reads this node expecting it yet.
func notAppliedStatus(err error) error {
	return status.Errorf(codes.DeadlineExceeded, "the write took effect, but this node has not applied it yet: %v", err)
}
