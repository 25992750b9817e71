package server

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/seed-7bfc04c2/dialtone/api/dialtonev1"
	"github.com/seed-7bfc04c2/dialtone/internal/cluster"
	"github.com/seed-7bfc04c2/dialtone/internal/fsm"
	"github.com/seed-7bfc04c2/dialtone/internal/fsm/fsmpb"
)

// Store is the local replicated state the API reads.
type Store interface {
	Get(id string) (*fsmpb.Request, bool)
	List(q fsm.ListQuery) ([]*fsmpb.Request, string)
	AppliedIndex() uint64
	Count() int
}

// Replicator commits commands and provides read barriers.
type Replicator interface {
	Apply(ctx context.Context, cmd *fsmpb.Command) (*fsmpb.ApplyResult, uint64, error)
	ReadIndex(ctx context.Context) (uint64, error)
	WaitApplied(ctx context.Context, index uint64) error
	NodeID() string
	IsLeader() bool
	LastContactMs() int64
}

// Options tune the request service.
type Options struct {
	MaxRecords  uint64
	MaxBulk     int
	ReadTimeout time.Duration
	// Now and NewID are the clock and id source (tests may replace them).
	Now   func() time.Time
	NewID func() string
}

func (o *Options) setDefaults() {
	if o.MaxBulk == 0 {
		o.MaxBulk = 1000
	}
	if o.ReadTimeout == 0 {
		o.ReadTimeout = 5 * time.Second
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.NewID == nil {
		// UUIDv7: time-ordered, so ids list in creation order.
		o.NewID = func() string { return uuid.Must(uuid.NewV7()).String() }
	}
}

// Requests implements RequestService. The SSG endpoint uses the same
// methods, so both protocols store and see the same records.
type Requests struct {
	pb.UnimplementedRequestServiceServer
	store Store
	repl  Replicator
	opts  Options
}

// NewRequests returns the request service.
func NewRequests(store Store, repl Replicator, opts Options) *Requests {
	opts.setDefaults()
	return &Requests{store: store, repl: repl, opts: opts}
}

// CreateRequests validates every request (nothing is stored if any is
// invalid), then stores them all as one replicated entry.
func (s *Requests) CreateRequests(ctx context.Context, req *pb.CreateRequestsRequest) (*pb.CreateRequestsResponse, error) {
	var fe fieldErrors
	if err := ValidateTenant(req.GetTenant()); err != nil {
		fe = append(fe, err.(FieldError))
	}
	n := len(req.GetRequests())
	switch {
	case n == 0:
		fe.add("requests", "at least one request is required")
	case n > s.opts.MaxBulk:
		fe.add("requests", "%d requests in one call, at most %d allowed", n, s.opts.MaxBulk)
	}
	if len(fe) > 0 {
		return nil, fe.status()
	}
	recs := make([]*fsmpb.Request, 0, n)
	for i, spec := range req.GetRequests() {
		r, errs := ValidateSpec(fmt.Sprintf("requests[%d]", i), spec)
		fe = append(fe, errs...)
		if r != nil {
			recs = append(recs, r)
		}
	}
	if len(fe) > 0 {
		return nil, fe.status()
	}
	results, index, err := s.Create(ctx, req.GetTenant(), recs)
	if err != nil {
		return nil, err
	}
	return &pb.CreateRequestsResponse{Results: results, Index: index}, nil
}

// Create stores validated records for tenant and reports one result each.
// Ids are assigned here, before the command is proposed, so that replaying
// the command after an unknown outcome cannot create a second request.
func (s *Requests) Create(ctx context.Context, tenant string, recs []*fsmpb.Request) ([]*pb.CreateResult, uint64, error) {
	ids := make([]string, len(recs))
	for i, r := range recs {
		r.Tenant = tenant
		r.Id = s.opts.NewID()
		ids[i] = r.Id
	}
	fsm.SetFingerprints(recs)
	cmd := fsm.CreateCommand(recs, s.opts.MaxRecords)
	res, index, _, err := applyReplaying(ctx, s.repl, cmd)
	if err != nil {
		return nil, 0, err
	}
	out := make([]*pb.CreateResult, len(recs))
	for i, r := range recs {
		item := itemAt(res, i)
		cr := &pb.CreateResult{Id: item.GetId(), Token: r.Token}
		switch item.GetCode() {
		case fsmpb.Code_CODE_OK:
			cr.Ok = true
		case fsmpb.Code_CODE_DUPLICATE:
			// Our own replay answers with our id; a client retry with the
			// same idempotency key answers with the original's.
			cr.Ok = true
			cr.Duplicate = item.GetId() != ids[i]
		case fsmpb.Code_CODE_CAPACITY:
			cr.Id, cr.Code, cr.Reason = "", "CAPACITY", item.GetReason()
		case fsmpb.Code_CODE_CONFLICT:
			cr.Id, cr.Code = "", "IDEMPOTENCY_CONFLICT"
			cr.Reason = "idempotency_key is already used by a request with a different body"
		default:
			cr.Id, cr.Code, cr.Reason = "", item.GetCode().String(), item.GetReason()
		}
		out[i] = cr
	}
	return out, index, nil
}

func itemAt(res *fsmpb.ApplyResult, i int) *fsmpb.ItemResult {
	if i < len(res.GetItems()) {
		return res.GetItems()[i]
	}
	return &fsmpb.ItemResult{Code: fsmpb.Code_CODE_INVALID_STATE, Reason: "no result from the state machine"}
}

// replError maps replication errors to gRPC status codes.
func replError(err error) error {
	switch {
	case errors.Is(err, cluster.ErrNotAppliedLocally): // readyourwrites.go
		return notAppliedStatus(err)
	case errors.Is(err, cluster.ErrLeadershipLost):
		return status.Error(codes.Unavailable, "leadership changed while writing; the outcome is unknown: retry with the same idempotency_key")
	case errors.Is(err, cluster.ErrNoLeader), errors.Is(err, cluster.ErrShutdown):
		return status.Errorf(codes.Unavailable, "cluster unavailable: %v", err)
	case errors.Is(err, context.DeadlineExceeded):
		return status.Errorf(codes.DeadlineExceeded, "write not confirmed before the deadline: %v", err)
	case errors.Is(err, context.Canceled):
		return status.Error(codes.Canceled, "request cancelled")
	}
	return status.Errorf(codes.Internal, "write failed: %v", err)
}

// ReadBarrier applies a read's consistency options ("", "local" or
// "linearizable"; minIndex 0 for none) and returns the consistency served.
func (s *Requests) ReadBarrier(ctx context.Context, consistency string, minIndex uint64) (string, error) {
	// The timeout bounds the waits below; a local read that need not wait
	// (the hot case) skips its timer.
	if consistency == "linearizable" || (minIndex > 0 && s.store.AppliedIndex() < minIndex) {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, s.opts.ReadTimeout)
		defer cancel()
	}
	switch consistency {
	case "", "local":
		consistency = "local"
	case "linearizable":
		idx, err := s.repl.ReadIndex(ctx)
		if err != nil {
			return "", status.Errorf(codes.Unavailable, "consistency: linearizable read needs a leader: %v", err)
		}
		minIndex = max(minIndex, idx)
	default:
		return "", FieldErrorStatus("consistency", fmt.Sprintf("%q must be \"local\" or \"linearizable\"", truncate(consistency, 40)))
	}
	if minIndex > 0 && s.store.AppliedIndex() < minIndex {
		if err := s.repl.WaitApplied(ctx, minIndex); err != nil {
			return "", status.Errorf(codes.DeadlineExceeded, "min_index: index %d not applied on this node within %s (applied %d)", minIndex, s.opts.ReadTimeout, s.store.AppliedIndex())
		}
	}
	return consistency, nil
}

// FieldErrorStatus is InvalidArgument naming one field.
func FieldErrorStatus(field, reason string) error {
	return fieldErrors{{Field: field, Reason: reason}}.status()
}

func (s *Requests) meta(consistency string) *pb.ReadMeta {
	return &pb.ReadMeta{
		NodeId:        s.repl.NodeID(),
		AppliedIndex:  s.store.AppliedIndex(),
		Leader:        s.repl.IsLeader(),
		LastContactMs: s.repl.LastContactMs(),
		Consistency:   consistency,
	}
}

// Lookup returns the tenant's record from this node's replica; another
// tenant's id is not found, exactly like an unknown one.
func (s *Requests) Lookup(tenant, id string) (*fsmpb.Request, bool) {
	r, ok := s.store.Get(id)
	if !ok || r.Tenant != tenant {
		return nil, false
	}
	return r, true
}

func notFound(id string) error {
	return status.Errorf(codes.NotFound, "request %q not found", id)
}

// GetRequest returns one request.
func (s *Requests) GetRequest(ctx context.Context, req *pb.GetRequestRequest) (*pb.GetRequestResponse, error) {
	if err := ValidateTenant(req.GetTenant()); err != nil {
		return nil, FieldErrorStatus("tenant", err.(FieldError).Reason)
	}
	if err := ValidateRequestID("id", req.GetId()); err != nil {
		return nil, FieldErrorStatus("id", err.(FieldError).Reason)
	}
	c, err := s.ReadBarrier(ctx, req.GetConsistency(), req.GetMinIndex())
	if err != nil {
		return nil, err
	}
	r, ok := s.Lookup(req.GetTenant(), req.GetId())
	if !ok {
		return nil, notFound(req.GetId())
	}
	return &pb.GetRequestResponse{Request: toPublic(r, s.opts.Now()), Meta: s.meta(c)}, nil
}

// BatchGetRequests returns many requests; unknown ids are reported per item.
func (s *Requests) BatchGetRequests(ctx context.Context, req *pb.BatchGetRequestsRequest) (*pb.BatchGetRequestsResponse, error) {
	if err := s.checkIDs(req.GetTenant(), req.GetIds()); err != nil {
		return nil, err
	}
	c, err := s.ReadBarrier(ctx, req.GetConsistency(), req.GetMinIndex())
	if err != nil {
		return nil, err
	}
	now := s.opts.Now()
	out := &pb.BatchGetRequestsResponse{Meta: s.meta(c)}
	for _, id := range req.GetIds() {
		if r, ok := s.Lookup(req.GetTenant(), id); ok {
			out.Results = append(out.Results, &pb.GetResult{Id: id, Request: toPublic(r, now)})
		} else {
			out.Results = append(out.Results, &pb.GetResult{Id: id, Code: "NOT_FOUND", Reason: "request not found"})
		}
	}
	return out, nil
}

func (s *Requests) checkIDs(tenant string, ids []string) error {
	var fe fieldErrors
	if err := ValidateTenant(tenant); err != nil {
		fe = append(fe, err.(FieldError))
	}
	switch {
	case len(ids) == 0:
		fe.add("ids", "at least one id is required")
	case len(ids) > s.opts.MaxBulk:
		fe.add("ids", "%d ids in one call, at most %d allowed", len(ids), s.opts.MaxBulk)
	}
	for i, id := range ids {
		if err := ValidateRequestID(fmt.Sprintf("ids[%d]", i), id); err != nil {
			fe = append(fe, err.(FieldError))
		}
	}
	return fe.status()
}

// CancelRequest cancels one request.
func (s *Requests) CancelRequest(ctx context.Context, req *pb.CancelRequestRequest) (*pb.CancelRequestResponse, error) {
	if err := ValidateTenant(req.GetTenant()); err != nil {
		return nil, FieldErrorStatus("tenant", err.(FieldError).Reason)
	}
	if err := ValidateRequestID("id", req.GetId()); err != nil {
		return nil, FieldErrorStatus("id", err.(FieldError).Reason)
	}
	results, index, err := s.Cancel(ctx, req.GetTenant(), []string{req.GetId()})
	if err != nil {
		return nil, err
	}
	r := results[0]
	switch r.Code {
	case "":
		return &pb.CancelRequestResponse{Result: r, Index: index}, nil
	case "NOT_FOUND":
		return nil, notFound(req.GetId())
	default:
		return nil, status.Errorf(codes.FailedPrecondition, "request %q cannot be cancelled: %s", req.GetId(), r.Reason)
	}
}

// BatchCancelRequests cancels many requests, reporting per item.
func (s *Requests) BatchCancelRequests(ctx context.Context, req *pb.BatchCancelRequestsRequest) (*pb.BatchCancelRequestsResponse, error) {
	if err := s.checkIDs(req.GetTenant(), req.GetIds()); err != nil {
		return nil, err
	}
	results, index, err := s.Cancel(ctx, req.GetTenant(), req.GetIds())
	if err != nil {
		return nil, err
	}
	return &pb.BatchCancelRequestsResponse{Results: results, Index: index}, nil
}

// Cancel cancels ids of tenant as one entry and reports one result each.
func (s *Requests) Cancel(ctx context.Context, tenant string, ids []string) ([]*pb.CancelResult, uint64, error) {
	cmd := fsm.CancelCommand(tenant, ids)
	res, index, _, err := applyReplaying(ctx, s.repl, cmd)
	if err != nil {
		return nil, 0, err
	}
	out := make([]*pb.CancelResult, len(ids))
	waited := false
	for i, id := range ids {
		item := itemAt(res, i)
		if item.GetCode() == fsmpb.Code_CODE_FINISHED && !waited {
			// The check below reads this node's replica: let it catch up
			// with the entry first (the write may have gone to the leader).
			if err := s.repl.WaitApplied(ctx, index); err != nil {
				return nil, 0, replError(err)
			}
			waited = true
		}
		cr := &pb.CancelResult{Id: id}
		switch item.GetCode() {
		case fsmpb.Code_CODE_OK:
			cr.Ok = true
		case fsmpb.Code_CODE_NOT_FOUND:
			cr.Code, cr.Reason = "NOT_FOUND", "request not found"
		case fsmpb.Code_CODE_IN_PROGRESS:
			cr.Code, cr.Reason = "IN_PROGRESS", "an attempt is in progress"
		case fsmpb.Code_CODE_FINISHED:
			// A replay of our own cancel, or a cancel of a cancelled request,
			// finds it cancelled: that is the outcome the client asked for.
			if r, ok := s.store.Get(id); ok && r.Result == fsmpb.Result_CANCELLED {
				cr.Ok = true
			} else {
				cr.Code, cr.Reason = "FINISHED", "the request is already processed"
			}
		default:
			cr.Code, cr.Reason = item.GetCode().String(), item.GetReason()
		}
		out[i] = cr
	}
	return out, index, nil
}

var stateNames = map[string]fsmpb.State{
	"":            fsmpb.State_STATE_UNSPECIFIED,
	"PENDING":     fsmpb.State_PENDING,
	"INITIATED":   fsmpb.State_INITIATED,
	"IN_PROGRESS": fsmpb.State_IN_PROGRESS,
	"PROCESSED":   fsmpb.State_PROCESSED,
}

// ListRequests lists a tenant's requests in creation order, a page at a time.
func (s *Requests) ListRequests(ctx context.Context, req *pb.ListRequestsRequest) (*pb.ListRequestsResponse, error) {
	var fe fieldErrors
	if err := ValidateTenant(req.GetTenant()); err != nil {
		fe = append(fe, err.(FieldError))
	}
	st, ok := stateNames[req.GetState()]
	if !ok {
		fe.add("state", "%q must be PENDING, INITIATED, IN_PROGRESS or PROCESSED", truncate(req.GetState(), 40))
	}
	if req.GetPageSize() < 0 || req.GetPageSize() > 1000 {
		fe.add("page_size", "%d is outside 1..1000", req.GetPageSize())
	}
	if req.GetIvrProfile() != "" && (len(req.GetIvrProfile()) > maxProfileLen || !printable(req.GetIvrProfile())) {
		fe.add("ivr_profile", "must be at most %d printable characters", maxProfileLen)
	}
	if req.GetPageToken() != "" {
		if err := ValidateRequestID("page_token", req.GetPageToken()); err != nil {
			fe.add("page_token", "is not a token returned by a previous page")
		}
	}
	if len(fe) > 0 {
		return nil, fe.status()
	}
	c, err := s.ReadBarrier(ctx, req.GetConsistency(), req.GetMinIndex())
	if err != nil {
		return nil, err
	}
	size := int(req.GetPageSize())
	if size == 0 {
		size = 100
	}
	recs, next := s.store.List(fsm.ListQuery{
		Tenant:     req.GetTenant(),
		IVRProfile: req.GetIvrProfile(),
		State:      st,
		After:      req.GetPageToken(),
		Limit:      size,
	})
	now := s.opts.Now()
	out := &pb.ListRequestsResponse{NextPageToken: next, Meta: s.meta(c)}
	for _, r := range recs {
		out.Requests = append(out.Requests, toPublic(r, now))
	}
	return out, nil
}
