//go:build race

package dialer

// raceDetector: timings under -race (and on a loaded machine) jitter by
// milliseconds between two statements of one goroutine.
const raceDetector = true
