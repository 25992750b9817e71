package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestRequestAndClusterVerbs drives submit, get, list, cancel, status and
// members against a one-node cluster.
func TestRequestAndClusterVerbs(t *testing.T) {
	addr := oneNode(t)

	out := mustRun(t, addr, "submit", "--tenant", "acme", "--telnum", "+4930123456", "--profile", "Sales",
		"--notify", "https://example.test/r", "--data", "campaign=spring")
	var sub struct {
		Results []struct {
			OK bool   `json:"ok"`
			ID string `json:"id"`
		} `json:"results"`
	}
	if err := json.Unmarshal([]byte(out), &sub); err != nil || len(sub.Results) != 1 || !sub.Results[0].OK {
		t.Fatalf("submit: %v\n%s", err, out)
	}
	id := sub.Results[0].ID
	file := filepath.Join(t.TempDir(), "reqs.json")
	if err := os.WriteFile(file, []byte(`[{"token":"f1","ivr_profile":"Sales","telnum":"123","notification_url":"http://x.test/n","max_attempts":1,"time_to_live":"60s"},
		{"token":"f2","ivr_profile":"Support","telnum":"456","notification_url":"http://x.test/n","max_attempts":1,"time_to_live":"60s"}]`), 0o600); err != nil {
		t.Fatal(err)
	}
	out = mustRun(t, addr, "submit", "--tenant", "acme", "--file", file)
	if err := json.Unmarshal([]byte(out), &sub); err != nil || len(sub.Results) != 2 || !sub.Results[0].OK || !sub.Results[1].OK {
		t.Fatalf("submit --file: %v\n%s", err, out)
	}
	if _, err := run(t, addr, "submit", "--tenant", "acme", "--telnum", "1", "--data", "novalue"); err == nil || !strings.Contains(err.Error(), "key=value") {
		t.Fatalf("bad --data: %v", err)
	}

	out = mustRun(t, addr, "get", "--tenant", "acme", "--consistency", "linearizable", id)
	if !strings.Contains(out, `"campaign"`) || !strings.Contains(out, `"linearizable"`) || !strings.Contains(out, id) {
		t.Fatalf("get:\n%s", out)
	}
	if _, err := run(t, addr, "get", "--tenant", "other", id); err == nil || !strings.Contains(err.Error(), "HTTP 404") {
		t.Fatalf("cross-tenant get: %v", err)
	}
	out = mustRun(t, addr, "list", "--tenant", "acme", "--profile", "Support", "--page-size", "10")
	if !strings.Contains(out, `"f2"`) || strings.Contains(out, `"f1"`) || strings.Contains(out, id) {
		t.Fatalf("list --profile Support:\n%s", out)
	}
	out = mustRun(t, addr, "cancel", "--tenant", "acme", id)
	var cancelled struct {
		Result struct {
			OK bool `json:"ok"`
		} `json:"result"`
	}
	if err := json.Unmarshal([]byte(out), &cancelled); err != nil || !cancelled.Result.OK {
		t.Fatalf("cancel: %v\n%s", err, out)
	}
	out = mustRun(t, addr, "list", "--tenant", "acme", "--state", "PROCESSED")
	if !strings.Contains(out, id) || !strings.Contains(out, "Cancelled") {
		t.Fatalf("list --state PROCESSED:\n%s", out)
	}

	out = mustRun(t, addr, "status")
	if !strings.Contains(out, "n1 (Leader)") || !strings.Contains(out, "Voter") || !strings.Contains(out, "records") {
		t.Fatalf("status:\n%s", out)
	}
	out = mustRun(t, addr, "status", "--json")
	var st struct {
		LeaderID string `json:"leader_id"`
	}
	if err := json.Unmarshal([]byte(out), &st); err != nil || st.LeaderID != "n1" {
		t.Fatalf("status --json: %v\n%s", err, out)
	}
	if out := mustRun(t, addr, "members"); !strings.Contains(out, "n1") || !strings.Contains(out, "alive") {
		t.Fatalf("members:\n%s", out)
	}
	// One voter has nobody to hand leadership to: the leader says so.
	if _, err := run(t, addr, "transfer-leadership"); err == nil || !strings.Contains(err.Error(), "HTTP ") {
		t.Fatalf("transfer-leadership alone: %v", err)
	}
	if _, err := run(t, "ftp://"+addr, "status"); err == nil || !strings.Contains(err.Error(), "scheme") {
		t.Fatalf("bad --addr: %v", err)
	}
}
