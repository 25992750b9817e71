package node_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/seed-7bfc04c2/dialtone/internal/config"
)

type restEntitlements struct {
	Entitlements []struct {
		Tenant        string `json:"tenant"`
		LicensedPorts int    `json:"licensed_ports"`
	} `json:"entitlements"`
}

type restThreshold struct {
	ID         string  `json:"id"`
	Tenant     string  `json:"tenant"`
	Metric     string  `json:"metric"`
	Direction  string  `json:"direction"`
	Value      float64 `json:"value"`
	ClearValue float64 `json:"clear_value"`
	WebhookURL string  `json:"webhook_url"`
}

func (tc *testCluster) baseURL(id string) string {
	return "http://" + tc.Node(id).HTTPAddr() + "/v1/port-usage"
}

// checkSettingsEverywhere waits until every running node serves the
// expected entitlement and threshold from its own replica.
func checkSettingsEverywhere(t *testing.T, tc *testCluster, ports int, value float64) {
	t.Helper()
	for _, id := range tc.ids() {
		base := tc.baseURL(id)
		eventually(t, 10*time.Second, "settings on "+id, func() error {
			code, body := httpDo(t, "GET", base+"/entitlements", "", nil)
			if code != 200 {
				return fmt.Errorf("entitlements: %d %s", code, body)
			}
			ents := decode[restEntitlements](t, body)
			if len(ents.Entitlements) != 1 || ents.Entitlements[0].Tenant != "acme" || ents.Entitlements[0].LicensedPorts != ports {
				return fmt.Errorf("entitlements: %s", body)
			}
			code, body = httpDo(t, "GET", base+"/thresholds", "", nil)
			ths := decode[struct {
				Thresholds []restThreshold `json:"thresholds"`
			}](t, body)
			if code != 200 || len(ths.Thresholds) != 1 {
				return fmt.Errorf("thresholds: %d %s", code, body)
			}
			want := restThreshold{ID: "acme-high", Tenant: "acme", Metric: "in_use_percent_of_entitlement", Direction: "above", Value: value, ClearValue: value - 5, WebhookURL: "http://127.0.0.1:9/hook"}
			if ths.Thresholds[0] != want {
				return fmt.Errorf("threshold %+v, want %+v", ths.Thresholds[0], want)
			}
			code, body = httpDo(t, "GET", base+"/alerts", "", nil)
			if code != 200 {
				return fmt.Errorf("alerts: %d %s", code, body)
			}
			return nil
		})
	}
}

func putSettings(t *testing.T, base string, ports int, value float64) {
	t.Helper()
	code, body := httpDo(t, "PUT", base+"/entitlements/acme", "application/json", fmt.Appendf(nil, `{"licensed_ports":%d}`, ports))
	if code != 200 || !strings.Contains(body, fmt.Sprintf(`"licensed_ports":%d`, ports)) {
		t.Fatalf("set entitlement: %d %s", code, body)
	}
	code, body = httpDo(t, "PUT", base+"/thresholds/acme-high", "application/json",
		fmt.Appendf(nil, `{"tenant":"acme","metric":"in_use_percent_of_entitlement","direction":"above","value":%g,"webhook_url":"http://127.0.0.1:9/hook"}`, value))
	th := decode[restThreshold](t, body)
	if code != 200 || th.ID != "acme-high" || th.ClearValue != value-5 {
		t.Fatalf("set threshold: %d %s", code, body)
	}
}

// TestPortSettingsReplicatedAndDurable writes settings through a follower
// over REST, reads them on every node, and keeps them across a leader kill
// and a full restart from snapshots.
func TestPortSettingsReplicatedAndDurable(t *testing.T) {
	tc := newTestCluster(t, 3, func(c *config.Config) {
		c.Cluster.SnapshotThreshold = 4
		c.Cluster.TrailingLogs = 2
	})
	putSettings(t, tc.baseURL(tc.follower()), 120, 90)
	checkSettingsEverywhere(t, tc, 120, 90)

	// A scratch entitlement set and deleted: deletes replicate too.
	base := tc.baseURL(tc.follower())
	if code, body := httpDo(t, "PUT", base+"/entitlements/scratch", "application/json", []byte(`{"licensed_ports":1}`)); code != 200 {
		t.Fatalf("scratch: %d %s", code, body)
	}
	if code, body := httpDo(t, "DELETE", base+"/entitlements/scratch", "", nil); code != 200 {
		t.Fatalf("delete scratch: %d %s", code, body)
	}
	if code, _ := httpDo(t, "DELETE", base+"/entitlements/scratch", "", nil); code != 404 {
		t.Fatalf("delete missing: %d", code)
	}
	if code, _ := httpDo(t, "DELETE", base+"/thresholds/nope", "", nil); code != 404 {
		t.Fatalf("delete missing threshold: %d", code)
	}

	// Leader kill: the survivors keep the settings and take new writes.
	leader := tc.leader()
	tc.kill(leader)
	checkSettingsEverywhere(t, tc, 120, 90)
	putSettings(t, tc.baseURL(tc.follower()), 150, 80)
	checkSettingsEverywhere(t, tc, 150, 80)
	tc.start(leader)
	tc.waitVoters(3)
	checkSettingsEverywhere(t, tc, 150, 80)

	// Full restart, every node from a snapshot that holds the settings.
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
	checkSettingsEverywhere(t, tc, 150, 80)
}

func TestPortSettingsBadInput(t *testing.T) {
	tc := newTestCluster(t, 1, nil)
	base := tc.baseURL(tc.leader())
	cases := []struct {
		method, path, body, field string
	}{
		{"PUT", "/entitlements/acme", `{"licensed_ports":1000001}`, "licensed_ports"},
		{"PUT", "/entitlements/acme", `{"licensed_ports":1000001}`, "licensed_ports"},
		{"PUT", "/entitlements/-bad", `{"licensed_ports":5}`, "tenant"},
		{"DELETE", "/entitlements/-bad", ``, "tenant"},
		{"PUT", "/thresholds/-x", `{"metric":"available_ports","direction":"below","value":5}`, "threshold.id"},
		{"PUT", "/thresholds/t1", `{"metric":"cpu","direction":"below","value":5}`, "threshold.metric"},
		{"PUT", "/thresholds/t1", `{"metric":"available_ports","direction":"sideways","value":5}`, "threshold.direction"},
		{"PUT", "/thresholds/t1", `{"metric":"in_use_percent_of_total","direction":"above","value":150}`, "threshold.value"},
		{"PUT", "/thresholds/t1", `{"metric":"available_ports","direction":"below","value":2.5}`, "threshold.value"},
		{"PUT", "/thresholds/t1", `{"metric":"in_use_percent_of_total","direction":"above","value":90,"clear_value":95}`, "threshold.clear_value"},
		{"PUT", "/thresholds/t1", `{"metric":"available_ports","direction":"below","value":10,"clear_value":5}`, "threshold.clear_value"},
		{"PUT", "/thresholds/t1", `{"tenant":"a b","metric":"available_ports","direction":"below","value":5}`, "threshold.tenant"},
		{"PUT", "/thresholds/t1", `{"metric":"available_ports","direction":"below","value":5,"webhook_url":"ftp://x/y"}`, "threshold.webhook_url"},
		{"DELETE", "/thresholds/-x", ``, "id"},
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
	if _, body := httpDo(t, "GET", base+"/thresholds", "", nil); strings.Contains(body, "t1") {
		t.Fatalf("stored: %s", body)
	}
	// A valid floor with the default clear_value (value + 1 port).
	code, body := httpDo(t, "PUT", base+"/thresholds/floor", "application/json", []byte(`{"metric":"available_ports","direction":"below","value":10}`))
	if code != 200 || decode[restThreshold](t, body).ClearValue != 11 {
		t.Fatalf("floor: %d %s", code, body)
	}
}

func TestPortSettingsAuth(t *testing.T) {
	tc := basicAuthCluster(t, 1)
	base := tc.baseURL(tc.leader())
	put := func(user, pw, path, body string) (int, string) {
		return httpDoHeaders(t, "PUT", base+path, map[string]string{"Authorization": basic(user, pw), "Content-Type": "application/json"}, []byte(body))
	}
	if code, body := put("viewer", "view-pw", "/entitlements/acme", `{"licensed_ports":10}`); code != 403 {
		t.Fatalf("read-only principal set an entitlement: %d %s", code, body)
	}
	if code, body := put("viewer", "view-pw", "/thresholds/x", `{"tenant":"acme","metric":"available_ports","direction":"below","value":5}`); code != 403 {
		t.Fatalf("read-only principal set a threshold: %d %s", code, body)
	}
	if code, body := put("ops", "ops-pw", "/entitlements/acme", `{"licensed_ports":10}`); code != 200 {
		t.Fatalf("admin: %d %s", code, body)
	}
	if code, body := put("ops", "ops-pw", "/thresholds/floor", `{"metric":"available_ports","direction":"below","value":5}`); code != 200 {
		t.Fatalf("admin threshold: %d %s", code, body)
	}
	code, body := httpGetAuth(t, base+"/entitlements", basic("viewer", "view-pw"))
	if code != 200 || !strings.Contains(body, `"acme"`) {
		t.Fatalf("viewer list: %d %s", code, body)
	}
	// The deployment-wide threshold is not shown to a principal scoped to acme.
	code, body = httpGetAuth(t, base+"/thresholds", basic("viewer", "view-pw"))
	if code != 200 || strings.Contains(body, "floor") {
		t.Fatalf("viewer thresholds: %d %s", code, body)
	}
	if code, _ := httpDo(t, "GET", base+"/entitlements", "", nil); code != 401 {
		t.Fatalf("no credentials: %d", code)
	}
}
