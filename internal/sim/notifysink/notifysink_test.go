package notifysink

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"testing"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func notify(t *testing.T, base, path string, params map[string]string) int {
	t.Helper()
	q := url.Values{}
	for k, v := range params {
		q.Set(k, v)
	}
	resp, err := http.Get(base + path + "?" + q.Encode())
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func getJSON(t *testing.T, u string, v any) int {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("%s: %v", u, err)
	}
	return resp.StatusCode
}

func TestRecordsNotifications(t *testing.T) {
	var mu sync.Mutex
	var seen []Notification
	sink := New(Options{Logger: quiet, OnNotification: func(n Notification) {
		mu.Lock()
		seen = append(seen, n)
		mu.Unlock()
	}})
	srv := httptest.NewServer(sink)
	defer srv.Close()

	full := map[string]string{
		"Token": "T1001", "RequestID": "r1", "TenantName": "acme", "IVRProfileName": "Application",
		"Telnum": "9884719189", "AttemptsMade": "2", "MaxAttempts": "3", "TimeToLive": "123",
		"TTLRemaining": "40", "CallUUID": "c-2", "Result": "FAILURE", "Status": "RingNoAnswer:DestinationBusy",
	}
	if code := notify(t, srv.URL, "/notify", full); code != http.StatusOK {
		t.Fatalf("answered %d", code)
	}
	if code := notify(t, srv.URL, "/any/path", map[string]string{"RequestID": "r2", "Result": "SUCCESS", "Status": "TreatmentApplied"}); code != http.StatusOK {
		t.Fatalf("answered %d", code)
	}
	if code := notify(t, srv.URL, "/notify", map[string]string{"RequestID": "r1", "Result": "FAILURE"}); code != http.StatusOK {
		t.Fatalf("answered %d", code)
	}

	var list struct {
		Notifications []Notification `json:"notifications"`
	}
	if code := getJSON(t, srv.URL+"/notifications?request_id=r1", &list); code != 200 || len(list.Notifications) != 2 {
		t.Fatalf("/notifications?request_id=r1: %d %+v", code, list)
	}
	n := list.Notifications[0]
	if n.RequestID != "r1" || n.Token != "T1001" || n.Tenant != "acme" || n.CallUUID != "c-2" || n.Result != "FAILURE" ||
		n.Status != "RingNoAnswer:DestinationBusy" || n.Seq != 1 || n.Answered != 200 || n.Path != "/notify" || n.Time.IsZero() {
		t.Fatalf("notification: %+v", n)
	}
	for k, v := range full {
		if n.Params[k] != v {
			t.Errorf("param %s = %q, want %q", k, n.Params[k], v)
		}
	}
	if list.Notifications[1].Seq != 2 || sink.Count("r1") != 2 || sink.Count("r2") != 1 || sink.Count("none") != 0 {
		t.Fatalf("counts: %+v", list.Notifications[1])
	}
	if code := getJSON(t, srv.URL+"/notifications", &list); code != 200 || len(list.Notifications) != 3 || list.Notifications[1].Path != "/any/path" {
		t.Fatalf("/notifications: %d %+v", code, list)
	}

	var st Stats
	if code := getJSON(t, srv.URL+"/notifications/stats", &st); code != 200 {
		t.Fatal(code)
	}
	if st.Total != 3 || st.RequestIDs != 2 || st.Failed != 0 || st.Duplicates != 1 || st.ByResult["FAILURE"] != 2 || st.ByResult["SUCCESS"] != 1 {
		t.Fatalf("stats: %+v", st)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(seen) != 3 || seen[1].RequestID != "r2" {
		t.Fatalf("OnNotification saw %+v", seen)
	}
	// The JSON endpoints are GET only and record nothing.
	resp, err := http.Post(srv.URL+"/notifications", "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed || sink.Stats().Total != 3 {
		t.Fatalf("POST /notifications: %d", resp.StatusCode)
	}
}

func TestFailFirst(t *testing.T) {
	sink := New(Options{Logger: quiet, FailFirst: 2})
	srv := httptest.NewServer(sink)
	defer srv.Close()
	var codes []int
	for i := range 4 {
		codes = append(codes, notify(t, srv.URL, "/", map[string]string{"RequestID": fmt.Sprint("r", i%2), "Result": "SUCCESS"}))
	}
	if fmt.Sprint(codes) != "[500 500 200 200]" {
		t.Fatalf("answers %v", codes)
	}
	if st := sink.Stats(); st.Total != 4 || st.Failed != 2 || st.Duplicates != 0 {
		t.Fatalf("stats: %+v", st)
	}
	if ns := sink.Notifications("r0"); len(ns) != 2 || ns[0].Answered != 500 || ns[1].Answered != 200 || ns[1].Seq != 2 {
		t.Fatalf("r0: %+v", ns)
	}
}

func TestFailFirstPerRequest(t *testing.T) {
	sink := New(Options{Logger: quiet, FailFirstPerRequest: 1})
	srv := httptest.NewServer(sink)
	defer srv.Close()
	var codes []int
	for _, id := range []string{"a", "b", "a", "b", "a"} {
		codes = append(codes, notify(t, srv.URL, "/", map[string]string{"RequestID": id, "Result": "FAILURE"}))
	}
	if fmt.Sprint(codes) != "[500 500 200 200 200]" {
		t.Fatalf("answers %v", codes)
	}
	if st := sink.Stats(); st.Failed != 2 || st.Duplicates != 1 {
		t.Fatalf("stats: %+v", st)
	}
}

func TestMaxKept(t *testing.T) {
	sink := New(Options{Logger: quiet, MaxKept: 2})
	srv := httptest.NewServer(sink)
	defer srv.Close()
	for i := range 5 {
		notify(t, srv.URL, "/", map[string]string{"RequestID": fmt.Sprint(i), "Result": "SUCCESS"})
	}
	ns := sink.Notifications("")
	if len(ns) != 2 || ns[0].RequestID != "3" || ns[1].RequestID != "4" {
		t.Fatalf("kept %+v", ns)
	}
	if st := sink.Stats(); st.Total != 5 || st.RequestIDs != 5 {
		t.Fatalf("stats: %+v", st)
	}
}
