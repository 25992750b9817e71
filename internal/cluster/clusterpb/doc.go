// Package clusterpb is the generated code of the cluster-internal gRPC API
// (internal.proto): write forwarding from a follower to the leader and the
// other node-to-node calls. Regenerate with make proto.
package clusterpb
