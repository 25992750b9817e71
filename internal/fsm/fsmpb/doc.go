// Package fsmpb is the generated code of the replicated state's protobuf
// types (fsm.proto): the command envelope written to the Raft log, the
// request record and the settings records. Type numbers are append-only.
// Regenerate with make proto.
package fsmpb
