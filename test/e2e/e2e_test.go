//go:build e2e

// Package e2e starts the real dialtone binary and drives it as an operator
// and a trigger application would: over REST and the CLI, killing
// processes with SIGKILL.
package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/encoding/protojson"

	pb "github.com/seed-7bfc04c2/dialtone/api/dialtonev1"
	"github.com/seed-7bfc04c2/dialtone/client"
	"github.com/seed-7bfc04c2/dialtone/internal/config"
	"github.com/seed-7bfc04c2/dialtone/test/cluster"
)

var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "dialtone-e2e")
	if err != nil {
		panic(err)
	}
	// dialtone dev finds dialtone-sim beside dialtone.
	binary = filepath.Join(dir, "dialtone")
	build := exec.Command("go", "build", "-race", "-o", dir+string(filepath.Separator), "../../cmd/dialtone", "../../cmd/dialtone-sim")
	build.Stdout, build.Stderr = os.Stdout, os.Stderr
	if err := build.Run(); err != nil {
		panic(fmt.Sprintf("build: %v", err))
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// nodes are the HTTP addresses of cluster.example.toml and `dialtone dev`
// (fixed: the tests that use them run under the fixed-port lock).
var nodes = map[string]string{"n1": "127.0.0.1:8081", "n2": "127.0.0.1:8082", "n3": "127.0.0.1:8083"}

// proc is one running dialtone process with its output captured.
type proc struct {
	cmd  *exec.Cmd
	out  *syncBuffer
	done chan struct{}
}

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func start(t *testing.T, args ...string) *proc {
	t.Helper()
	return startEnv(t, nil, args...)
}

// startEnv is start with env added to the test's environment.
func startEnv(t *testing.T, env []string, args ...string) *proc {
	t.Helper()
	p := &proc{cmd: exec.Command(binary, args...), out: &syncBuffer{}, done: make(chan struct{})}
	if env != nil {
		p.cmd.Env = append(os.Environ(), env...)
	}
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		_ = p.cmd.Process.Kill()
		<-p.done
		if t.Failed() {
			t.Logf("output of %v:\n%s", args, lastLines(p.out.String(), 60))
		}
	})
	return p
}

// startCluster starts three `serve` processes of the binary under test on
// free ports (test/cluster); edit changes the generated configuration;
// dial are the framework's gRPC dial options (credentials, with auth on). On
// failure the test logs the end of every node's log.
func startCluster(t *testing.T, edit func(*config.Config), dial ...grpc.DialOption) *cluster.Processes {
	t.Helper()
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c, err := cluster.StartProcesses(ctx, cluster.ProcessOptions{Binary: binary, Options: cluster.Options{Dir: dir, Edit: edit, Poll: 50 * time.Millisecond, DialOptions: dial}})
	t.Cleanup(func() {
		if c != nil {
			_ = c.Close()
		}
		if t.Failed() {
			logs, _ := filepath.Glob(filepath.Join(dir, "log-*.txt"))
			for _, l := range logs {
				b, _ := os.ReadFile(l)
				t.Logf("%s:\n%s", filepath.Base(l), lastLines(string(b), 60))
			}
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// httpAddrs are c's HTTP addresses by node id.
func httpAddrs(c cluster.Cluster) map[string]string {
	out := map[string]string{}
	for _, id := range c.IDs() {
		out[id] = c.HTTPAddr(id)
	}
	return out
}

func lastLines(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func eventually(t *testing.T, timeout time.Duration, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not reached within %s: %v", what, timeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// rest is a client of the node at addr (host:port).
func rest(t *testing.T, addr string) *client.Client {
	t.Helper()
	c, err := client.New(addr, client.WithTimeout(15*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// do calls the HTTP endpoints that are not Dialtone's REST API: the
// simulators' and the CVP compatibility API.
func do(method, url string, body any, out any) (int, error) {
	return doHeaders(nil, method, url, body, out)
}

// doHeaders is do with request headers.
func doHeaders(headers map[string]string, method, url string, body, out any) (int, error) {
	var r io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, url, r)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	resp, err := http.DefaultClient.Do(req.WithContext(ctx))
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 != 2 {
		return resp.StatusCode, fmt.Errorf("%s %s: %d %s", method, url, resp.StatusCode, data)
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return resp.StatusCode, fmt.Errorf("decode %s: %w", data, err)
		}
	}
	return resp.StatusCode, nil
}

func waitReady(t *testing.T, addrs ...string) {
	t.Helper()
	for _, a := range addrs {
		eventually(t, 30*time.Second, a+" ready", func() error {
			return rest(t, a).Ready(t.Context())
		})
	}
}

// specs are n requests with tokens prefix-0, prefix-1, ...
func specs(n int, prefix string) []*pb.RequestSpec {
	var reqs []*pb.RequestSpec
	for i := range n {
		reqs = append(reqs, &pb.RequestSpec{
			Token: fmt.Sprintf("%s-%d", prefix, i), IvrProfile: "Application", Telnum: "9884719189",
			NotificationUrl: "http://127.0.0.1:9/result", MaxAttempts: 2, TimeToLive: "600s",
		})
	}
	return reqs
}

// create submits specs to the node at addr and answers their ids; a
// refused one is an error.
func create(ctx context.Context, t *testing.T, addr, tenant string, specs ...*pb.RequestSpec) ([]string, error) {
	cr, err := rest(t, addr).CreateRequests(ctx, &pb.CreateRequestsRequest{Tenant: tenant, Requests: specs})
	if err != nil {
		return nil, err
	}
	var ids []string
	for _, r := range cr.Results {
		if !r.Ok {
			return nil, fmt.Errorf("create refused: %v", cr.Results)
		}
		ids = append(ids, r.Id)
	}
	return ids, nil
}

// submit is create that fails the test on an error.
func submit(t *testing.T, addr, tenant string, specs ...*pb.RequestSpec) []string {
	t.Helper()
	ids, err := create(t.Context(), t, addr, tenant, specs...)
	if err != nil {
		t.Fatal(err)
	}
	return ids
}

// TestServeFromExampleConfigSurvivesLeaderKill runs three `serve` processes
// from cluster.example.toml, submits over REST, SIGKILLs the leader, and
// reads every acknowledged request back from the survivors.
func TestServeFromExampleConfigSurvivesLeaderKill(t *testing.T) {
	data := t.TempDir()
	procs := map[string]*proc{}
	for id := range nodes {
		procs[id] = start(t, "serve", "--config", "../../cluster.example.toml", "--node", id, "--data-dir", data)
	}
	waitReady(t, nodes["n1"], nodes["n2"], nodes["n3"])

	var ids []string
	for round := range 20 {
		ids = append(ids, submit(t, nodes[fmt.Sprintf("n%d", round%3+1)], "acme", specs(5, fmt.Sprint(round))...)...)
	}

	st, err := rest(t, nodes["n1"]).GetClusterStatus(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	leader := st.LeaderId
	if err := procs[leader].cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-procs[leader].done

	var survivors []string
	for id, a := range nodes {
		if id != leader {
			survivors = append(survivors, a)
		}
	}
	// A new leader is elected and writes continue.
	eventually(t, 30*time.Second, "new leader", func() error {
		st, err := rest(t, survivors[0]).GetClusterStatus(t.Context())
		if err != nil {
			return err
		}
		if st.LeaderId == "" || st.LeaderId == leader {
			return fmt.Errorf("leader %q", st.LeaderId)
		}
		return nil
	})
	ids = append(ids, submit(t, survivors[1], "acme", specs(1, "after")...)...)

	for _, a := range survivors {
		for _, id := range ids {
			got, err := rest(t, a).GetRequest(t.Context(), &pb.GetRequestRequest{Tenant: "acme", Id: id, Consistency: client.Linearizable})
			if err != nil {
				t.Fatalf("survivor %s lost %s: %v", a, id, err)
			}
			if got.Request.GetId() != id || got.Request.GetState() != "PENDING" {
				t.Fatalf("survivor %s: %v", a, got)
			}
		}
	}

	// The killed node restarts from its data dir and catches up.
	procs[leader] = start(t, "serve", "--config", "../../cluster.example.toml", "--node", leader, "--data-dir", data)
	waitReady(t, nodes[leader])
	eventually(t, 30*time.Second, "restarted node has every request", func() error {
		list, err := rest(t, nodes[leader]).ListRequests(t.Context(), &pb.ListRequestsRequest{Tenant: "acme", PageSize: 1000})
		if err != nil {
			return err
		}
		if len(list.Requests) != len(ids) {
			return fmt.Errorf("%d of %d", len(list.Requests), len(ids))
		}
		return nil
	})
}

// TestServeGarbageCollectorDefaults: serve runs the collector at GOGC=200
// with a soft memory limit of 90% of the memory it may use, unless the
// environment sets GOGC or GOMEMLIMIT; what is in force shows in /metrics.
func TestServeGarbageCollectorDefaults(t *testing.T) {
	data := t.TempDir()
	env := map[string][]string{
		"n1": {"GOGC=", "GOMEMLIMIT="},
		"n2": {"GOGC=50", "GOMEMLIMIT="},
		"n3": {"GOGC=", "GOMEMLIMIT=300MiB"},
	}
	for id, e := range env {
		startEnv(t, e, "serve", "--config", "../../cluster.example.toml", "--node", id, "--data-dir", data)
	}
	waitReady(t, nodes["n1"], nodes["n2"], nodes["n3"])
	gauge := func(addr, name string) float64 {
		t.Helper()
		resp, err := http.Get("http://" + addr + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(string(body), "\n") {
			if v, ok := strings.CutPrefix(line, name+" "); ok {
				f, err := strconv.ParseFloat(v, 64)
				if err != nil {
					t.Fatalf("%s: %q: %v", name, line, err)
				}
				return f
			}
		}
		t.Fatalf("%s: no %s in /metrics", addr, name)
		return 0
	}
	for _, tc := range []struct {
		node     string
		gogc     float64
		limitMin float64
		limitMax float64
	}{
		{"n1", 200, 1 << 20, math.MaxInt64 / 2},
		{"n2", 50, 1 << 20, math.MaxInt64 / 2},
		{"n3", 200, 300 << 20, 300 << 20},
	} {
		if got := gauge(nodes[tc.node], "go_gc_gogc_percent"); got != tc.gogc {
			t.Errorf("%s: go_gc_gogc_percent = %v, want %v", tc.node, got, tc.gogc)
		}
		if got := gauge(nodes[tc.node], "go_gc_gomemlimit_bytes"); got < tc.limitMin || got > tc.limitMax {
			t.Errorf("%s: go_gc_gomemlimit_bytes = %v, want in [%v, %v]", tc.node, got, tc.limitMin, tc.limitMax)
		}
	}
}

// TestDevClusterAndCLI runs `dialtone dev`, drives it with the CLI verbs,
// and stops it with SIGTERM.
func TestDevClusterAndCLI(t *testing.T) {
	data := t.TempDir()
	// Without the media platform there are no ports, so nothing is
	// dialled and the request stays waiting (and cancellable).
	dev := start(t, "dev", "--data-dir", data, "--mediasim=false")
	waitReady(t, nodes["n1"], nodes["n2"], nodes["n3"])

	cli := func(args ...string) (string, error) {
		out, err := exec.Command(binary, args...).CombinedOutput()
		return string(out), err
	}
	out, err := cli("submit", "--addr", nodes["n2"], "--tenant", "acme", "--telnum", "+4930123456", "--profile", "Application", "--notify", "https://example.test/r", "--data", "campaign=spring")
	if err != nil {
		t.Fatalf("submit: %v\n%s", err, out)
	}
	var sub pb.CreateRequestsResponse
	if err := protojson.Unmarshal([]byte(out), &sub); err != nil || len(sub.Results) != 1 || !sub.Results[0].Ok {
		t.Fatalf("submit output: %s (%v)", out, err)
	}
	id := sub.Results[0].Id

	out, err = cli("get", "--addr", nodes["n3"], "--tenant", "acme", "--consistency", "linearizable", id)
	if err != nil || !strings.Contains(out, `"campaign"`) || !strings.Contains(out, "Waiting to be processed") {
		t.Fatalf("get: %v\n%s", err, out)
	}
	out, err = cli("get", "--addr", nodes["n3"], "--tenant", "other", id)
	if err == nil || !strings.Contains(out, "404") {
		t.Fatalf("cross-tenant get should be 404: %v\n%s", err, out)
	}
	out, err = cli("status", "--addr", nodes["n1"])
	if err != nil || !strings.Contains(out, "Voter") || !strings.Contains(out, "leader") {
		t.Fatalf("status: %v\n%s", err, out)
	}
	out, err = cli("members", "--addr", nodes["n1"])
	if err != nil || strings.Count(out, "alive") != 3 {
		t.Fatalf("members: %v\n%s", err, out)
	}
	out, err = cli("transfer-leadership", "--addr", nodes["n1"])
	if err != nil || !strings.Contains(out, "leadership moved") {
		t.Fatalf("transfer-leadership: %v\n%s", err, out)
	}
	out, err = cli("cancel", "--addr", nodes["n1"], "--tenant", "acme", id)
	var cancelled struct {
		Result struct {
			OK bool `json:"ok"`
		} `json:"result"`
	}
	if err != nil || json.Unmarshal([]byte(out), &cancelled) != nil || !cancelled.Result.OK {
		t.Fatalf("cancel: %v\n%s", err, out)
	}
	out, err = cli("list", "--addr", nodes["n2"], "--tenant", "acme", "--state", "PROCESSED")
	if err != nil || !strings.Contains(out, `"Cancelled"`) {
		t.Fatalf("list: %v\n%s", err, out)
	}

	if err := dev.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-dev.done:
	case <-time.After(60 * time.Second):
		t.Fatal("dev did not stop on SIGTERM")
	}
	if code := dev.cmd.ProcessState.ExitCode(); code != 0 {
		t.Fatalf("dev exit code %d", code)
	}
	for _, n := range []string{"n1", "n2", "n3"} {
		if !strings.Contains(dev.out.String(), "dev: node "+n+" exited: ok") {
			t.Fatalf("node %s did not stop cleanly", n)
		}
	}
}

// TestPausedLeaderStepsDownAndCatchesUp freezes the leader with SIGSTOP: the
// others elect a new leader and keep accepting writes; after SIGCONT the old
// leader follows the new term, and every node holds every acknowledged write.
func TestPausedLeaderStepsDownAndCatchesUp(t *testing.T) {
	c := startCluster(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	old, err := c.WaitLeader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Proc(old).Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	resumed := false
	defer func() {
		if !resumed {
			_ = c.Proc(old).Signal(syscall.SIGCONT)
		}
	}()
	var other []string
	for _, id := range c.IDs() {
		if id != old {
			other = append(other, id)
		}
	}
	var ids []string
	eventually(t, 30*time.Second, "write during the pause", func() error {
		var err error
		ids, err = create(t.Context(), t, c.HTTPAddr(other[0]), "acme", specs(3, "paused")...)
		return err
	})
	if err := c.Proc(old).Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	resumed = true
	eventually(t, 30*time.Second, "old leader follows", func() error {
		st, err := rest(t, c.HTTPAddr(old)).GetClusterStatus(t.Context())
		if err != nil {
			return err
		}
		if st.State != "Follower" || st.LeaderId == "" || st.LeaderId == old {
			return fmt.Errorf("old leader: state %s, leader %q", st.State, st.LeaderId)
		}
		return nil
	})
	for _, id := range ids {
		if _, err := rest(t, c.HTTPAddr(old)).GetRequest(t.Context(), &pb.GetRequestRequest{Tenant: "acme", Id: id, Consistency: client.Linearizable}); err != nil {
			t.Fatalf("old leader misses %s: %v", id, err)
		}
	}
}
