package node_test

import (
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	pb "github.com/seed-7bfc04c2/dialtone/api/dialtonev1"
)

// stateFingerprint is what a write through any endpoint could change on
// node id, read from its state machine: requests (count and the seeded
// request's state), entitlements (but the sentinel's), thresholds, pacing.
func (tc *testCluster) stateFingerprint(id, seeded string) string {
	n := tc.Node(id)
	f := n.FSM()
	var parts []string
	parts = append(parts, fmt.Sprintf("count=%d", f.Count()))
	if r, ok := f.Get(seeded); ok {
		parts = append(parts, fmt.Sprintf("seeded=%s/%s", r.GetState(), r.GetResult()))
	}
	for _, e := range f.Entitlements() {
		if e.Tenant != "sentinel" {
			parts = append(parts, "ent="+e.Tenant+fmt.Sprint(e.LicensedPorts))
		}
	}
	var msgs []proto.Message
	for _, th := range f.Thresholds() {
		msgs = append(msgs, th)
	}
	for _, p := range f.Pacings() {
		msgs = append(msgs, p)
	}
	for _, m := range msgs {
		b, _ := protojson.Marshal(m)
		parts = append(parts, string(b))
	}
	sort.Strings(parts)
	return strings.Join(parts, " ")
}

// TestStrictBodiesChangeNothing sends every JSON and XML endpoint a valid
// body spoiled by trailing garbage, a second concatenated document, or 1 MiB
// of whitespace then junk, and valid bodies under a wrong Content-Type: each
// answers 4xx, and no node's state changes (checked on every node after a
// sentinel write that follows them through the log).
func TestStrictBodiesChangeNothing(t *testing.T) {
	tc := newTestCluster(t, 3, nil)
	leader, f := tc.leader(), tc.follower()
	created, err := tc.requests(leader).CreateRequests(ctxT(t, 10*time.Second), &pb.CreateRequestsRequest{Tenant: "acme", Requests: []*pb.RequestSpec{spec("seed")}})
	if err != nil {
		t.Fatal(err)
	}
	seeded := created.Results[0].Id
	putSettings(t, tc.baseURL(leader), 5, 80)

	before := map[string]string{}
	eventually(t, 10*time.Second, "same state everywhere", func() error {
		for _, id := range tc.ids() {
			before[id] = tc.stateFingerprint(id, seeded)
		}
		for _, id := range tc.ids() {
			if before[id] != before[leader] {
				return fmt.Errorf("%s: %s != %s", id, before[id], before[leader])
			}
		}
		return nil
	})

	createBody := `{"requests":[{"token":"T","ivr_profile":"Application","telnum":"9884719189","notification_url":"http://127.0.0.1:9/r","max_attempts":2,"time_to_live":"3600s"}]}`
	type endpoint struct {
		name, method, path, contentType, body string
	}
	endpoints := []endpoint{
		{"create", "POST", "/v1/tenants/acme/requests", "application/json", createBody},
		{"batch cancel", "POST", "/v1/tenants/acme/requests:batchCancel", "application/json", `{"ids":["` + seeded + `"]}`},
		{"batch get", "POST", "/v1/tenants/acme/requests:batchGet", "application/json", `{"ids":["` + seeded + `"]}`},
		{"pacing", "PUT", "/v1/pacing/acme", "application/json", `{"caps":7}`},
		{"entitlement", "PUT", "/v1/port-usage/entitlements/acme", "application/json", `{"licensed_ports":9}`},
		{"threshold", "PUT", "/v1/port-usage/thresholds/acme-high", "application/json", `{"tenant":"acme","metric":"in_use_percent_of_entitlement","direction":"above","value":50,"webhook_url":"http://127.0.0.1:9/hook"}`},
		{"leadership transfer", "POST", "/v1/cluster/leadership:transfer", "application/json", `{}`},
		{"cisco licensePurchased", "POST", "/cache-service/api/v1/licensePurchased", "application/json", `{"tenant":"acme","entitledSelfServicePorts":9}`},
		{"ssg", "POST", "/SSG?TenantName=acme", "text/xml", ssgDoc(ssgCreate("X"), `<CancelRequest RequestID="`+seeded+`"/>`)},
	}
	huge := strings.Repeat(" ", 1<<20) + "x"
	for _, ep := range endpoints {
		type variant struct{ name, contentType, body string }
		variants := []variant{
			{"trailing garbage", ep.contentType, ep.body + "garbage"},
			{"concatenated", ep.contentType, ep.body + ep.body},
			{"huge whitespace then junk", ep.contentType, ep.body + huge},
			{"text/plain", "text/plain", ep.body},
		}
		if ep.contentType == "application/json" {
			variants = append(variants, variant{"form-urlencoded (curl's default)", "application/x-www-form-urlencoded", ep.body})
		} else {
			variants = append(variants, variant{"json content type", "application/json", ep.body})
		}
		for _, v := range variants {
			for _, node := range []string{leader, f} {
				code, resp := httpDo(t, ep.method, "http://"+tc.Node(node).HTTPAddr()+ep.path, v.contentType, []byte(v.body))
				if code < 400 || code >= 500 {
					t.Errorf("%s, %s on %s: %d %.300s", ep.name, v.name, node, code, resp)
				}
			}
		}
	}
	// A sentinel written after every refused request: once each node has
	// applied it, anything a refused request had written would show.
	code, resp := httpDo(t, "PUT", tc.baseURL(f)+"/entitlements/sentinel", "application/json", []byte(`{"licensed_ports":1}`))
	if code != 200 {
		t.Fatalf("sentinel: %d %s", code, resp)
	}
	for _, id := range tc.ids() {
		eventually(t, 10*time.Second, id+" applied the sentinel", func() error {
			if _, ok := tc.Node(id).FSM().Entitlement("sentinel"); !ok {
				return fmt.Errorf("no sentinel yet")
			}
			return nil
		})
		if got := tc.stateFingerprint(id, seeded); got != before[id] {
			t.Errorf("node %s changed:\n before %s\n after  %s", id, before[id], got)
		}
	}
	// Not "the leader is unchanged": an in-process cluster under -race on
	// a loaded machine may hold an election of its own. What must not
	// happen is a refused body reaching the transfer handler.
	for _, id := range tc.ids() {
		if n := scrapeCounter(t, tc.Node(id), "dialtone_rpc_requests_total", map[string]string{"method": pb.ClusterService_TransferLeadership_FullMethodName}); n != 0 {
			t.Errorf("%s: %v leadership transfers reached the handler", id, n)
		}
	}
}
