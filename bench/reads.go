package main

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	pb "github.com/seed-7bfc04c2/dialtone/api/dialtonev1"
	"github.com/seed-7bfc04c2/dialtone/bench/load"
)

// runReads measures port-usage and request reads per second on a
// follower, over REST, while a media platform publishes port usage.
func (h *harness) runReads(ctx context.Context) error {
	c := h.cfg.Reads
	const tenant = "reads"
	e, err := h.startEnv(ctx, "reads", "live", []string{"--tenant", tenant, "--servers", "4", "--ports", "50"})
	if err != nil {
		return err
	}
	defer e.stop()
	if err := e.setPacing(ctx, tenant, 0.1, 100); err != nil {
		return err
	}
	ids, err := e.createBacklog(ctx, tenant, c.Requests, 3)
	if err != nil {
		return err
	}
	follower := e.follower(ctx)
	if follower == "" {
		return fmt.Errorf("reads: no follower")
	}
	rc, err := e.rest(follower)
	if err != nil {
		return err
	}
	getRequest := func(ctx context.Context, id string) error {
		_, err := rc.GetRequest(ctx, &pb.GetRequestRequest{Tenant: tenant, Id: id})
		return err
	}
	// The follower must hold the requests and the port figures first.
	if !waitFor(ctx, 30*time.Second, func() bool {
		if getRequest(ctx, ids[len(ids)-1]) != nil {
			return false
		}
		_, err := rc.GetTenantPortUsage(ctx, tenant)
		return err == nil
	}) {
		return fmt.Errorf("reads: follower %s does not serve the data within 30s", follower)
	}
	// The load generator reads each answer whole and checks its status
	// and that it names what was asked for, without decoding the JSON:
	// on this 2-core machine decoding cost it more CPU per read than the
	// node spent answering (the client package's decoding is tested
	// elsewhere), and the generator shares the node's cores.
	base := "http://" + e.c.HTTPAddr(follower)
	reads := []struct {
		name string
		read func(ctx context.Context) error
	}{
		{"GET /v1/port-usage", func(ctx context.Context) error {
			return e.rawGet(ctx, base+"/v1/port-usage", tenant)
		}},
		{"GET /v1/tenants/{tenant}/requests/{id}", func(ctx context.Context) error {
			id := ids[rand.IntN(len(ids))]
			return e.rawGet(ctx, base+"/v1/tenants/"+tenant+"/requests/"+id, id)
		}},
	}
	pid := 0
	if p := e.c.Proc(follower); p != nil {
		pid = p.Pid()
	}
	for _, rd := range reads {
		var answered atomic.Int64 // warm-up included, as the CPU times are
		node0, nodeOK := procCPU(pid)
		client0 := selfCPU()
		r := load.Run(ctx, load.Options{Workers: c.Workers, Warmup: c.Warmup.Duration, Duration: c.Duration.Duration},
			func(ctx context.Context, w *load.Worker) (int, error) {
				err := rd.read(ctx)
				if err == nil {
					answered.Add(1)
				}
				return 1, err
			})
		node1, nodeOK1 := procCPU(pid)
		client1 := selfCPU()
		res := ReadResult{Read: rd.name, Node: follower, Workers: c.Workers, Seconds: r.Seconds, PerSec: r.CallsPerSec(),
			P50ms: ms(r.Quantile(0.5)), P99ms: ms(r.Quantile(0.99)), Errors: r.Errors}
		if n := float64(answered.Load()); n > 0 {
			if nodeOK && nodeOK1 {
				res.NodeCPUus = float64((node1 - node0).Microseconds()) / n
			}
			res.ClientCPUus = float64((client1 - client0).Microseconds()) / n
		}
		h.repMu.Lock()
		h.rep.Reads = append(h.rep.Reads, res)
		h.repMu.Unlock()
		h.logf("reads %s on follower %s: %.0f/s, p50 %.2f ms, p99 %.2f ms, CPU per read: node %.1f µs, load generator %.1f µs, errors %s",
			rd.name, follower, res.PerSec, res.P50ms, res.P99ms, res.NodeCPUus, res.ClientCPUus, load.Counts(res.Errors))
		h.check("reads", rd.name+": answered", r.Calls > 0 && len(r.Errors) == 0, "%d reads, errors %s", r.Calls, load.Counts(r.Errors))
	}
	// Open loop: fixed offered rates, latency from each call's intended
	// send time, so a stall of the node shows in every call due during it.
	rates, _ := c.openRates() // validated
	for _, rate := range rates {
		for _, rd := range reads {
			if err := h.openRead(ctx, rd.name, follower, rate, rd.read); err != nil {
				return err
			}
		}
	}
	return nil
}

// readBufs are the load generator's answer buffers.
var readBufs = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// rawGet GETs url and checks the answer is a 200 whose body contains
// want.
func (e *environment) rawGet(ctx context.Context, url, want string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := e.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	buf := readBufs.Get().(*bytes.Buffer)
	defer readBufs.Put(buf)
	buf.Reset()
	if _, err := buf.ReadFrom(resp.Body); err != nil {
		return fmt.Errorf("GET %s: reading the answer: %w", url, err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s: %.200s", url, resp.Status, buf.Bytes())
	}
	if !bytes.Contains(buf.Bytes(), []byte(want)) {
		return fmt.Errorf("GET %s: the answer does not name %q: %.200s", url, want, buf.Bytes())
	}
	return nil
}

// openRead runs one read at a fixed offered rate.
func (h *harness) openRead(ctx context.Context, name, follower string, rate float64, read func(context.Context) error) error {
	c := h.cfg.Reads
	r := load.RunOpen(ctx, load.OpenOptions{Rate: rate, Warmup: c.Warmup.Duration, Duration: c.Duration.Duration},
		func(ctx context.Context, w *load.Worker) (int, error) { return 1, read(ctx) })
	if ctx.Err() != nil {
		return ctx.Err()
	}
	res := OpenReadResult{Read: name, Node: follower, OfferedRate: rate, Seconds: r.Seconds, Scheduled: r.Scheduled,
		Completed: r.Completed, Unfinished: r.Unfinished, PerSec: r.AchievedPerSec(),
		P50ms: ms(r.Quantile(0.5)), P99ms: ms(r.Quantile(0.99)), Maxms: ms(r.Quantile(1)),
		GenLateP99ms: ms(load.Quantile(r.Late, 0.99)), Errors: r.Errors}
	h.repMu.Lock()
	h.rep.OpenReads = append(h.rep.OpenReads, res)
	h.repMu.Unlock()
	h.logf("reads %s on follower %s, open loop at %.0f/s: achieved %.0f/s, p50 %.2f ms, p99 %.2f ms, max %.1f ms (generator late p99 %.2f ms), unfinished %d, errors %s",
		name, follower, rate, res.PerSec, res.P50ms, res.P99ms, res.Maxms, res.GenLateP99ms, res.Unfinished, load.Counts(res.Errors))
	h.check("reads", name+": answered at a fixed rate", r.Completed > 0 && len(r.Errors) == 0, "%.0f/s offered: %d of %d reads, errors %s", rate, r.Completed, r.Scheduled, load.Counts(r.Errors))
	return nil
}

// clockTick is the unit of /proc/<pid>/stat's CPU times (USER_HZ, 100 on
// Linux).
const clockTick = 10 * time.Millisecond

// procCPU is process pid's user + system CPU time (all threads), from
// /proc/<pid>/stat; false where that cannot be read.
func procCPU(pid int) (time.Duration, bool) {
	if pid <= 0 {
		return 0, false
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, false
	}
	// The command name (field 2) is in parentheses and may hold spaces;
	// utime and stime are fields 14 and 15, the 12th and 13th after it.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return 0, false
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, false
	}
	u, err1 := strconv.ParseInt(f[11], 10, 64)
	s, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, false
	}
	return time.Duration(u+s) * clockTick, true
}

// selfCPU is this process's user + system CPU time.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
