//go:build e2e

package e2e

import (
	"fmt"
	"net/http"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	pb "github.com/seed-7bfc04c2/dialtone/api/dialtonev1"
)

// TestDevDialsAndNotifies runs `dialtone dev` as a new user would: it
// submits 1,000 requests over REST with the dev notification receiver as
// their notification_url, waits until every one has been notified, and
// checks what the trigger application received and what the simulated
// media platform saw (no call refused for lack of ports, no two calls of
// one request at once).
func TestDevDialsAndNotifies(t *testing.T) {
	data := t.TempDir()
	dev := start(t, "dev", "--data-dir", data, "--ring", "20ms-200ms", "--talk", "200ms-1s")
	waitReady(t, nodes["n1"], nodes["n2"], nodes["n3"])
	defer func() {
		_ = dev.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-dev.done:
		case <-time.After(60 * time.Second):
			t.Error("dev did not stop on SIGTERM")
		}
	}()
	out, err := exec.Command(binary, "pacing", "set", "--addr", nodes["n2"], "--tenant", "acme", "--caps", "200").CombinedOutput()
	if err != nil {
		t.Fatalf("pacing set: %v\n%s", err, out)
	}

	const n = 1000
	ids := map[string]string{} // id -> token
	for batch := range 2 {
		var reqs []*pb.RequestSpec
		for i := range n / 2 {
			k := batch*n/2 + i
			reqs = append(reqs, &pb.RequestSpec{
				Token: fmt.Sprintf("T%d", k), IvrProfile: []string{"Sales", "Support"}[k%2],
				Telnum: fmt.Sprintf("9%09d", k), Ani: "12345",
				NotificationUrl: "http://127.0.0.1:8089/notify", MaxAttempts: 3, TimeToLive: "30s",
			})
		}
		for i, id := range submit(t, nodes[[]string{"n1", "n3"}[batch]], "acme", reqs...) {
			ids[id] = fmt.Sprintf("T%d", batch*n/2+i)
		}
	}

	var stats struct {
		Total      int            `json:"total"`
		RequestIDs int            `json:"request_ids"`
		ByResult   map[string]int `json:"by_result"`
	}
	eventually(t, 3*time.Minute, "every request notified", func() error {
		if _, err := do(http.MethodGet, "http://127.0.0.1:8089/notifications/stats", nil, &stats); err != nil {
			return err
		}
		if stats.RequestIDs < n {
			return fmt.Errorf("%d of %d requests notified", stats.RequestIDs, n)
		}
		return nil
	})
	t.Logf("notifications: %+v", stats)
	if stats.ByResult["SUCCESS"] == 0 || stats.ByResult["FAILURE"] == 0 {
		t.Errorf("by result %v: the dev mix has both successes and failures", stats.ByResult)
	}

	var got struct {
		Notifications []struct {
			Params map[string]string `json:"params"`
		} `json:"notifications"`
	}
	if _, err := do(http.MethodGet, "http://127.0.0.1:8089/notifications", nil, &got); err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, nt := range got.Notifications {
		p := nt.Params
		id := p["RequestID"]
		tok, ok := ids[id]
		if !ok {
			t.Fatalf("notification for an unknown request: %v", p)
		}
		seen[id] = true
		for _, k := range []string{"Token", "RequestID", "TenantName", "IVRProfileName", "Telnum", "AttemptsMade", "MaxAttempts", "TimeToLive", "TTLRemaining", "CallUUID", "Result", "Status"} {
			if _, present := p[k]; !present {
				t.Fatalf("notification lacks %s: %v", k, p)
			}
		}
		if p["Token"] != tok || p["TenantName"] != "acme" || p["MaxAttempts"] != "3" || p["TimeToLive"] != "30s" {
			t.Fatalf("notification %v does not match request %s (token %s)", p, id, tok)
		}
		switch p["Result"] {
		case "SUCCESS":
			if p["CallUUID"] == "" || p["AttemptsMade"] == "0" {
				t.Fatalf("success without a call: %v", p)
			}
		case "FAILURE":
			if p["Status"] == "" {
				t.Fatalf("failure without a reason: %v", p)
			}
		default:
			t.Fatalf("Result %q", p["Result"])
		}
	}
	if len(seen) != n {
		t.Fatalf("%d distinct requests notified, want %d", len(seen), n)
	}

	var plat struct {
		Platforms []struct {
			Placed               uint64 `json:"placed"`
			Refused              uint64 `json:"refused"`
			PeakInProgress       int64  `json:"peak_in_progress"`
			ConcurrentViolations uint64 `json:"concurrent_violations"`
		} `json:"platforms"`
	}
	if _, err := do(http.MethodGet, "http://127.0.0.1:9091/stats", nil, &plat); err != nil {
		t.Fatal(err)
	}
	p := plat.Platforms[0]
	t.Logf("media platform: %+v", p)
	if p.Refused != 0 || p.ConcurrentViolations != 0 || p.PeakInProgress > 100 || p.Placed < n {
		t.Fatalf("media platform %+v: want no refusals, no concurrent calls of one request, at most 100 ports, at least %d calls", p, n)
	}
	out, err = exec.Command(binary, "status", "--addr", nodes["n3"]).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "engine running") {
		t.Fatalf("status does not show the dialer: %v\n%s", err, out)
	}

	// A tenant without media servers of its own (the SSG seed's example
	// tenant) is dialled on the shared pool.
	env := submit(t, nodes["n2"], "Environment", &pb.RequestSpec{
		Token: "env", IvrProfile: "Sales", Telnum: "9555000001", Ani: "12345",
		NotificationUrl: "http://127.0.0.1:8089/notify", MaxAttempts: 1, TimeToLive: "30s",
	})[0]
	eventually(t, time.Minute, "the Environment request dialled and notified", func() error {
		if _, err := do(http.MethodGet, "http://127.0.0.1:8089/notifications", nil, &got); err != nil {
			return err
		}
		for _, nt := range got.Notifications {
			if p := nt.Params; p["RequestID"] == env {
				if p["TenantName"] != "Environment" || p["CallUUID"] == "" {
					return fmt.Errorf("notified %v", p)
				}
				return nil
			}
		}
		return fmt.Errorf("not notified yet")
	})
	out, err = exec.Command(binary, "dialer", "--addr", nodes["n1"]).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "WAITING (BY REASON)") {
		t.Fatalf("dialer: %v\n%s", err, out)
	}
}
