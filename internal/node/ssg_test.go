package node_test

import (
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/seed-7bfc04c2/dialtone/internal/config"
	"github.com/seed-7bfc04c2/dialtone/internal/fsm/fsmpb"
	"github.com/seed-7bfc04c2/dialtone/internal/node"
)

// ssgElem is one ResponseElement's attributes.
type ssgElem map[string]string

func (e ssgElem) String() string {
	b, _ := json.Marshal(map[string]string(e))
	return string(b)
}

// ssgDo sends one request to /SSG. A nil body reader sends no body; chunked
// hides the length so that the node cannot refuse it before reading.
func ssgDo(t *testing.T, method, url, contentType, body string, chunked bool) (int, http.Header, []ssgElem, string) {
	t.Helper()
	var r io.Reader = strings.NewReader(body)
	if chunked {
		r = io.MultiReader(r) // unknown length: sent chunked
	}
	req, err := http.NewRequest(method, url, r)
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.Header.Get("Content-Type") != "text/xml" {
		return resp.StatusCode, resp.Header, nil, string(b)
	}
	var doc struct {
		XMLName xml.Name `xml:"SSGResponse"`
		Elems   []struct {
			Attrs []xml.Attr `xml:",any,attr"`
		} `xml:"ResponseElement"`
	}
	if err := xml.Unmarshal(b, &doc); err != nil {
		t.Fatalf("%s %s: not an SSGResponse: %v\n%s", method, url, err, b)
	}
	var out []ssgElem
	for _, e := range doc.Elems {
		m := ssgElem{}
		for _, a := range e.Attrs {
			m[a.Name.Local] = a.Value
		}
		out = append(out, m)
	}
	return resp.StatusCode, resp.Header, out, string(b)
}

// ssgPost posts body as text/xml and expects 200.
func ssgPost(t *testing.T, url, body string) []ssgElem {
	t.Helper()
	code, _, elems, raw := ssgDo(t, "POST", url, "text/xml", body, false)
	if code != 200 {
		t.Fatalf("POST %s: %d %s", url, code, raw)
	}
	return elems
}

// ssgCheck compares elements with wants of the form "Key=value|Key=value";
// "v*" matches a prefix and "*v*" a substring.
func ssgCheck(t *testing.T, got []ssgElem, want ...string) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%d elements, want %d: %v", len(got), len(want), got)
	}
	for i, w := range want {
		for _, kv := range strings.Split(w, "|") {
			k, v, _ := strings.Cut(kv, "=")
			g := got[i][k]
			p, prefix := strings.CutSuffix(v, "*")
			sub, contains := strings.CutPrefix(p, "*")
			if g == v || contains && prefix && strings.Contains(g, sub) || !contains && prefix && strings.HasPrefix(g, p) {
				continue
			}
			t.Fatalf("element %d: %s = %q, want %q\n%v", i, k, g, v, got[i])
		}
	}
}

// ssgCreate is a valid CreateRequest with attributes replaced ("Name=v"),
// removed ("Name=-") or child elements added ("<...>").
func ssgCreate(token string, edits ...string) string {
	attrs := [][2]string{{"Token", token}, {"MaxAttempts", "2"}, {"TimeToLive", "3600s"}, {"IVRProfileName", "Application"},
		{"Telnum", "9884719189"}, {"NotificationURL", "http://127.0.0.1:9/result"}}
	children := ""
	for _, e := range edits {
		if strings.HasPrefix(e, "<") {
			children += e
			continue
		}
		name, value, _ := strings.Cut(e, "=")
		found := false
		for i := range attrs {
			if attrs[i][0] == name {
				attrs[i][1], found = value, true
			}
		}
		if !found {
			attrs = append(attrs, [2]string{name, value})
		}
	}
	var b strings.Builder
	b.WriteString("<CreateRequest")
	for _, a := range attrs {
		if a[1] != "-" {
			b.WriteString(" " + a[0] + `="` + a[1] + `"`)
		}
	}
	b.WriteString(">" + children + "</CreateRequest>")
	return b.String()
}

func ssgDoc(inner ...string) string {
	return `<SSGRequest xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">` + strings.Join(inner, "\n") + `</SSGRequest>`
}

func ssgSeed(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile("../server/ssg/testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// restCreate stores one request through REST and returns its id.
func restCreate(t *testing.T, base, tenant, token string) string {
	t.Helper()
	code, body := httpDo(t, "POST", base+"/v1/tenants/"+tenant+"/requests", "application/json", []byte(oneOf(withField("token", `"`+token+`"`))))
	if code != 200 {
		t.Fatalf("REST create: %d %s", code, body)
	}
	r := decode[struct {
		Results []struct {
			ID string `json:"id"`
		} `json:"results"`
	}](t, body)
	return r.Results[0].ID
}

// TestSSGBadInput sends a catalogue of malformed SSG requests: each answers
// a clear failure naming the element and attribute, nothing is stored and
// the node keeps serving.
func TestSSGBadInput(t *testing.T) {
	tc := newTestCluster(t, 1, func(c *config.Config) {
		c.Limits.MaxBulk = 10
		c.Limits.MaxBodyBytes = 64 << 10
	})
	n1 := tc.Node("n1")
	base := "http://" + n1.HTTPAddr()
	ssgURL := base + "/SSG?TenantName=acme"
	foreign := restCreate(t, base, "globex", "G1") // the only record
	unknown := "01a206c4-46ef-7bf7-a1d6-863aee3f713a"
	huge := ssgDoc(ssgCreate(strings.Repeat("t", 70<<10)))
	elevenQueries := ssgDoc(strings.Repeat(`<QueryRequest RequestID="`+unknown+`"/>`, 11))

	cases := []struct {
		name    string
		method  string // default POST
		url     string // default ssgURL
		ct      string // default text/xml; "-" for none
		body    string
		chunked bool
		status  int    // default 200
		want    string // checked against the single ResponseElement
	}{
		// Not well-formed.
		{name: "broken xml", body: `<SSGRequest><CreateRequest Token="T"`, want: "ReasonCode=101|Reason=body: XML syntax error on line 1*"},
		{name: "not xml", body: `hello`, want: "ReasonCode=101|Reason=body: text outside the root element"},
		{name: "json in text/xml", body: `{"requests":[]}`, want: "ReasonCode=101"},
		{name: "empty body", body: ``, want: "ReasonCode=101|Reason=body: empty*"},
		{name: "mismatched end tag", body: `<SSGRequest>` + ssgCreate("T") + `</SSGRequests>`, want: "ReasonCode=101|Reason=*closed by*"},
		{name: "two roots", body: ssgDoc(ssgCreate("T")) + ssgDoc(ssgCreate("T")), want: "ReasonCode=101|Reason=body: content after the root element"},
		{name: "trailing garbage", body: ssgDoc(ssgCreate("T")) + "garbage", want: "ReasonCode=101|Reason=body: text outside the root element"},
		{name: "huge whitespace then junk", body: ssgDoc(ssgCreate("T")) + strings.Repeat(" ", 60<<10) + "x", want: "ReasonCode=101|Reason=body: text outside the root element"},
		{name: "invalid utf-8", body: ssgDoc(ssgCreate("T\xff\xfe")), want: "ReasonCode=101|Reason=body: invalid UTF-8 at byte*"},
		{name: "control character reference", body: ssgDoc(ssgCreate("T&#1;")), want: "ReasonCode=101|Reason=*illegal character code U+0001*"},
		{name: "undeclared entity", body: ssgDoc(ssgCreate("&xxe;")), want: "ReasonCode=101|Reason=*invalid character entity &xxe;*"},
		{name: "latin-1 declaration", body: `<?xml version="1.0" encoding="ISO-8859-1"?>` + ssgDoc(ssgCreate("T")), want: "ReasonCode=101"},
		// Markup declarations.
		{name: "billion laughs", body: `<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;"><!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">]>` + ssgDoc(ssgCreate("&lol2;")), want: "ReasonCode=109|Reason=*<!DOCTYPE*"},
		{name: "external entity", body: `<!DOCTYPE SSGRequest [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>` + ssgDoc(ssgCreate("&xxe;")), want: "ReasonCode=109"},
		{name: "plain doctype", body: `<!DOCTYPE SSGRequest SYSTEM "ssg.dtd">` + ssgDoc(ssgCreate("T")), want: "ReasonCode=109"},
		// Schema.
		{name: "wrong root", body: `<SSGResponse/>`, want: "ReasonCode=102|Reason=root element <SSGResponse>*"},
		{name: "no request elements", body: ssgDoc(), want: "ReasonCode=108|Reason=SSGRequest: no CreateRequest*"},
		{name: "unknown element", body: ssgDoc(ssgCreate("T"), `<DeleteRequest RequestID="1"/>`), want: "ReasonCode=102|Reason=SSGRequest/DeleteRequest: unknown element*"},
		{name: "unknown child element", body: ssgDoc(ssgCreate("T", "<Priority/>")), want: "ReasonCode=102|Reason=CreateRequest[1]/Priority: unknown element*"},
		{name: "unknown attribute", body: ssgDoc(ssgCreate("T"), ssgCreate("T", "Colour=red")), want: "ReasonCode=102|Reason=CreateRequest[2] Colour: unknown attribute"},
		{name: "unknown root attribute", body: `<SSGRequest TenantName="acme">` + ssgCreate("T") + `</SSGRequest>`, want: "ReasonCode=102|Reason=SSGRequest TenantName: unknown attribute"},
		{name: "unknown cpd attribute", body: ssgDoc(ssgCreate("T", `<cpd amd="on"/>`)), want: "ReasonCode=102|Reason=CreateRequest[1]/cpd amd: unknown attribute"},
		{name: "text in CreateRequest", body: ssgDoc(strings.Replace(ssgCreate("T"), "></", ">call me</", 1)), want: "ReasonCode=102|Reason=CreateRequest[1]: unexpected text*"},
		{name: "duplicate attribute", body: ssgDoc(`<CreateRequest Token="a" Token="b" MaxAttempts="1"/>`), want: "ReasonCode=102|Reason=CreateRequest[1] Token: duplicate attribute"},
		{name: "duplicate cpd", body: ssgDoc(ssgCreate("T", `<cpd/>`, `<cpd/>`)), want: "ReasonCode=102|Reason=CreateRequest[1]/cpd: duplicate element"},
		{name: "missing Token", body: ssgDoc(ssgCreate("T"), ssgCreate("-")), want: "ReasonCode=103|Reason=CreateRequest[2] Token: mandatory attribute is missing"},
		{name: "missing IVRProfileName", body: ssgDoc(ssgCreate("T", "IVRProfileName=-")), want: "ReasonCode=103|Reason=CreateRequest[1] IVRProfileName: mandatory attribute is missing"},
		{name: "missing Telnum", body: ssgDoc(ssgCreate("T", "Telnum=-")), want: "ReasonCode=103|Reason=CreateRequest[1] Telnum: mandatory attribute is missing"},
		{name: "missing NotificationURL", body: ssgDoc(ssgCreate("T", "NotificationURL=-")), want: "ReasonCode=103|Reason=CreateRequest[1] NotificationURL: mandatory attribute is missing"},
		{name: "missing MaxAttempts", body: ssgDoc(ssgCreate("T", "MaxAttempts=-")), want: "ReasonCode=103|Reason=CreateRequest[1] MaxAttempts: mandatory attribute is missing"},
		{name: "missing TimeToLive", body: ssgDoc(ssgCreate("T", "TimeToLive=-")), want: "ReasonCode=103|Reason=CreateRequest[1] TimeToLive: mandatory attribute is missing"},
		{name: "missing RequestID", body: ssgDoc(ssgCreate("T"), `<QueryRequest/>`), want: "ReasonCode=103|Reason=QueryRequest[1] RequestID: mandatory attribute is missing"},
		{name: "missing KeyValue Key", body: ssgDoc(ssgCreate("T", `<CustomData><KeyValue Value="v"/></CustomData>`)), want: "ReasonCode=103|Reason=CreateRequest[1]/CustomData/KeyValue[1] Key: mandatory attribute is missing"},
		// Numbers and booleans.
		{name: "letters in MaxAttempts", body: ssgDoc(ssgCreate("T", "MaxAttempts=two")), want: `ReasonCode=102|Reason=CreateRequest[1] MaxAttempts: "two" is not a non-negative whole number`},
		{name: "fractional MaxAttempts", body: ssgDoc(ssgCreate("T", "MaxAttempts=1.5")), want: `ReasonCode=102|Reason=CreateRequest[1] MaxAttempts: "1.5"*`},
		{name: "negative MaxAttempts", body: ssgDoc(ssgCreate("T", "MaxAttempts=-1")), want: `ReasonCode=102|Reason=CreateRequest[1] MaxAttempts: "-1" is not a non-negative whole number`},
		{name: "huge MaxAttempts", body: ssgDoc(ssgCreate("T", "MaxAttempts=99999999999")), want: `ReasonCode=102|Reason=CreateRequest[1] MaxAttempts: "99999999999" is above the maximum 100`},
		{name: "MaxAttempts above limit", body: ssgDoc(ssgCreate("T", "MaxAttempts=1000")), want: "ReasonCode=104|Reason=CreateRequest[1] MaxAttempts: 1000 is above the maximum 100"},
		{name: "zero MaxAttempts", body: ssgDoc(ssgCreate("T", "MaxAttempts=0")), want: "ReasonCode=104|Reason=CreateRequest[1] MaxAttempts: is required and must be 1-100"},
		{name: "bad cpd boolean", body: ssgDoc(ssgCreate("T", `<cpd record="yes"/>`)), want: `ReasonCode=102|Reason=CreateRequest[1]/cpd record: "yes" must be true, false, 1 or 0`},
		// Values.
		{name: "TimeToLive without unit", body: ssgDoc(ssgCreate("T", "TimeToLive=123")), want: `ReasonCode=104|Reason=CreateRequest[1] TimeToLive: "123" is not a duration with a unit*`},
		{name: "TimeToLive in days", body: ssgDoc(ssgCreate("T", "TimeToLive=2d")), want: `ReasonCode=104|Reason=CreateRequest[1] TimeToLive: "2d" is not a duration*`},
		{name: "TimeToLive bad unit", body: ssgDoc(ssgCreate("T", "TimeToLive=5x")), want: "ReasonCode=104|Reason=CreateRequest[1] TimeToLive:*"},
		{name: "TimeToLive zero", body: ssgDoc(ssgCreate("T", "TimeToLive=0s")), want: "ReasonCode=104|Reason=CreateRequest[1] TimeToLive: 0s is outside*"},
		{name: "TimeToLive too long", body: ssgDoc(ssgCreate("T", "TimeToLive=9999999s")), want: "ReasonCode=104|Reason=CreateRequest[1] TimeToLive: 9999999s is outside*"},
		{name: "cpd rnatimeout without unit", body: ssgDoc(ssgCreate("T", `<cpd rnatimeout="60"/>`)), want: "ReasonCode=104|Reason=CreateRequest[1]/cpd rnatimeout:*"},
		{name: "ftp NotificationURL", body: ssgDoc(ssgCreate("T", "NotificationURL=ftp://h/x")), want: `ReasonCode=104|Reason=CreateRequest[1] NotificationURL: scheme "ftp" is not http or https`},
		{name: "javascript NotificationURL", body: ssgDoc(ssgCreate("T", "NotificationURL=javascript:alert(1)")), want: "ReasonCode=104|Reason=CreateRequest[1] NotificationURL:*"},
		{name: "relative NotificationURL", body: ssgDoc(ssgCreate("T", "NotificationURL=/DIR/OutURL.xml")), want: "ReasonCode=104|Reason=CreateRequest[1] NotificationURL:*"},
		{name: "NotificationURL with credentials", body: ssgDoc(ssgCreate("T", "NotificationURL=http://u:p@h/x")), want: "ReasonCode=104|Reason=CreateRequest[1] NotificationURL: must not carry credentials"},
		{name: "letters in Telnum", body: ssgDoc(ssgCreate("T"), ssgCreate("T", "Telnum=98x")), want: `ReasonCode=104|Reason=CreateRequest[2] Telnum: "98x" must be 1-32 digits with an optional leading '+'`},
		{name: "letters in Ani", body: ssgDoc(ssgCreate("T", "Ani=anonymous")), want: `ReasonCode=104|Reason=CreateRequest[1] Ani: "anonymous" must be*`},
		{name: "empty Token", body: ssgDoc(ssgCreate("")), want: "ReasonCode=104|Reason=CreateRequest[1] Token: is required"},
		{name: "empty KeyValue Key", body: ssgDoc(ssgCreate("T", `<CustomData><KeyValue Key="" Value="v"/></CustomData>`)), want: "ReasonCode=104|Reason=CreateRequest[1]/CustomData/KeyValue[1] Key: must be 1-128 printable characters"},
		{name: "too much CustomData", body: ssgDoc(ssgCreate("T", "<CustomData>"+strings.Repeat(`<KeyValue Key="k"/>`, 65)+"</CustomData>")), want: "ReasonCode=104|Reason=CreateRequest[1]/CustomData: has 65 entries, at most 64 allowed"},
		// Sizes.
		{name: "too many elements", body: elevenQueries, want: "ReasonCode=107|Reason=SSGRequest: more than 10 request elements in one POST"},
		{name: "oversized body", body: huge, status: 413, want: "ReasonCode=413|Reason=body: exceeds the limit of 65536 bytes"},
		{name: "oversized chunked body", body: huge, chunked: true, status: 413, want: "ReasonCode=413|Reason=body: exceeds the limit of 65536 bytes"},
		// HTTP.
		{name: "json content type", ct: "application/json", body: ssgDoc(ssgCreate("T")), status: 415, want: `ReasonCode=415|Reason=Content-Type "application/json": must be text/xml or application/xml`},
		{name: "text/plain", ct: "text/plain", body: ssgDoc(ssgCreate("T")), status: 415, want: "ReasonCode=415"},
		{name: "no content type", ct: "-", body: ssgDoc(ssgCreate("T")), status: 415, want: "ReasonCode=415"},
		{name: "latin-1 charset", ct: "text/xml; charset=iso-8859-1", body: ssgDoc(ssgCreate("T")), status: 415, want: "ReasonCode=415"},
		{name: "PUT", method: "PUT", body: ssgDoc(ssgCreate("T")), status: 405, want: "ReasonCode=405"},
		{name: "missing TenantName", url: base + "/SSG", body: ssgDoc(ssgCreate("T")), want: "ReasonCode=105|Reason=TenantName: mandatory query parameter is missing"},
		{name: "invalid TenantName", url: base + "/SSG?TenantName=ac%20me", body: ssgDoc(ssgCreate("T")), want: `ReasonCode=105|Reason=TenantName: "ac me" must be*`},
		{name: "TenantName twice", url: ssgURL + "&TenantName=globex", body: ssgDoc(ssgCreate("T")), want: "ReasonCode=105"},
		{name: "GET without RequestID", method: "GET", want: "ReasonCode=103|Reason=RequestID: mandatory query parameter is missing"},
		{name: "GET malformed RequestID", method: "GET", url: ssgURL + "&RequestID=bad!id", want: "ResponseType=FAILURE|RequestID=bad!id|ReasonCode=106|Reason=Invalid RequestID"},
		{name: "GET unknown RequestID", method: "GET", url: ssgURL + "&RequestID=" + unknown, want: "RequestID=" + unknown + "|ReasonCode=404|Reason=RequestID not found in the Database"},
		{name: "GET another tenant's id", method: "GET", url: ssgURL + "&RequestID=" + foreign, want: "ResponseType=FAILURE|RequestID=" + foreign + "|ReasonCode=404|Reason=RequestID not found in the Database"},
		{name: "DELETE without RequestID", method: "DELETE", want: "ReasonCode=103"},
		{name: "DELETE malformed RequestID", method: "DELETE", url: ssgURL + "&RequestID=" + strings.Repeat("9", 65), want: "ReasonCode=106|Reason=Invalid RequestID"},
		{name: "DELETE another tenant's id", method: "DELETE", url: ssgURL + "&RequestID=" + foreign, want: "RequestID=" + foreign + "|ReasonCode=404|Reason=RequestID not found in the Database"},
		{name: "POST query of another tenant's id", body: ssgDoc(`<QueryRequest RequestID="` + foreign + `"/>`), want: "ReasonCode=404|Reason=RequestID not found in the Database"},
		{name: "POST cancel of another tenant's id", body: ssgDoc(`<CancelRequest RequestID="` + foreign + `"/>`), want: "ReasonCode=404|Reason=RequestID not found in the Database"},
	}
	if len(cases) < 40 {
		t.Fatalf("only %d cases", len(cases))
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			method, url, ct, status := c.method, c.url, c.ct, c.status
			if method == "" {
				method = "POST"
			}
			if url == "" {
				url = ssgURL
			}
			switch ct {
			case "":
				ct = "text/xml"
			case "-":
				ct = ""
			}
			if status == 0 {
				status = 200
				// Not one well-formed document: a transport-level 400.
				if strings.Contains(c.want, "ReasonCode=101") || strings.Contains(c.want, "ReasonCode=109") {
					status = 400
				}
			}
			code, hdr, elems, raw := ssgDo(t, method, url, ct, c.body, c.chunked)
			if code != status {
				t.Fatalf("status %d, want %d: %s", code, status, raw)
			}
			if c.want == "" {
				return
			}
			ssgCheck(t, elems, "ResponseType=FAILURE|Token=|"+c.want)
			if code == 405 && hdr.Get("Allow") != "GET, POST, DELETE" {
				t.Fatalf("Allow = %q", hdr.Get("Allow"))
			}
		})
	}
	if got := n1.FSM().Count(); got != 1 {
		t.Fatalf("%d records stored, want only the other tenant's", got)
	}
	if r, ok := n1.FSM().Get(foreign); !ok || r.State != fsmpb.State_PENDING {
		t.Fatalf("other tenant's request changed: %v", r)
	}
	// Still serving.
	ssgCheck(t, ssgPost(t, ssgURL, ssgDoc(ssgCreate("after"))), "ResponseType=SUCCESS|Token=after|RequestID=*")
}

// TestSSGSeedExamples posts the seed's own examples, exactly as printed,
// and reads the stored requests back through REST.
func TestSSGSeedExamples(t *testing.T) {
	tc := newTestCluster(t, 3, nil)
	f := tc.Node(tc.follower())
	base := "http://" + f.HTTPAddr()
	for _, c := range []struct {
		file string
		n    int
	}{{"seed-create.xml", 1}, {"seed-create-cpd.xml", 1}, {"seed-bulk.xml", 3}} {
		got := ssgPost(t, base+"/SSG?TenantName=Environment", ssgSeed(t, c.file))
		if len(got) != c.n {
			t.Fatalf("%s: %v", c.file, got)
		}
		for _, e := range got {
			if e["ResponseType"] != "SUCCESS" || e["RequestID"] == "" || e["Token"] == "" {
				t.Fatalf("%s: %v", c.file, got)
			}
		}
		if c.file != "seed-create-cpd.xml" {
			continue
		}
		code, body := httpDo(t, "GET", base+"/v1/tenants/Environment/requests/"+got[0]["RequestID"]+"?consistency=linearizable", "", nil)
		var r struct {
			Request struct {
				Spec struct {
					Token, Telnum, Ani string
					MaxAttempts        int    `json:"max_attempts"`
					TimeToLive         string `json:"time_to_live"`
					NotificationURL    string `json:"notification_url"`
					IVRProfile         string `json:"ivr_profile"`
					Cpd                struct {
						Record             *bool  `json:"record"`
						Preconnect         *bool  `json:"preconnect"`
						PostConnectTimeout string `json:"post_connect_timeout"`
						RnaTimeout         string `json:"rna_timeout"`
						Detect             string `json:"detect"`
					} `json:"cpd"`
				} `json:"spec"`
			} `json:"request"`
		}
		if err := json.Unmarshal([]byte(body), &r); code != 200 || err != nil {
			t.Fatalf("REST get: %d %s", code, body)
		}
		s := r.Request.Spec
		if s.Token != "Token" || s.MaxAttempts != 2 || s.TimeToLive != "123s" || s.IVRProfile != "Application" || s.Telnum != "9884719189" ||
			s.NotificationURL != "http://182.123.12.12/DIR/OutURL.xml" || s.Ani != "12345" || s.Cpd.Record == nil || *s.Cpd.Record ||
			s.Cpd.Preconnect == nil || !*s.Cpd.Preconnect || s.Cpd.PostConnectTimeout != "6s" || s.Cpd.RnaTimeout != "60s" || s.Cpd.Detect != "all" {
			t.Fatalf("stored spec: %s", body)
		}
	}
}

// TestSSGMixedPostRunsInDocumentOrder creates, queries and cancels in one
// POST on a follower and checks every element.
func TestSSGMixedPostRunsInDocumentOrder(t *testing.T) {
	tc := newTestCluster(t, 3, nil)
	l, f := tc.leader(), tc.follower()
	lURL := "http://" + tc.Node(l).HTTPAddr() + "/SSG?TenantName=acme"
	fURL := "http://" + tc.Node(f).HTTPAddr() + "/SSG?TenantName=acme"
	first := ssgPost(t, lURL, ssgDoc(ssgCreate("P1"), ssgCreate("P2")))
	ssgCheck(t, first, "ResponseType=SUCCESS|Token=P1|RequestID=*", "ResponseType=SUCCESS|Token=P2|RequestID=*")
	p1, p2 := first[0]["RequestID"], first[1]["RequestID"]
	unknown := "01a206c4-46ef-7bf7-a1d6-863aee3f713a"

	got := ssgPost(t, fURL, ssgDoc(
		`<QueryRequest RequestID="`+p1+`"/>`,
		ssgCreate("T1", "Ani=12345", "TimeToLive=123s", `<cpd rnatimeout="60s"/>`),
		`<CancelRequest RequestID="`+p1+`"/>`,
		`<CancelRequest RequestID="`+unknown+`"/>`,
		`<QueryRequest RequestID="`+p1+`"/>`,
		ssgCreate("T2"),
		`<CancelRequest RequestID="bad!id"/>`,
		`<QueryRequest RequestID="`+p2+`"/>`,
	))
	ssgCheck(t, got,
		"ResponseType=SUCCESS|Token=P1|RequestID="+p1+"|TenantName=acme|IVRProfileName=Application|Telnum=9884719189|NotificationURL=http://127.0.0.1:9/result|AttemptsMade=0|MaxAttempts=2|TimeToLive=3600s|TTLRemaining=3*|Status=Waiting to be processed|Result=",
		"ResponseType=SUCCESS|Token=T1|RequestID=*",
		"ResponseType=SUCCESS|RequestID="+p1+"|Token=",
		"ResponseType=FAILURE|RequestID="+unknown+"|ReasonCode=404|Reason=RequestID not found in the Database",
		"ResponseType=SUCCESS|RequestID="+p1+"|Status=Cancelled|Result=CANCELLED|TTLRemaining=0s",
		"ResponseType=SUCCESS|Token=T2|RequestID=*",
		"ResponseType=FAILURE|RequestID=bad!id|ReasonCode=106|Reason=Invalid RequestID",
		"ResponseType=SUCCESS|RequestID="+p2+"|Token=P2|Status=Waiting to be processed",
	)
	t1 := got[1]["RequestID"]
	// The POST's own creates are visible to its queries, and to the next
	// POST on another node.
	got = ssgPost(t, lURL, ssgDoc(`<QueryRequest RequestID="`+t1+`"/>`, `<CancelRequest RequestID="`+p1+`"/>`))
	ssgCheck(t, got,
		"ResponseType=SUCCESS|Token=T1|RequestID="+t1+"|Ani=12345|TimeToLive=123s|TTLRemaining=1*|AttemptsMade=0",
		"ResponseType=SUCCESS|RequestID="+p1, // cancelling again succeeds
	)
	// A bare single-element body and GET/DELETE answer the same shapes.
	ssgCheck(t, ssgPost(t, fURL, `<QueryRequest RequestID="`+p2+`"/>`), "ResponseType=SUCCESS|RequestID="+p2+"|Token=P2")
	_, _, g, _ := ssgDo(t, "GET", fURL+"&RequestID="+p2, "", "", false)
	ssgCheck(t, g, "ResponseType=SUCCESS|RequestID="+p2+"|Token=P2|Status=Waiting to be processed")
	_, _, g, _ = ssgDo(t, "DELETE", lURL+"&RequestID="+p2, "", "", false)
	ssgCheck(t, g, "ResponseType=SUCCESS|RequestID="+p2)
	_, _, g, _ = ssgDo(t, "GET", fURL+"&RequestID="+p2, "", "", false)
	ssgCheck(t, g, "ResponseType=SUCCESS|RequestID="+p2+"|Status=Cancelled|Result=CANCELLED")
}

// TestSSGCapacityMixesSuccessAndFailure fills limits.max_records within a
// bulk POST: what fits is stored, the rest fails with 120, and the POST's
// queries and cancels still run.
func TestSSGCapacityMixesSuccessAndFailure(t *testing.T) {
	tc := newTestCluster(t, 3, func(c *config.Config) { c.Limits.MaxRecords = 3 })
	url := "http://" + tc.Node(tc.follower()).HTTPAddr() + "/SSG?TenantName=acme"
	first := ssgPost(t, url, ssgDoc(ssgCreate("P1")))
	p1 := first[0]["RequestID"]
	got := ssgPost(t, url, ssgDoc(ssgCreate("T1"), ssgCreate("T2"), ssgCreate("T3"), ssgCreate("T4"),
		`<QueryRequest RequestID="`+p1+`"/>`, `<CancelRequest RequestID="`+p1+`"/>`, `<QueryRequest RequestID="`+p1+`"/>`))
	ssgCheck(t, got,
		"ResponseType=SUCCESS|Token=T1|RequestID=*",
		"ResponseType=SUCCESS|Token=T2|RequestID=*",
		"ResponseType=FAILURE|Token=T3|RequestID=|ReasonCode=120|Reason=DB Insertion failed: maximum of 3 stored records reached",
		"ResponseType=FAILURE|Token=T4|ReasonCode=120",
		"ResponseType=SUCCESS|RequestID="+p1+"|Status=Waiting to be processed",
		"ResponseType=SUCCESS|RequestID="+p1,
		"ResponseType=SUCCESS|RequestID="+p1+"|Status=Cancelled",
	)
	for _, id := range tc.ids() {
		n := tc.Node(id)
		eventually(t, 10*time.Second, id+" has 3 records", func() error {
			if c := n.FSM().Count(); c != 3 {
				return fmt.Errorf("%d records", c)
			}
			return nil
		})
	}
}

// TestSSGAndRESTShareRecords: requests created over SSG are visible over
// REST and the other way round.
func TestSSGAndRESTShareRecords(t *testing.T) {
	tc := newTestCluster(t, 3, nil)
	ids := tc.ids()
	a, b := "http://"+tc.Node(ids[0]).HTTPAddr(), "http://"+tc.Node(ids[1]).HTTPAddr()
	got := ssgPost(t, a+"/SSG?TenantName=acme", ssgDoc(ssgCreate("S1", "Ani=+4930", `<CustomData><KeyValue Key="campaign" Value="spring"/></CustomData>`)))
	sid := got[0]["RequestID"]
	code, body := httpDo(t, "GET", b+"/v1/tenants/acme/requests/"+sid+"?consistency=linearizable", "", nil)
	r := decode[struct{ Request restRequest }](t, body).Request
	if code != 200 || r.Spec.Token != "S1" || r.Status != "Waiting to be processed" || len(r.Spec.CustomData) != 1 || r.Spec.CustomData[0].Value != "spring" {
		t.Fatalf("REST view of SSG request: %d %s", code, body)
	}
	if code, _ := httpDo(t, "GET", b+"/v1/tenants/globex/requests/"+sid, "", nil); code != 404 {
		t.Fatalf("other tenant over REST: %d", code)
	}

	rid := restCreate(t, b, "acme", "R1")
	got = ssgPost(t, a+"/SSG?TenantName=acme", ssgDoc(`<QueryRequest RequestID="`+rid+`"/>`, `<CancelRequest RequestID="`+rid+`"/>`))
	ssgCheck(t, got, "ResponseType=SUCCESS|RequestID="+rid+"|Token=R1|TimeToLive=123s|MaxAttempts=2", "ResponseType=SUCCESS|RequestID="+rid)
	_, body = httpDo(t, "GET", b+"/v1/tenants/acme/requests/"+rid+"?consistency=linearizable", "", nil)
	if r := decode[struct{ Request restRequest }](t, body).Request; r.State != "PROCESSED" || r.Result != "CANCELLED" {
		t.Fatalf("REST view after SSG cancel: %s", body)
	}
}

// TestSSGCancelInProgressFails puts a request in progress as the dialer
// will (claim, start an attempt): cancel answers FAILURE 130 and the
// request stays stored, unchanged.
func TestSSGCancelInProgressFails(t *testing.T) {
	tc := newTestCluster(t, 3, nil)
	url := "http://" + tc.Node(tc.follower()).HTTPAddr() + "/SSG?TenantName=acme"
	id := ssgPost(t, url, ssgDoc(ssgCreate("T1")))[0]["RequestID"]
	leader := tc.Node(tc.leader())
	for _, cmd := range []*fsmpb.Command{
		{Body: &fsmpb.Command_Claim{Claim: &fsmpb.ClaimRequests{Ids: []string{id}}}},
		{Body: &fsmpb.Command_StartAttempts{StartAttempts: &fsmpb.StartAttempts{Starts: []*fsmpb.AttemptStart{{Id: id, CallUuid: "call-1"}}}}},
	} {
		res, _, err := leader.Cluster().Apply(ctxT(t, 5*time.Second), cmd)
		if err != nil || res.Items[0].Code != fsmpb.Code_CODE_OK {
			t.Fatalf("apply %v: %v %v", cmd, res, err)
		}
	}
	got := ssgPost(t, url, ssgDoc(`<CancelRequest RequestID="`+id+`"/>`, `<QueryRequest RequestID="`+id+`"/>`))
	ssgCheck(t, got,
		"ResponseType=FAILURE|RequestID="+id+"|ReasonCode=130|Reason=Request is in progress and cannot be cancelled",
		"ResponseType=SUCCESS|RequestID="+id+"|Status=Call in progress|AttemptsMade=1|CallUUID=call-1|Result=",
	)
	_, _, del, _ := ssgDo(t, "DELETE", url+"&RequestID="+id, "", "", false)
	ssgCheck(t, del, "ResponseType=FAILURE|RequestID="+id+"|ReasonCode=130")
	for _, nid := range tc.ids() {
		n := tc.Node(nid)
		eventually(t, 10*time.Second, nid+" keeps the request", func() error {
			if r, ok := n.FSM().Get(id); !ok || r.State != fsmpb.State_IN_PROGRESS {
				return fmt.Errorf("request %v", r)
			}
			return nil
		})
	}
}

// TestSSGWithoutLeaderAnswersUnavailable: with no leader, creates, queries
// and cancels each fail with ReasonCode 503 inside a 200 answer, and
// nothing is stored.
func TestSSGWithoutLeaderAnswersUnavailable(t *testing.T) {
	cfg := config.Default()
	cfg.Cluster.DataDir = t.TempDir()
	cfg.Cluster.ApplyTimeout = config.Duration{Duration: 300 * time.Millisecond}
	cfg.Limits.ReadTimeout = config.Duration{Duration: 300 * time.Millisecond}
	cfg.Nodes = []config.Node{nodeBlock(t, "lonely")}
	n, err := node.Start(node.Options{Config: cfg, NodeID: "lonely", Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	unknown := "01a206c4-46ef-7bf7-a1d6-863aee3f713a"
	got := ssgPost(t, "http://"+n.HTTPAddr()+"/SSG?TenantName=acme", ssgDoc(ssgCreate("T1"), ssgCreate("T2"),
		`<QueryRequest RequestID="`+unknown+`"/>`, `<CancelRequest RequestID="`+unknown+`"/>`))
	ssgCheck(t, got,
		"ResponseType=FAILURE|Token=T1|RequestID=|ReasonCode=503|Reason=cluster unavailable: no cluster leader*",
		"ResponseType=FAILURE|Token=T2|ReasonCode=503",
		"ResponseType=FAILURE|RequestID="+unknown+"|ReasonCode=503|Reason=consistency: linearizable read needs a leader*",
		"ResponseType=FAILURE|RequestID="+unknown+"|ReasonCode=503",
	)
	if c := n.FSM().Count(); c != 0 {
		t.Fatalf("%d records stored", c)
	}
}
