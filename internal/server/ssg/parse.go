package ssg

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode/utf8"

	pb "github.com/seed-7bfc04c2/dialtone/api/dialtonev1"
	"github.com/seed-7bfc04c2/dialtone/internal/server"
)

// Kind is the kind of a request element.
type Kind int

// The request elements of an SSGRequest.
const (
	KindCreate Kind = iota + 1
	KindQuery
	KindCancel
)

func (k Kind) String() string {
	switch k {
	case KindCreate:
		return "CreateRequest"
	case KindQuery:
		return "QueryRequest"
	case KindCancel:
		return "CancelRequest"
	}
	return "Kind(" + strconv.Itoa(int(k)) + ")"
}

// Element is one request element of a parsed document.
type Element struct {
	Kind Kind
	// Index is the element's 1-based position among the elements of its
	// kind, as in the XPath /SSGRequest/CreateRequest[2]; errors use it.
	Index int
	// Spec is a CreateRequest mapped to the native request (not yet
	// validated beyond the schema).
	Spec *pb.RequestSpec
	// RequestID is a QueryRequest's or CancelRequest's id, as sent.
	RequestID string
}

// Path names the element in reasons, e.g. "CreateRequest[2]".
func (e Element) Path() string { return fmt.Sprintf("%s[%d]", e.Kind, e.Index) }

// Document is a parsed POST body: its request elements in document order.
type Document struct {
	Elements []Element
}

const xsiNamespace = "http://www.w3.org/2001/XMLSchema-instance"

// createAttrs maps CreateRequest attributes onto the native spec.
// IdempotencyKey is a Dialtone extension: a TA that sends it can retry a
// POST whose outcome it did not learn without creating the call twice.
var createAttrs = map[string]func(s *pb.RequestSpec, v string) error{
	"Token":           func(s *pb.RequestSpec, v string) error { s.Token = v; return nil },
	"IVRProfileName":  func(s *pb.RequestSpec, v string) error { s.IvrProfile = v; return nil },
	"Telnum":          func(s *pb.RequestSpec, v string) error { s.Telnum = v; return nil },
	"Ani":             func(s *pb.RequestSpec, v string) error { s.Ani = v; return nil },
	"NotificationURL": func(s *pb.RequestSpec, v string) error { s.NotificationUrl = v; return nil },
	"TimeToLive":      func(s *pb.RequestSpec, v string) error { s.TimeToLive = v; return nil },
	"IdempotencyKey":  func(s *pb.RequestSpec, v string) error { s.IdempotencyKey = v; return nil },
	"MaxAttempts": func(s *pb.RequestSpec, v string) error {
		n, err := parseCount(v)
		s.MaxAttempts = n
		return err
	},
}

// mandatoryCreate lists the attributes the seed calls mandatory, in the
// order a missing one is reported.
var mandatoryCreate = []string{"Token", "MaxAttempts", "TimeToLive", "IVRProfileName", "Telnum", "NotificationURL"}

var cpdAttrs = map[string]func(c *pb.Cpd, v string) error{
	"record":             func(c *pb.Cpd, v string) (err error) { c.Record, err = parseBool(v); return },
	"preconnect":         func(c *pb.Cpd, v string) (err error) { c.Preconnect, err = parseBool(v); return },
	"postconnecttimeout": func(c *pb.Cpd, v string) error { c.PostConnectTimeout = v; return nil },
	"rnatimeout":         func(c *pb.Cpd, v string) error { c.RnaTimeout = v; return nil },
	"detect":             func(c *pb.Cpd, v string) error { c.Detect = v; return nil },
}

// parseCount reads a non-negative whole number; the range is
// server.ValidateSpec's business, except values too large to carry.
func parseCount(v string) (uint32, error) {
	t := strings.TrimSpace(v)
	if t == "" || strings.Trim(t, "0123456789") != "" {
		return 0, fmt.Errorf("%q is not a non-negative whole number", clip(v))
	}
	n, err := strconv.ParseUint(t, 10, 32)
	if err != nil {
		return 0, fmt.Errorf("%q is above the maximum %d", clip(v), server.MaxAttemptsLimit)
	}
	return uint32(n), nil
}

// parseBool accepts xsd:boolean: true, false, 1, 0.
func parseBool(v string) (*bool, error) {
	var b bool
	switch strings.TrimSpace(v) {
	case "true", "1":
		b = true
	case "false", "0":
	default:
		return nil, fmt.Errorf("%q must be true, false, 1 or 0", clip(v))
	}
	return &b, nil
}

// clip shortens a value quoted back in a reason.
func clip(s string) string {
	if len(s) <= 40 {
		return s
	}
	cut := 40
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "..."
}

// Parse reads a POST body: an SSGRequest holding CreateRequest,
// QueryRequest and CancelRequest elements in any mix, or one bare request
// element as the root (the seed's single-request example). It checks the
// schema only; Validate checks the values. At most maxElements request
// elements are accepted (0: no limit). Any failure fails the whole POST.
func Parse(data []byte, maxElements int) (*Document, *Failure) {
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf")) // a UTF-8 byte order mark
	if !utf8.Valid(data) {
		return nil, failf(CodeMalformedXML, "body: invalid UTF-8 at byte %d", invalidUTF8At(data))
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, failf(CodeMalformedXML, "body: empty; expected an SSGRequest document")
	}
	d := xml.NewDecoder(bytes.NewReader(data))
	// Strict, and no Entity map: only the predefined entities and character
	// references exist, so nothing can expand.
	d.Strict = true
	p := &parser{d: d, max: maxElements, counts: map[Kind]int{}}
	if f := p.document(); f != nil {
		return nil, f
	}
	return &Document{Elements: p.elems}, nil
}

func invalidUTF8At(b []byte) int {
	for i := 0; i < len(b); {
		r, n := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && n == 1 {
			return i
		}
		i += n
	}
	return len(b)
}

type parser struct {
	d      *xml.Decoder
	max    int
	elems  []Element
	counts map[Kind]int
}

// next returns the next token that matters: comments and processing
// instructions are skipped (the decoder has already checked the XML
// declaration), whitespace-only text is dropped, other text and markup
// declarations fail. where names the enclosing element for reasons.
func (p *parser) next(where string) (xml.Token, *Failure) {
	for {
		tok, err := p.d.Token()
		if err == io.EOF {
			return nil, nil
		}
		if err != nil {
			var se *xml.SyntaxError
			msg := err.Error()
			if errors.As(err, &se) {
				msg = fmt.Sprintf("XML syntax error on line %d: %s", se.Line, se.Msg)
			}
			if where != "" {
				msg += " (in " + where + ")"
			}
			return nil, failf(CodeMalformedXML, "body: %s", msg)
		}
		switch t := tok.(type) {
		case xml.Comment, xml.ProcInst:
			continue
		case xml.Directive:
			return nil, failf(CodeDTD, "body: markup declarations (<!DOCTYPE, <!ENTITY) are not allowed")
		case xml.CharData:
			if len(bytes.TrimSpace(t)) == 0 {
				continue
			}
			if where == "" {
				return nil, failf(CodeMalformedXML, "body: text outside the root element")
			}
			return nil, failf(CodeSchema, "%s: unexpected text %q", where, clip(strings.TrimSpace(string(t))))
		}
		return tok, nil
	}
}

func (p *parser) document() *Failure {
	tok, f := p.next("")
	if f != nil {
		return f
	}
	root, ok := tok.(xml.StartElement)
	if !ok {
		return failf(CodeMalformedXML, "body: no root element; expected SSGRequest")
	}
	switch root.Name.Local {
	case "SSGRequest":
		if f := p.rootAttrs("SSGRequest", root.Attr); f != nil {
			return f
		}
		if f := p.children(); f != nil {
			return f
		}
	case "CreateRequest", "QueryRequest", "CancelRequest":
		if f := p.element(root); f != nil {
			return f
		}
	default:
		return failf(CodeSchema, "root element <%s>: expected SSGRequest (or a single CreateRequest, QueryRequest or CancelRequest)", clip(root.Name.Local))
	}
	tok, f = p.next("")
	if f != nil {
		return f
	}
	if tok != nil {
		return failf(CodeMalformedXML, "body: content after the root element")
	}
	if len(p.elems) == 0 {
		return failf(CodeEmptyRequest, "SSGRequest: no CreateRequest, QueryRequest or CancelRequest element")
	}
	return nil
}

// isNamespaceDecl reports xmlns and xmlns:prefix attributes, which are
// allowed anywhere (the seed's SSGResponse carries xmlns:xsi).
func isNamespaceDecl(a xml.Attr) bool {
	return a.Name.Space == "xmlns" || (a.Name.Space == "" && a.Name.Local == "xmlns")
}

// rootAttrs allows only namespace declarations and xsi:* (for example
// xsi:noNamespaceSchemaLocation) on the root.
func (p *parser) rootAttrs(where string, attrs []xml.Attr) *Failure {
	for _, a := range attrs {
		if isNamespaceDecl(a) || a.Name.Space == xsiNamespace {
			continue
		}
		return unknownAttr(where, a)
	}
	return nil
}

func unknownAttr(where string, a xml.Attr) *Failure {
	name := a.Name.Local
	if a.Name.Space != "" {
		name = a.Name.Space + ":" + name
	}
	return failf(CodeSchema, "%s %s: unknown attribute", where, clip(name))
}

// children reads SSGRequest's request elements up to its end tag.
func (p *parser) children() *Failure {
	for {
		tok, f := p.next("SSGRequest")
		if f != nil {
			return f
		}
		switch t := tok.(type) {
		case nil:
			return failf(CodeMalformedXML, "body: unexpected end (in SSGRequest)")
		case xml.EndElement:
			return nil
		case xml.StartElement:
			switch t.Name.Local {
			case "CreateRequest", "QueryRequest", "CancelRequest":
				if f := p.element(t); f != nil {
					return f
				}
			default:
				return failf(CodeSchema, "SSGRequest/%s: unknown element; expected CreateRequest, QueryRequest or CancelRequest", clip(t.Name.Local))
			}
		}
	}
}

// element reads one request element whose start tag is start.
func (p *parser) element(start xml.StartElement) *Failure {
	var kind Kind
	switch start.Name.Local {
	case "CreateRequest":
		kind = KindCreate
	case "QueryRequest":
		kind = KindQuery
	default:
		kind = KindCancel
	}
	if p.max > 0 && len(p.elems) >= p.max {
		return failf(CodeTooManyElements, "SSGRequest: more than %d request elements in one POST", p.max)
	}
	p.counts[kind]++
	e := Element{Kind: kind, Index: p.counts[kind]}
	var f *Failure
	if kind == KindCreate {
		e.Spec, f = p.create(e.Path(), start)
	} else {
		e.RequestID, f = p.idElement(e.Path(), start)
	}
	if f != nil {
		return f
	}
	p.elems = append(p.elems, e)
	return nil
}

// attrSet tracks attributes seen on one element to refuse duplicates,
// which encoding/xml itself lets through.
type attrSet map[string]bool

func (s attrSet) add(where string, a xml.Attr) *Failure {
	if s[a.Name.Local] {
		return failf(CodeSchema, "%s %s: duplicate attribute", where, a.Name.Local)
	}
	s[a.Name.Local] = true
	return nil
}

func (p *parser) create(where string, start xml.StartElement) (*pb.RequestSpec, *Failure) {
	s := &pb.RequestSpec{}
	seen := attrSet{}
	for _, a := range start.Attr {
		if isNamespaceDecl(a) {
			continue
		}
		set, ok := createAttrs[a.Name.Local]
		if a.Name.Space != "" || !ok {
			return nil, unknownAttr(where, a)
		}
		if f := seen.add(where, a); f != nil {
			return nil, f
		}
		if err := set(s, a.Value); err != nil {
			return nil, failf(CodeSchema, "%s %s: %v", where, a.Name.Local, err)
		}
	}
	for _, name := range mandatoryCreate {
		if !seen[name] {
			return nil, failf(CodeMissingAttribute, "%s %s: mandatory attribute is missing", where, name)
		}
	}
	var sawCustom bool
	for {
		tok, f := p.next(where)
		if f != nil {
			return nil, f
		}
		switch t := tok.(type) {
		case nil:
			return nil, failf(CodeMalformedXML, "body: unexpected end (in %s)", where)
		case xml.EndElement:
			return s, nil
		case xml.StartElement:
			switch t.Name.Local {
			case "cpd":
				if s.Cpd != nil {
					return nil, failf(CodeSchema, "%s/cpd: duplicate element", where)
				}
				if s.Cpd, f = p.cpd(where+"/cpd", t); f != nil {
					return nil, f
				}
			case "CustomData":
				if sawCustom {
					return nil, failf(CodeSchema, "%s/CustomData: duplicate element", where)
				}
				sawCustom = true
				if s.CustomData, f = p.customData(where+"/CustomData", t); f != nil {
					return nil, f
				}
			default:
				return nil, failf(CodeSchema, "%s/%s: unknown element; expected cpd or CustomData", where, clip(t.Name.Local))
			}
		}
	}
}

// empty consumes the rest of an element that may hold no children.
func (p *parser) empty(where string) *Failure {
	tok, f := p.next(where)
	if f != nil {
		return f
	}
	switch t := tok.(type) {
	case xml.EndElement:
		return nil
	case xml.StartElement:
		return failf(CodeSchema, "%s/%s: unknown element; %s has no child elements", where, clip(t.Name.Local), where)
	}
	return failf(CodeMalformedXML, "body: unexpected end (in %s)", where)
}

func (p *parser) cpd(where string, start xml.StartElement) (*pb.Cpd, *Failure) {
	c := &pb.Cpd{}
	seen := attrSet{}
	for _, a := range start.Attr {
		if isNamespaceDecl(a) {
			continue
		}
		set, ok := cpdAttrs[a.Name.Local]
		if a.Name.Space != "" || !ok {
			return nil, unknownAttr(where, a)
		}
		if f := seen.add(where, a); f != nil {
			return nil, f
		}
		if err := set(c, a.Value); err != nil {
			return nil, failf(CodeSchema, "%s %s: %v", where, a.Name.Local, err)
		}
	}
	return c, p.empty(where)
}

func (p *parser) customData(where string, start xml.StartElement) ([]*pb.KeyValue, *Failure) {
	if f := p.rootAttrs(where, start.Attr); f != nil {
		return nil, f
	}
	var out []*pb.KeyValue
	for {
		tok, f := p.next(where)
		if f != nil {
			return nil, f
		}
		switch t := tok.(type) {
		case nil:
			return nil, failf(CodeMalformedXML, "body: unexpected end (in %s)", where)
		case xml.EndElement:
			return out, nil
		case xml.StartElement:
			kwhere := fmt.Sprintf("%s/KeyValue[%d]", where, len(out)+1)
			if t.Name.Local != "KeyValue" {
				return nil, failf(CodeSchema, "%s/%s: unknown element; expected KeyValue", where, clip(t.Name.Local))
			}
			kv := &pb.KeyValue{}
			seen := attrSet{}
			for _, a := range t.Attr {
				if isNamespaceDecl(a) {
					continue
				}
				if a.Name.Space != "" || (a.Name.Local != "Key" && a.Name.Local != "Value") {
					return nil, unknownAttr(kwhere, a)
				}
				if f := seen.add(kwhere, a); f != nil {
					return nil, f
				}
				if a.Name.Local == "Key" {
					kv.Key = a.Value
				} else {
					kv.Value = a.Value
				}
			}
			if !seen["Key"] {
				return nil, failf(CodeMissingAttribute, "%s Key: mandatory attribute is missing", kwhere)
			}
			if f := p.empty(kwhere); f != nil {
				return nil, f
			}
			out = append(out, kv)
		}
	}
}

// idElement reads a QueryRequest or CancelRequest: one mandatory RequestID
// and nothing else. The id's shape is checked per element when it runs
// (ReasonCode 106), as the seed's bulk cancel example shows.
func (p *parser) idElement(where string, start xml.StartElement) (string, *Failure) {
	var id string
	seen := attrSet{}
	for _, a := range start.Attr {
		if isNamespaceDecl(a) {
			continue
		}
		if a.Name.Space != "" || a.Name.Local != "RequestID" {
			return "", unknownAttr(where, a)
		}
		if f := seen.add(where, a); f != nil {
			return "", f
		}
		id = a.Value
	}
	if !seen["RequestID"] {
		return "", failf(CodeMissingAttribute, "%s RequestID: mandatory attribute is missing", where)
	}
	return id, p.empty(where)
}
