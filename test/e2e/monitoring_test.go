//go:build e2e

package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/seed-7bfc04c2/dialtone/test/cluster"
)

// requireBinary finds a program, or skips (fails when
// DIALTONE_REQUIRE_SIPP=1, as CI sets it).
func requireBinary(t *testing.T, name, pkg string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	if os.Getenv("DIALTONE_REQUIRE_SIPP") == "1" {
		t.Fatalf("%s is not installed (apt-get install %s) and DIALTONE_REQUIRE_SIPP=1 requires it", name, pkg)
	}
	t.Skipf("%s is not installed (apt-get install %s): skipping", name, pkg)
	return ""
}

// TestGrafanaQueriesReturnData runs a real Prometheus scraping a
// three-node cluster under load, with the alert rules of deploy/monitoring
// loaded, and runs every PromQL expression of the Grafana dashboard: each
// must return data.
func TestGrafanaQueriesReturnData(t *testing.T) {
	prom := requireBinary(t, "prometheus", "prometheus")
	rules, err := filepath.Abs("../../deploy/monitoring/alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	data, err := os.ReadFile("../../deploy/monitoring/grafana/dialtone.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &dash); err != nil {
		t.Fatalf("dashboard JSON: %v", err)
	}
	exprs := map[string]string{} // expr -> panel
	for _, p := range dash.Panels {
		for _, tg := range p.Targets {
			exprs[tg.Expr] = p.Title
		}
	}
	if len(exprs) < 10 {
		t.Fatalf("only %d expressions in the dashboard", len(exprs))
	}

	c := startConsoleCluster(t)
	dir := t.TempDir()
	var targets []string
	for _, id := range []string{"n1", "n2", "n3"} {
		targets = append(targets, fmt.Sprintf("%q", c.http[id]))
	}
	cfg := fmt.Sprintf("global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files:\n  - %q\nscrape_configs:\n  - job_name: dialtone\n    static_configs:\n      - targets: [%s]\n",
		rules, strings.Join(targets, ", "))
	if err := os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	addr, err := cluster.FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	p := exec.Command(prom, "--config.file="+filepath.Join(dir, "prometheus.yml"), "--storage.tsdb.path="+filepath.Join(dir, "tsdb"), "--web.listen-address="+addr)
	out := &syncBuffer{}
	p.Stdout, p.Stderr = out, out
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = p.Process.Kill()
		_ = p.Wait()
		if t.Failed() {
			t.Logf("prometheus output:\n%s", lastLines(out.String(), 30))
		}
	})

	// Traffic: calls, outcomes and (failing) notifications.
	leader := c.leader(t, "n1")
	c.submit(t, "alice", leader, "acme", "M", 100)

	var rulesResp struct {
		Data struct {
			Groups []struct {
				Rules []struct {
					Name string `json:"name"`
				} `json:"rules"`
			} `json:"groups"`
		} `json:"data"`
	}
	eventually(t, 30*time.Second, "prometheus loaded the alert rules", func() error {
		if _, err := do(http.MethodGet, "http://"+addr+"/api/v1/rules", nil, &rulesResp); err != nil {
			return err
		}
		n := 0
		for _, g := range rulesResp.Data.Groups {
			n += len(g.Rules)
		}
		if n != 7 {
			return fmt.Errorf("%d rules loaded", n)
		}
		return nil
	})
	for expr, panel := range exprs {
		eventually(t, 90*time.Second, fmt.Sprintf("data for %q (panel %q)", expr, panel), func() error {
			var resp struct {
				Status string `json:"status"`
				Data   struct {
					Result []json.RawMessage `json:"result"`
				} `json:"data"`
			}
			if _, err := do(http.MethodGet, "http://"+addr+"/api/v1/query?query="+url.QueryEscape(expr), nil, &resp); err != nil {
				return err
			}
			if resp.Status != "success" || len(resp.Data.Result) == 0 {
				return fmt.Errorf("status %s, %d series", resp.Status, len(resp.Data.Result))
			}
			return nil
		})
	}
}
