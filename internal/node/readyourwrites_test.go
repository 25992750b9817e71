package node_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	pb "github.com/seed-7bfc04c2/dialtone/api/dialtonev1"
)

// TestReadYourWritesOnTheFollowerThatTookTheWrite writes through a follower
// on every write path (REST, gRPC, SSG, Cisco) and reads the same resource
// on the same follower at once, with the default (local) consistency and no
// min_index: 100 times per path, never stale.
func TestReadYourWritesOnTheFollowerThatTookTheWrite(t *testing.T) {
	tc := newTestCluster(t, 3, nil)
	f := tc.follower()
	base := "http://" + tc.Node(f).HTTPAddr()
	const rounds = 100

	t.Run("REST entitlement", func(t *testing.T) {
		for i := range rounds {
			ports := 1000 + i
			if code, body := httpDo(t, "PUT", base+"/v1/port-usage/entitlements/acme", "application/json", fmt.Appendf(nil, `{"licensed_ports":%d}`, ports)); code != 200 {
				t.Fatalf("round %d: put: %d %s", i, code, body)
			}
			code, body := httpDo(t, "GET", base+"/v1/port-usage/entitlements", "", nil)
			if code != 200 || !strings.Contains(body, fmt.Sprintf(`"licensed_ports":%d`, ports)) {
				t.Fatalf("round %d: stale read on %s: %d %s", i, f, code, body)
			}
		}
	})
	t.Run("REST pacing", func(t *testing.T) {
		for i := range rounds {
			caps := 10 + i
			if code, body := httpDo(t, "PUT", base+"/v1/pacing/acme", "application/json", fmt.Appendf(nil, `{"caps":%d}`, caps)); code != 200 {
				t.Fatalf("round %d: put: %d %s", i, code, body)
			}
			code, body := httpDo(t, "GET", base+"/v1/pacing/acme", "", nil)
			if got := decode[restGetPacing](t, body); code != 200 || got.Pacing.Settings.Caps != float64(caps) {
				t.Fatalf("round %d: stale read on %s: %d %s", i, f, code, body)
			}
		}
	})
	t.Run("REST create and cancel", func(t *testing.T) {
		for i := range rounds {
			code, body := httpDo(t, "POST", base+"/v1/tenants/acme/requests", "application/json",
				fmt.Appendf(nil, `{"requests":[{"token":"R%d","ivr_profile":"Application","telnum":"9884719189","notification_url":"http://127.0.0.1:9/r","max_attempts":2,"time_to_live":"3600s"}]}`, i))
			created := decode[struct {
				Results []struct {
					ID string `json:"id"`
				} `json:"results"`
			}](t, body)
			if code != 200 || len(created.Results) != 1 {
				t.Fatalf("round %d: create: %d %s", i, code, body)
			}
			id := created.Results[0].ID
			if code, body := httpDo(t, "GET", base+"/v1/tenants/acme/requests/"+id, "", nil); code != 200 {
				t.Fatalf("round %d: created request not readable on %s: %d %s", i, f, code, body)
			}
			if code, body := httpDo(t, "DELETE", base+"/v1/tenants/acme/requests/"+id, "", nil); code != 200 {
				t.Fatalf("round %d: cancel: %d %s", i, code, body)
			}
			code, body = httpDo(t, "GET", base+"/v1/tenants/acme/requests/"+id, "", nil)
			if got := decode[struct{ Request restRequest }](t, body); code != 200 || got.Request.Result != "CANCELLED" {
				t.Fatalf("round %d: cancel not visible on %s: %d %s", i, f, code, body)
			}
		}
	})
	t.Run("gRPC create", func(t *testing.T) {
		cl := tc.requests(f)
		for i := range rounds {
			resp, err := cl.CreateRequests(ctxT(t, 10*time.Second), &pb.CreateRequestsRequest{Tenant: "acme", Requests: []*pb.RequestSpec{spec(fmt.Sprintf("G%d", i))}})
			if err != nil {
				t.Fatalf("round %d: %v", i, err)
			}
			got, err := cl.GetRequest(ctxT(t, 10*time.Second), &pb.GetRequestRequest{Tenant: "acme", Id: resp.Results[0].Id})
			if err != nil || got.Meta.AppliedIndex < resp.Index {
				t.Fatalf("round %d: stale read on %s: %v %v", i, f, err, got.GetMeta())
			}
		}
	})
	t.Run("SSG create", func(t *testing.T) {
		url := base + "/SSG?TenantName=acme"
		for i := range rounds {
			code, _, elems, raw := ssgDo(t, "POST", url, "text/xml", ssgDoc(ssgCreate(fmt.Sprintf("S%d", i))), false)
			if code != 200 || len(elems) != 1 || elems[0]["ResponseType"] != "SUCCESS" {
				t.Fatalf("round %d: create: %d %s", i, code, raw)
			}
			code, _, elems, raw = ssgDo(t, "GET", url+"&RequestID="+elems[0]["RequestID"], "", "", false)
			if code != 200 || len(elems) != 1 || elems[0]["ResponseType"] != "SUCCESS" {
				t.Fatalf("round %d: stale read on %s: %d %s", i, f, code, raw)
			}
		}
	})
	t.Run("Cisco licensePurchased", func(t *testing.T) {
		for i := range rounds {
			ports := 2000 + i
			if code, body := httpDo(t, "POST", base+"/cache-service/api/v1/licensePurchased", "application/json", fmt.Appendf(nil, `{"tenant":"globex","entitledSelfServicePorts":%d}`, ports)); code != 200 {
				t.Fatalf("round %d: post: %d %s", i, code, body)
			}
			code, body := httpDo(t, "GET", base+"/cache-service/api/v1/licensePurchased", "", nil)
			if code != 200 || !strings.Contains(body, fmt.Sprintf(`{"tenant":"globex","entitledSelfServicePorts":%d}`, ports)) {
				t.Fatalf("round %d: stale read on %s: %d %s", i, f, code, body)
			}
		}
	})
}
