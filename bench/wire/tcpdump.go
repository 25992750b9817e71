package wire

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// ErrNoTcpdump: tcpdump is not installed.
var ErrNoTcpdump = errors.New("tcpdump is not installed (apt-get install tcpdump)")

// Capture is a tcpdump process writing the packets sent to one TCP port on
// the loopback interface to a file.
type Capture struct {
	File string
	Port uint16

	cmd  *exec.Cmd
	out  *syncBuffer // tcpdump's output
	done chan struct{}
	stop sync.Once
	// scan is how far last has read the file (WaitPast's alone).
	scan struct {
		order binary.ByteOrder
		nano  bool
		off   int64
		last  int64
	}
}

// StartCapture runs tcpdump on lo for the packets to port (the client→server
// half of every connection to it) and returns once it is capturing; an
// error says why it cannot (ErrNoTcpdump, not root, no lo).
func StartCapture(ctx context.Context, file string, port uint16) (*Capture, error) {
	bin, err := exec.LookPath("tcpdump")
	if err != nil {
		return nil, ErrNoTcpdump
	}
	// -s 0 keeps whole packets (loopback's are at most 64 KiB); -U writes
	// each packet to the file as it is handed over; -B 64 MiB of kernel
	// buffer since the kernel hands packets over in blocks, up to a second
	// late. Not --immediate-mode: its wake-up per packet made tcpdump drop
	// packets at 1,000/s on this machine (test/e2e).
	c := &Capture{File: file, Port: port, out: &syncBuffer{}, done: make(chan struct{}),
		cmd: exec.Command(bin, "-i", "lo", "-nn", "-U", "-s", "0", "-B", "65536", "-w", file, fmt.Sprintf("tcp dst port %d", port))}
	c.cmd.Stdout, c.cmd.Stderr = c.out, c.out
	// SIGTERM (not SIGKILL) if the harness dies: tcpdump closes the file.
	c.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if err := c.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start tcpdump: %w", err)
	}
	go func() {
		_ = c.cmd.Wait()
		close(c.done)
	}()
	deadline := time.NewTimer(10 * time.Second)
	defer deadline.Stop()
	for !strings.Contains(c.out.String(), "listening on") {
		select {
		case <-c.done:
			return nil, fmt.Errorf("tcpdump cannot capture on lo: %s", lastLine(c.out.String()))
		case <-ctx.Done():
			c.Stop()
			return nil, ctx.Err()
		case <-deadline.C:
			c.Stop()
			return nil, fmt.Errorf("tcpdump not capturing after 10 s: %s", lastLine(c.out.String()))
		case <-time.After(20 * time.Millisecond):
		}
	}
	return c, nil
}

// WaitPast waits until the file holds a packet captured after t (every
// packet before it is then in the file too, as the kernel hands them over
// in order) or timeout passes, and reports whether it does.
func (c *Capture) WaitPast(ctx context.Context, t int64, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for {
		if last, err := c.last(); err == nil && last > t {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		select {
		case <-ctx.Done():
			return false
		case <-c.done:
			last, err := c.last()
			return err == nil && last > t
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// last is the newest capture time in the file, from the record headers
// alone, scanning on from where the previous call stopped.
func (c *Capture) last() (int64, error) {
	f, err := os.Open(c.File)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	if c.scan.order == nil {
		p, err := newPcapReader(f)
		if err != nil {
			return 0, err
		}
		c.scan.order, c.scan.nano, c.scan.off = p.order, p.nano, 24
	}
	st, err := f.Stat()
	if err != nil {
		return 0, err
	}
	var h [16]byte
	for c.scan.off+16 <= st.Size() {
		if _, err := f.ReadAt(h[:], c.scan.off); err != nil {
			return 0, err
		}
		incl := int64(c.scan.order.Uint32(h[8:12]))
		if incl > maxRecord {
			return 0, fmt.Errorf("capture: a record of %d bytes: corrupt file", incl)
		}
		if c.scan.off+16+incl > st.Size() {
			break // still being written
		}
		c.scan.last = max(c.scan.last, stamp(c.scan.order.Uint32(h[0:4]), c.scan.order.Uint32(h[4:8]), c.scan.nano))
		c.scan.off += 16 + incl
	}
	return c.scan.last, nil
}

// Decode decodes what the file holds so far.
func (c *Capture) Decode() (*Result, error) {
	f, err := os.Open(c.File)
	if err != nil {
		return nil, fmt.Errorf("capture: %w", err)
	}
	defer f.Close()
	return Decode(f, c.Port)
}

// Stop stops tcpdump with SIGINT (it then closes the file) and waits for
// it; it answers tcpdump's closing report (packets captured, dropped by
// the kernel). Idempotent.
func (c *Capture) Stop() string {
	c.stop.Do(func() {
		_ = c.cmd.Process.Signal(syscall.SIGINT)
		select {
		case <-c.done:
		case <-time.After(10 * time.Second):
			_ = c.cmd.Process.Kill()
			<-c.done
		}
	})
	var lines []string
	for l := range strings.SplitSeq(c.out.String(), "\n") {
		if strings.Contains(l, "packets") {
			lines = append(lines, strings.TrimSpace(l))
		}
	}
	return strings.Join(lines, ", ")
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		s = s[i+1:]
	}
	if s == "" {
		return "(no output)"
	}
	return s
}

// syncBuffer is a bytes.Buffer safe for the process's writes and our reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
