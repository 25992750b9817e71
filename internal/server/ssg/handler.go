package ssg

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/seed-7bfc04c2/dialtone/api/dialtonev1"
	"github.com/seed-7bfc04c2/dialtone/internal/fsm/fsmpb"
	"github.com/seed-7bfc04c2/dialtone/internal/server"
)

// Service is what the endpoint needs from the request service. *server.Requests
// implements it, so SSG and native clients store and read the same records.
type Service interface {
	Create(ctx context.Context, tenant string, recs []*fsmpb.Request) ([]*pb.CreateResult, uint64, error)
	Cancel(ctx context.Context, tenant string, ids []string) ([]*pb.CancelResult, uint64, error)
	Lookup(tenant, id string) (*fsmpb.Request, bool)
	ReadBarrier(ctx context.Context, consistency string, minIndex uint64) (string, error)
}

var _ Service = (*server.Requests)(nil)

// Options configure the handler.
type Options struct {
	// MaxBulk bounds the request elements of one POST (limits.max_bulk).
	MaxBulk int
	// MaxBodyBytes bounds the body (limits.max_body_bytes); the node's
	// outer handler already refuses larger declared lengths.
	MaxBodyBytes int64
	Logger       *slog.Logger
	// Now is the clock for TTLRemaining (tests may replace it).
	Now func() time.Time
}

type handler struct {
	svc  Service
	opts Options
	log  *slog.Logger
}

// NewHandler returns the /SSG endpoint.
func NewHandler(svc Service, opts Options) http.Handler {
	if opts.MaxBulk <= 0 {
		opts.MaxBulk = 1000
	}
	if opts.MaxBodyBytes <= 0 {
		opts.MaxBodyBytes = 8 << 20
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	return &handler{svc: svc, opts: opts, log: log.With("api", "ssg")}
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodPost, http.MethodGet, http.MethodDelete:
	default:
		w.Header().Set("Allow", "GET, POST, DELETE")
		writeResponse(w, http.StatusMethodNotAllowed, []ResponseElement{failure(&Failure{CodeMethodNotAllowed, reasonMethod})})
		return
	}
	if r.Method == http.MethodPost {
		if f := checkContentType(r.Header.Get("Content-Type")); f != nil {
			writeResponse(w, http.StatusUnsupportedMediaType, []ResponseElement{failure(f)})
			return
		}
	}
	query, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		h.fail(w, failf(CodeSchema, "query string: %v", err))
		return
	}
	tenant, f := tenantOf(query)
	if f != nil {
		h.fail(w, f)
		return
	}
	switch r.Method {
	case http.MethodPost:
		h.post(w, r, tenant)
	case http.MethodGet:
		h.single(w, r, tenant, KindQuery, query)
	case http.MethodDelete:
		h.single(w, r, tenant, KindCancel, query)
	}
}

// fail answers a failure of the whole request: HTTP 200 with one FAILURE
// element, which is what SSG trigger applications expect.
func (h *handler) fail(w http.ResponseWriter, f *Failure) {
	writeResponse(w, http.StatusOK, []ResponseElement{failure(f)})
}

// checkContentType accepts text/xml and application/xml, with parameters;
// a charset, if given, must be UTF-8 (or its subset US-ASCII) because the
// body is read as UTF-8.
func checkContentType(ct string) *Failure {
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil || (mt != "text/xml" && mt != "application/xml") {
		return failf(CodeUnsupportedMediaType, "Content-Type %q: must be text/xml or application/xml", clip(ct))
	}
	if cs, ok := params["charset"]; ok && !strings.EqualFold(cs, "utf-8") && !strings.EqualFold(cs, "us-ascii") {
		return failf(CodeUnsupportedMediaType, "Content-Type charset %q: only UTF-8 is supported", clip(cs))
	}
	return nil
}

func tenantOf(q url.Values) (string, *Failure) {
	v, ok := q["TenantName"]
	switch {
	case !ok:
		return "", &Failure{CodeInvalidTenant, reasonMissingTenant}
	case len(v) > 1:
		return "", failf(CodeInvalidTenant, "TenantName: query parameter given %d times", len(v))
	}
	if err := server.ValidateTenant(v[0]); err != nil {
		var fe server.FieldError
		if errors.As(err, &fe) {
			return "", failf(CodeInvalidTenant, "TenantName: %q %s", clip(v[0]), fe.Reason)
		}
		return "", failf(CodeInvalidTenant, "TenantName: %v", err)
	}
	return v[0], nil
}

func (h *handler) post(w http.ResponseWriter, r *http.Request, tenant string) {
	body, err := io.ReadAll(io.LimitReader(r.Body, h.opts.MaxBodyBytes+1))
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe) || int64(len(body)) > h.opts.MaxBodyBytes:
		limit := h.opts.MaxBodyBytes
		if mbe != nil {
			limit = min(limit, mbe.Limit)
		}
		writeResponse(w, http.StatusRequestEntityTooLarge, []ResponseElement{failure(failf(CodeBodyTooLarge, "body: exceeds the limit of %d bytes", limit))})
		return
	case err != nil:
		writeResponse(w, http.StatusBadRequest, []ResponseElement{failure(failf(CodeMalformedXML, "body: read failed: %v", err))})
		return
	}
	doc, f := Parse(body, h.opts.MaxBulk)
	if f != nil {
		if f.Code == CodeMalformedXML || f.Code == CodeDTD {
			// Not one well-formed XML document (trailing data, a second
			// document, junk after whitespace, a DTD): a transport-level
			// refusal, HTTP 400, like 413 and 415. Schema and value
			// errors stay HTTP 200 with a FAILURE, as SSG TAs expect.
			writeResponse(w, http.StatusBadRequest, []ResponseElement{failure(f)})
			return
		}
		h.fail(w, f)
		return
	}
	recs, f := Validate(doc)
	if f != nil {
		h.fail(w, f)
		return
	}
	writeResponse(w, http.StatusOK, h.execute(r.Context(), tenant, doc, recs))
}

// single serves GET (query) and DELETE (cancel) of the RequestID in the
// query string, with the same answers as the POST elements.
func (h *handler) single(w http.ResponseWriter, r *http.Request, tenant string, kind Kind, q url.Values) {
	v, ok := q["RequestID"]
	switch {
	case !ok:
		h.fail(w, failf(CodeMissingAttribute, "RequestID: mandatory query parameter is missing"))
		return
	case len(v) > 1:
		h.fail(w, failf(CodeSchema, "RequestID: query parameter given %d times", len(v)))
		return
	}
	doc := &Document{Elements: []Element{{Kind: kind, Index: 1, RequestID: v[0]}}}
	writeResponse(w, http.StatusOK, h.execute(r.Context(), tenant, doc, nil))
}

// execute stores all creates as one entry, then runs queries and cancels in
// document order; it answers one element per request element.
func (h *handler) execute(ctx context.Context, tenant string, doc *Document, recs []*fsmpb.Request) []ResponseElement {
	out := make([]ResponseElement, len(doc.Elements))
	var index uint64
	if len(recs) > 0 {
		index = h.create(ctx, tenant, doc, recs, out)
	}
	// Consecutive queries share one read barrier and consecutive cancels one
	// entry; creates were done first, so they do not split a run.
	var run []int
	flush := func() {
		if len(run) == 0 {
			return
		}
		if doc.Elements[run[0]].Kind == KindQuery {
			h.queries(ctx, tenant, doc, run, out, index)
		} else if idx := h.cancels(ctx, tenant, doc, run, out); idx > index {
			index = idx
		}
		run = run[:0]
	}
	for i, e := range doc.Elements {
		if e.Kind == KindCreate {
			continue
		}
		if len(run) > 0 && doc.Elements[run[0]].Kind != e.Kind {
			flush()
		}
		run = append(run, i)
	}
	flush()
	return out
}

// errFailure maps a service error (a gRPC status) to a 5xx-style failure.
func (h *handler) errFailure(what string, err error) *Failure {
	st := status.Convert(err)
	code := CodeInternal
	switch st.Code() {
	case codes.Unavailable, codes.Canceled:
		code = CodeUnavailable
	case codes.DeadlineExceeded:
		code = CodeTimeout
	}
	h.log.Warn("ssg: "+what+" failed", "code", int(code), "err", err)
	return &Failure{Code: code, Reason: st.Message()}
}

func (h *handler) create(ctx context.Context, tenant string, doc *Document, recs []*fsmpb.Request, out []ResponseElement) uint64 {
	results, index, err := h.svc.Create(ctx, tenant, recs)
	var errF *Failure
	if err != nil {
		errF = h.errFailure("create", err)
	} else if len(results) != len(recs) {
		errF = h.errFailure("create", status.Errorf(codes.Internal, "%d results for %d requests", len(results), len(recs)))
	}
	k := 0
	for i, e := range doc.Elements {
		if e.Kind != KindCreate {
			continue
		}
		var el ResponseElement
		switch {
		case errF != nil:
			el = failure(errF)
		case results[k].GetOk():
			el = success()
			el.RequestID = results[k].GetId()
		case results[k].GetCode() == "CAPACITY":
			el = failure(failf(CodeDBInsertion, "%s: %s", reasonDBInsertion, results[k].GetReason()))
		case results[k].GetCode() == "IDEMPOTENCY_CONFLICT":
			el = failure(&Failure{CodeIdempotencyConflict, reasonIdemConflict})
		default:
			el = failure(failf(CodeInternal, "%s: %s", results[k].GetCode(), results[k].GetReason()))
		}
		el.Token = e.Spec.Token
		out[i] = el
		k++
	}
	return index
}

// idFailure answers a query or cancel element that fails.
func idFailure(id string, f *Failure) ResponseElement {
	el := failure(f)
	el.RequestID = id
	return el
}

func validID(id string) bool { return server.ValidateRequestID("RequestID", id) == nil }

// queries answers a run of QueryRequests from this node's replica after a
// linearizable read barrier that also covers this POST's own writes
// (index), so a TA sees every create and cancel acknowledged before, on
// any node.
func (h *handler) queries(ctx context.Context, tenant string, doc *Document, run []int, out []ResponseElement, index uint64) {
	var (
		barrier bool
		errF    *Failure
	)
	for _, i := range run {
		id := doc.Elements[i].RequestID
		if !validID(id) {
			out[i] = idFailure(clip(id), &Failure{CodeInvalidRequestID, reasonInvalidID})
			continue
		}
		if !barrier {
			barrier = true
			if _, err := h.svc.ReadBarrier(ctx, "linearizable", index); err != nil {
				errF = h.errFailure("query read barrier", err)
			}
		}
		if errF != nil {
			out[i] = idFailure(id, errF)
			continue
		}
		rec, ok := h.svc.Lookup(tenant, id)
		if !ok {
			out[i] = idFailure(id, &Failure{CodeNotFound, reasonNotFound})
			continue
		}
		out[i] = queryElement(rec, h.opts.Now())
	}
}

// queryElement renders a stored request as the seed's query answer.
func queryElement(r *fsmpb.Request, now time.Time) ResponseElement {
	el := success()
	el.Token = r.Token
	el.RequestID = r.Id
	el.TenantName = r.Tenant
	el.IVRProfileName = r.IvrProfile
	el.Telnum = r.Telnum
	el.Ani = r.Ani
	el.NotificationURL = r.NotificationUrl
	el.AttemptsMade = strconv.FormatUint(uint64(r.AttemptsMade), 10)
	el.MaxAttempts = strconv.FormatUint(uint64(r.MaxAttempts), 10)
	el.TimeToLive = server.FormatDuration(r.TtlMs)
	// Whole seconds, as the seed prints it ("3477s").
	el.TTLRemaining = server.FormatDuration(server.TTLRemaining(r, now).Truncate(time.Second).Milliseconds())
	el.Status = server.StatusText(r)
	if r.State == fsmpb.State_PROCESSED && r.Result != fsmpb.Result_RESULT_UNSPECIFIED {
		el.Result = r.Result.String()
	}
	el.CallUUID = r.LastCallUuid
	return el
}

// cancels cancels a run of CancelRequests as one entry and returns its
// index.
func (h *handler) cancels(ctx context.Context, tenant string, doc *Document, run []int, out []ResponseElement) uint64 {
	var ids []string
	var pos []int
	for _, i := range run {
		id := doc.Elements[i].RequestID
		if !validID(id) {
			out[i] = idFailure(clip(id), &Failure{CodeInvalidRequestID, reasonInvalidID})
			continue
		}
		ids = append(ids, id)
		pos = append(pos, i)
	}
	if len(ids) == 0 {
		return 0
	}
	results, index, err := h.svc.Cancel(ctx, tenant, ids)
	if err == nil && len(results) != len(ids) {
		err = status.Errorf(codes.Internal, "%d results for %d ids", len(results), len(ids))
	}
	if err != nil {
		f := h.errFailure("cancel", err)
		for k, i := range pos {
			out[i] = idFailure(ids[k], f)
		}
		return 0
	}
	for k, i := range pos {
		res := results[k]
		switch res.GetCode() {
		case "":
			el := success()
			el.RequestID = ids[k]
			out[i] = el
		case "NOT_FOUND":
			out[i] = idFailure(ids[k], &Failure{CodeNotFound, reasonNotFound})
		case "IN_PROGRESS":
			out[i] = idFailure(ids[k], &Failure{CodeCancelInProgress, reasonInProgress})
		case "FINISHED":
			out[i] = h.finished(ctx, tenant, ids[k], index)
		default:
			out[i] = idFailure(ids[k], failf(CodeInternal, "%s: %s", res.GetCode(), res.GetReason()))
		}
	}
	return index
}

// finished answers a cancel the state machine found already processed.
// Cancelling a cancelled request succeeds; server.Requests decides that from
// this node's replica, which may not have applied the earlier cancel yet,
// so look again once the replica has caught up with this cancel's entry.
func (h *handler) finished(ctx context.Context, tenant, id string, index uint64) ResponseElement {
	if _, err := h.svc.ReadBarrier(ctx, "", index); err == nil {
		if r, ok := h.svc.Lookup(tenant, id); ok && r.Result == fsmpb.Result_CANCELLED {
			el := success()
			el.RequestID = id
			return el
		}
	}
	return idFailure(id, &Failure{CodeCancelFinished, reasonFinished})
}
