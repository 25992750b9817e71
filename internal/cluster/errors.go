package cluster

import (
	"context"
	"errors"
	"fmt"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

var (
	// ErrNoLeader means no leader was known before the deadline. The write
	// was not applied; it is safe to retry.
	ErrNoLeader = errors.New("no cluster leader")
	// ErrLeadershipLost means the leader lost leadership while the write was
	// in flight: the outcome is unknown. Retry only writes that are safe to
	// replay (creates carrying their ids or an idempotency key).
	ErrLeadershipLost = errors.New("leadership lost while applying; outcome unknown")
	// ErrShutdown means this node is shutting down.
	ErrShutdown = errors.New("node is shutting down")
	// ErrUnknownServer means a server id is not in the Raft configuration.
	ErrUnknownServer = errors.New("unknown server")
)

// ErrNotLeader means an operation that must run on the leader reached a
// node that is not (or no longer) the leader. Forwarded writes answering
// it were not applied, so the forwarder retries them.
var ErrNotLeader = errors.New("not the leader")

// toStatus maps cluster errors to gRPC status codes for the wire.
func toStatus(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, ErrNotLeader):
		return status.Error(codes.FailedPrecondition, err.Error())
	case errors.Is(err, ErrNoLeader), errors.Is(err, ErrShutdown):
		return status.Error(codes.Unavailable, err.Error())
	case errors.Is(err, ErrLeadershipLost):
		return status.Error(codes.Aborted, err.Error())
	case errors.Is(err, ErrUnknownServer):
		return status.Error(codes.NotFound, err.Error())
	case errors.Is(err, context.DeadlineExceeded):
		return status.Error(codes.DeadlineExceeded, err.Error())
	case errors.Is(err, context.Canceled):
		return status.Error(codes.Canceled, err.Error())
	}
	return status.Error(codes.Internal, err.Error())
}

// fromStatus maps a forwarded call's gRPC status back to cluster errors.
// retry reports whether the call certainly did not take effect.
func fromStatus(err error) (mapped error, retry bool) {
	st, ok := status.FromError(err)
	if !ok {
		return err, false
	}
	switch st.Code() {
	case codes.FailedPrecondition:
		return fmt.Errorf("%w: %s", ErrNotLeader, st.Message()), true
	case codes.Unavailable:
		// Either the leader answered "no leader", or the transport failed.
		// A transport failure may hide an applied write; callers only
		// forward commands that are safe to replay.
		return fmt.Errorf("%w: %s", ErrNoLeader, st.Message()), true
	case codes.Aborted:
		return fmt.Errorf("%w: %s", ErrLeadershipLost, st.Message()), false
	case codes.NotFound:
		return fmt.Errorf("%w: %s", ErrUnknownServer, st.Message()), false
	case codes.DeadlineExceeded:
		return fmt.Errorf("%w: %s", context.DeadlineExceeded, st.Message()), false
	case codes.Canceled:
		return fmt.Errorf("%w: %s", context.Canceled, st.Message()), false
	}
	return err, false
}
