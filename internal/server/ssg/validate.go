package ssg

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/seed-7bfc04c2/dialtone/internal/fsm/fsmpb"
	"github.com/seed-7bfc04c2/dialtone/internal/server"
)

// specAttrs translates server.ValidateSpec's field names to SSG attributes.
var specAttrs = map[string]string{
	"token":            "Token",
	"ivr_profile":      "IVRProfileName",
	"telnum":           "Telnum",
	"ani":              "Ani",
	"notification_url": "NotificationURL",
	"max_attempts":     "MaxAttempts",
	"time_to_live":     "TimeToLive",
	"idempotency_key":  "IdempotencyKey",
}

var cpdFields = map[string]string{
	"record":               "record",
	"preconnect":           "preconnect",
	"post_connect_timeout": "postconnecttimeout",
	"rna_timeout":          "rnatimeout",
	"detect":               "detect",
}

// attrPath turns a ValidateSpec field (without prefix) into the element
// suffix and attribute it came from: "cpd.rna_timeout" is ("/cpd",
// "rnatimeout"), "custom_data[0].key" is ("/CustomData/KeyValue[1]",
// "Key"). ok is false for a field this package does not know, which the
// fuzz test treats as a bug.
func attrPath(field string) (elem, attr string, ok bool) {
	if a, found := specAttrs[field]; found {
		return "", a, true
	}
	if f, found := strings.CutPrefix(field, "cpd."); found {
		a, ok := cpdFields[f]
		return "/cpd", a, ok
	}
	if field == "custom_data" {
		return "/CustomData", "", true
	}
	if rest, found := strings.CutPrefix(field, "custom_data["); found {
		num, sub, found := strings.Cut(rest, "].")
		i, err := strconv.Atoi(num)
		if !found || err != nil || (sub != "key" && sub != "value") {
			return "", field, false
		}
		return fmt.Sprintf("/CustomData/KeyValue[%d]", i+1), map[string]string{"key": "Key", "value": "Value"}[sub], true
	}
	return "", field, false
}

// reasonFor renders one ValidateSpec error of element e in SSG terms, e.g.
// `CreateRequest[2] Telnum: "98x" must be 1-32 digits ...`.
func reasonFor(e Element, fe server.FieldError) string {
	elem, attr, _ := attrPath(fe.Field)
	where := e.Path() + elem
	if attr != "" {
		where += " " + attr
	}
	return where + ": " + fe.Reason
}

// Validate checks every CreateRequest with server.ValidateSpec, the rules the
// native API applies, and returns the records to store in document order.
// If any is invalid nothing may be stored: the failure names the first
// offending attribute and counts the others.
func Validate(doc *Document) ([]*fsmpb.Request, *Failure) {
	var (
		recs    []*fsmpb.Request
		reasons []string
	)
	for _, e := range doc.Elements {
		if e.Kind != KindCreate {
			continue
		}
		r, errs := server.ValidateSpec("", e.Spec)
		for _, fe := range errs {
			reasons = append(reasons, reasonFor(e, fe))
		}
		if r != nil {
			recs = append(recs, r)
		}
	}
	if len(reasons) > 0 {
		msg := reasons[0]
		if len(reasons) > 1 {
			msg += fmt.Sprintf(" (and %d more)", len(reasons)-1)
		}
		return nil, &Failure{Code: CodeInvalidValue, Reason: msg}
	}
	return recs, nil
}
