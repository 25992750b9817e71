package node_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/seed-7bfc04c2/dialtone/api/dialtonev1"
	"github.com/seed-7bfc04c2/dialtone/internal/config"
)

type restPacingSettings struct {
	Caps                   float64 `json:"caps"`
	PortLoadFactor         int     `json:"port_load_factor"`
	BatchSizeMode          string  `json:"batch_size_mode"`
	BatchSize              int     `json:"batch_size"`
	QueueLowWatermark      int     `json:"queue_low_watermark"`
	SlotCalculation        string  `json:"slot_calculation"`
	EqualPriorityNewAndOld bool    `json:"equal_priority_new_and_old"`
	NextRetryInterval      string  `json:"next_retry_interval"`
	CleanInterval          string  `json:"clean_interval"`
	Retention              string  `json:"retention"`
}

type restPacingEntry struct {
	Tenant    string             `json:"tenant"`
	Stored    bool               `json:"stored"`
	Settings  restPacingSettings `json:"settings"`
	Effective restPacingSettings `json:"effective"`
}

type restGetPacing struct {
	NodeID string          `json:"node_id"`
	Pacing restPacingEntry `json:"pacing"`
}

type restListPacing struct {
	NodeID     string            `json:"node_id"`
	Entries    []restPacingEntry `json:"entries"`
	GlobalCaps float64           `json:"global_caps"`
}

func (tc *testCluster) pacingURL(id string) string {
	return "http://" + tc.Node(id).HTTPAddr() + "/v1/pacing"
}

func (tc *testCluster) otherFollower(not string) string {
	l := tc.leader()
	for _, id := range tc.ids() {
		if id != l && id != not {
			return id
		}
	}
	tc.t.Fatal("no second follower")
	return ""
}

func putPacing(t *testing.T, url, body string) restPacingEntry {
	t.Helper()
	code, resp := httpDo(t, "PUT", url, "application/json", []byte(body))
	if code != 200 {
		t.Fatalf("PUT %s %s: %d %s", url, body, code, resp)
	}
	return decode[restGetPacing](t, resp).Pacing
}

// The effective acme settings once _global and acme are set as in
// TestPacingReplicatedThroughFollowers: tenant → global → default.
var wantAcmeEffective = restPacingSettings{
	Caps:              20,      // acme
	PortLoadFactor:    100,     // default
	BatchSizeMode:     "Fixed", // acme
	BatchSize:         40,      // acme
	QueueLowWatermark: 10,      // global
	SlotCalculation:   "EQUAL", // global
	NextRetryInterval: "5s",    // acme
	CleanInterval:     "60s",   // global
	Retention:         "0s",    // default
}

var wantGlobalEffective = restPacingSettings{
	Caps: 300, PortLoadFactor: 100, BatchSizeMode: "TotalPorts", QueueLowWatermark: 10, SlotCalculation: "EQUAL",
	NextRetryInterval: "10s", CleanInterval: "60s", Retention: "0s",
}

// checkPacingEverywhere waits until every running node serves the global
// and acme entries from its own replica, resolved as expected.
func checkPacingEverywhere(t *testing.T, tc *testCluster) {
	t.Helper()
	for _, id := range tc.ids() {
		base := tc.pacingURL(id)
		eventually(t, 10*time.Second, "pacing on "+id, func() error {
			code, body := httpDo(t, "GET", base+"/acme", "", nil)
			if code != 200 {
				return fmt.Errorf("acme: %d %s", code, body)
			}
			got := decode[restGetPacing](t, body)
			wantStored := restPacingSettings{Caps: 20, BatchSizeMode: "Fixed", BatchSize: 40, NextRetryInterval: "5s"}
			if got.NodeID != id || !got.Pacing.Stored || got.Pacing.Settings != wantStored || got.Pacing.Effective != wantAcmeEffective {
				return fmt.Errorf("acme: %s", body)
			}
			// A tenant without an entry runs on the global entry and defaults.
			code, body = httpDo(t, "GET", base+"/globex", "", nil)
			globex := decode[restGetPacing](t, body)
			if code != 200 || globex.Pacing.Stored || globex.Pacing.Settings != (restPacingSettings{}) || globex.Pacing.Effective != wantGlobalEffective {
				return fmt.Errorf("globex: %d %s", code, body)
			}
			code, body = httpDo(t, "GET", base, "", nil)
			list := decode[restListPacing](t, body)
			if code != 200 || len(list.Entries) != 2 || list.Entries[0].Tenant != "_global" || list.Entries[1].Tenant != "acme" || list.GlobalCaps != 300 {
				return fmt.Errorf("list: %d %s", code, body)
			}
			if list.Entries[0].Effective != wantGlobalEffective || list.Entries[1].Effective != wantAcmeEffective {
				return fmt.Errorf("list effective: %s", body)
			}
			return nil
		})
	}
}

// TestPacingReplicatedThroughFollowers sets the global and a tenant entry
// over REST on followers, reads them back resolved on every node, deletes,
// and keeps them across a full restart from snapshots.
func TestPacingReplicatedThroughFollowers(t *testing.T) {
	tc := newTestCluster(t, 3, func(c *config.Config) {
		c.Cluster.SnapshotThreshold = 4
		c.Cluster.TrailingLogs = 2
	})
	f1 := tc.follower()
	f2 := tc.otherFollower(f1)

	// Before anything is stored: the built-in defaults.
	code, body := httpDo(t, "GET", tc.pacingURL(f1)+"/_global", "", nil)
	if g := decode[restGetPacing](t, body); code != 200 || g.Pacing.Stored || g.Pacing.Effective.Caps != 50 || g.Pacing.Effective.CleanInterval != "180s" {
		t.Fatalf("defaults: %d %s", code, body)
	}

	g := putPacing(t, tc.pacingURL(f1)+"/_global", `{"caps":300,"queue_low_watermark":10,"slot_calculation":"EQUAL","clean_interval":"60s"}`)
	if g.Tenant != "_global" || !g.Stored || g.Effective != wantGlobalEffective {
		t.Fatalf("set global answered %+v", g)
	}
	a := putPacing(t, tc.pacingURL(f2)+"/acme", `{"caps":20,"batch_size_mode":"Fixed","batch_size":40,"next_retry_interval":"5000ms"}`)
	if a.Tenant != "acme" || a.Effective != wantAcmeEffective || a.Settings.NextRetryInterval != "5s" {
		t.Fatalf("set acme answered %+v", a)
	}
	// A linearizable read on the other follower sees the write at once.
	code, body = httpDo(t, "GET", tc.pacingURL(f1)+"/acme?consistency=linearizable", "", nil)
	if code != 200 || decode[restGetPacing](t, body).Pacing.Settings.Caps != 20 {
		t.Fatalf("linearizable read: %d %s", code, body)
	}
	checkPacingEverywhere(t, tc)

	// A scratch entry set and deleted: deletes replicate too.
	putPacing(t, tc.pacingURL(f1)+"/scratch", `{"caps":1}`)
	if code, body := httpDo(t, "DELETE", tc.pacingURL(f2)+"/scratch", "", nil); code != 200 {
		t.Fatalf("delete scratch: %d %s", code, body)
	}
	if code, body := httpDo(t, "DELETE", tc.pacingURL(f2)+"/scratch", "", nil); code != 404 || !strings.Contains(body, "scratch") {
		t.Fatalf("delete missing: %d %s", code, body)
	}
	checkPacingEverywhere(t, tc)

	// Full restart, every node from a snapshot that holds the entries.
	for _, id := range tc.ids() {
		nd := tc.Node(id)
		if err := nd.Cluster().Raft().Snapshot().Error(); err != nil {
			t.Fatalf("snapshot on %s: %v", id, err)
		}
	}
	tc.stopAll()
	for _, nb := range tc.Config().Nodes {
		tc.start(nb.ID)
	}
	tc.waitVoters(3)
	checkPacingEverywhere(t, tc)

	// Deleting the global entry: acme's gaps fall back to the defaults.
	if code, body := httpDo(t, "DELETE", tc.pacingURL(tc.follower())+"/_global", "", nil); code != 200 {
		t.Fatalf("delete global: %d %s", code, body)
	}
	code, body = httpDo(t, "GET", tc.pacingURL(tc.follower())+"/acme?consistency=linearizable", "", nil)
	eff := decode[restGetPacing](t, body).Pacing.Effective
	if code != 200 || eff.Caps != 20 || eff.CleanInterval != "180s" || eff.SlotCalculation != "PROPORTIONATE" || eff.QueueLowWatermark != 25 {
		t.Fatalf("after deleting global: %d %s", code, body)
	}
}

func TestPacingBadInput(t *testing.T) {
	tc := newTestCluster(t, 1, nil)
	base := tc.pacingURL(tc.leader())
	cases := []struct {
		method, path, body, field string
	}{
		{"PUT", "/acme", `{"caps":200001}`, "pacing.caps"},
		{"PUT", "/acme", `{"caps":0.01}`, "pacing.caps"},
		{"PUT", "/acme", `{"caps":"NaN"}`, "pacing.caps"},
		{"PUT", "/acme", `{"port_load_factor":1001}`, "pacing.port_load_factor"},
		{"PUT", "/acme", `{"batch_size_mode":"Sometimes"}`, "pacing.batch_size_mode"},
		{"PUT", "/acme", `{"batch_size_mode":"Fixed"}`, "pacing.batch_size"},
		{"PUT", "/acme", `{"batch_size_mode":"Fixed","batch_size":1000001}`, "pacing.batch_size"},
		{"PUT", "/acme", `{"batch_size":10}`, "pacing.batch_size"},
		{"PUT", "/acme", `{"queue_low_watermark":101}`, "pacing.queue_low_watermark"},
		{"PUT", "/acme", `{"slot_calculation":"RANDOM"}`, "pacing.slot_calculation"},
		{"PUT", "/acme", `{"next_retry_interval":"50ms"}`, "pacing.next_retry_interval"},
		{"PUT", "/acme", `{"next_retry_interval":"ten seconds"}`, "pacing.next_retry_interval"},
		{"PUT", "/acme", `{"clean_interval":"500ms"}`, "pacing.clean_interval"},
		{"PUT", "/acme", `{"clean_interval":"25h"}`, "pacing.clean_interval"},
		{"PUT", "/acme", `{"retention":"721h"}`, "pacing.retention"},
		{"PUT", "/acme", `{"retention":"-1s"}`, "pacing.retention"},
		{"PUT", "/acme", `{"retention":"1.5ms"}`, "pacing.retention"},
		{"PUT", "/acme", `{"capz":5}`, "capz"},
		{"PUT", "/acme", `{"tenant":"globex","caps":5}`, "pacing.tenant"},
		{"PUT", "/_global", `{"tenant":"","caps":5,"retention":"1y"}`, "pacing.retention"},
		{"PUT", "/-bad", `{"caps":5}`, "tenant"},
		{"PUT", "/_GLOBAL", `{"caps":5}`, "tenant"},
		{"DELETE", "/-bad", ``, "tenant"},
		{"GET", "/-bad", ``, "tenant"},
		{"GET", "/acme?consistency=eventual", ``, "consistency"},
		{"GET", "?consistency=eventual", ``, "consistency"},
	}
	for _, c := range cases {
		var body []byte
		if c.body != "" {
			body = []byte(c.body)
		}
		code, resp := httpDo(t, c.method, base+c.path, "application/json", body)
		if code != 400 || !strings.Contains(resp, c.field) {
			t.Errorf("%s %s %s: %d %s (want 400 naming %s)", c.method, c.path, c.body, code, resp, c.field)
		}
	}
	// Nothing was stored.
	if code, body := httpDo(t, "GET", base, "", nil); code != 200 || strings.Contains(body, "entries") {
		t.Fatalf("stored: %d %s", code, body)
	}
	if n := len(tc.Node("n1").FSM().Pacings()); n != 0 {
		t.Fatalf("%d pacing entries stored by bad input", n)
	}
	if code, body := httpDo(t, "DELETE", base+"/acme", "", nil); code != 404 {
		t.Fatalf("delete missing: %d %s", code, body)
	}

	// Over gRPC every invalid field is in the BadRequest details, in field
	// order, and the message names the first.
	cl := pb.NewDialerServiceClient(tc.conn("n1"))
	_, err := cl.SetPacing(ctxT(t, 5*time.Second), &pb.SetPacingRequest{Tenant: "acme", Pacing: &pb.Pacing{
		Retention: "721h", Caps: 200001, SlotCalculation: "x"}})
	st := status.Convert(err)
	if st.Code() != codes.InvalidArgument || !strings.HasPrefix(st.Message(), "pacing.caps: 200001 is outside 0..100000") {
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
	if strings.Join(fields, ",") != "pacing.caps,pacing.slot_calculation,pacing.retention" {
		t.Fatalf("field violations = %v", fields)
	}
	// The body may name its tenant, as the path does.
	if code, body := httpDo(t, "PUT", base+"/_global", "application/json", []byte(`{"tenant":"_global","caps":60}`)); code != 200 {
		t.Fatalf("body naming _global: %d %s", code, body)
	}
	if code, body := httpDo(t, "DELETE", base+"/_global", "", nil); code != 200 {
		t.Fatalf("delete global: %d %s", code, body)
	}
	// A valid entry after all that; an empty entry is valid too (all inherit).
	if _, err := cl.SetPacing(ctxT(t, 5*time.Second), &pb.SetPacingRequest{Tenant: "acme", Pacing: &pb.Pacing{Caps: 0.1, Retention: "720h"}}); err != nil {
		t.Fatal(err)
	}
	resp, err := cl.SetPacing(ctxT(t, 5*time.Second), &pb.SetPacingRequest{Tenant: "globex"})
	if err != nil || !resp.Pacing.Stored || resp.Pacing.Effective.Caps != 50 {
		t.Fatalf("empty entry: %v %v", resp, err)
	}
}

// pacingAuthCluster adds a tenant admin without the read role to the
// users of basicAuthCluster.
func pacingAuthCluster(t *testing.T, n int) *testCluster {
	hash := func(pw string) string {
		h, err := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.MinCost)
		if err != nil {
			t.Fatal(err)
		}
		return string(h)
	}
	return newTestCluster(t, n, func(c *config.Config) {
		c.Cluster.Secret = "0123456789abcdef-cluster"
		c.Auth.Mode = "basic"
		c.Auth.Users = []config.AuthUser{
			{Name: "viewer", PasswordHash: hash("view-pw"), Tenants: []string{"acme"}, Roles: []string{"read"}},
			{Name: "acme-admin", PasswordHash: hash("acme-pw"), Tenants: []string{"acme"}, Roles: []string{"admin"}},
			{Name: "ops", PasswordHash: hash("ops-pw"), Tenants: []string{"*"}, Roles: []string{"admin", "read"}},
		}
	})
}

func TestPacingAuth(t *testing.T) {
	tc := pacingAuthCluster(t, 3)
	base := tc.pacingURL(tc.follower()) // writes are forwarded with the cluster secret
	do := func(method, user, pw, path, body string) (int, string) {
		h := map[string]string{"Content-Type": "application/json"}
		if user != "" {
			h["Authorization"] = basic(user, pw)
		}
		return httpDoHeaders(t, method, base+path, h, []byte(body))
	}
	cases := []struct {
		method, user, pw, path, body string
		want                         int
	}{
		{"GET", "", "", "", "", 401},
		{"PUT", "", "", "/acme", `{"caps":5}`, 401},
		{"PUT", "viewer", "view-pw", "/acme", `{"caps":5}`, 403}, // read-only
		{"PUT", "acme-admin", "acme-pw", "/acme", `{"caps":5}`, 200},
		{"PUT", "acme-admin", "acme-pw", "/globex", `{"caps":5}`, 403},  // other tenant
		{"PUT", "acme-admin", "acme-pw", "/_global", `{"caps":5}`, 403}, // needs "*"
		{"DELETE", "acme-admin", "acme-pw", "/_global", ``, 403},
		{"GET", "acme-admin", "acme-pw", "/acme", ``, 403}, // reads need read
		{"PUT", "ops", "ops-pw", "/_global", `{"caps":400}`, 200},
		{"PUT", "ops", "ops-pw", "/globex", `{"caps":7}`, 200},
		{"GET", "viewer", "view-pw", "/acme?consistency=linearizable", ``, 200},
		{"GET", "viewer", "view-pw", "/globex", ``, 403},
		{"GET", "viewer", "view-pw", "/_global", ``, 403},
		{"GET", "ops", "ops-pw", "/_global", ``, 200},
		{"DELETE", "viewer", "view-pw", "/acme", ``, 403},
	}
	for _, c := range cases {
		if code, body := do(c.method, c.user, c.pw, c.path, c.body); code != c.want {
			t.Errorf("%s %s as %q: %d %s, want %d", c.method, c.path, c.user, code, body, c.want)
		}
	}
	// A scoped reader lists only its tenant; the global CAPS limit is shown.
	code, body := httpDoHeaders(t, "GET", base+"?consistency=linearizable", map[string]string{"Authorization": basic("viewer", "view-pw")}, nil)
	list := decode[restListPacing](t, body)
	if code != 200 || len(list.Entries) != 1 || list.Entries[0].Tenant != "acme" || list.GlobalCaps != 400 {
		t.Fatalf("viewer list: %d %s", code, body)
	}
	code, body = httpDoHeaders(t, "GET", base+"?consistency=linearizable", map[string]string{"Authorization": basic("ops", "ops-pw")}, nil)
	if list := decode[restListPacing](t, body); code != 200 || len(list.Entries) != 3 || list.Entries[0].Tenant != "_global" {
		t.Fatalf("ops list: %d %s", code, body)
	}
	if code, body := do("DELETE", "acme-admin", "acme-pw", "/acme", ``); code != 200 {
		t.Fatalf("tenant admin delete: %d %s", code, body)
	}

	// The dialer status: read role; a follower forwards to the leader with
	// the caller's credentials, so the leader answers (or says its engine
	// is not running), never Unauthenticated.
	leader := tc.leader()
	statusURL := strings.TrimSuffix(base, "/pacing") + "/dialer"
	if code, _ := httpDoHeaders(t, "GET", statusURL, map[string]string{"Authorization": basic("acme-admin", "acme-pw")}, nil); code != 403 {
		t.Fatalf("dialer status without read: %d", code)
	}
	code, body = httpDoHeaders(t, "GET", statusURL, map[string]string{"Authorization": basic("viewer", "view-pw")}, nil)
	checkAnsweredByLeader(t, code, body, leader)
}

// checkAnsweredByLeader: a GetDialerStatus answer came from the leader,
// either its statistics or "dialer not running on this node (leader)".
func checkAnsweredByLeader(t *testing.T, code int, body, leader string) {
	t.Helper()
	switch code {
	case 200:
		if st := decode[struct {
			NodeID string `json:"node_id"`
		}](t, body); st.NodeID != leader {
			t.Fatalf("dialer status from %q, want the leader %s: %s", st.NodeID, leader, body)
		}
	case 503:
		if !strings.Contains(body, "dialer not running on this node ("+leader+")") {
			t.Fatalf("dialer status: %d %s (want the leader %s to answer)", code, body, leader)
		}
	default:
		t.Fatalf("dialer status: %d %s", code, body)
	}
}

func TestDialerStatusAnsweredByLeader(t *testing.T) {
	tc := newTestCluster(t, 3, nil)
	leader := tc.leader()
	dialerURL := func(id string) string { return strings.TrimSuffix(tc.pacingURL(id), "/pacing") + "/dialer" }
	// A new leader answers "leadership is changing" until its barrier has
	// applied every earlier entry: wait for that, then ask every node.
	eventually(t, 10*time.Second, "the leader ready", func() error {
		if code, body := httpDo(t, "GET", dialerURL(leader), "", nil); code == 503 && strings.Contains(body, "leadership is changing") {
			return fmt.Errorf("%d %s", code, body)
		}
		return nil
	})
	for _, id := range tc.ids() {
		url := dialerURL(id)
		code, body := httpDo(t, "GET", url, "", nil)
		checkAnsweredByLeader(t, code, body, leader)
	}
	// Over gRPC on a follower too.
	_, err := pb.NewDialerServiceClient(tc.conn(tc.follower())).GetDialerStatus(ctxT(t, 5*time.Second), &pb.GetDialerStatusRequest{})
	if err != nil && (status.Code(err) != codes.Unavailable || !strings.Contains(err.Error(), "("+leader+")")) {
		t.Fatalf("gRPC: %v", err)
	}
}
