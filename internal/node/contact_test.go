package node_test

import (
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	pb "github.com/seed-7bfc04c2/dialtone/api/dialtonev1"
	"github.com/seed-7bfc04c2/dialtone/internal/sim/mediasim"
)

type restCallingWindow struct {
	NodeID        string `json:"node_id"`
	Stored        bool   `json:"stored"`
	EffectiveFrom string `json:"effective_from"`
	Window        struct {
		Weekly []struct {
			Days, Open, Close string
		} `json:"weekly"`
		Exceptions []struct {
			Date, Open, Close string
		} `json:"exceptions"`
		UnknownZone string `json:"unknown_zone"`
	} `json:"window"`
}

type restDialerStatus struct {
	Tenants []struct {
		Tenant  string            `json:"tenant"`
		Queued  int               `json:"queued"`
		Waiting map[string]uint32 `json:"waiting"`
	} `json:"tenants"`
}

func (tc *testCluster) httpBase(id string) string {
	return "http://" + tc.Node(id).HTTPAddr()
}

// TestCallingWindowsAndWaitingReasons drives calling windows and the
// waiting reasons through the public API of a 3-node cluster: a window
// set over REST on a follower replicates; a request outside its window
// waits (GET shows why and until when, the dialer status counts it) while
// one in its profile's window is dialled; a tenant without ports shows
// no_ports instead of "0 queued".
func TestCallingWindowsAndWaitingReasons(t *testing.T) {
	tc, plat := dialerCluster(t, 1, 10, map[string]int{mediasim.Success: 100}, mediasim.Range{Min: 10 * time.Millisecond, Max: 20 * time.Millisecond}, mediasim.Range{Min: 10 * time.Millisecond, Max: 20 * time.Millisecond})
	recv := &notifications{}
	srv := httptest.NewServer(recv)
	defer srv.Close()
	f1 := tc.follower()
	f2 := tc.otherFollower(f1)

	// Bad input names the field.
	for body, field := range map[string]string{
		`{"preset":"nightly"}`: "window.preset",
		`{"weekly":[{"days":"mon","open":"9:00","close":"17:00"}]}`:                     "window.weekly[0].open",
		`{"weekly":[{"days":"someday","open":"09:00","close":"17:00"}]}`:                "window.weekly[0].days",
		`{"weekly":[{"days":"mon","open":"17:00","close":"09:00"}]}`:                    "window.weekly[0].close",
		`{"preset":"us-tcpa","exceptions":[{"date":"2026-02-30"}]}`:                     "window",
		`{"preset":"us-tcpa","unknown_zone":"default_zone","default_zone":"Mars/Base"}`: "window",
		`{}`: "window.weekly",
	} {
		code, resp := httpDo(t, "PUT", tc.httpBase(f1)+"/v1/calling-windows/acme", "application/json", []byte(body))
		if code != 400 || !strings.Contains(resp, field) {
			t.Errorf("PUT %s: %d %s (want 400 naming %s)", body, code, resp, field)
		}
	}

	// acme's window opens at the next full hour but one, UTC (1-2 h away).
	opening := time.Now().UTC().Truncate(time.Hour).Add(2 * time.Hour)
	closing := fmt.Sprintf("%02d:00", opening.Hour()+1)
	body := fmt.Sprintf(`{"weekly":[{"days":"daily","open":"%02d:00","close":"%s"}],"exceptions":[{"date":"2026-12-25"}]}`, opening.Hour(), closing)
	if code, resp := httpDo(t, "PUT", tc.httpBase(f1)+"/v1/calling-windows/acme", "application/json", []byte(body)); code != 200 {
		t.Fatalf("PUT window: %d %s", code, resp)
	}
	if code, resp := httpDo(t, "PUT", tc.httpBase(f2)+"/v1/calling-windows/acme?ivr_profile=always", "application/json",
		[]byte(`{"weekly":[{"days":"daily","open":"00:00","close":"24:00"}]}`)); code != 200 {
		t.Fatalf("PUT profile window: %d %s", code, resp)
	}
	for _, id := range tc.ids() {
		eventually(t, 10*time.Second, "window on "+id, func() error {
			code, resp := httpDo(t, "GET", tc.httpBase(id)+"/v1/calling-windows/acme?ivr_profile=Application", "", nil)
			w := decode[restCallingWindow](t, resp)
			if code != 200 || w.Stored || w.EffectiveFrom != "tenant" {
				return fmt.Errorf("%d %s", code, resp)
			}
			code, resp = httpDo(t, "GET", tc.httpBase(id)+"/v1/calling-windows/acme", "", nil)
			w = decode[restCallingWindow](t, resp)
			if code != 200 || !w.Stored || len(w.Window.Weekly) != 7 || w.Window.Weekly[0].Days != "sun" || w.Window.Weekly[0].Close != closing ||
				len(w.Window.Exceptions) != 1 || w.Window.UnknownZone != "skip" {
				return fmt.Errorf("%d %s", code, resp)
			}
			return nil
		})
	}

	create := func(tenant, profile, zone string) string {
		s := spec("T")
		s.IvrProfile, s.TimeZone, s.NotificationUrl, s.Telnum, s.TimeToLive = profile, zone, srv.URL+"/result", "+12125550100", "24h"
		resp, err := tc.requests(f1).CreateRequests(ctxT(t, 10*time.Second), &pb.CreateRequestsRequest{Tenant: tenant, Requests: []*pb.RequestSpec{s}})
		if err != nil || !resp.Results[0].Ok {
			t.Fatalf("create: %v %v", resp, err)
		}
		return resp.Results[0].Id
	}
	if _, err := tc.requests(f1).CreateRequests(ctxT(t, 10*time.Second), &pb.CreateRequestsRequest{Tenant: "acme", Requests: []*pb.RequestSpec{
		func() *pb.RequestSpec { s := spec("bad"); s.TimeZone = "Moon/Crater"; return s }()}}); err == nil || !strings.Contains(err.Error(), "time_zone") {
		t.Fatalf("bad time_zone: %v", err)
	}
	later := create("acme", "Application", "UTC")
	now := create("acme", "always", "")
	ghost := create("ghost", "Application", "")
	waitAllNotified(t, tc, recv, []string{now}, 20*time.Second)

	eventually(t, 10*time.Second, "the request outside its window waits, with its reason", func() error {
		code, resp := httpDo(t, "GET", tc.httpBase(f2)+"/v1/tenants/acme/requests/"+later, "", nil)
		if code != 200 || !strings.Contains(resp, `"wait_reason":"outside_window"`) ||
			!strings.Contains(resp, `"next_retry":"`+opening.Format("2006-01-02T15:04:05Z")) || !strings.Contains(resp, "Waiting: outside_window until") {
			return fmt.Errorf("%d %s", code, resp)
		}
		code, resp = httpDo(t, "GET", tc.httpBase(f2)+"/v1/dialer", "", nil)
		st := decode[restDialerStatus](t, resp)
		got := map[string]map[string]uint32{}
		for _, ts := range st.Tenants {
			got[ts.Tenant] = ts.Waiting
		}
		if code != 200 || got["acme"]["outside_window"] != 1 || got["ghost"]["no_ports"] != 1 {
			return fmt.Errorf("dialer status %d %s", code, resp)
		}
		return nil
	})
	for _, c := range plat.Calls() {
		if c.RequestID == later || c.RequestID == ghost {
			t.Fatalf("dialled %s", c.RequestID)
		}
	}
	if code, resp := httpDo(t, "DELETE", tc.httpBase(f2)+"/v1/calling-windows/acme?ivr_profile=always", "", nil); code != 200 {
		t.Fatalf("delete: %d %s", code, resp)
	}
	if code, _ := httpDo(t, "DELETE", tc.httpBase(f2)+"/v1/calling-windows/acme?ivr_profile=always", "", nil); code != 404 {
		t.Fatalf("second delete: %d", code)
	}
}

// TestSuppressionListsThroughAPI loads a suppression list over the REST
// upload and adds and removes single numbers over REST and gRPC; a
// request for a listed number ends FAILURE Suppressed without a call,
// notified, while the others are dialled.
func TestSuppressionListsThroughAPI(t *testing.T) {
	tc, plat := dialerCluster(t, 1, 10, map[string]int{mediasim.Success: 100}, mediasim.Range{Min: 10 * time.Millisecond, Max: 20 * time.Millisecond}, mediasim.Range{Min: 10 * time.Millisecond, Max: 20 * time.Millisecond})
	recv := &notifications{}
	srv := httptest.NewServer(recv)
	defer srv.Close()
	f1 := tc.follower()
	f2 := tc.otherFollower(f1)

	file := "number,name\n+15550001,Ann\n# opted out by phone\n\n15550002\n\"+15550003\",Bob\n"
	code, resp := httpDo(t, "POST", tc.httpBase(f1)+"/v1/suppressions/acme/upload", "text/csv", []byte(file))
	if code != 200 || !strings.Contains(resp, `"count":"3"`) {
		t.Fatalf("upload: %d %s", code, resp)
	}
	code, resp = httpDo(t, "POST", tc.httpBase(f1)+"/v1/suppressions/acme/upload", "text/csv", []byte("+15550004\nnot-a-number\n"))
	if code != 400 || !strings.Contains(resp, "line 2") {
		t.Fatalf("bad upload: %d %s", code, resp)
	}
	code, resp = httpDo(t, "POST", tc.httpBase(f2)+"/v1/suppressions/acme", "application/json", []byte(`{"numbers":["+15550005"],"expires_in":"720h"}`))
	if code != 200 {
		t.Fatalf("add: %d %s", code, resp)
	}
	dialer := pb.NewDialerServiceClient(tc.conn(f2))
	if _, err := dialer.RemoveSuppressions(ctxT(t, 10*time.Second), &pb.RemoveSuppressionsRequest{Tenant: "acme", Numbers: []string{"+15550002"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := dialer.AddSuppressions(ctxT(t, 10*time.Second), &pb.AddSuppressionsRequest{Tenant: "acme", Numbers: []string{"12x"}}); err == nil || !strings.Contains(err.Error(), "numbers[0]") {
		t.Fatalf("bad number: %v", err)
	}
	for _, id := range tc.ids() {
		eventually(t, 10*time.Second, "list on "+id, func() error {
			for num, want := range map[string]string{"+15550001": `"suppressed":true`, "15550003": `"suppressed":true`, "+15550002": `"size":"3"`, "+15550004": `"size":"3"`} {
				code, resp := httpDo(t, "GET", tc.httpBase(id)+"/v1/suppressions/acme/"+num, "", nil)
				if code != 200 || !strings.Contains(resp, want) {
					return fmt.Errorf("%s: %d %s", num, code, resp)
				}
			}
			code, resp := httpDo(t, "GET", tc.httpBase(id)+"/v1/suppressions/acme/+15550005", "", nil)
			if code != 200 || !strings.Contains(resp, `"expires_unix_ms":"`) {
				return fmt.Errorf("expiring entry: %d %s", code, resp)
			}
			return nil
		})
	}

	var ids []string
	for _, num := range []string{"+15550001", "+15550002", "+15550005"} {
		s := spec("T")
		s.Telnum, s.NotificationUrl = num, srv.URL+"/result"
		r, err := tc.requests(f1).CreateRequests(ctxT(t, 10*time.Second), &pb.CreateRequestsRequest{Tenant: "acme", Requests: []*pb.RequestSpec{s}})
		if err != nil || !r.Results[0].Ok {
			t.Fatalf("create: %v %v", r, err)
		}
		ids = append(ids, r.Results[0].Id)
	}
	waitAllNotified(t, tc, recv, ids, 20*time.Second)
	called := map[string]bool{}
	for _, c := range plat.Calls() {
		called[c.RequestID] = true
	}
	for i, want := range []string{"Suppressed", "", "Suppressed"} {
		q := recv.of(ids[i])[0]
		if want != "" && (q.Get("Result") != "FAILURE" || called[ids[i]]) {
			t.Errorf("%s: notified %v, called %v", ids[i], q, called[ids[i]])
		}
		if want == "" && !called[ids[i]] {
			t.Errorf("%s (removed from the list) was not dialled", ids[i])
		}
	}
	code, resp = httpDo(t, "GET", tc.httpBase(f2)+"/v1/tenants/acme/requests/"+ids[0], "", nil)
	if code != 200 || !strings.Contains(resp, `"result_reason":"Suppressed"`) || strings.Contains(resp, `"attempts_made":`) {
		t.Fatalf("GET suppressed request: %d %s", code, resp)
	}
}

// TestSharedPlatformDialsAnyTenant: a shared media platform (tenant "*",
// as `dialtone dev` runs) serves tenants without servers of their own, so
// the seeds' example tenant Environment is dialled.
func TestSharedPlatformDialsAnyTenant(t *testing.T) {
	tc, plat := dialerClusterFor(t, mediasim.AnyTenant, 1, 10, map[string]int{mediasim.Success: 100}, mediasim.Range{Min: 10 * time.Millisecond, Max: 20 * time.Millisecond}, mediasim.Range{Min: 10 * time.Millisecond, Max: 20 * time.Millisecond})
	recv := &notifications{}
	srv := httptest.NewServer(recv)
	defer srv.Close()
	var ids []string
	for _, tenant := range []string{"Environment", "globex"} {
		s := spec("T")
		s.NotificationUrl = srv.URL + "/result"
		r, err := tc.requests(tc.follower()).CreateRequests(ctxT(t, 10*time.Second), &pb.CreateRequestsRequest{Tenant: tenant, Requests: []*pb.RequestSpec{s}})
		if err != nil || !r.Results[0].Ok {
			t.Fatalf("create: %v %v", r, err)
		}
		ids = append(ids, r.Results[0].Id)
	}
	waitAllNotified(t, tc, recv, ids, 20*time.Second)
	if n := len(plat.Calls()); n != 2 {
		t.Fatalf("%d calls on the shared platform", n)
	}
	for _, id := range ids {
		if q := recv.of(id)[0]; q.Get("Result") != "SUCCESS" {
			t.Errorf("%s: %v", id, q)
		}
	}
}
