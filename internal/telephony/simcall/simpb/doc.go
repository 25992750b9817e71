// Package simpb is the generated code of the simulated media platform's
// gRPC API (mediasim.proto), spoken between the simcall backend and
// dialtone-sim mediasim. Regenerate with make proto.
package simpb
