package console

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	pb "github.com/seed-7bfc04c2/dialtone/api/dialtonev1"
)

// fakeAPI answers fixed figures; calls it does not expect fail.
type fakeAPI struct {
	API
	dialer atomic.Pointer[pb.DialerStatus]
}

func (f *fakeAPI) ClusterStatus(context.Context) (*pb.ClusterStatus, error) {
	return &pb.ClusterStatus{NodeId: "n1", State: "Follower", LeaderId: "n2", AppliedIndex: 42, LastContactMs: 12}, nil
}

func (f *fakeAPI) Members(context.Context) (*pb.ListMembersResponse, error) {
	return &pb.ListMembersResponse{}, nil
}

func (f *fakeAPI) DialerStatus(context.Context) (*pb.DialerStatus, error) {
	d := f.dialer.Load()
	if d == nil {
		return nil, status.Error(codes.Unavailable, "no leader")
	}
	return proto.Clone(d).(*pb.DialerStatus), nil
}

func TestIdleReason(t *testing.T) {
	for _, c := range []struct {
		name    string
		running bool
		t       *pb.DialerTenantStatus
		want    string // substring; "" means dialling
	}{
		{"no engine", false, &pb.DialerTenantStatus{Queued: 5}, "not running"},
		{"nothing queued", true, &pb.DialerTenantStatus{}, "no request is waiting"},
		{"draining", true, &pb.DialerTenantStatus{InProgress: 3}, ""},
		{"no ports reported", true, &pb.DialerTenantStatus{Queued: 5, PortBudget: 0}, "no fresh media-server report"},
		{"budget full", true, &pb.DialerTenantStatus{Queued: 5, PortsTotal: 10, PortBudget: 10, InProgress: 10}, "all 10 ports"},
		{"at the CAPS limit", true, &pb.DialerTenantStatus{Queued: 5, PortsTotal: 10, PortBudget: 10, InProgress: 2, Caps: 10, AttemptsPerSec: 9.5}, "CAPS"},
		{"dialling", true, &pb.DialerTenantStatus{Queued: 5, PortsTotal: 10, PortBudget: 10, InProgress: 2, Caps: 10, AttemptsPerSec: 4}, ""},
		{"overloaded", true, &pb.DialerTenantStatus{Queued: 5, PortsTotal: 10, PortBudget: 10, InProgress: 2, Caps: 10, AttemptsPerSec: 4, LimitedBy: "sending"}, "cannot sustain"},
		{"fenced", true, &pb.DialerTenantStatus{Queued: 5, PortsTotal: 10, PortBudget: 10, InProgress: 2, Caps: 10, LimitedBy: "fenced"}, "lease"},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := IdleReason(c.running, c.t)
			if (c.want == "") != (got == "") || !strings.Contains(got, c.want) {
				t.Fatalf("IdleReason = %q, want %q", got, c.want)
			}
		})
	}
}

func TestHistoryKeepsFifteenMinutes(t *testing.T) {
	h := newHistory()
	t0 := time.Unix(1_000_000, 0)
	for i := range 1000 {
		h.recordDialer(t0.Add(time.Duration(i)*time.Second), &pb.DialerStatus{Tenants: []*pb.DialerTenantStatus{{Tenant: "acme", Caps: float64(i)}}})
	}
	// A second answer within the same second replaces the first.
	h.recordDialer(t0.Add(999*time.Second+500*time.Millisecond), &pb.DialerStatus{Tenants: []*pb.DialerTenantStatus{{Tenant: "acme", Caps: -1}}})
	pts := h.dialer("acme")
	if n := len(pts); n != 901 {
		t.Fatalf("%d points, want 901 (15 minutes and the current second)", n)
	}
	if pts[0].T != t0.Unix()+99 || pts[len(pts)-1].CAPS != -1 {
		t.Fatalf("first %+v last %+v", pts[0], pts[len(pts)-1])
	}
	if len(h.dialer("globex")) != 0 {
		t.Fatal("history for a tenant never recorded")
	}
	h.recordLeader(t0, "n1", 1)
	h.recordLeader(t0.Add(time.Second), "n1", 1)
	h.recordLeader(t0.Add(2*time.Second), "", 2)
	h.recordLeader(t0.Add(3*time.Second), "n2", 2)
	if got := h.leaderChanges(); len(got) != 3 || got[2].Leader != "n2" {
		t.Fatalf("leader changes %+v", got)
	}
}

func readEvents(t *testing.T, url string, n int) []string {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	req.Header.Set(apiHeader, "1")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out []string
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() && len(out) < n {
		if d, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
			out = append(out, d)
		}
	}
	return out
}

func TestStreamUpdatesAndEndsOnShutdown(t *testing.T) {
	api := &fakeAPI{}
	api.dialer.Store(&pb.DialerStatus{NodeId: "n2", Running: true, Tenants: []*pb.DialerTenantStatus{{Tenant: "acme", Queued: 7, Caps: 5}}})
	h := New(Options{API: api, Interval: 50 * time.Millisecond})
	srv := httptest.NewServer(h)
	defer srv.Close()

	start := time.Now()
	evs := readEvents(t, srv.URL+"/ui/api/stream?view=dialer", 3)
	if len(evs) != 3 {
		t.Fatalf("%d events", len(evs))
	}
	if time.Since(start) < 100*time.Millisecond {
		t.Fatalf("3 events in %s: faster than the interval", time.Since(start))
	}
	for _, want := range []string{`"applied_index":"42"`, `"last_contact_ms":"12"`, `"queued":7`, `"acme":[{"t":`, `"why":{"acme":"waiting: no ports`} {
		if !strings.Contains(evs[2], want) {
			t.Fatalf("event lacks %s: %s", want, evs[2])
		}
	}
	// A failing part is reported, the rest still sent.
	api.dialer.Store(nil)
	if evs := readEvents(t, srv.URL+"/ui/api/stream?view=dialer", 1); len(evs) != 1 || !strings.Contains(evs[0], `"errors":{"dialer":"Unavailable: no leader"}`) || !strings.Contains(evs[0], `"node":`) {
		t.Fatalf("event with a failing part: %v", evs)
	}

	// A graceful shutdown ends open streams instead of waiting for them.
	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/ui/api/stream?view=cluster", nil)
	req.Header.Set(apiHeader, "1")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Config.Shutdown(ctx); err != nil {
		t.Fatalf("shutdown with a console stream open: %v", err)
	}
}

func TestStaticAndRefusals(t *testing.T) {
	srv := httptest.NewServer(New(Options{API: &fakeAPI{}}))
	defer srv.Close()
	for path, want := range map[string]int{"/ui/": 200, "/ui/app.js": 200, "/ui/app.css": 200, "/ui/nope.js": 404, "/ui/assets/app.js": 404} {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("%s: %d, want %d", path, resp.StatusCode, want)
		}
		if resp.Header.Get("X-Frame-Options") != "DENY" || resp.Header.Get("Cache-Control") != "no-store" || !strings.Contains(resp.Header.Get("Content-Security-Policy"), "default-src 'none'") {
			t.Errorf("%s: headers %v", path, resp.Header)
		}
	}
	// Without the console header the API refuses; a bad view is named.
	resp, err := http.Get(srv.URL + "/ui/api/whoami")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("whoami without the header: %d", resp.StatusCode)
	}
	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/ui/api/stream?view=bogus", nil)
	req.Header.Set(apiHeader, "1")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("bad view: %d", resp.StatusCode)
	}
	// The polling fallback answers one update.
	req, _ = http.NewRequest(http.MethodGet, srv.URL+"/ui/api/snapshot?view=cluster", nil)
	req.Header.Set(apiHeader, "1")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var snap map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&snap); err != nil || resp.StatusCode != 200 || snap["view"] != "cluster" || snap["node"] == nil {
		t.Fatalf("snapshot: %d %v %v", resp.StatusCode, snap, err)
	}
}
