package main

import (
	"bufio"
	"os"
	"sync"
	"time"
)

// sendLogFlush is how often serve's --send-log file is flushed: the
// benchmark reads it while the node runs.
const sendLogFlush = 100 * time.Millisecond

// sendLog is `serve --send-log`'s file: buffered (the dialer writes a line
// per call under its lock), flushed every sendLogFlush by a goroutine that
// Close stops and waits for.
type sendLog struct {
	mu   sync.Mutex
	f    *os.File
	w    *bufio.Writer
	stop chan struct{}
	wg   sync.WaitGroup
}

func openSendLog(path string) (*sendLog, error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	l := &sendLog{f: f, w: bufio.NewWriterSize(f, 64<<10), stop: make(chan struct{})}
	l.wg.Add(1)
	go l.flusher()
	return l, nil
}

func (l *sendLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func (l *sendLog) flusher() {
	defer l.wg.Done()
	t := time.NewTicker(sendLogFlush)
	defer t.Stop()
	for {
		select {
		case <-l.stop:
			return
		case <-t.C:
			l.mu.Lock()
			_ = l.w.Flush()
			l.mu.Unlock()
		}
	}
}

// Close stops the flusher, flushes and closes the file. Call it once,
// after the node has stopped.
func (l *sendLog) Close() error {
	close(l.stop)
	l.wg.Wait()
	l.mu.Lock()
	defer l.mu.Unlock()
	err := l.w.Flush()
	if cerr := l.f.Close(); err == nil {
		err = cerr
	}
	return err
}
