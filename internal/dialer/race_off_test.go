//go:build !race

package dialer

const raceDetector = false
