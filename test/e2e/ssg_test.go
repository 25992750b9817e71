//go:build e2e

package e2e

import (
	"context"
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	pb "github.com/seed-7bfc04c2/dialtone/api/dialtonev1"
	"github.com/seed-7bfc04c2/dialtone/client"
)

// ssgResponse is one SSG answer: the HTTP status and each ResponseElement's
// attributes.
type ssgResponse struct {
	status int
	elems  []map[string]string
	raw    string
}

func ssgCall(t *testing.T, method, url, body string) ssgResponse {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "text/xml; charset=utf-8")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	resp, err := http.DefaultClient.Do(req.WithContext(ctx))
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if ct := resp.Header.Get("Content-Type"); ct != "text/xml" {
		t.Fatalf("%s %s: Content-Type %q: %s", method, url, ct, b)
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
	out := ssgResponse{status: resp.StatusCode, raw: string(b)}
	for _, e := range doc.Elems {
		m := map[string]string{}
		for _, a := range e.Attrs {
			m[a.Name.Local] = a.Value
		}
		out.elems = append(out.elems, m)
	}
	return out
}

// expect checks a 200 answer element by element. Each want lists
// "Key=value" pairs separated by "|"; a value ending in * is a prefix.
func (r ssgResponse) expect(t *testing.T, want ...string) {
	t.Helper()
	if r.status != 200 || len(r.elems) != len(want) {
		t.Fatalf("status %d, %d elements, want 200 and %d:\n%s", r.status, len(r.elems), len(want), r.raw)
	}
	for i, w := range want {
		for _, kv := range strings.Split(w, "|") {
			k, v, _ := strings.Cut(kv, "=")
			g := r.elems[i][k]
			if p, ok := strings.CutSuffix(v, "*"); (ok && strings.HasPrefix(g, p)) || g == v {
				continue
			}
			t.Fatalf("element %d: %s = %q, want %q\n%s", i, k, g, v, r.raw)
		}
	}
}

// TestSSGTriggerApplication plays a Genesys trigger application against a
// three-node cluster on free ports: bulk creates with
// the seed's XML, queries, cancels and a mixed POST, each against a
// different node, checking every response element.
func TestSSGTriggerApplication(t *testing.T) {
	nodes := httpAddrs(startCluster(t, nil))
	url := func(n, query string) string { return "http://" + nodes[n] + "/SSG?TenantName=Environment" + query }
	seed := func(name string) string {
		b, err := os.ReadFile("../../internal/server/ssg/testdata/" + name)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}

	// Bulk create with the seed's examples on n1, the single example on n2.
	bulk := ssgCall(t, "POST", url("n1", ""), seed("seed-bulk.xml"))
	bulk.expect(t,
		"ResponseType=SUCCESS|Token=Token|RequestID=*|ReasonCode=",
		"ResponseType=SUCCESS|Token=Token|RequestID=*",
		"ResponseType=SUCCESS|Token=T1003|RequestID=*")
	single := ssgCall(t, "POST", url("n2", ""), seed("seed-create.xml"))
	single.expect(t, "ResponseType=SUCCESS|Token=Token|RequestID=*")
	ids := []string{bulk.elems[0]["RequestID"], bulk.elems[1]["RequestID"], bulk.elems[2]["RequestID"], single.elems[0]["RequestID"]}
	seen := map[string]bool{}
	for _, id := range ids {
		if id == "" || seen[id] {
			t.Fatalf("ids %v", ids)
		}
		seen[id] = true
	}

	// Bulk query on n3: it sees creates acknowledged by n1 and n2.
	unknown := "01a206c4-46ef-7bf7-a1d6-863aee3f713a"
	var q []string
	for _, id := range append(ids, unknown) {
		q = append(q, `<QueryRequest RequestID="`+id+`"/>`)
	}
	seedAttrs := "ResponseType=SUCCESS|Token=Token|TenantName=Environment|IVRProfileName=Application|Telnum=9884719189|Ani=12345|" +
		"NotificationURL=http://182.123.12.12/DIR/OutURL.xml|AttemptsMade=0|MaxAttempts=2|TimeToLive=123s|TTLRemaining=1*|Status=Waiting to be processed|Result="
	ssgCall(t, "POST", url("n3", ""), "<SSGRequest>"+strings.Join(q, "\n")+"</SSGRequest>").expect(t,
		seedAttrs+"|RequestID="+ids[0],
		seedAttrs+"|RequestID="+ids[1],
		"ResponseType=SUCCESS|RequestID="+ids[2]+"|Token=T1003|IVRProfileName=Survey|Telnum=+4930123456|Ani=|NotificationURL=https://ta.example/result?src=ssg&x=1|MaxAttempts=3|TimeToLive=6s|Status=Waiting to be processed",
		seedAttrs+"|RequestID="+ids[3],
		"ResponseType=FAILURE|RequestID="+unknown+"|ReasonCode=404|Reason=RequestID not found in the Database")
	ssgCall(t, "GET", url("n2", "&RequestID="+ids[2]), "").expect(t, "ResponseType=SUCCESS|RequestID="+ids[2]+"|Token=T1003")
	// Another tenant's view: exactly like an unknown id.
	other := "http://" + nodes["n1"] + "/SSG?TenantName=acme&RequestID=" + ids[0]
	ssgCall(t, "GET", other, "").expect(t, "ResponseType=FAILURE|RequestID="+ids[0]+"|ReasonCode=404")
	ssgCall(t, "DELETE", other, "").expect(t, "ResponseType=FAILURE|RequestID="+ids[0]+"|ReasonCode=404")

	// Bulk cancel on n2, single cancel on n3.
	ssgCall(t, "POST", url("n2", ""), fmt.Sprintf(`<SSGRequest xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
<CancelRequest RequestID="%s"/>
<CancelRequest RequestID="%s"/>
<CancelRequest RequestID="%s"/>
<CancelRequest RequestID="1000000!"/>
</SSGRequest>`, ids[0], ids[1], unknown)).expect(t,
		"ResponseType=SUCCESS|RequestID="+ids[0],
		"ResponseType=SUCCESS|RequestID="+ids[1],
		"ResponseType=FAILURE|RequestID="+unknown+"|ReasonCode=404",
		"ResponseType=FAILURE|RequestID=1000000!|ReasonCode=106|Reason=Invalid RequestID")
	ssgCall(t, "DELETE", url("n3", "&RequestID="+ids[2]), "").expect(t, "ResponseType=SUCCESS|RequestID="+ids[2])

	// A mixed POST on n1: create, then query and cancel in document order.
	mixed := ssgCall(t, "POST", url("n1", ""), `<SSGRequest>
<QueryRequest RequestID="`+ids[0]+`"/>
<CreateRequest Token="T2001" MaxAttempts="1" TimeToLive="600s" IVRProfileName="Application" Telnum="4086552367" NotificationURL="http://127.0.0.1:9/result"/>
<CancelRequest RequestID="`+ids[3]+`"/>
<QueryRequest RequestID="`+ids[3]+`"/>
<CreateRequest Token="T2002" MaxAttempts="1" TimeToLive="600s" IVRProfileName="Application" Telnum="4086552368" NotificationURL="http://127.0.0.1:9/result"/>
</SSGRequest>`)
	mixed.expect(t,
		"ResponseType=SUCCESS|RequestID="+ids[0]+"|Status=Cancelled|Result=CANCELLED|TTLRemaining=0s",
		"ResponseType=SUCCESS|Token=T2001|RequestID=*",
		"ResponseType=SUCCESS|RequestID="+ids[3],
		"ResponseType=SUCCESS|RequestID="+ids[3]+"|Status=Cancelled|Result=CANCELLED",
		"ResponseType=SUCCESS|Token=T2002|RequestID=*")

	// Every node agrees on every request; a bad POST stores nothing.
	ssgCall(t, "POST", url("n2", ""), `<SSGRequest><CreateRequest Token="T3001" MaxAttempts="2" TimeToLive="123s" IVRProfileName="Application" Telnum="98x" NotificationURL="http://h/"/></SSGRequest>`).expect(t,
		`ResponseType=FAILURE|Token=|ReasonCode=104|Reason=CreateRequest[1] Telnum: "98x" must be 1-32 digits with an optional leading '+'`)
	want := map[string]string{ids[0]: "Cancelled", ids[1]: "Cancelled", ids[2]: "Cancelled", ids[3]: "Cancelled",
		mixed.elems[1]["RequestID"]: "Waiting to be processed", mixed.elems[4]["RequestID"]: "Waiting to be processed"}
	for n := range nodes {
		for id, st := range want {
			ssgCall(t, "GET", url(n, "&RequestID="+id), "").expect(t, "ResponseType=SUCCESS|RequestID="+id+"|Status="+st)
		}
		list, err := rest(t, nodes[n]).ListRequests(t.Context(), &pb.ListRequestsRequest{Tenant: "Environment", Consistency: client.Linearizable})
		if err != nil {
			t.Fatal(err)
		}
		if len(list.Requests) != len(want) {
			t.Fatalf("%s lists %d requests over REST, want %d", n, len(list.Requests), len(want))
		}
	}
}
