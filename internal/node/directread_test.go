package node_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"reflect"
	"regexp"
	"testing"
	"time"

	pb "github.com/seed-7bfc04c2/dialtone/api/dialtonev1"
	"github.com/seed-7bfc04c2/dialtone/internal/server"
	"github.com/seed-7bfc04c2/dialtone/test/cluster"
)

// TestDirectReadsMatchTheGateway checks the in-process routes of GET
// /v1/port-usage and GET /v1/tenants/{tenant}/requests/{id} against the
// loopback gateway every other REST call goes through (the only path
// before): for answers, authentication and authorisation failures and
// parse errors, the status, Content-Type and body are the same, byte for
// byte where the answer does not depend on the moment of the call and
// field for field where it does (ttl_remaining, meta.last_contact_ms).
// The gateway adds Grpc-Metadata-* headers from the loopback call; their
// absence shows the node's answer did not take that path.
func TestDirectReadsMatchTheGateway(t *testing.T) {
	tc := basicAuthCluster(t, 1)
	id := tc.leader()
	resp, err := tc.requests(id).CreateRequests(withAuth(t, basic("crm", "crm-pw")), &pb.CreateRequestsRequest{Tenant: "acme", Requests: []*pb.RequestSpec{spec("D1")}})
	if err != nil || !resp.Results[0].Ok {
		t.Fatalf("create: %v %v", resp, err)
	}
	reqID := resp.Results[0].Id

	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	gw, err := server.NewHTTPHandler(ctx, tc.conn(id), server.HTTPOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ref := httptest.NewServer(gw)
	t.Cleanup(ref.Close)
	direct := tc.httpBase(id)

	ops, crm, viewer := basic("ops", "ops-pw"), basic("crm", "crm-pw"), basic("viewer", "view-pw")
	for _, c := range []struct {
		name, path, auth string
		code             int
		exact            bool // else compared byte for byte with the time-dependent values masked
		viaGateway       bool // a route the node leaves to the loopback gateway
		hdr              map[string]string
	}{
		{"usage, all tenants", "/v1/port-usage", ops, 200, true, false, nil},
		{"usage, tenant-scoped", "/v1/port-usage", crm, 200, true, false, nil},
		{"usage, no credentials", "/v1/port-usage", "", 401, true, false, nil},
		{"usage, wrong password", "/v1/port-usage", basic("ops", "nope"), 401, true, false, nil},
		{"usage, unknown query (ignored)", "/v1/port-usage?nosuch=1", ops, 200, true, false, nil},
		{"request", "/v1/tenants/acme/requests/" + reqID, crm, 200, false, false, nil},
		{"request, linearizable", "/v1/tenants/acme/requests/" + reqID + "?consistency=linearizable", viewer, 200, false, false, nil},
		{"request, min_index", "/v1/tenants/acme/requests/" + reqID + "?min_index=1", viewer, 200, false, false, nil},
		{"request, other tenant", "/v1/tenants/globex/requests/" + reqID, crm, 403, true, false, nil},
		{"request, not found", "/v1/tenants/acme/requests/00000000-0000-0000-0000-000000000000", crm, 404, true, false, nil},
		{"request, bad id", "/v1/tenants/acme/requests/not%20an%20id", crm, 400, true, false, nil},
		{"request, bad consistency", "/v1/tenants/acme/requests/" + reqID + "?consistency=bogus", crm, 400, true, false, nil},
		{"request, unknown query (ignored)", "/v1/tenants/acme/requests/" + reqID + "?nosuch=1", crm, 200, false, false, nil},
		{"request, bad min_index", "/v1/tenants/acme/requests/" + reqID + "?min_index=x", crm, 400, true, false, nil},
		{"request, no credentials", "/v1/tenants/acme/requests/" + reqID, "", 401, true, false, nil},
		{"custom verb", "/v1/tenants/acme/requests/" + reqID + ":cancel", crm, 0, true, true, nil},
		// The forms the node's fast path leaves to the in-process gateway
		// mux (see server.plainRead), and answers it writes itself.
		{"usage, bearer scheme", "/v1/port-usage", "Bearer abc", 401, true, false, nil},
		{"usage, empty query", "/v1/port-usage?", ops, 200, true, false, nil},
		{"usage, TE trailers", "/v1/port-usage", ops, 200, true, false, map[string]string{"TE": "trailers"}},
		{"usage, Grpc-Timeout", "/v1/port-usage", ops, 200, true, false, map[string]string{"Grpc-Timeout": "5S"}},
		{"usage, bad Grpc-Timeout", "/v1/port-usage", ops, 400, true, false, map[string]string{"Grpc-Timeout": "soon"}},
		{"request, escaped tenant", "/v1/tenants/%61cme/requests/" + reqID, crm, 200, false, false, nil},
		{"request, escaped slash", "/v1/tenants/ac%2Fme/requests/" + reqID, ops, 0, true, false, nil},
		{"request, viewer", "/v1/tenants/acme/requests/" + reqID, viewer, 200, false, false, nil},
		{"request, viewer, other tenant", "/v1/tenants/globex/requests/" + reqID, viewer, 403, true, false, nil},
		{"request, bad tenant", "/v1/tenants/-/requests/" + reqID, ops, 400, true, false, nil},
		{"request, TE trailers", "/v1/tenants/acme/requests/" + reqID, crm, 200, false, false, map[string]string{"TE": "trailers"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			gotCode, gotHdr, got := getWithHeaders(t, direct+c.path, c.auth, c.hdr)
			wantCode, wantHdr, want := getWithHeaders(t, ref.URL+c.path, c.auth, c.hdr)
			if gotCode != wantCode || (c.code != 0 && gotCode != c.code) {
				t.Fatalf("status %d, gateway %d, want %d; body %s", gotCode, wantCode, c.code, got)
			}
			if gotHdr.Get("Content-Type") != wantHdr.Get("Content-Type") {
				t.Errorf("Content-Type %q, gateway %q", gotHdr.Get("Content-Type"), wantHdr.Get("Content-Type"))
			}
			if gotHdr.Get("Www-Authenticate") != wantHdr.Get("Www-Authenticate") {
				t.Errorf("WWW-Authenticate %q, gateway %q", gotHdr.Get("Www-Authenticate"), wantHdr.Get("Www-Authenticate"))
			}
			if c.code == 200 {
				if wantHdr.Get("Grpc-Metadata-Content-Type") == "" {
					t.Errorf("the reference answer did not come through the loopback gateway")
				}
				if v := gotHdr.Get("Grpc-Metadata-Content-Type"); v != "" && !c.viaGateway {
					t.Errorf("the node's answer came through the loopback gateway (Grpc-Metadata-Content-Type %q)", v)
				}
			}
			if c.exact {
				if got != want {
					t.Fatalf("body differs:\n node    %s\n gateway %s", got, want)
				}
				return
			}
			g, w := timeless(t, got), timeless(t, want)
			if !reflect.DeepEqual(g, w) {
				t.Fatalf("fields differ:\n node    %v\n gateway %v", g, w)
			}
			if g, w := maskTimes(got), maskTimes(want); g != w {
				t.Fatalf("bytes differ (times masked):\n node    %s\n gateway %s", g, w)
			}
		})
	}
}

func getWithHeaders(t *testing.T, url, authz string, hdr map[string]string) (int, http.Header, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if authz != "" {
		req.Header.Set("Authorization", authz)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, string(b)
}

// timeValues are the values of the fields that change from one call to the
// next, as the JSON answer writes them.
var timeValues = regexp.MustCompile(`"(ttl_remaining|last_contact_ms)":"[^"]*"`)

// maskTimes replaces the time-dependent values in a JSON answer, leaving
// every other byte (field order, spacing, escaping) to compare.
func maskTimes(body string) string {
	return timeValues.ReplaceAllString(body, `"$1":"x"`)
}

// timeless parses a GetRequest answer and blanks the fields that change
// from one call to the next.
func timeless(t *testing.T, body string) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(body), &m); err != nil {
		t.Fatalf("%v: %s", err, body)
	}
	if r, ok := m["request"].(map[string]any); ok {
		if _, ok := r["ttl_remaining"]; !ok {
			t.Fatalf("no ttl_remaining in %s", body)
		}
		r["ttl_remaining"] = "x"
	}
	if meta, ok := m["meta"].(map[string]any); ok {
		meta["last_contact_ms"] = "x"
	}
	return m
}

// BenchmarkHotReads compares the two hot reads served by a node (the
// in-process route) with the same reads through the loopback gateway (the
// route before), both over real HTTP on 127.0.0.1 with one keep-alive
// client, auth off (and the same with 4 × GOMAXPROCS concurrent clients,
// "-parallel"). ns/op is the round trip with client and server in this
// process (the parallel runs: wall time ÷ calls); allocs/op counts both
// sides.
//
//	go test -run '^$' -bench BenchmarkHotReads -benchmem -count 3 ./internal/node/
func BenchmarkHotReads(b *testing.B) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	c, err := cluster.StartInProcess(ctx, cluster.InProcessOptions{
		Options: cluster.Options{Nodes: 1, Dir: b.TempDir(), Edit: fastRaft},
		Logger:  slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	id := c.Running()[0]
	conn, err := c.Conn(id)
	if err != nil {
		b.Fatal(err)
	}
	var reqID string
	for ctx.Err() == nil {
		resp, err := pb.NewRequestServiceClient(conn).CreateRequests(ctx, &pb.CreateRequestsRequest{Tenant: "acme", Requests: []*pb.RequestSpec{spec("B1")}})
		if err == nil && resp.Results[0].Ok {
			reqID = resp.Results[0].Id
			break
		}
		time.Sleep(50 * time.Millisecond) // no leader yet
	}
	gw, err := server.NewHTTPHandler(ctx, conn, server.HTTPOptions{})
	if err != nil {
		b.Fatal(err)
	}
	ref := httptest.NewServer(gw)
	defer ref.Close()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16}}
	for _, route := range []struct{ name, base string }{{"node", "http://" + c.Node(id).HTTPAddr()}, {"loopback-gateway", ref.URL}} {
		for _, read := range []struct{ name, path string }{{"port-usage", "/v1/port-usage"}, {"request", "/v1/tenants/acme/requests/" + reqID}} {
			get := func(b *testing.B, url string) {
				resp, err := client.Get(url)
				if err != nil {
					b.Fatal(err)
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				_ = resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					b.Fatalf("%s: %s", url, resp.Status)
				}
			}
			b.Run(read.name+"/"+route.name, func(b *testing.B) {
				url := route.base + read.path
				b.ReportAllocs()
				for b.Loop() {
					get(b, url)
				}
			})
			// 4 × GOMAXPROCS clients at once: ns/op is the inverse of the
			// throughput, CPU-bound where the serial one waits on wake-ups.
			b.Run(read.name+"/"+route.name+"-parallel", func(b *testing.B) {
				url := route.base + read.path
				b.ReportAllocs()
				b.SetParallelism(4)
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						get(b, url)
					}
				})
			})
		}
	}
}
