// Package api serves Dialtone's client-facing interfaces: the gRPC
// RequestService and ClusterService, their REST mapping through
// grpc-gateway, the OpenAPI document, and the health, readiness and metrics
// endpoints. It validates every input before anything reaches the
// replicated log, and translates between the public protos
// (api/dialtonev1) and the replicated record (fsm/fsmpb).
//
// REST reaches the RPCs through a loopback gRPC connection, so the
// server's interceptors apply; the two hot reads (port usage, one request)
// take an in-process route with the same interceptors instead
// (directread.go).
package server
