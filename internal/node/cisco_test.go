package node_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/seed-7bfc04c2/dialtone/internal/config"
)

type ciscoPurchased struct {
	Total   uint32 `json:"totalEntitledSelfServicePorts"`
	Tenants []struct {
		Tenant string `json:"tenant"`
		Ports  uint32 `json:"entitledSelfServicePorts"`
	} `json:"tenants"`
}

// checkHTTPErrorBody asserts the error contract of the Cisco and plain HTTP
// paths: {"code": <the response's HTTP status>, "message": "..."}.
func checkHTTPErrorBody(t *testing.T, what string, code int, body, wantMsg string) {
	t.Helper()
	var e struct {
		Code    *int   `json:"code"`
		Message string `json:"message"`
	}
	if err := json.Unmarshal([]byte(body), &e); err != nil || e.Code == nil || *e.Code != code || e.Message == "" || !strings.Contains(e.Message, wantMsg) {
		t.Errorf("%s: status %d, body %s: want {\"code\": %d, \"message\": \"...%s...\"}", what, code, body, code, wantMsg)
	}
}

// TestCiscoLicensePurchasedNames: the POST takes the figure under the name
// the GETs return (totalEntitledSelfServicePorts) or the per-tenant name,
// defaults the tenant in a single-tenant deployment, stores 0, and answers
// errors as {"code": <HTTP status>, "message"}.
func TestCiscoLicensePurchasedNames(t *testing.T) {
	tc := newTestCluster(t, 3, func(c *config.Config) { c.PortUsage.DefaultTenant = "acme" })
	base := "http://" + tc.Node(tc.follower()).HTTPAddr() + "/cache-service/api/v1/"
	get := func() ciscoPurchased {
		t.Helper()
		code, body := httpDo(t, "GET", base+"licensePurchased", "", nil)
		if code != 200 {
			t.Fatalf("get: %d %s", code, body)
		}
		return decode[ciscoPurchased](t, body)
	}
	post := func(body string) (int, string) {
		return httpDo(t, "POST", base+"licensePurchased", "application/json", []byte(body))
	}

	// The GET's name, no tenant: the default tenant.
	if code, body := post(`{"totalEntitledSelfServicePorts":12}`); code != 200 || body != `{"tenant":"acme","entitledSelfServicePorts":12}`+"\n" {
		t.Fatalf("total name: %d %s", code, body)
	}
	if got := get(); got.Total != 12 || len(got.Tenants) != 1 || got.Tenants[0].Tenant != "acme" || got.Tenants[0].Ports != 12 {
		t.Fatalf("after total name: %+v", got)
	}
	code, body := httpDo(t, "GET", base+"licenseUsage", "", nil)
	if code != 200 || !strings.Contains(body, `"totalEntitledSelfServicePorts":12`) {
		t.Fatalf("licenseUsage: %d %s", code, body)
	}
	// The per-tenant name, both names agreeing, another tenant.
	if code, body := post(`{"tenant":"globex","entitledSelfServicePorts":5,"totalEntitledSelfServicePorts":5}`); code != 200 {
		t.Fatalf("both names: %d %s", code, body)
	}
	// 0: a customer with no purchased self-service ports.
	if code, body := post(`{"tenant":"acme","entitledSelfServicePorts":0}`); code != 200 || !strings.Contains(body, `"entitledSelfServicePorts":0`) {
		t.Fatalf("zero: %d %s", code, body)
	}
	got := get()
	if got.Total != 5 || len(got.Tenants) != 2 || got.Tenants[0].Tenant != "acme" || got.Tenants[0].Ports != 0 || got.Tenants[1].Ports != 5 {
		t.Fatalf("after zero: %+v", got)
	}

	for _, c := range []struct {
		name, ct, body string
		code           int
		msg            string
	}{
		{"names disagree", "application/json", `{"tenant":"acme","entitledSelfServicePorts":1,"totalEntitledSelfServicePorts":2}`, 400, "disagree"},
		{"no figure", "application/json", `{"tenant":"acme"}`, 400, "entitledSelfServicePorts: is required"},
		{"unknown field", "application/json", `{"tenant":"acme","ports":1}`, 400, `unknown field "ports"`},
		{"negative", "application/json", `{"tenant":"acme","entitledSelfServicePorts":-1}`, 400, "entitledSelfServicePorts"},
		{"too many ports", "application/json", `{"tenant":"acme","entitledSelfServicePorts":1000001}`, 400, "licensed_ports"},
		{"bad tenant", "application/json", `{"tenant":"a b","entitledSelfServicePorts":1}`, 400, "tenant"},
		{"empty body", "application/json", ``, 400, "empty"},
		{"trailing data", "application/json", `{"tenant":"acme","entitledSelfServicePorts":9}garbage`, 400, "unexpected data after the JSON value at byte 46"},
		{"text/plain", "text/plain", `{"tenant":"acme","entitledSelfServicePorts":9}`, 415, "application/json"},
		{"too large", "application/json", `{"tenant":"acme","entitledSelfServicePorts":9}` + strings.Repeat(" ", 70<<10), 413, "exceeds the limit of 65536 bytes"},
	} {
		code, body := httpDo(t, "POST", base+"licensePurchased", c.ct, []byte(c.body))
		if code != c.code {
			t.Errorf("%s: %d %s, want %d", c.name, code, body, c.code)
			continue
		}
		checkHTTPErrorBody(t, c.name, code, body, c.msg)
	}
	code, body = httpDo(t, "GET", base+"licenseUsage?ipAddress=10.9.9.9", "", nil)
	checkHTTPErrorBody(t, "unknown ipAddress", code, body, "no VXML server")
	if got := get(); got.Total != 5 || got.Tenants[0].Ports != 0 {
		t.Fatalf("a refused POST changed the entitlements: %+v", got)
	}
}

// TestCiscoNeedsTenantWithoutDefault: with no default tenant a POST without
// a tenant is refused (an all-tenant principal cannot be guessed for).
func TestCiscoNeedsTenantWithoutDefault(t *testing.T) {
	tc := newTestCluster(t, 1, nil)
	code, body := httpDo(t, "POST", "http://"+tc.Node("n1").HTTPAddr()+"/cache-service/api/v1/licensePurchased", "application/json", []byte(`{"entitledSelfServicePorts":3}`))
	if code != 400 {
		t.Fatalf("%d %s", code, body)
	}
	checkHTTPErrorBody(t, "no tenant", code, body, "tenant: is required")
}

// TestErrorBodiesCarryHTTPStatus: 401, 403 and 413 on the Cisco paths and
// /metrics carry the HTTP status in "code" (not gRPC's 16, 7, 8); /SSG
// answers them as an SSGResponse whose ReasonCode is the HTTP status.
func TestErrorBodiesCarryHTTPStatus(t *testing.T) {
	tc := basicAuthCluster(t, 1)
	base := "http://" + tc.Node("n1").HTTPAddr()
	purchased := base + "/cache-service/api/v1/licensePurchased"
	body := []byte(`{"tenant":"acme","entitledSelfServicePorts":1}`)

	code, resp := httpDoHeaders(t, "POST", purchased, map[string]string{"Content-Type": "application/json"}, body)
	if code != 401 {
		t.Fatalf("no credentials: %d %s", code, resp)
	}
	checkHTTPErrorBody(t, "cisco 401", code, resp, "missing credentials")
	code, resp = httpDoHeaders(t, "POST", purchased, map[string]string{"Content-Type": "application/json", "Authorization": basic("viewer", "view-pw")}, body)
	if code != 403 {
		t.Fatalf("viewer: %d %s", code, resp)
	}
	checkHTTPErrorBody(t, "cisco 403", code, resp, "lacks the admin role")
	code, resp = httpDoHeaders(t, "POST", purchased, map[string]string{"Content-Type": "application/json", "Authorization": basic("ops", "ops-pw")}, append(body, make([]byte, 9<<20)...))
	if code != 413 {
		t.Fatalf("oversized: %d %.200s", code, resp)
	}
	checkHTTPErrorBody(t, "cisco 413", code, resp, "exceeds the limit")
	code, resp = httpDo(t, "GET", base+"/metrics", "", nil)
	checkHTTPErrorBody(t, "metrics 401", code, resp, "missing credentials")

	code, _, elems, raw := ssgDo(t, "POST", base+"/SSG?TenantName=acme", "text/xml", ssgDoc(ssgCreate("T")), false)
	if code != 401 {
		t.Fatalf("ssg 401: %d %s", code, raw)
	}
	ssgCheck(t, elems, "ResponseType=FAILURE|ReasonCode=401|Reason=*missing credentials*")
}
