package node_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	pb "github.com/seed-7bfc04c2/dialtone/api/dialtonev1"
	"github.com/seed-7bfc04c2/dialtone/internal/config"
)

// consoleCluster is a basic-auth cluster with users scoped to tenants acme
// and globex, and an operator of every tenant.
func consoleCluster(t *testing.T) *testCluster {
	t.Helper()
	hash := func(pw string) string {
		h, err := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.MinCost)
		if err != nil {
			t.Fatal(err)
		}
		return string(h)
	}
	return newTestCluster(t, 3, func(c *config.Config) {
		c.Cluster.Secret = "0123456789abcdef-cluster"
		c.Auth.Mode = "basic"
		c.Auth.Users = []config.AuthUser{
			{Name: "alice", PasswordHash: hash("a"), Tenants: []string{"acme"}, Roles: []string{"submit", "read"}},
			{Name: "reader", PasswordHash: hash("r"), Tenants: []string{"acme"}, Roles: []string{"read"}},
			{Name: "bob", PasswordHash: hash("b"), Tenants: []string{"globex"}, Roles: []string{"submit", "read"}},
			{Name: "ops", PasswordHash: hash("o"), Tenants: []string{"*"}, Roles: []string{"admin", "read", "submit"}},
		}
	})
}

func consoleGet(t *testing.T, url, cred string) (int, http.Header, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-Dialtone-Console", "1")
	if cred != "" {
		req.Header.Set("Authorization", cred)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b strings.Builder
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		b.WriteString(sc.Text() + "\n")
	}
	return resp.StatusCode, resp.Header, b.String()
}

// streamEvents reads n events of a console stream.
func streamEvents(t *testing.T, base, view, cred string, n int) []map[string]any {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/ui/api/stream?view="+view, nil)
	req.Header.Set("X-Dialtone-Console", "1")
	req.Header.Set("Authorization", cred)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("stream %s: %d %s", view, resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	var out []map[string]any
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<22)
	for sc.Scan() && len(out) < n {
		line := sc.Text()
		if data, ok := strings.CutPrefix(line, "data: "); ok {
			var m map[string]any
			if err := json.Unmarshal([]byte(data), &m); err != nil {
				t.Fatalf("event %q: %v", data, err)
			}
			m["_raw"] = data
			out = append(out, m)
		}
	}
	if len(out) < n {
		t.Fatalf("stream %s: %d of %d events (%v)", view, len(out), n, sc.Err())
	}
	return out
}

func TestConsoleHeadersAndLogin(t *testing.T) {
	tc := consoleCluster(t)
	base := "http://" + tc.Node(tc.follower()).HTTPAddr()
	for _, path := range []string{"/ui/", "/ui/app.js", "/ui/app.css", "/ui/api/whoami"} {
		code, h, body := consoleGet(t, base+path, basic("alice", "a"))
		if code != 200 {
			t.Fatalf("%s: %d %s", path, code, body)
		}
		for k, want := range map[string]string{"X-Frame-Options": "DENY", "Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"} {
			if got := h.Get(k); got != want {
				t.Errorf("%s: %s = %q, want %q", path, k, got, want)
			}
		}
		if csp := h.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") || !strings.Contains(csp, "frame-ancestors 'none'") || strings.Contains(csp, "unsafe") {
			t.Errorf("%s: CSP %q", path, csp)
		}
	}
	if _, _, body := consoleGet(t, base+"/ui/", ""); !strings.Contains(body, `src="app.js"`) {
		t.Fatalf("page: %s", body)
	}
	// No credential, a wrong one: 401 without a browser challenge.
	for _, cred := range []string{"", basic("alice", "wrong")} {
		code, h, _ := consoleGet(t, base+"/ui/api/whoami", cred)
		if code != 401 || h.Get("WWW-Authenticate") != "" {
			t.Fatalf("whoami with %q: %d, challenge %q", cred, code, h.Get("WWW-Authenticate"))
		}
	}
	// The API refuses calls without its header (no cross-site form posts).
	resp, err := http.Post(base+"/ui/api/cancel?tenant=acme&id=x", "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("cancel without the console header: %d", resp.StatusCode)
	}
	_, _, body := consoleGet(t, base+"/ui/api/whoami", basic("alice", "a"))
	var who struct {
		Name    string   `json:"name"`
		Tenants []string `json:"tenants"`
		Roles   []string `json:"roles"`
	}
	if err := json.Unmarshal([]byte(body), &who); err != nil || who.Name != "alice" || strings.Join(who.Tenants, ",") != "acme" {
		t.Fatalf("whoami: %s %v", body, err)
	}
}

func TestConsoleTenantScoping(t *testing.T) {
	tc := consoleCluster(t)
	leaderConn := pb.NewDialerServiceClient(tc.conn(tc.leader()))
	for _, tenant := range []string{"acme", "globex"} {
		if _, err := leaderConn.SetPacing(withAuth(t, basic("ops", "o")), &pb.SetPacingRequest{Tenant: tenant, Pacing: &pb.Pacing{Caps: 7}}); err != nil {
			t.Fatal(err)
		}
	}
	ids := map[string]string{}
	for user, tenant := range map[string]string{"alice": "acme", "bob": "globex"} {
		s := spec("tok-" + tenant)
		s.Telnum = "15550001111"
		resp, err := tc.requests(tc.leader()).CreateRequests(withAuth(t, basic(user, user[:1])), &pb.CreateRequestsRequest{Tenant: tenant, Requests: []*pb.RequestSpec{s}})
		if err != nil || !resp.Results[0].Ok {
			t.Fatalf("create %s: %v %v", tenant, resp, err)
		}
		ids[tenant] = resp.Results[0].Id
	}
	base := "http://" + tc.Node(tc.follower()).HTTPAddr()

	// The operator sees both tenants: the scoping below is not vacuous.
	var opsSettings string
	eventually(t, 5*time.Second, "both pacing entries on the follower", func() error {
		opsSettings = streamEvents(t, base, "settings", basic("ops", "o"), 1)[0]["_raw"].(string)
		if !strings.Contains(opsSettings, `"acme"`) || !strings.Contains(opsSettings, `"globex"`) {
			return errString("settings: " + opsSettings)
		}
		return nil
	})
	for _, view := range []string{"cluster", "dialer", "ports", "settings"} {
		for _, ev := range streamEvents(t, base, view, basic("alice", "a"), 2) {
			raw := ev["_raw"].(string)
			if strings.Contains(raw, "globex") || strings.Contains(raw, ids["globex"]) {
				t.Fatalf("alice's %s stream shows tenant globex: %s", view, raw)
			}
			if view == "settings" && !strings.Contains(raw, `"acme"`) {
				t.Fatalf("alice's settings stream lacks her own tenant: %s", raw)
			}
			if node, _ := ev["node"].(map[string]any); node["state"] != "Follower" || node["applied_index"] == nil {
				t.Fatalf("%s: node freshness %v", view, ev["node"])
			}
		}
	}
	// Requests: her own found by token and number; the other tenant refused.
	for _, q := range []string{"tok-acme", "1555-000-1111", ids["acme"]} {
		code, _, body := consoleGet(t, base+"/ui/api/requests?tenant=acme&q="+q, basic("alice", "a"))
		if code != 200 || !strings.Contains(body, ids["acme"]) {
			t.Fatalf("find %q: %d %s", q, code, body)
		}
	}
	for _, path := range []string{"/ui/api/requests?tenant=globex&q=tok-globex", "/ui/api/request?tenant=globex&id=" + ids["globex"]} {
		if code, _, body := consoleGet(t, base+path, basic("alice", "a")); code != http.StatusForbidden || strings.Contains(body, ids["globex"]) {
			t.Fatalf("alice %s: %d %s", path, code, body)
		}
	}

	// Cancel: refused to the read-only user, done for the submitter.
	post := func(cred string) (int, string) {
		req, _ := http.NewRequest(http.MethodPost, base+"/ui/api/cancel?tenant=acme&id="+ids["acme"], nil)
		req.Header.Set("X-Dialtone-Console", "1")
		req.Header.Set("Authorization", cred)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var b strings.Builder
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			b.WriteString(sc.Text())
		}
		return resp.StatusCode, b.String()
	}
	if code, body := post(basic("reader", "r")); code != http.StatusForbidden {
		t.Fatalf("reader cancel: %d %s", code, body)
	}
	if code, body := post(basic("alice", "a")); code != 200 || !strings.Contains(body, `"ok":true`) {
		t.Fatalf("alice cancel: %d %s", code, body)
	}
	// Pacing: admin only.
	put := func(cred string) int {
		req, _ := http.NewRequest(http.MethodPut, base+"/ui/api/pacing?tenant=acme", strings.NewReader(`{"caps": 9}`))
		req.Header.Set("X-Dialtone-Console", "1")
		req.Header.Set("Authorization", cred)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := put(basic("alice", "a")); code != http.StatusForbidden {
		t.Fatalf("alice set pacing: %d", code)
	}
	if code := put(basic("ops", "o")); code != 200 {
		t.Fatalf("ops set pacing: %d", code)
	}
}

type errString string

func (e errString) Error() string { return string(e) }

// TestConsoleOverTLS opens the console and its stream over HTTPS on a
// follower: the page and the updates, read through the node's own gRPC
// server over TLS.
func TestConsoleOverTLS(t *testing.T) {
	cert, key := selfSigned(t)
	tc := newTestCluster(t, 3, func(c *config.Config) {
		c.TLS = config.TLS{CertFile: cert, KeyFile: key, CAFile: cert}
	})
	pool := x509.NewCertPool()
	pemBytes, _ := os.ReadFile(cert)
	pool.AppendCertsFromPEM(pemBytes)
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	base := "https://" + tc.Node(tc.follower()).HTTPAddr()
	resp, err := client.Get(base + "/ui/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("X-Frame-Options") != "DENY" {
		t.Fatalf("page over TLS: %d %v", resp.StatusCode, resp.Header)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/ui/api/stream?view=cluster", nil)
	req.Header.Set("X-Dialtone-Console", "1")
	resp, err = client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<22)
	for sc.Scan() {
		if data, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
			if !strings.Contains(data, `"state":"Follower"`) || !strings.Contains(data, `"members":{"members":[`) || strings.Contains(data, `"errors"`) {
				t.Fatalf("update over TLS: %s", data)
			}
			return
		}
	}
	t.Fatalf("no update over TLS: %v", sc.Err())
}
