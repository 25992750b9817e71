package mediasim

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/seed-7bfc04c2/dialtone/internal/telephony"
)

func getJSON(t *testing.T, url string, v any) int {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if v != nil {
		if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
			t.Fatalf("%s: %v", url, err)
		}
	}
	return resp.StatusCode
}

func TestStatsHandler(t *testing.T) {
	p := newPlatform(t, Options{Servers: 2, IDPrefix: "vxml", Rules: []Rule{{Prefix: "1", Outcome: Busy}}, Mix: map[string]int{InternalError: 1}})
	other := newPlatform(t, Options{Tenant: "globex"})
	for _, c := range []telephony.Call{
		{RequestID: "r1", CallUUID: "u1", Tenant: "acme", Telnum: "2"},
		{RequestID: "r2", CallUUID: "u2", Tenant: "acme", Telnum: "2"},
		{RequestID: "r1", CallUUID: "u3", Tenant: "acme", Telnum: "1"},
	} {
		if _, err := p.Place(context.Background(), c); err != nil {
			t.Fatal(err)
		}
	}
	srv := httptest.NewServer(StatsHandler(p, other))
	defer srv.Close()

	var stats struct {
		Platforms []Stats `json:"platforms"`
	}
	if code := getJSON(t, srv.URL+"/stats", &stats); code != 200 || len(stats.Platforms) != 2 {
		t.Fatalf("/stats: %d %+v", code, stats)
	}
	s := stats.Platforms[0]
	if s.Tenant != "acme" || s.Placed != 3 || s.ByOutcome[Busy] != 1 || s.ByOutcome[InternalError] != 2 ||
		len(s.Servers) != 2 || s.Servers[1].ID != "vxml-2" || s.Servers[1].TotalPorts != 50 {
		t.Fatalf("/stats acme: %+v", s)
	}
	if code := getJSON(t, srv.URL+"/stats?tenant=globex", &stats); code != 200 || len(stats.Platforms) != 1 || stats.Platforms[0].Tenant != "globex" {
		t.Fatalf("/stats?tenant=globex: %d %+v", code, stats)
	}
	if code := getJSON(t, srv.URL+"/stats?tenant=nobody", nil); code != http.StatusNotFound {
		t.Fatalf("unknown tenant: %d", code)
	}

	var calls struct {
		Calls []map[string]any `json:"calls"`
	}
	if code := getJSON(t, srv.URL+"/calls?request_id=r1", &calls); code != 200 || len(calls.Calls) != 2 {
		t.Fatalf("/calls?request_id=r1: %d %+v", code, calls)
	}
	c := calls.Calls[1]
	if c["call_uuid"] != "u3" || c["outcome"] != Busy || c["reason"] != "DestinationBusy" || c["class"] != "OUTCOME_BUSY" ||
		c["state"] != StateEnded || c["end"] == nil {
		t.Fatalf("call: %v", c)
	}
	if code := getJSON(t, srv.URL+"/calls?limit=1", &calls); code != 200 || len(calls.Calls) != 1 || calls.Calls[0]["call_uuid"] != "u3" {
		t.Fatalf("/calls?limit=1: %d %+v", code, calls)
	}
	if code := getJSON(t, srv.URL+"/calls?request_id=none", &calls); code != 200 || calls.Calls == nil || len(calls.Calls) != 0 {
		t.Fatalf("/calls?request_id=none: %d %+v", code, calls)
	}
	var starts struct {
		Platforms []CallStarts `json:"platforms"`
	}
	if code := getJSON(t, srv.URL+"/starts?tenant=acme", &starts); code != 200 || len(starts.Platforms) != 1 {
		t.Fatalf("/starts: %d %+v", code, starts)
	}
	st := starts.Platforms[0]
	all := p.Calls()
	if st.Tenant != "acme" || len(st.Placed) != 3 || len(st.Refused) != 0 ||
		st.Placed[0] != all[0].Start.UnixNano() || st.Placed[2] != all[2].Start.UnixNano() {
		t.Fatalf("/starts: %+v, calls %+v", st, all)
	}
	if code := getJSON(t, srv.URL+"/calls?limit=x", nil); code != http.StatusBadRequest {
		t.Fatalf("bad limit: %d", code)
	}
}
