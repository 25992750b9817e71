package node_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/seed-7bfc04c2/dialtone/api/dialtonev1"
	"github.com/seed-7bfc04c2/dialtone/internal/config"
	"github.com/seed-7bfc04c2/dialtone/internal/node"
)

func httpDo(t *testing.T, method, url, contentType string, body []byte) (int, string) {
	t.Helper()
	h := map[string]string{}
	if contentType != "" {
		h["Content-Type"] = contentType
	}
	return httpDoHeaders(t, method, url, h, body)
}

func httpDoHeaders(t *testing.T, method, url string, headers map[string]string, body []byte) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

const validSpec = `{"token":"T1","ivr_profile":"Application","telnum":"9884719189","notification_url":"http://127.0.0.1:9/r","max_attempts":2,"time_to_live":"123s"}`

// withField returns validSpec with one field replaced (or removed when
// value is "").
func withField(field, value string) string {
	var m map[string]json.RawMessage
	_ = json.Unmarshal([]byte(validSpec), &m)
	if value == "" {
		delete(m, field)
	} else {
		m[field] = json.RawMessage(value)
	}
	b, _ := json.Marshal(m)
	return string(b)
}

func oneOf(spec string) string { return `{"requests":[` + spec + `]}` }

// TestRESTBadInput sends malformed input to every REST endpoint: each
// answers a 4xx naming the field, nothing is stored and the node keeps
// serving.
func TestRESTBadInput(t *testing.T) {
	tc := newTestCluster(t, 1, func(c *config.Config) {
		c.Limits.MaxBulk = 10
		c.Limits.MaxBodyBytes = 64 << 10
	})
	base := "http://" + tc.Node("n1").HTTPAddr()
	reqs := base + "/v1/tenants/acme/requests"
	many := make([]string, 11)
	for i := range many {
		many[i] = validSpec
	}
	huge := `{"requests":[` + withField("token", `"`+strings.Repeat("x", 70<<10)+`"`) + `]}`

	cases := []struct {
		name, method, url, body string
		code                    int
		want                    string // must appear in the answer
	}{
		{"broken json", "POST", reqs, `{"requests":[{`, 400, "unexpected"},
		{"not an object", "POST", reqs, `[1,2]`, 400, ""},
		{"unknown field", "POST", reqs, oneOf(withField("colour", `"red"`)), 400, "colour"},
		{"unknown top-level field", "POST", reqs, `{"request":[]}`, 400, "request"},
		{"missing token", "POST", reqs, oneOf(withField("token", "")), 400, "requests[0].token"},
		{"missing ivr_profile", "POST", reqs, oneOf(withField("ivr_profile", "")), 400, "requests[0].ivr_profile"},
		{"missing telnum", "POST", reqs, oneOf(withField("telnum", "")), 400, "requests[0].telnum"},
		{"letters in telnum", "POST", reqs, oneOf(withField("telnum", `"98847abc"`)), 400, "requests[0].telnum"},
		{"telnum too long", "POST", reqs, oneOf(withField("telnum", `"`+strings.Repeat("9", 33)+`"`)), 400, "requests[0].telnum"},
		{"letters in ani", "POST", reqs, oneOf(withField("ani", `"anon"`)), 400, "requests[0].ani"},
		{"missing notification_url", "POST", reqs, oneOf(withField("notification_url", "")), 400, "requests[0].notification_url"},
		{"ftp notification_url", "POST", reqs, oneOf(withField("notification_url", `"ftp://h/x"`)), 400, "notification_url"},
		{"relative notification_url", "POST", reqs, oneOf(withField("notification_url", `"/x"`)), 400, "notification_url"},
		{"notification_url with credentials", "POST", reqs, oneOf(withField("notification_url", `"http://u:p@h/x"`)), 400, "notification_url"},
		{"missing max_attempts", "POST", reqs, oneOf(withField("max_attempts", "")), 400, "requests[0].max_attempts"},
		{"zero max_attempts", "POST", reqs, oneOf(withField("max_attempts", "0")), 400, "requests[0].max_attempts"},
		{"huge max_attempts", "POST", reqs, oneOf(withField("max_attempts", "1000")), 400, "requests[0].max_attempts"},
		{"negative max_attempts", "POST", reqs, oneOf(withField("max_attempts", "-1")), 400, "max_attempts"},
		{"string max_attempts", "POST", reqs, oneOf(withField("max_attempts", `"two"`)), 400, "max_attempts"},
		{"fractional max_attempts", "POST", reqs, oneOf(withField("max_attempts", "1.5")), 400, "max_attempts"},
		{"missing time_to_live", "POST", reqs, oneOf(withField("time_to_live", "")), 400, "requests[0].time_to_live"},
		{"time_to_live bad unit", "POST", reqs, oneOf(withField("time_to_live", `"5x"`)), 400, "time_to_live"},
		{"time_to_live number", "POST", reqs, oneOf(withField("time_to_live", `123`)), 400, "time_to_live"},
		{"time_to_live zero", "POST", reqs, oneOf(withField("time_to_live", `"0s"`)), 400, "requests[0].time_to_live"},
		{"time_to_live too long", "POST", reqs, oneOf(withField("time_to_live", `"9999999s"`)), 400, "requests[0].time_to_live"},
		{"empty custom data key", "POST", reqs, oneOf(withField("custom_data", `[{"key":"","value":"v"}]`)), 400, "requests[0].custom_data[0].key"},
		{"control char in token", "POST", reqs, oneOf(withField("token", `"a\u0001b"`)), 400, "requests[0].token"},
		{"idempotency key too long", "POST", reqs, oneOf(withField("idempotency_key", `"`+strings.Repeat("k", 200)+`"`)), 400, "requests[0].idempotency_key"},
		{"negative cpd timeout", "POST", reqs, oneOf(withField("cpd", `{"rna_timeout":"-5s"}`)), 400, "requests[0].cpd.rna_timeout"},
		{"bad cpd detect", "POST", reqs, oneOf(withField("cpd", `{"detect":"all; drop"}`)), 400, "requests[0].cpd.detect"},
		{"second of two invalid", "POST", reqs, `{"requests":[` + validSpec + `,` + withField("telnum", `"x"`) + `]}`, 400, "requests[1].telnum"},
		{"empty list", "POST", reqs, `{"requests":[]}`, 400, "requests"},
		{"too many in one call", "POST", reqs, `{"requests":[` + strings.Join(many, ",") + `]}`, 400, "at most 10"},
		{"oversized body", "POST", reqs, huge, 413, "exceeds"},
		{"bad tenant", "POST", base + "/v1/tenants/ac%20me/requests", oneOf(validSpec), 400, "tenant"},
		{"tenant too long", "POST", base + "/v1/tenants/" + strings.Repeat("t", 65) + "/requests", oneOf(validSpec), 400, "tenant"},
		{"invalid utf-8", "POST", reqs, oneOf(withField("token", "\"\xff\xfe\"")), 400, "UTF-8"},
		{"get unknown id", "GET", reqs + "/01a206c4-46ef-7bf7-a1d6-863aee3f713a", "", 404, "not found"},
		{"get malformed id", "GET", reqs + "/bad!id", "", 400, "id"},
		{"cancel unknown id", "DELETE", reqs + "/01a206c4-46ef-7bf7-a1d6-863aee3f713a", "", 404, "not found"},
		{"cancel malformed id", "DELETE", reqs + "/bad!id", "", 400, "id"},
		{"list bad state", "GET", reqs + "?state=DONE", "", 400, "state"},
		{"list bad page size", "GET", reqs + "?page_size=5000", "", 400, "page_size"},
		{"list bad page token", "GET", reqs + "?page_token=%21%21", "", 400, "page_token"},
		{"list bad consistency", "GET", reqs + "?consistency=strong", "", 400, "consistency"},
		{"list bad min_index", "GET", reqs + "?min_index=-3", "", 400, "min_index"},
		{"batch get no ids", "POST", reqs + ":batchGet", `{"ids":[]}`, 400, "ids"},
		{"batch get bad id", "POST", reqs + ":batchGet", `{"ids":["ok-id","no/pe"]}`, 400, "ids[1]"},
		{"batch cancel no ids", "POST", reqs + ":batchCancel", `{}`, 400, "ids"},
		{"unknown path", "GET", base + "/v1/nothing", "", 404, ""},
		{"transfer to unknown server", "POST", base + "/v1/cluster/leadership:transfer", `{"target_id":"n9"}`, 404, "n9"},
		{"remove unknown server", "DELETE", base + "/v1/cluster/servers/n9", "", 404, "n9"},
		{"join without addresses", "POST", base + "/v1/cluster/join", `{}`, 400, "addresses"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, body := httpDo(t, c.method, c.url, "application/json", []byte(c.body))
			if code != c.code || !strings.Contains(body, c.want) {
				t.Fatalf("%s %s: got %d %s, want %d mentioning %q", c.method, c.url, code, body, c.code, c.want)
			}
		})
	}
	if n := tc.Node("n1").FSM().Count(); n != 0 {
		t.Fatalf("%d records stored by bad input", n)
	}
	// Still serving.
	code, body := httpDo(t, "POST", reqs, "application/json", []byte(oneOf(validSpec)))
	if code != 200 || !strings.Contains(body, `"ok":true`) {
		t.Fatalf("valid create after bad input: %d %s", code, body)
	}
}

func TestGRPCBadInputNamesFieldInDetails(t *testing.T) {
	tc := newTestCluster(t, 1, nil)
	cl := tc.requests("n1")
	s := spec("T1")
	s.Telnum = "12ab"
	_, err := cl.CreateRequests(ctxT(t, 5*time.Second), &pb.CreateRequestsRequest{Tenant: "acme", Requests: []*pb.RequestSpec{spec("ok"), s}})
	st := status.Convert(err)
	if st.Code() != codes.InvalidArgument || !strings.HasPrefix(st.Message(), "requests[1].telnum") {
		t.Fatalf("err = %v", err)
	}
	var fields []string
	for _, d := range st.Details() {
		if br, ok := d.(*errdetails.BadRequest); ok {
			for _, v := range br.FieldViolations {
				fields = append(fields, v.Field)
			}
		}
	}
	if len(fields) != 1 || fields[0] != "requests[1].telnum" {
		t.Fatalf("field violations = %v", fields)
	}
	_, err = cl.CreateRequests(ctxT(t, 5*time.Second), &pb.CreateRequestsRequest{Tenant: "", Requests: []*pb.RequestSpec{spec("ok")}})
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "tenant") {
		t.Fatalf("empty tenant: %v", err)
	}
	_, err = cl.CreateRequests(ctxT(t, 5*time.Second), &pb.CreateRequestsRequest{Tenant: "acme", Requests: []*pb.RequestSpec{nil}})
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "requests[0]") {
		t.Fatalf("nil spec: %v", err)
	}
	if n := tc.Node("n1").FSM().Count(); n != 0 {
		t.Fatalf("%d records stored by bad input", n)
	}
}

func TestCapacityStoresWhatFitsAndFailsTheRest(t *testing.T) {
	tc := newTestCluster(t, 3, func(c *config.Config) { c.Limits.MaxRecords = 3 })
	body := `{"requests":[` + strings.Repeat(validSpec+",", 4) + validSpec + `]}`
	code, out := httpDo(t, "POST", "http://"+tc.Node(tc.follower()).HTTPAddr()+"/v1/tenants/acme/requests", "application/json", []byte(body))
	if code != 200 {
		t.Fatalf("%d %s", code, out)
	}
	var resp struct {
		Results []struct {
			OK     bool   `json:"ok"`
			ID     string `json:"id"`
			Code   string `json:"code"`
			Reason string `json:"reason"`
		} `json:"results"`
	}
	if err := json.Unmarshal([]byte(out), &resp); err != nil {
		t.Fatal(err)
	}
	var ok, full int
	for i, r := range resp.Results {
		switch {
		case r.OK && r.ID != "" && i < 3:
			ok++
		case !r.OK && r.Code == "CAPACITY" && strings.Contains(r.Reason, "maximum of 3") && i >= 3:
			full++
		default:
			t.Fatalf("result %d = %+v", i, r)
		}
	}
	if ok != 3 || full != 2 {
		t.Fatalf("ok %d, capacity %d", ok, full)
	}
}

func TestHTTPOperationalEndpoints(t *testing.T) {
	tc := newTestCluster(t, 3, nil)
	base := "http://" + tc.Node(tc.follower()).HTTPAddr()
	for _, c := range []struct {
		path string
		want []string
	}{
		{"/healthz", []string{"ok"}},
		{"/readyz", []string{"ready: leader n"}},
		{"/openapi.json", []string{`"/v1/tenants/{tenant}/requests"`, `"/v1/cluster"`, `"swagger"`}},
		{"/metrics", []string{"dialtone_raft_leader 0", "dialtone_raft_servers 3", "dialtone_fsm_skipped_entries_total 0", "dialtone_rpc_requests_total"}},
	} {
		// One RPC first so the RPC counter has a sample.
		httpDo(t, "GET", base+"/v1/cluster", "", nil)
		code, body := httpDo(t, "GET", base+c.path, "", nil)
		if code != 200 {
			t.Fatalf("%s: %d %s", c.path, code, body)
		}
		for _, w := range c.want {
			if !strings.Contains(body, w) {
				t.Fatalf("%s: missing %q in\n%s", c.path, w, truncateForLog(body))
			}
		}
	}
	if !json.Valid([]byte(mustGet(t, base+"/openapi.json"))) {
		t.Fatal("openapi.json is not JSON")
	}
}

func mustGet(t *testing.T, url string) string {
	_, b := httpDo(t, "GET", url, "", nil)
	return b
}

func truncateForLog(s string) string {
	if len(s) > 2000 {
		return s[:2000] + fmt.Sprintf("... (%d bytes)", len(s))
	}
	return s
}

func TestReadyzBeforeClusterForms(t *testing.T) {
	cfg := config.Default()
	cfg.Cluster.DataDir = t.TempDir()
	cfg.Cluster.ApplyTimeout = config.Duration{Duration: 300 * time.Millisecond}
	nb := nodeBlock(t, "lonely")
	cfg.Nodes = []config.Node{nb}
	// No initial_voters: this node waits to be added to a cluster.
	n, err := node.Start(node.Options{Config: cfg, NodeID: "lonely", Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	code, body := httpDo(t, "GET", "http://"+n.HTTPAddr()+"/readyz", "", nil)
	if code != 503 || !strings.Contains(body, "not a member") {
		t.Fatalf("readyz = %d %s", code, body)
	}
	code, _ = httpDo(t, "GET", "http://"+n.HTTPAddr()+"/healthz", "", nil)
	if code != 200 {
		t.Fatalf("healthz = %d", code)
	}
	// A write waits for a leader for apply_timeout, then fails Unavailable.
	code, body = httpDo(t, "POST", "http://"+n.HTTPAddr()+"/v1/tenants/acme/requests", "application/json", []byte(oneOf(validSpec)))
	if code != 503 || !strings.Contains(body, "no cluster leader") {
		t.Fatalf("write without a leader = %d %s", code, body)
	}
}
