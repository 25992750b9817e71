//go:build race

package node_test

// raceDetector: under -race a goroutine is often preempted for
// milliseconds between two statements.
const raceDetector = true
