// Package cluster launches Dialtone clusters for tests and benchmarks: one
// [Cluster] interface with two implementations, after etcd's
// tests/framework.
//
//   - [StartInProcess] runs internal/node nodes inside the calling process.
//     It starts in milliseconds, shares the race detector and coverage with
//     the test, hands out the [*node.Node] of each member (FSM, Raft,
//     port-usage cache) and can plug an in-process call backend
//     ([Options.Backend]). Use it for unit and integration tests of the
//     server (internal/node) and for benchmarks that measure the server's
//     code rather than its processes (bench/cmd/createbench, portbench).
//   - [StartProcesses] runs real `dialtone serve` processes of a built
//     binary ([Build]), each with its own log file, from a configuration
//     file written from internal/config. Use it when what is tested is the
//     shipped binary: flags, configuration loading, signals (SIGKILL,
//     SIGSTOP), process isolation and profiles (test/e2e, the bench
//     harness).
//
// Both pick free loopback ports (port 0, never fixed ports), so any number
// of clusters run side by side without a lock; the addresses stay the same
// across a node's restarts. [Options] carries what callers vary: the node
// count, edits of the generated configuration (auth, TLS, telephony,
// timing), and the implementation's own settings.
package cluster
