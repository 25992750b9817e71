// Package client is a Go client for Dialtone's REST API: the paths the
// nodes' grpc-gateway serves (see api/proto/dialtone/v1), with the messages
// of package dialtonev1 encoded as protojson with proto field names.
//
// One Client talks to one node; any node serves every call (followers
// forward writes to the leader). Use [Client.WithAddr] to reach another node
// with the same credentials and connection pool.
//
// A call whose request carries more than its path takes the dialtonev1
// request message (path fields such as tenant and id included), as the gRPC
// client does; the others take their path parameters.
//
// A non-2xx answer is returned as an [*Error] that carries the HTTP status,
// the gRPC code and the server's message:
//
//	var e *client.Error
//	if errors.As(err, &e) && e.StatusCode == http.StatusNotFound { ... }
//
// The client does not retry: a caller that wants retries (on another node,
// with an idempotency key) wraps the calls in its own policy.
package client
