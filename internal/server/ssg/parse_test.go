package ssg

import (
	"os"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	pb "github.com/seed-7bfc04c2/dialtone/api/dialtonev1"
)

func readFile(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func bptr(b bool) *bool { return &b }

// seedSpec is the seed's example CreateRequest.
func seedSpec() *pb.RequestSpec {
	return &pb.RequestSpec{Token: "Token", MaxAttempts: 2, TimeToLive: "123s", IvrProfile: "Application",
		Telnum: "9884719189", NotificationUrl: "http://182.123.12.12/DIR/OutURL.xml", Ani: "12345"}
}

func TestParseSeedExamples(t *testing.T) {
	withCPD := seedSpec()
	withCPD.Cpd = &pb.Cpd{Record: bptr(false), PostConnectTimeout: "6000ms", RnaTimeout: "60s", Preconnect: bptr(true), Detect: "all"}
	third := &pb.RequestSpec{Token: "T1003", MaxAttempts: 3, TimeToLive: "6000ms", IvrProfile: "Survey", Telnum: "+4930123456",
		NotificationUrl: "https://ta.example/result?src=ssg&x=1",
		CustomData:      []*pb.KeyValue{{Key: "campaign", Value: "spring"}, {Key: "agent", Value: "7"}}}
	for _, c := range []struct {
		file string
		want []*pb.RequestSpec
	}{
		{"seed-create.xml", []*pb.RequestSpec{seedSpec()}},
		{"seed-create-cpd.xml", []*pb.RequestSpec{withCPD}},
		{"seed-bulk.xml", []*pb.RequestSpec{seedSpec(), withCPD, third}},
	} {
		t.Run(c.file, func(t *testing.T) {
			doc, f := Parse(readFile(t, c.file), 10)
			if f != nil {
				t.Fatal(f)
			}
			if len(doc.Elements) != len(c.want) {
				t.Fatalf("%d elements", len(doc.Elements))
			}
			for i, e := range doc.Elements {
				if e.Kind != KindCreate || e.Index != i+1 || !proto.Equal(e.Spec, c.want[i]) {
					t.Fatalf("element %d = %v %d %v, want %v", i, e.Kind, e.Index, e.Spec, c.want[i])
				}
			}
			recs, f := Validate(doc)
			if f != nil || len(recs) != len(c.want) {
				t.Fatalf("validate: %v %v", recs, f)
			}
		})
	}
}

func TestParseMixedDocumentOrderAndIndexes(t *testing.T) {
	body := `<?xml version="1.0"?>
<!-- a comment -->
<SSGRequest xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:noNamespaceSchemaLocation="ssg.xsd">
  <QueryRequest RequestID="a"/>
  ` + createXML("T1") + `
  <CancelRequest RequestID="b"></CancelRequest>
  ` + createXML("T2") + `
  <QueryRequest RequestID="c"/>
</SSGRequest>`
	doc, f := Parse([]byte(body), 10)
	if f != nil {
		t.Fatal(f)
	}
	var got []string
	for _, e := range doc.Elements {
		got = append(got, e.Path()+":"+e.RequestID+e.Spec.GetToken())
	}
	want := "QueryRequest[1]:a CreateRequest[1]:T1 CancelRequest[1]:b CreateRequest[2]:T2 QueryRequest[2]:c"
	if strings.Join(got, " ") != want {
		t.Fatalf("got %v", got)
	}
}

// createXML is a valid CreateRequest with attributes replaced or removed
// (value "-") by edits of the form name=value.
func createXML(token string, edits ...string) string {
	attrs := [][2]string{{"Token", token}, {"MaxAttempts", "2"}, {"TimeToLive", "123s"}, {"IVRProfileName", "Application"},
		{"Telnum", "9884719189"}, {"NotificationURL", "http://127.0.0.1:9/r"}}
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

func wrap(inner ...string) string {
	return "<SSGRequest>" + strings.Join(inner, "") + "</SSGRequest>"
}

func TestParseRejects(t *testing.T) {
	many := strings.Repeat(`<QueryRequest RequestID="x"/>`, 4)
	cases := []struct {
		name, body string
		code       ReasonCode
		want       string
	}{
		{"empty body", "  \n", CodeMalformedXML, "body: empty"},
		{"not xml", "hello", CodeMalformedXML, "body: text outside the root"},
		{"truncated", `<SSGRequest><CreateRequest Token="T"`, CodeMalformedXML, "XML syntax error"},
		{"unclosed root", `<SSGRequest>` + createXML("T"), CodeMalformedXML, "unexpected EOF"},
		{"mismatched end", `<SSGRequest></CreateRequest>`, CodeMalformedXML, "closed by"},
		{"two roots", wrap(createXML("T")) + wrap(createXML("T")), CodeMalformedXML, "content after the root"},
		{"invalid utf-8", wrap(createXML("T\xff")), CodeMalformedXML, "invalid UTF-8 at byte"},
		{"unknown entity", wrap(createXML("&lol;")), CodeMalformedXML, "&lol;"},
		{"control char reference", wrap(createXML("&#1;")), CodeMalformedXML, "illegal character"},
		{"unquoted value", `<SSGRequest><QueryRequest RequestID=4/></SSGRequest>`, CodeMalformedXML, "unquoted"},
		{"latin-1 declaration", `<?xml version="1.0" encoding="ISO-8859-1"?>` + wrap(createXML("T")), CodeMalformedXML, "ISO-8859-1"},
		{"doctype", `<!DOCTYPE SSGRequest>` + wrap(createXML("T")), CodeDTD, "DOCTYPE"},
		{"billion laughs", `<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;">]>` + wrap(createXML("&lol2;")), CodeDTD, "DOCTYPE"},
		{"wrong root", `<SSGResponse/>`, CodeSchema, "root element <SSGResponse>"},
		{"empty request", `<SSGRequest/>`, CodeEmptyRequest, "SSGRequest: no CreateRequest"},
		{"unknown element", wrap(`<DeleteRequest RequestID="1"/>`), CodeSchema, "SSGRequest/DeleteRequest: unknown element"},
		{"unknown child of create", wrap(createXML("T", "<Foo/>")), CodeSchema, "CreateRequest[1]/Foo: unknown element"},
		{"text in SSGRequest", wrap("hello", createXML("T")), CodeSchema, `SSGRequest: unexpected text "hello"`},
		{"text in create", wrap(strings.Replace(createXML("T"), "></", ">x</", 1)), CodeSchema, "CreateRequest[1]: unexpected text"},
		{"unknown root attribute", `<SSGRequest TenantName="x">` + createXML("T") + `</SSGRequest>`, CodeSchema, "SSGRequest TenantName: unknown attribute"},
		{"unknown attribute", wrap(createXML("T"), createXML("T", "Colour=red")), CodeSchema, "CreateRequest[2] Colour: unknown attribute"},
		{"prefixed attribute", wrap(createXML("T", "x:Token=1")), CodeSchema, "CreateRequest[1] x:Token: unknown attribute"},
		{"lower-case attribute", wrap(createXML("T", "telnum=1")), CodeSchema, "telnum: unknown attribute"},
		{"duplicate attribute", wrap(`<CreateRequest Token="a" Token="b"/>`), CodeSchema, "CreateRequest[1] Token: duplicate attribute"},
		{"missing Token", wrap(createXML("T"), createXML("-")), CodeMissingAttribute, "CreateRequest[2] Token: mandatory attribute is missing"},
		{"missing Telnum", wrap(createXML("T", "Telnum=-")), CodeMissingAttribute, "CreateRequest[1] Telnum: mandatory"},
		{"missing NotificationURL", wrap(createXML("T", "NotificationURL=-")), CodeMissingAttribute, "NotificationURL: mandatory"},
		{"missing MaxAttempts", wrap(createXML("T", "MaxAttempts=-")), CodeMissingAttribute, "MaxAttempts: mandatory"},
		{"missing TimeToLive", wrap(createXML("T", "TimeToLive=-")), CodeMissingAttribute, "TimeToLive: mandatory"},
		{"missing IVRProfileName", wrap(createXML("T", "IVRProfileName=-")), CodeMissingAttribute, "IVRProfileName: mandatory"},
		{"letters in MaxAttempts", wrap(createXML("T", "MaxAttempts=two")), CodeSchema, `CreateRequest[1] MaxAttempts: "two" is not a non-negative whole number`},
		{"negative MaxAttempts", wrap(createXML("T", "MaxAttempts=-1")), CodeSchema, `MaxAttempts: "-1" is not a non-negative`},
		{"fractional MaxAttempts", wrap(createXML("T", "MaxAttempts=1.5")), CodeSchema, `MaxAttempts: "1.5"`},
		{"huge MaxAttempts", wrap(createXML("T", "MaxAttempts=99999999999")), CodeSchema, "MaxAttempts: \"99999999999\" is above the maximum 100"},
		{"bad cpd boolean", wrap(createXML("T", `<cpd record="yes"/>`)), CodeSchema, `CreateRequest[1]/cpd record: "yes" must be true, false, 1 or 0`},
		{"unknown cpd attribute", wrap(createXML("T", `<cpd amd="on"/>`)), CodeSchema, "CreateRequest[1]/cpd amd: unknown attribute"},
		{"two cpd", wrap(createXML("T", `<cpd/><cpd/>`)), CodeSchema, "CreateRequest[1]/cpd: duplicate element"},
		{"child in cpd", wrap(createXML("T", `<cpd><x/></cpd>`)), CodeSchema, "CreateRequest[1]/cpd/x: unknown element"},
		{"two CustomData", wrap(createXML("T", `<CustomData/><CustomData/>`)), CodeSchema, "CustomData: duplicate element"},
		{"wrong CustomData child", wrap(createXML("T", `<CustomData><Pair/></CustomData>`)), CodeSchema, "CreateRequest[1]/CustomData/Pair: unknown element"},
		{"KeyValue without Key", wrap(createXML("T", `<CustomData><KeyValue Key="a"/><KeyValue Value="v"/></CustomData>`)), CodeMissingAttribute, "CreateRequest[1]/CustomData/KeyValue[2] Key: mandatory"},
		{"KeyValue unknown attribute", wrap(createXML("T", `<CustomData><KeyValue Key="a" Type="s"/></CustomData>`)), CodeSchema, "KeyValue[1] Type: unknown attribute"},
		{"query without RequestID", wrap(`<QueryRequest/>`), CodeMissingAttribute, "QueryRequest[1] RequestID: mandatory"},
		{"cancel with Token", wrap(`<CancelRequest RequestID="1" Token="T"/>`), CodeSchema, "CancelRequest[1] Token: unknown attribute"},
		{"duplicate RequestID", wrap(`<QueryRequest RequestID="1" RequestID="2"/>`), CodeSchema, "RequestID: duplicate attribute"},
		{"child in query", wrap(`<QueryRequest RequestID="1"><x/></QueryRequest>`), CodeSchema, "QueryRequest[1]/x: unknown element"},
		{"too many elements", wrap(many, `<CancelRequest RequestID="y"/>`), CodeTooManyElements, "more than 4 request elements"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			doc, f := Parse([]byte(c.body), 4)
			if f == nil {
				t.Fatalf("accepted: %+v", doc)
			}
			if f.Code != c.code || !strings.Contains(f.Reason, c.want) {
				t.Fatalf("got %d %q, want %d containing %q", f.Code, f.Reason, c.code, c.want)
			}
		})
	}
}

func TestParseAccepts(t *testing.T) {
	for _, c := range []struct{ name, body string }{
		{"byte order mark", "\xef\xbb\xbf" + wrap(createXML("T"))},
		{"bare query", `<QueryRequest RequestID="abc"/>`},
		{"bare cancel", `<CancelRequest RequestID="abc"></CancelRequest>`},
		{"default namespace", `<SSGRequest xmlns="urn:genesys:ssg">` + createXML("T") + `</SSGRequest>`},
		{"attributes without whitespace", `<CreateRequest Token="T1001"MaxAttempts="2"TimeToLive="123s"IVRProfileName="A"Telnum="1"NotificationURL="http://h/"/>`},
		{"exactly max elements", wrap(strings.Repeat(`<QueryRequest RequestID="x"/>`, 4))},
		{"optional empty Ani", wrap(createXML("T", "Ani="))},
		{"cpd with 1 and 0", wrap(createXML("T", `<cpd record="1" preconnect="0"/>`))},
		{"empty CustomData", wrap(createXML("T", `<CustomData/>`))},
		{"processing instruction and comments", `<?xml version="1.0" encoding="utf-8"?><?ta v1?><SSGRequest><!-- x -->` + createXML("T") + `</SSGRequest><!-- end -->`},
		{"CDATA whitespace", wrap(`<![CDATA[  ]]>`, createXML("T"))},
	} {
		t.Run(c.name, func(t *testing.T) {
			if _, f := Parse([]byte(c.body), 4); f != nil {
				t.Fatal(f)
			}
		})
	}
}

func TestValidateNamesSSGAttributes(t *testing.T) {
	cases := []struct {
		name string
		edit []string
		want string
	}{
		{"telnum", []string{"Telnum=98x"}, `CreateRequest[2] Telnum: "98x" must be 1-32 digits with an optional leading '+'`},
		{"empty token", []string{"Token="}, "CreateRequest[2] Token: is required"},
		{"ani", []string{"Ani=anon"}, `CreateRequest[2] Ani: "anon" must be`},
		{"profile too long", []string{"IVRProfileName=" + strings.Repeat("p", 200)}, "CreateRequest[2] IVRProfileName: must be at most"},
		{"ftp url", []string{"NotificationURL=ftp://h/x"}, `CreateRequest[2] NotificationURL: scheme "ftp" is not http or https`},
		{"relative url", []string{"NotificationURL=/x"}, "CreateRequest[2] NotificationURL:"},
		{"zero attempts", []string{"MaxAttempts=0"}, "CreateRequest[2] MaxAttempts: is required and must be 1-100"},
		{"too many attempts", []string{"MaxAttempts=101"}, "CreateRequest[2] MaxAttempts: 101 is above the maximum 100"},
		{"ttl without unit", []string{"TimeToLive=123"}, `CreateRequest[2] TimeToLive: "123" is not a duration with a unit`},
		{"ttl bad unit", []string{"TimeToLive=5x"}, `CreateRequest[2] TimeToLive: "5x"`},
		{"ttl days", []string{"TimeToLive=2d"}, `CreateRequest[2] TimeToLive: "2d"`},
		{"ttl too short", []string{"TimeToLive=10ms"}, "CreateRequest[2] TimeToLive: 10ms is outside"},
		{"ttl too long", []string{"TimeToLive=9999999s"}, "CreateRequest[2] TimeToLive: 9999999s is outside"},
		{"rna timeout", []string{`<cpd rnatimeout="-5s"/>`}, "CreateRequest[2]/cpd rnatimeout: -5s is outside"},
		{"postconnect timeout", []string{`<cpd postconnecttimeout="soon"/>`}, `CreateRequest[2]/cpd postconnecttimeout: "soon"`},
		{"detect", []string{`<cpd detect="all; drop"/>`}, "CreateRequest[2]/cpd detect: must be at most"},
		{"custom key", []string{`<CustomData><KeyValue Key="a" Value="1"/><KeyValue Key="" Value="2"/></CustomData>`}, "CreateRequest[2]/CustomData/KeyValue[2] Key: must be 1-128"},
		{"custom value", []string{`<CustomData><KeyValue Key="a" Value="&#x9;"/></CustomData>`}, "CreateRequest[2]/CustomData/KeyValue[1] Value: must be at most"},
		{"custom count", []string{`<CustomData>` + strings.Repeat(`<KeyValue Key="k"/>`, 65) + `</CustomData>`}, "CreateRequest[2]/CustomData: has 65 entries"},
		{"idempotency key", []string{"IdempotencyKey=" + strings.Repeat("k", 200)}, "CreateRequest[2] IdempotencyKey: must be at most"},
		{"two errors", []string{"Telnum=x", "Ani=y"}, `CreateRequest[2] Telnum: "x" must be 1-32 digits with an optional leading '+' (and 1 more)`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			doc, f := Parse([]byte(wrap(createXML("ok"), `<QueryRequest RequestID="q"/>`, createXML("T", c.edit...))), 0)
			if f != nil {
				t.Fatalf("parse: %v", f)
			}
			recs, f := Validate(doc)
			if f == nil {
				t.Fatalf("accepted %v", recs)
			}
			if f.Code != CodeInvalidValue || f.Reason != c.want && !strings.HasPrefix(f.Reason, c.want) {
				t.Fatalf("got %d %q, want %q", f.Code, f.Reason, c.want)
			}
		})
	}
}

func TestValidateMapsEveryField(t *testing.T) {
	doc, f := Parse([]byte(wrap(createXML("T", "Ani=+12345", "IdempotencyKey=k1",
		`<cpd record="true" postconnecttimeout="6500ms" rnatimeout="60s" preconnect="false" detect="all"/>`,
		`<CustomData><KeyValue Key="a" Value="1"/><KeyValue Key="b"/></CustomData>`))), 0)
	if f != nil {
		t.Fatal(f)
	}
	recs, f := Validate(doc)
	if f != nil || len(recs) != 1 {
		t.Fatal(recs, f)
	}
	r := recs[0]
	if r.Token != "T" || r.IvrProfile != "Application" || r.Telnum != "9884719189" || r.Ani != "+12345" ||
		r.NotificationUrl != "http://127.0.0.1:9/r" || r.MaxAttempts != 2 || r.TtlMs != 123000 || r.IdempotencyKey != "k1" {
		t.Fatalf("record %v", r)
	}
	c := r.Cpd
	if c == nil || !c.GetRecord() || c.GetPreconnect() || c.Preconnect == nil || c.GetPostConnectTimeoutMs() != 6500 || c.GetRnaTimeoutMs() != 60000 || c.Detect != "all" {
		t.Fatalf("cpd %v", c)
	}
	if len(r.CustomData) != 2 || r.CustomData[1].Key != "b" || r.CustomData[1].Value != "" {
		t.Fatalf("custom data %v", r.CustomData)
	}
}

func TestAttrPathKnowsEveryField(t *testing.T) {
	for field, want := range map[string]string{
		"token": "Token", "ivr_profile": "IVRProfileName", "telnum": "Telnum", "notification_url": "NotificationURL",
		"max_attempts": "MaxAttempts", "time_to_live": "TimeToLive", "ani": "Ani", "idempotency_key": "IdempotencyKey",
		"cpd.rna_timeout": "/cpd rnatimeout", "cpd.post_connect_timeout": "/cpd postconnecttimeout", "cpd.detect": "/cpd detect",
		"custom_data[0].key": "/CustomData/KeyValue[1] Key", "custom_data[63].value": "/CustomData/KeyValue[64] Value",
		"custom_data": "/CustomData ",
	} {
		elem, attr, ok := attrPath(field)
		if got := strings.TrimPrefix(elem+" "+attr, " "); !ok || got != want {
			t.Errorf("%s: %q %v, want %q", field, got, ok, want)
		}
	}
	for _, bad := range []string{"colour", "custom_data[x].key", "custom_data[0].kind", "cpd.amd"} {
		if _, _, ok := attrPath(bad); ok {
			t.Errorf("%s: known", bad)
		}
	}
}
