package ssg

import (
	"encoding/xml"
	"fmt"
	"strings"
	"testing"
	"unicode/utf8"

	"google.golang.org/protobuf/proto"

	pb "github.com/seed-7bfc04c2/dialtone/api/dialtonev1"
	"github.com/seed-7bfc04c2/dialtone/internal/server"
)

// FuzzParse feeds arbitrary bodies to the parser and checks that it never
// panics, that every refusal is a parse-stage failure with a reason, and
// that whatever it accepts is consistent: Validate either accepts every
// CreateRequest or names an SSG attribute (never a native field), the
// document survives a re-encoding unchanged, and ids echoed in a response
// still make well-formed XML.
func FuzzParse(f *testing.F) {
	for _, name := range []string{"seed-create.xml", "seed-create-cpd.xml", "seed-bulk.xml"} {
		f.Add(readFile(f, name))
	}
	f.Add([]byte(wrap(`<QueryRequest RequestID="id-1"/>`, `<CancelRequest RequestID="x"/>`, createXML("T", "Telnum=98x"))))
	f.Add([]byte(wrap(createXML("T", `<cpd record="1" rnatimeout="-5s"/>`, `<CustomData><KeyValue Key="" Value="&#x9;"/></CustomData>`))))
	f.Add([]byte(`<!DOCTYPE a [<!ENTITY b "c">]><SSGRequest/>`))
	f.Add([]byte(`<CreateRequest Token="T"MaxAttempts="99999999999"/>`))
	const maxElements = 8
	parseCodes := map[ReasonCode]bool{CodeMalformedXML: true, CodeSchema: true, CodeMissingAttribute: true,
		CodeTooManyElements: true, CodeEmptyRequest: true, CodeDTD: true}
	f.Fuzz(func(t *testing.T, data []byte) {
		doc, fl := Parse(data, maxElements)
		if fl != nil {
			if doc != nil || !parseCodes[fl.Code] || fl.Reason == "" || !utf8.ValidString(fl.Reason) {
				t.Fatalf("bad refusal: %v %+v", doc, fl)
			}
			decodeResponse(t, string(Marshal([]ResponseElement{failure(fl)})))
			return
		}
		if n := len(doc.Elements); n == 0 || n > maxElements {
			t.Fatalf("accepted %d elements", n)
		}
		creates := 0
		for _, e := range doc.Elements {
			if e.Kind == KindCreate {
				creates++
				if e.Spec == nil {
					t.Fatalf("%s without spec", e.Path())
				}
				for _, fe := range firstErrors(e.Spec) {
					if _, _, ok := attrPath(fe.Field); !ok {
						t.Fatalf("%s: ValidateSpec field %q has no SSG name", e.Path(), fe.Field)
					}
				}
			} else {
				decodeResponse(t, string(Marshal([]ResponseElement{idFailure(e.RequestID, &Failure{CodeNotFound, reasonNotFound})})))
			}
		}
		recs, vf := Validate(doc)
		switch {
		case vf == nil && len(recs) != creates:
			t.Fatalf("%d records for %d creates", len(recs), creates)
		case vf != nil && (vf.Code != CodeInvalidValue || !strings.HasPrefix(vf.Reason, "CreateRequest[") || recs != nil):
			t.Fatalf("bad validation failure %+v", vf)
		}
		again, fl := Parse([]byte(encode(doc)), maxElements)
		if fl != nil {
			t.Fatalf("re-encoded document refused: %v\n%s", fl, encode(doc))
		}
		if len(again.Elements) != len(doc.Elements) {
			t.Fatalf("re-encoded: %d elements, want %d", len(again.Elements), len(doc.Elements))
		}
		for i, e := range doc.Elements {
			a := again.Elements[i]
			if a.Kind != e.Kind || a.Index != e.Index || a.RequestID != e.RequestID || !proto.Equal(a.Spec, e.Spec) {
				t.Fatalf("re-encoded element %d: %+v, want %+v", i, a, e)
			}
		}
	})
}

func firstErrors(s *pb.RequestSpec) []server.FieldError {
	_, errs := server.ValidateSpec("", s)
	return errs
}

// encode writes a parsed document back as an SSGRequest.
func encode(doc *Document) string {
	var b strings.Builder
	attr := func(name, v string) {
		b.WriteString(" " + name + `="`)
		_ = xml.EscapeText(&b, []byte(v))
		b.WriteString(`"`)
	}
	opt := func(name, v string) {
		if v != "" {
			attr(name, v)
		}
	}
	b.WriteString("<SSGRequest>\n")
	for _, e := range doc.Elements {
		b.WriteString("<" + e.Kind.String())
		if e.Kind != KindCreate {
			attr("RequestID", e.RequestID)
			b.WriteString("/>\n")
			continue
		}
		s := e.Spec
		attr("Token", s.Token)
		attr("MaxAttempts", fmt.Sprint(s.MaxAttempts))
		attr("TimeToLive", s.TimeToLive)
		attr("IVRProfileName", s.IvrProfile)
		attr("Telnum", s.Telnum)
		attr("NotificationURL", s.NotificationUrl)
		opt("Ani", s.Ani)
		opt("IdempotencyKey", s.IdempotencyKey)
		b.WriteString(">")
		if c := s.Cpd; c != nil {
			b.WriteString("<cpd")
			if c.Record != nil {
				attr("record", fmt.Sprint(*c.Record))
			}
			if c.Preconnect != nil {
				attr("preconnect", fmt.Sprint(*c.Preconnect))
			}
			opt("postconnecttimeout", c.PostConnectTimeout)
			opt("rnatimeout", c.RnaTimeout)
			opt("detect", c.Detect)
			b.WriteString("/>")
		}
		if len(s.CustomData) > 0 {
			b.WriteString("<CustomData>")
			for _, kv := range s.CustomData {
				b.WriteString("<KeyValue")
				attr("Key", kv.Key)
				attr("Value", kv.Value)
				b.WriteString("/>")
			}
			b.WriteString("</CustomData>")
		}
		b.WriteString("</CreateRequest>\n")
	}
	b.WriteString("</SSGRequest>\n")
	return b.String()
}
