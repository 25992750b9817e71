// Command sipbench measures the SIP call backend against SIPp: it places
// calls through Dialtone's SIP backend (package sipcall, the code the
// dialer calls) to a SIPp UAS at rising rates, and in the same run SIPp
// against SIPp (sipp -sn uac against sipp -sn uas) at the same rates,
// and reports for each the highest rate (CAPS) sustained with zero failed
// calls and the achieved dial rate within 1% of the target, and their
// ratio.
//
// Both sides run the same call flow: INVITE, 180, 200, ACK, a hold of
// --hold, BYE, 200, over UDP on 127.0.0.1 with 4 MiB socket buffers.
//
// With --3pcc the Dialtone side places third-party-call-control calls
// (RFC 3725 flow I, docs/sip.md): the callee (a SIPp UAS) answers with an
// offer, Dialtone INVITEs an IVR application on a second SIPp UAS with it,
// ACKs both and, after the hold, hangs both up: two INVITE transactions
// and two BYEs per call, against SIPp-to-SIPp's one.
package main

import (
	"bufio"
	"context"
	"encoding/csv"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/seed-7bfc04c2/dialtone/internal/config"
	"github.com/seed-7bfc04c2/dialtone/internal/fsm/fsmpb"
	"github.com/seed-7bfc04c2/dialtone/internal/telephony"
	"github.com/seed-7bfc04c2/dialtone/internal/telephony/sipcall"
)

func main() {
	var (
		rates    = flag.String("rates", "250,500,1000,2000,3000,4000,6000,8000,12000,16000", "call rates (calls per second) to try, rising; each side stops at its first unclean step")
		duration = flag.Duration("duration", 3*time.Second, "dialling time per step")
		hold     = flag.Duration("hold", 10*time.Millisecond, "time each answered call is held before the caller hangs up")
		sippBin  = flag.String("sipp", "sipp", "the sipp binary")
		only     = flag.String("only", "", "run only one side: dialtone or sipp")
		cpuprof  = flag.String("cpuprofile", "", "write a CPU profile of the run (the Dialtone side runs in this process)")
		thirdPCC = flag.Bool("3pcc", false, "Dialtone places 3PCC calls: callee plus an IVR leg on a second SIPp UAS")
	)
	flag.Parse()
	if *cpuprof != "" {
		f, err := os.Create(*cpuprof)
		if err != nil {
			fail(err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			fail(err)
		}
		defer pprof.StopCPUProfile()
	}
	slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
	var steps []float64
	for _, s := range strings.Split(*rates, ",") {
		r, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
		if err != nil || r <= 0 {
			fail(fmt.Errorf("--rates: %q is not a positive number", s))
		}
		steps = append(steps, r)
	}
	if !slices.IsSorted(steps) {
		fail(errors.New("--rates must be rising"))
	}
	dir, err := os.MkdirTemp("", "sipbench")
	if err != nil {
		fail(err)
	}
	defer os.RemoveAll(dir)

	side := "dialtone"
	if *thirdPCC {
		side = "dialtone 3pcc"
	}
	fmt.Printf("sipbench: %s per step, hold %s, UDP on 127.0.0.1, socket buffers 4 MiB, 3pcc %v\n\n", *duration, *hold, *thirdPCC)
	fmt.Println("| side | target CAPS | calls | failed | achieved CAPS | pacing error | call overhead p50 ms | p99 ms | clean |")
	fmt.Println("|---|---:|---:|---:|---:|---:|---:|---:|---|")
	var bestD, bestS float64
	if *only != "sipp" {
		bestD = ladder(steps, func(r float64) (step, error) { return dialtoneStep(*sippBin, r, *duration, *hold, *thirdPCC) }, side)
	}
	if *only != "dialtone" {
		bestS = ladder(steps, func(r float64) (step, error) { return sippStep(*sippBin, dir, r, *duration, *hold) }, "sipp→sipp")
	}
	fmt.Printf("\nhighest clean CAPS: %s %g, sipp→sipp %g", side, bestD, bestS)
	if bestD > 0 && bestS > 0 {
		fmt.Printf(", ratio %.2f", bestD/bestS)
	}
	if bestS == steps[len(steps)-1] {
		fmt.Printf(" (sipp clean at the highest rate tried: the ratio is an upper bound)")
	}
	fmt.Println()
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "sipbench:", err)
	os.Exit(1)
}

type step struct {
	calls, failed int
	achieved      float64
	p50, p99      time.Duration
}

func ladder(steps []float64, run func(float64) (step, error), side string) float64 {
	best := 0.0
	for _, r := range steps {
		s, err := run(r)
		if err != nil {
			fail(fmt.Errorf("%s at %g: %w", side, r, err))
		}
		perr := (s.achieved - r) / r
		clean := s.failed == 0 && s.calls > 0 && perr > -0.01 && perr < 0.01
		lat := func(d time.Duration) string {
			if d == 0 {
				return "—"
			}
			return fmt.Sprintf("%.1f", float64(d.Microseconds())/1000)
		}
		fmt.Printf("| %s | %g | %d | %d | %.1f | %+.2f%% | %s | %s | %v |\n", side, r, s.calls, s.failed, s.achieved, perr*100, lat(s.p50), lat(s.p99), clean)
		if !clean {
			break
		}
		best = r
		time.Sleep(time.Second) // let the previous step's transactions drain
	}
	return best
}

func freeUDPPort() (int, error) {
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		return 0, err
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port, nil
}

// startUAS runs `sipp -sn uas` until the returned stop is called.
func startUAS(bin string) (addr string, stop func(), err error) {
	port, err := freeUDPPort()
	if err != nil {
		return "", nil, err
	}
	cmd := exec.Command(bin, "-sn", "uas", "-i", "127.0.0.1", "-p", strconv.Itoa(port), "-buff_size", "4194304", "-nostdin", "-max_recv_loops", "10000")
	cmd.Stdout, cmd.Stderr = io.Discard, io.Discard
	if err := cmd.Start(); err != nil {
		return "", nil, err
	}
	stop = func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port})
		if err != nil {
			break // bound by sipp
		}
		c.Close()
		if time.Now().After(deadline) {
			stop()
			return "", nil, errors.New("sipp uas did not start")
		}
	}
	return fmt.Sprintf("127.0.0.1:%d", port), stop, nil
}

// dialtoneStep places calls through sipcall at rate r for d, evenly
// paced (a call every 1/r s), each held for hold then hung up (BYE). The
// latency is Place's duration less the hold: INVITE to 200, ACK, BYE to 200.
func dialtoneStep(bin string, r float64, d, hold time.Duration, thirdPCC bool) (step, error) {
	addr, stop, err := startUAS(bin)
	if err != nil {
		return step{}, err
	}
	defer stop()
	c := config.Default().Telephony.SIP
	c.Listen = "127.0.0.1:0"
	c.MaxCallDuration = config.Duration{Duration: hold}
	c.RingTimeout = config.Duration{Duration: 10 * time.Second}
	c.Trunks = []config.SIPTrunk{{Name: "sipp", Address: addr}}
	if thirdPCC {
		ivr, stopIVR, err := startUAS(bin)
		if err != nil {
			return step{}, err
		}
		defer stopIVR()
		// Ended by max_call_duration (the hold), so min_connected does not
		// apply: a call connected to the IVR is a SUCCESS.
		c.IVR = []config.SIPIVR{{Profile: "*", URI: "sip:ivr@{server}", Servers: []string{ivr}}}
	}
	b, err := sipcall.New(sipcall.Options{SIP: c, Logger: slog.Default()})
	if err != nil {
		return step{}, err
	}
	defer b.Close()

	n := int(r * d.Seconds())
	interval := time.Duration(float64(time.Second) / r)
	var failed atomic.Int64
	lat := make([]time.Duration, n)
	dials := make([]time.Time, n)
	var wg sync.WaitGroup
	start := time.Now()
	for i := range n {
		if w := time.Until(start.Add(time.Duration(i) * interval)); w > 0 {
			time.Sleep(w)
		}
		dials[i] = time.Now()
		wg.Add(1)
		go func() {
			defer wg.Done()
			t0 := time.Now()
			out, err := b.Place(context.Background(), telephony.Call{RequestID: strconv.Itoa(i), Tenant: "bench", IVRProfile: "bench", Telnum: strconv.Itoa(100000 + i), Ani: "1000"})
			lat[i] = time.Since(t0) - hold
			if err != nil || out.Class != fsmpb.OutcomeClass_OUTCOME_SUCCESS {
				failed.Add(1)
			}
		}()
	}
	wg.Wait()
	s := step{calls: n, failed: int(failed.Load())}
	if n > 1 {
		s.achieved = float64(n-1) / dials[n-1].Sub(dials[0]).Seconds()
	}
	slices.Sort(lat)
	s.p50, s.p99 = lat[n/2], lat[n*99/100]
	return s, nil
}

// sippStep runs `sipp -sn uac` at rate r for d against a fresh `sipp -sn
// uas`, and reads its final statistics.
func sippStep(bin, dir string, r float64, d, hold time.Duration) (step, error) {
	addr, stop, err := startUAS(bin)
	if err != nil {
		return step{}, err
	}
	defer stop()
	n := int(r * d.Seconds())
	stf := filepath.Join(dir, fmt.Sprintf("uac-%g.csv", r))
	cmd := exec.Command(bin, "-sn", "uac", addr, "-i", "127.0.0.1", "-r", strconv.FormatFloat(r, 'f', -1, 64), "-m", strconv.Itoa(n),
		"-d", strconv.FormatInt(hold.Milliseconds(), 10), "-buff_size", "4194304", "-nostdin", "-max_recv_loops", "10000",
		"-trace_stat", "-stf", stf, "-fd", "1", "-timeout", strconv.Itoa(int(d.Seconds())+40), "-timeout_error")
	cmd.Stdout, cmd.Stderr = io.Discard, io.Discard
	start := time.Now()
	runErr := cmd.Run()
	wall := time.Since(start)
	st, err := lastStats(stf)
	if err != nil {
		return step{}, fmt.Errorf("%w (sipp: %v)", err, runErr)
	}
	s := step{calls: st["OutgoingCall(C)"], failed: st["FailedCall(C)"] + (n - st["SuccessfulCall(C)"] - st["FailedCall(C)"])}
	// SIPp reports no per-call dial times: the achieved rate is the calls
	// over the elapsed time less the last call's duration.
	el := time.Duration(st["ElapsedTimeMs(C)"]) * time.Millisecond
	if el <= 0 {
		el = wall
	}
	if last := el - hold - time.Duration(st["ResponseTimeMs"])*time.Millisecond; s.calls > 1 && last > 0 {
		s.achieved = float64(s.calls-1) / last.Seconds()
	}
	return s, nil
}

// lastStats reads the last row of a SIPp -trace_stat CSV (';'-separated)
// as integers; ElapsedTime(C) is converted to ElapsedTimeMs(C).
func lastStats(path string) (map[string]int, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("sipp statistics: %w", err)
	}
	defer f.Close()
	rd := csv.NewReader(bufio.NewReader(f))
	rd.Comma = ';'
	rd.FieldsPerRecord = -1
	rows, err := rd.ReadAll()
	if err != nil || len(rows) < 2 {
		return nil, fmt.Errorf("sipp statistics %s: %d rows: %v", path, len(rows), err)
	}
	head, last := rows[0], rows[len(rows)-1]
	m := map[string]int{}
	for i, h := range head {
		if i >= len(last) {
			break
		}
		v := strings.TrimSpace(last[i])
		if h == "ElapsedTime(C)" {
			m["ElapsedTimeMs(C)"] = parseHMS(v)
			continue
		}
		if n, err := strconv.Atoi(v); err == nil {
			m[h] = n
		}
	}
	return m, nil
}

// parseHMS parses SIPp's "HH:MM:SS:mmm" (or with a trailing fraction) to
// milliseconds.
func parseHMS(v string) int {
	parts := strings.FieldsFunc(v, func(r rune) bool { return r == ':' || r == '.' })
	if len(parts) < 3 {
		return 0
	}
	h, _ := strconv.Atoi(parts[0])
	m, _ := strconv.Atoi(parts[1])
	s, _ := strconv.Atoi(parts[2])
	ms := 0
	if len(parts) > 3 {
		ms, _ = strconv.Atoi((parts[3] + "000")[:3])
	}
	return ((h*60+m)*60+s)*1000 + ms
}
