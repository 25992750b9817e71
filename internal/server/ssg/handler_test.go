package ssg

import (
	"context"
	"encoding/xml"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/seed-7bfc04c2/dialtone/internal/fsm/fsmpb"
)

var fakeNow = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func fakeTTL(r *fsmpb.Request) time.Duration { return time.Duration(r.TtlMs) * time.Millisecond }

type respElem struct {
	Attrs []xml.Attr `xml:",any,attr"`
}

func (e respElem) get(name string) string {
	for _, a := range e.Attrs {
		if a.Name.Local == name {
			return a.Value
		}
	}
	return ""
}

// String renders the element as name=value pairs, in order.
func (e respElem) String() string {
	var parts []string
	for _, a := range e.Attrs {
		parts = append(parts, a.Name.Local+"="+a.Value)
	}
	return strings.Join(parts, " ")
}

func decodeResponse(t *testing.T, body string) []respElem {
	t.Helper()
	var doc struct {
		XMLName xml.Name   `xml:"SSGResponse"`
		Elems   []respElem `xml:"ResponseElement"`
	}
	if err := xml.Unmarshal([]byte(body), &doc); err != nil {
		t.Fatalf("response is not an SSGResponse: %v\n%s", err, body)
	}
	return doc.Elems
}

type testServer struct {
	t    *testing.T
	fake *fakeService
	h    http.Handler
}

func newTestServer(t *testing.T, opts Options) *testServer {
	fake := newFake()
	opts.Now = func() time.Time { return fakeNow }
	opts.Logger = slog.New(slog.DiscardHandler)
	return &testServer{t: t, fake: fake, h: NewHandler(fake, opts)}
}

func (s *testServer) do(method, target, contentType, body string) (*http.Response, []respElem) {
	s.t.Helper()
	req := httptest.NewRequest(method, target, strings.NewReader(body))
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	w := httptest.NewRecorder()
	s.h.ServeHTTP(w, req)
	resp := w.Result()
	b, _ := io.ReadAll(resp.Body)
	if ct := resp.Header.Get("Content-Type"); ct != "text/xml" {
		s.t.Fatalf("Content-Type %q", ct)
	}
	return resp, decodeResponse(s.t, string(b))
}

func (s *testServer) post(body string) []respElem {
	s.t.Helper()
	resp, elems := s.do("POST", "/SSG?TenantName=acme", "text/xml", body)
	if resp.StatusCode != 200 {
		s.t.Fatalf("status %d: %v", resp.StatusCode, elems)
	}
	return elems
}

// check compares elements with wants of the form "ResponseType=SUCCESS
// Token=T1 ...": every listed attribute must match.
func check(t *testing.T, got []respElem, want ...string) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%d elements, want %d: %v", len(got), len(want), got)
	}
	for i, w := range want {
		for _, kv := range strings.Split(w, "|") {
			k, v, _ := strings.Cut(kv, "=")
			if g := got[i].get(k); g != v && !(strings.HasSuffix(v, "*") && strings.HasPrefix(g, strings.TrimSuffix(v, "*"))) {
				t.Fatalf("element %d: %s = %q, want %q\n%v", i, k, g, v, got[i])
			}
		}
	}
}

func (s *testServer) precreate(tokens ...string) {
	var recs []*fsmpb.Request
	for _, tok := range tokens {
		recs = append(recs, &fsmpb.Request{Token: tok, IvrProfile: "P", Telnum: "1", NotificationUrl: "http://h/", MaxAttempts: 2, TtlMs: 3600_000})
	}
	if _, _, err := s.fake.Create(context.Background(), "acme", recs); err != nil {
		s.t.Fatal(err)
	}
	s.fake.calls = nil
}

func TestPostMixedRunsInDocumentOrder(t *testing.T) {
	s := newTestServer(t, Options{})
	s.precreate("P1", "P2") // id-1, id-2 at index 1
	got := s.post(wrap(
		`<QueryRequest RequestID="id-1"/>`,
		createXML("T1"),
		`<CancelRequest RequestID="id-1"/>`,
		`<CancelRequest RequestID="bad!id"/>`,
		`<QueryRequest RequestID="id-1"/>`,
		createXML("T2"),
		`<QueryRequest RequestID="id-3"/>`,
		`<QueryRequest RequestID="id-9"/>`,
	))
	check(t, got,
		"ResponseType=SUCCESS|RequestID=id-1|Token=P1|Status=Waiting to be processed|Result=",
		"ResponseType=SUCCESS|Token=T1|RequestID=id-3",
		"ResponseType=SUCCESS|RequestID=id-1|Token=",
		"ResponseType=FAILURE|RequestID=bad!id|ReasonCode=106|Reason=Invalid RequestID",
		"ResponseType=SUCCESS|RequestID=id-1|Status=Cancelled|Result=CANCELLED",
		"ResponseType=SUCCESS|Token=T2|RequestID=id-4",
		"ResponseType=SUCCESS|RequestID=id-3|Token=T1|TenantName=acme|AttemptsMade=0|MaxAttempts=2|TimeToLive=123s|TTLRemaining=123s",
		"ResponseType=FAILURE|RequestID=id-9|ReasonCode=404|Reason=RequestID not found in the Database",
	)
	// All creates in one call first; each query run behind a linearizable
	// barrier covering the writes before it.
	want := []string{"create 2", "barrier linearizable 2", "cancel [id-1]", "barrier linearizable 3"}
	if strings.Join(s.fake.calls, ",") != strings.Join(want, ",") {
		t.Fatalf("calls %q, want %q", s.fake.calls, want)
	}
}

func TestPostInvalidStoresNothing(t *testing.T) {
	s := newTestServer(t, Options{})
	s.precreate("P1")
	for _, body := range []string{
		wrap(`<QueryRequest RequestID="id-1"/>`, createXML("T1"), createXML("T2", "Telnum=98x")),
		wrap(`<CancelRequest RequestID="id-1"/>`, createXML("T1"), `<Bogus/>`),
	} {
		got := s.post(body)
		check(t, got, "ResponseType=FAILURE|Token=|RequestID=|ReasonCode=10*")
	}
	if len(s.fake.calls) != 0 {
		t.Fatalf("service called: %v", s.fake.calls)
	}
}

func TestPostCapacityMixesAndStillRunsQueriesAndCancels(t *testing.T) {
	s := newTestServer(t, Options{})
	s.fake.maxRecords = 2
	s.precreate("P1") // id-1
	got := s.post(wrap(createXML("T1"), createXML("T2"), createXML("T3"),
		`<QueryRequest RequestID="id-2"/>`, `<CancelRequest RequestID="id-1"/>`))
	check(t, got,
		"ResponseType=SUCCESS|Token=T1|RequestID=id-2",
		"ResponseType=FAILURE|Token=T2|RequestID=|ReasonCode=120|Reason=DB Insertion failed: maximum of 2 stored records reached",
		"ResponseType=FAILURE|Token=T3|ReasonCode=120",
		"ResponseType=SUCCESS|RequestID=id-2|Token=T1",
		"ResponseType=SUCCESS|RequestID=id-1",
	)
}

func TestPostClusterErrors(t *testing.T) {
	s := newTestServer(t, Options{})
	s.precreate("P1")
	s.fake.createErr = errNoLeader
	s.fake.cancelErr = status.Error(codes.DeadlineExceeded, "write not confirmed before the deadline")
	got := s.post(wrap(createXML("T1"), createXML("T2"), `<QueryRequest RequestID="id-1"/>`, `<CancelRequest RequestID="id-1"/>`))
	check(t, got,
		"ResponseType=FAILURE|Token=T1|ReasonCode=503|Reason=cluster unavailable: no cluster leader",
		"ResponseType=FAILURE|Token=T2|ReasonCode=503",
		"ResponseType=SUCCESS|RequestID=id-1",
		"ResponseType=FAILURE|RequestID=id-1|ReasonCode=504",
	)
	s.fake.barrierErr = status.Error(codes.Unavailable, "consistency: linearizable read needs a leader")
	got = s.post(wrap(`<QueryRequest RequestID="id-1"/>`, `<QueryRequest RequestID="x!"/>`))
	check(t, got, "ResponseType=FAILURE|RequestID=id-1|ReasonCode=503|Reason=consistency: linearizable read needs a leader", "ReasonCode=106")
	s.fake.createErr = status.Error(codes.Internal, "boom")
	check(t, s.post(createXML("T")), "ResponseType=FAILURE|Token=T|ReasonCode=500|Reason=boom")
}

func TestCancelAnswers(t *testing.T) {
	s := newTestServer(t, Options{})
	s.precreate("P1", "P2", "P3", "P4")
	s.fake.recs["id-1"].State = fsmpb.State_IN_PROGRESS
	s.fake.recs["id-2"].State, s.fake.recs["id-2"].Result = fsmpb.State_PROCESSED, fsmpb.Result_SUCCESS
	s.fake.recs["id-3"].State, s.fake.recs["id-3"].Result = fsmpb.State_PROCESSED, fsmpb.Result_CANCELLED
	s.fake.recs["id-4"].Tenant = "globex"
	got := s.post(wrap(`<CancelRequest RequestID="id-1"/>`, `<CancelRequest RequestID="id-2"/>`,
		`<CancelRequest RequestID="id-3"/>`, `<CancelRequest RequestID="id-4"/>`))
	check(t, got,
		"ResponseType=FAILURE|RequestID=id-1|ReasonCode=130",
		"ResponseType=FAILURE|RequestID=id-2|ReasonCode=131",
		"ResponseType=SUCCESS|RequestID=id-3",
		"ResponseType=FAILURE|RequestID=id-4|ReasonCode=404|Reason=RequestID not found in the Database",
	)
	if s.fake.recs["id-1"].State != fsmpb.State_IN_PROGRESS {
		t.Fatal("in-progress request changed")
	}
}

func TestQueryElementAttributes(t *testing.T) {
	r := &fsmpb.Request{Id: "id-7", Tenant: "acme", Token: "T1001", IvrProfile: "Application", Telnum: "11011", Ani: "12345",
		NotificationUrl: "http://182.24.129.82/Dir/Response.asp", AttemptsMade: 4, MaxAttempts: 7, TtlMs: 12000_000,
		State: fsmpb.State_PENDING, ExpiresUnixMs: fakeNow.Add(3477*time.Second + 600*time.Millisecond).UnixMilli(),
		LastCallUuid: "8GQE8C05"}
	e := queryElement(r, fakeNow)
	got := string(Marshal([]ResponseElement{e}))
	want := `<ResponseElement ResponseType="SUCCESS" Token="T1001" RequestID="id-7" TenantName="acme" IVRProfileName="Application" Telnum="11011" Ani="12345" NotificationURL="http://182.24.129.82/Dir/Response.asp" AttemptsMade="4" MaxAttempts="7" TimeToLive="12000s" TTLRemaining="3477s" Status="Waiting for retry" CallUUID="8GQE8C05"/>`
	if !strings.Contains(got, want) {
		t.Fatalf("got\n%s\nwant\n%s", got, want)
	}
	r.State, r.Result, r.ResultReason = fsmpb.State_PROCESSED, fsmpb.Result_FAILURE, "MaxAttempts Exceeded"
	e = queryElement(r, fakeNow)
	if e.TTLRemaining != "0s" || e.Result != "FAILURE" || e.Status != "Processed: FAILURE (MaxAttempts Exceeded)" {
		t.Fatalf("processed: %+v", e)
	}
}

func TestMarshalEscapesAndSanitizes(t *testing.T) {
	got := string(Marshal([]ResponseElement{{ResponseType: "FAILURE", RequestID: "a\"<&>\x01\xff", Reason: "x\ny"}}))
	if !strings.Contains(got, `RequestID="a&#34;&lt;&amp;&gt;`+"\uFFFD\uFFFD"+`" Reason="x&#xA;y"`) {
		t.Fatalf("got %s", got)
	}
	if !strings.HasPrefix(got, `<?xml version="1.0" encoding="UTF-8"?>`+"\n"+`<SSGResponse xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">`) {
		t.Fatalf("got %s", got)
	}
	decodeResponse(t, got)
}

func TestHTTPSurface(t *testing.T) {
	s := newTestServer(t, Options{MaxBulk: 3, MaxBodyBytes: 1024})
	s.precreate("P1")
	cases := []struct {
		name, method, target, ct, body string
		code                           int
		want                           string
	}{
		{"put", "PUT", "/SSG?TenantName=acme", "text/xml", createXML("T"), 405, "ReasonCode=405"},
		{"head-like patch", "PATCH", "/SSG?TenantName=acme", "", "", 405, "ReasonCode=405"},
		{"json", "POST", "/SSG?TenantName=acme", "application/json", createXML("T"), 415, "ReasonCode=415|Reason=Content-Type \"application/json\"*"},
		{"no content type", "POST", "/SSG?TenantName=acme", "", createXML("T"), 415, "ReasonCode=415"},
		{"latin-1 charset", "POST", "/SSG?TenantName=acme", "text/xml; charset=ISO-8859-1", createXML("T"), 415, "ReasonCode=415|Reason=Content-Type charset*"},
		{"charset utf-8", "POST", "/SSG?TenantName=acme", "text/xml; charset=UTF-8", createXML("T"), 200, "ResponseType=SUCCESS|Token=T"},
		{"application/xml", "POST", "/SSG?TenantName=acme", "application/xml", createXML("T"), 200, "ResponseType=SUCCESS"},
		{"too large", "POST", "/SSG?TenantName=acme", "text/xml", wrap(createXML(strings.Repeat("t", 1100))), 413, "ReasonCode=413|Reason=body: exceeds the limit of 1024 bytes"},
		{"too many", "POST", "/SSG?TenantName=acme", "text/xml", wrap(strings.Repeat(`<QueryRequest RequestID="a"/>`, 4)), 200, "ReasonCode=107"},
		{"no tenant", "POST", "/SSG", "text/xml", createXML("T"), 200, "ReasonCode=105|Reason=TenantName: mandatory query parameter is missing"},
		{"empty tenant", "GET", "/SSG?TenantName=&RequestID=id-1", "", "", 200, "ReasonCode=105|Reason=TenantName: \"\" must be*"},
		{"bad tenant", "POST", "/SSG?TenantName=a%20b", "text/xml", createXML("T"), 200, "ReasonCode=105"},
		{"two tenants", "GET", "/SSG?TenantName=acme&TenantName=globex&RequestID=id-1", "", "", 200, "ReasonCode=105|Reason=TenantName: query parameter given 2 times"},
		{"bad query string", "GET", "/SSG?TenantName=acme&RequestID=%zz", "", "", 200, "ReasonCode=102"},
		{"get", "GET", "/SSG?TenantName=acme&RequestID=id-1", "", "", 200, "ResponseType=SUCCESS|RequestID=id-1|Token=P1"},
		{"get other tenant", "GET", "/SSG?TenantName=globex&RequestID=id-1", "", "", 200, "ResponseType=FAILURE|RequestID=id-1|ReasonCode=404"},
		{"get no id", "GET", "/SSG?TenantName=acme", "", "", 200, "ReasonCode=103|Reason=RequestID: mandatory query parameter is missing"},
		{"get bad id", "GET", "/SSG?TenantName=acme&RequestID=a/b", "", "", 200, "ResponseType=FAILURE|RequestID=a/b|ReasonCode=106"},
		{"get two ids", "GET", "/SSG?TenantName=acme&RequestID=a&RequestID=b", "", "", 200, "ReasonCode=102"},
		{"delete bad id", "DELETE", "/SSG?TenantName=acme&RequestID=", "", "", 200, "ReasonCode=106"},
		{"delete", "DELETE", "/SSG?TenantName=acme&RequestID=id-1", "", "", 200, "ResponseType=SUCCESS|RequestID=id-1"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			resp, got := s.do(c.method, c.target, c.ct, c.body)
			if resp.StatusCode != c.code {
				t.Fatalf("status %d, want %d: %v", resp.StatusCode, c.code, got)
			}
			check(t, got, c.want)
			if c.code == 405 && resp.Header.Get("Allow") != "GET, POST, DELETE" {
				t.Fatalf("Allow %q", resp.Header.Get("Allow"))
			}
		})
	}
}
