//go:build race

package node

// raceDetector: under -race a goroutine is often preempted for
// milliseconds between two statements.
const raceDetector = true
