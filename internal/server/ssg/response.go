package ssg

import (
	"bytes"
	"encoding/xml"
	"net/http"
	"strconv"
	"strings"
	"unicode/utf8"
)

// ResponseElement is one ResponseElement of an SSGResponse. Empty fields
// are left out; attributes are written in the order of the fields, which
// is the seed's order.
type ResponseElement struct {
	ResponseType    string // SUCCESS or FAILURE
	Token           string
	RequestID       string
	TenantName      string
	IVRProfileName  string
	Telnum          string
	Ani             string
	NotificationURL string
	AttemptsMade    string
	MaxAttempts     string
	TimeToLive      string
	TTLRemaining    string
	Status          string
	Result          string
	CallUUID        string
	ReasonCode      string
	Reason          string
}

func (e *ResponseElement) attrs() [][2]string {
	return [][2]string{
		{"ResponseType", e.ResponseType}, {"Token", e.Token}, {"RequestID", e.RequestID},
		{"TenantName", e.TenantName}, {"IVRProfileName", e.IVRProfileName}, {"Telnum", e.Telnum},
		{"Ani", e.Ani}, {"NotificationURL", e.NotificationURL}, {"AttemptsMade", e.AttemptsMade},
		{"MaxAttempts", e.MaxAttempts}, {"TimeToLive", e.TimeToLive}, {"TTLRemaining", e.TTLRemaining},
		{"Status", e.Status}, {"Result", e.Result}, {"CallUUID", e.CallUUID},
		{"ReasonCode", e.ReasonCode}, {"Reason", e.Reason},
	}
}

func success() ResponseElement { return ResponseElement{ResponseType: "SUCCESS"} }

func failure(f *Failure) ResponseElement {
	return ResponseElement{ResponseType: "FAILURE", ReasonCode: strconv.Itoa(int(f.Code)), Reason: f.Reason}
}

// Marshal renders an SSGResponse document.
func Marshal(elems []ResponseElement) []byte {
	var b bytes.Buffer
	b.WriteString(`<?xml version="1.0" encoding="UTF-8"?>` + "\n")
	b.WriteString(`<SSGResponse xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">` + "\n")
	for i := range elems {
		b.WriteString("<ResponseElement")
		for _, a := range elems[i].attrs() {
			if a[1] == "" {
				continue
			}
			b.WriteString(" " + a[0] + `="`)
			_ = xml.EscapeText(&b, []byte(xmlSafe(a[1])))
			b.WriteString(`"`)
		}
		b.WriteString("/>\n")
	}
	b.WriteString("</SSGResponse>\n")
	return b.Bytes()
}

// xmlSafe replaces what XML 1.0 cannot carry even escaped (invalid UTF-8,
// most control characters), so echoing a client's value never produces a
// document the client cannot parse.
func xmlSafe(s string) string {
	ok := func(r rune) bool {
		return r == '\t' || r == '\n' || r == '\r' || (r >= 0x20 && r <= 0xD7FF) || (r >= 0xE000 && r <= 0xFFFD) || (r >= 0x10000 && r <= 0x10FFFF)
	}
	if utf8.ValidString(s) && strings.IndexFunc(s, func(r rune) bool { return !ok(r) }) < 0 {
		return s
	}
	return strings.Map(func(r rune) rune {
		if r == utf8.RuneError || !ok(r) {
			return '\uFFFD'
		}
		return r
	}, strings.ToValidUTF8(s, "\uFFFD"))
}

func writeResponse(w http.ResponseWriter, status int, elems []ResponseElement) {
	body := Marshal(elems)
	w.Header().Set("Content-Type", "text/xml")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// WriteHTTPError answers a request refused before the endpoint ran (401,
// 403 from the authentication wrapper) the way the endpoint answers its own
// transport-level refusals: HTTP status code, and an SSGResponse with one
// FAILURE whose ReasonCode is that status and whose Reason is msg.
func WriteHTTPError(w http.ResponseWriter, code int, msg string) {
	writeResponse(w, code, []ResponseElement{failure(&Failure{Code: ReasonCode(code), Reason: msg})})
}
