package ssg

import "fmt"

// ReasonCode is the ReasonCode attribute of a FAILURE ResponseElement. The
// codes the Genesys documentation prints (106, 120, 404, 415) keep their
// meaning; the others fill the gaps it leaves. docs/ssg.md publishes the
// table: keep the two in step.
type ReasonCode int

const (
	// CodeMalformedXML: the body is not well-formed XML (syntax error,
	// invalid UTF-8, unknown entity, content after the root element, an
	// empty body or an encoding other than UTF-8). The whole POST fails.
	CodeMalformedXML ReasonCode = 101 // also HTTP 400
	// CodeSchema: well-formed XML that does not follow the request schema:
	// wrong root, unknown or misplaced element, unknown or duplicate
	// attribute, text where none is allowed, a malformed number or boolean.
	// The whole POST fails.
	CodeSchema ReasonCode = 102
	// CodeMissingAttribute: a mandatory attribute (or query parameter) is
	// absent. For a POST the whole POST fails.
	CodeMissingAttribute ReasonCode = 103
	// CodeInvalidValue: an attribute is present but its value is invalid
	// (server.ValidateSpec's rules). The whole POST fails.
	CodeInvalidValue ReasonCode = 104
	// CodeInvalidTenant: TenantName is missing, repeated or malformed.
	CodeInvalidTenant ReasonCode = 105
	// CodeInvalidRequestID: a RequestID that cannot be an id (Genesys 106).
	// Per element: the other elements of the POST still execute.
	CodeInvalidRequestID ReasonCode = 106
	// CodeTooManyElements: more request elements than limits.max_bulk.
	CodeTooManyElements ReasonCode = 107
	// CodeEmptyRequest: an SSGRequest without any request element.
	CodeEmptyRequest ReasonCode = 108
	// CodeDTD: a DOCTYPE or other markup declaration. Refused before any
	// entity could be expanded.
	CodeDTD ReasonCode = 109 // also HTTP 400
	// CodeDBInsertion: the create was valid but could not be stored because
	// limits.max_records is reached (Genesys 120).
	CodeDBInsertion ReasonCode = 120
	// CodeIdempotencyConflict: the IdempotencyKey extension attribute was
	// already used by this tenant for a request with a different body.
	CodeIdempotencyConflict ReasonCode = 121
	// CodeCancelInProgress: a call attempt is in progress; the request is
	// not cancelled and stays stored (the SSG rule).
	CodeCancelInProgress ReasonCode = 130
	// CodeCancelFinished: the request is already processed (succeeded,
	// failed or expired) and cannot be cancelled any more.
	CodeCancelFinished ReasonCode = 131
	// CodeNotFound: no such RequestID for this tenant (Genesys 404). Another
	// tenant's id answers exactly the same.
	CodeNotFound ReasonCode = 404
	// CodeUnauthenticated: missing or invalid credentials (also HTTP 401).
	CodeUnauthenticated ReasonCode = 401
	// CodePermissionDenied: the principal lacks the role or may not act
	// for the TenantName (also HTTP 403).
	CodePermissionDenied ReasonCode = 403
	// CodeMethodNotAllowed: not GET, POST or DELETE (also HTTP 405).
	CodeMethodNotAllowed ReasonCode = 405
	// CodeBodyTooLarge: the body exceeds limits.max_body_bytes (also HTTP
	// 413).
	CodeBodyTooLarge ReasonCode = 413
	// CodeUnsupportedMediaType: a POST whose Content-Type is not text/xml or
	// application/xml, or whose charset is not UTF-8 (also HTTP 415).
	CodeUnsupportedMediaType ReasonCode = 415
	// CodeInternal: an unexpected error; the outcome of a write is unknown.
	CodeInternal ReasonCode = 500
	// CodeUnavailable: the cluster has no reachable leader (or leadership
	// changed mid-write); nothing was done unless the reason says the
	// outcome is unknown. Retry, ideally with an IdempotencyKey.
	CodeUnavailable ReasonCode = 503
	// CodeTimeout: the cluster did not confirm the write or read in time;
	// the outcome of a write is unknown.
	CodeTimeout ReasonCode = 504
)

// Fixed reasons: the Genesys documentation prints these texts and TAs may
// match them.
const (
	reasonNotFound      = "RequestID not found in the Database"
	reasonInvalidID     = "Invalid RequestID"
	reasonDBInsertion   = "DB Insertion failed"
	reasonInProgress    = "Request is in progress and cannot be cancelled"
	reasonFinished      = "Request is already processed and cannot be cancelled"
	reasonIdemConflict  = "IdempotencyKey is already used by a request with a different body"
	reasonMethod        = "method not allowed: use GET (query), POST (create, query, cancel) or DELETE (cancel)"
	reasonMissingTenant = "TenantName: mandatory query parameter is missing"
)

// Failure is one FAILURE answer: the code and a reason naming the element
// and attribute at fault.
type Failure struct {
	Code   ReasonCode
	Reason string
}

func (f *Failure) Error() string { return fmt.Sprintf("%d %s", f.Code, f.Reason) }

func failf(code ReasonCode, format string, args ...any) *Failure {
	return &Failure{Code: code, Reason: fmt.Sprintf(format, args...)}
}
