package portpub

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"google.golang.org/grpc"
)

// SimOptions configure a simulated media platform: Servers media servers of
// Ports ports each, every one publishing through its own Publisher.
type SimOptions struct {
	Servers int
	Ports   uint32
	Tenant  string
	// IDPrefix names the servers <prefix>-1, <prefix>-2, ... (default "sim").
	IDPrefix string
	// Endpoints of the cluster. Server i uses them rotated by i, so the
	// servers' primaries spread over the nodes.
	Endpoints   []string
	Interval    time.Duration
	AckTimeout  time.Duration
	ReturnAfter time.Duration
	DialOptions []grpc.DialOption
	Logger      *slog.Logger
	// OnSwitch is called on every endpoint change of any server.
	OnSwitch func(server string, s Switch)
}

// Sim is a simulated media platform. Ports in use change through Acquire and
// Release (a call backend driving real calls) or RandomWalk (synthetic load).
type Sim struct {
	servers []*SimServer
	next    int
	mu      sync.Mutex
}

// SimServer is one simulated media server.
type SimServer struct {
	ID        string
	Total     uint32
	Publisher *Publisher

	mu    sync.Mutex
	inUse uint32
}

// NewSim builds the servers; Run starts publishing.
func NewSim(o SimOptions) *Sim {
	if o.IDPrefix == "" {
		o.IDPrefix = "sim"
	}
	s := &Sim{}
	for i := range o.Servers {
		id := fmt.Sprintf("%s-%d", o.IDPrefix, i+1)
		eps := Rotate(o.Endpoints, i)
		srv := &SimServer{ID: id, Total: o.Ports}
		var onSwitch func(Switch)
		if o.OnSwitch != nil {
			onSwitch = func(sw Switch) { o.OnSwitch(id, sw) }
		}
		srv.Publisher = New(Options{
			Endpoints:   eps,
			ServerID:    id,
			Address:     fmt.Sprintf("192.0.2.%d", i%254+1), // TEST-NET-1: simulated
			Tenant:      o.Tenant,
			Interval:    o.Interval,
			AckTimeout:  o.AckTimeout,
			ReturnAfter: o.ReturnAfter,
			DialOptions: o.DialOptions,
			Logger:      o.Logger,
			OnSwitch:    onSwitch,
		})
		srv.Publisher.Set(o.Ports, 0)
		s.servers = append(s.servers, srv)
	}
	return s
}

// Rotate returns eps starting at index i (mod len).
func Rotate(eps []string, i int) []string {
	if len(eps) == 0 {
		return nil
	}
	i %= len(eps)
	return append(append([]string(nil), eps[i:]...), eps[:i]...)
}

// Servers returns the simulated servers.
func (s *Sim) Servers() []*SimServer { return s.servers }

// Run publishes every server's usage until ctx ends.
func (s *Sim) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	errs := make(chan error, len(s.servers))
	for _, srv := range s.servers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := srv.Publisher.Run(ctx); err != nil {
				errs <- fmt.Errorf("%s: %w", srv.ID, err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	return <-errs // the first error, or nil
}

// Acquire takes a port on the server with the most free ports (round robin
// among equals); ok is false when every port is busy.
func (s *Sim) Acquire() (srv *SimServer, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var best *SimServer
	var bestFree uint32
	for k := range s.servers {
		c := s.servers[(s.next+k)%len(s.servers)]
		if f := c.Free(); f > bestFree {
			best, bestFree = c, f
		}
	}
	s.next++
	if best == nil || !best.Acquire() {
		return nil, false
	}
	return best, true
}

// Acquire takes one port; false when all are busy.
func (v *SimServer) Acquire() bool {
	v.mu.Lock()
	if v.inUse >= v.Total {
		v.mu.Unlock()
		return false
	}
	v.inUse++
	n := v.inUse
	v.mu.Unlock()
	v.Publisher.Set(v.Total, n)
	return true
}

// Release frees one port (no-op when none is in use).
func (v *SimServer) Release() {
	v.mu.Lock()
	if v.inUse > 0 {
		v.inUse--
	}
	n := v.inUse
	v.mu.Unlock()
	v.Publisher.Set(v.Total, n)
}

// SetInUse sets the ports in use (clamped to Total).
func (v *SimServer) SetInUse(n uint32) {
	v.mu.Lock()
	v.inUse = min(n, v.Total)
	n = v.inUse
	v.mu.Unlock()
	v.Publisher.Set(v.Total, n)
}

// InUse is the number of ports in use.
func (v *SimServer) InUse() uint32 {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.inUse
}

// Free is the number of free ports.
func (v *SimServer) Free() uint32 {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.Total - v.inUse
}

// RandomWalk is synthetic load: every step each server's ports in use move
// by a random amount of up to a tenth of its ports (at least 1) in either
// direction, reflected at 0 and Total. It starts each server near half
// load and returns when ctx ends.
func (s *Sim) RandomWalk(ctx context.Context, step time.Duration, rng *rand.Rand) {
	for _, v := range s.servers {
		v.SetInUse(v.Total/2 + uint32(rng.IntN(int(v.Total/4)+1)))
	}
	t := time.NewTicker(step)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		for _, v := range s.servers {
			v.SetInUse(walk(v.InUse(), v.Total, rng))
		}
	}
}

// walk moves cur by up to ±max(1, total/10), reflected into [0, total].
func walk(cur, total uint32, rng *rand.Rand) uint32 {
	k := max(int(total/10), 1)
	n := int(cur) + rng.IntN(2*k+1) - k
	if n < 0 {
		n = -n
	}
	if n > int(total) {
		n = 2*int(total) - n
	}
	return uint32(min(max(n, 0), int(total)))
}
