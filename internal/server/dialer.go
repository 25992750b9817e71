package server

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	pb "github.com/seed-7bfc04c2/dialtone/api/dialtonev1"
	"github.com/seed-7bfc04c2/dialtone/internal/auth"
	"github.com/seed-7bfc04c2/dialtone/internal/dialer"
	"github.com/seed-7bfc04c2/dialtone/internal/dialer/pacing"
	"github.com/seed-7bfc04c2/dialtone/internal/fsm"
	"github.com/seed-7bfc04c2/dialtone/internal/fsm/fsmpb"
)

// GlobalPacingTenant names the global pacing entry (stored as tenant "")
// in paths and responses. It cannot be a tenant: tenant names start with
// a letter or digit.
const GlobalPacingTenant = "_global"

// forwardedHeader marks a GetDialerStatus call a follower forwarded to the
// leader, so that a node that has just lost leadership answers instead of
// forwarding again.
const forwardedHeader = "x-dialtone-forwarded"

// PacingStore is the local replicated pacing configuration the dialer
// service reads (the FSM).
type PacingStore interface {
	Pacing(tenant string) (*fsmpb.Pacing, bool)
	Pacings() []*fsmpb.Pacing
	CallingWindow(tenant, ivrProfile string) (*fsmpb.CallingWindow, bool)
	AppliedIndex() uint64
}

// DialerStats is the source of the dialer engine's statistics (the
// engine of this node, which runs only while it leads).
type DialerStats interface {
	Stats() dialer.Stats
}

// LeaderConns gives a connection to the current leader's gRPC server
// (cluster.Cluster.LeaderConn): it must carry the cluster's transport
// credentials and secret, and is not closed by the caller.
type LeaderConns interface {
	LeaderConn() (*grpc.ClientConn, error)
}

// DialerOptions tune the dialer service.
type DialerOptions struct {
	// WriteTimeout bounds a write that has no deadline of its own.
	WriteTimeout time.Duration
	// ReadTimeout bounds a linearizable read and a forwarded status call.
	ReadTimeout time.Duration
}

// Dialer implements DialerService: the pacing entries are written through
// Raft (a follower forwards to the leader) and read from this node's
// replica; the engine statistics come from the leader, to which a
// follower forwards GetDialerStatus.
//
// Tenant scoping: the interceptor checks the role and the tenant a call
// names ("_global" is no principal's tenant, so only principals with every
// tenant "*" pass it). The global entry belongs to principals with "*"
// here too, and lists and the engine statistics show only the tenants the
// principal may see. Without a principal in the context (auth mode none,
// or an in-process caller) nothing is filtered.
type Dialer struct {
	pb.UnimplementedDialerServiceServer
	store  PacingStore
	repl   Replicator
	leader LeaderConns
	stats  DialerStats
	opts   DialerOptions
}

// NewDialer returns the dialer service. stats may be nil (no engine on this
// node: GetDialerStatus answers Unavailable); leader may be nil (a
// follower then answers Unavailable instead of forwarding).
func NewDialer(store PacingStore, repl Replicator, leader LeaderConns, stats DialerStats, opts DialerOptions) *Dialer {
	if opts.WriteTimeout == 0 {
		opts.WriteTimeout = 15 * time.Second
	}
	if opts.ReadTimeout == 0 {
		opts.ReadTimeout = 5 * time.Second
	}
	return &Dialer{store: store, repl: repl, leader: leader, stats: stats, opts: opts}
}

// GetPacing answers a tenant's stored entry (if any) and its effective
// settings.
func (s *Dialer) GetPacing(ctx context.Context, req *pb.GetPacingRequest) (*pb.GetPacingResponse, error) {
	tenant, err := pacingTenant(req.GetTenant())
	if err != nil {
		return nil, err
	}
	if err := pacingAccess(ctx, tenant, auth.RoleRead); err != nil {
		return nil, err
	}
	if err := s.readBarrier(ctx, req.GetConsistency()); err != nil {
		return nil, err
	}
	return &pb.GetPacingResponse{NodeId: s.repl.NodeID(), Pacing: s.entry(tenant), AppliedIndex: s.store.AppliedIndex()}, nil
}

// ListPacing lists the stored entries the caller may see, the global one
// first, and the global CAPS limit.
func (s *Dialer) ListPacing(ctx context.Context, req *pb.ListPacingRequest) (*pb.ListPacingResponse, error) {
	if err := s.readBarrier(ctx, req.GetConsistency()); err != nil {
		return nil, err
	}
	p := principal(ctx)
	global, _ := s.store.Pacing("")
	out := &pb.ListPacingResponse{NodeId: s.repl.NodeID(), GlobalCaps: pacing.GlobalCAPS(global), AppliedIndex: s.store.AppliedIndex()}
	for _, e := range s.store.Pacings() {
		if visible(p, e.Tenant) {
			out.Entries = append(out.Entries, entryOf(e.Tenant, e, global))
		}
	}
	return out, nil
}

// SetPacing validates the settings and replaces the tenant's entry
// through Raft; it answers the entry as this node stores it afterwards.
func (s *Dialer) SetPacing(ctx context.Context, req *pb.SetPacingRequest) (*pb.SetPacingResponse, error) {
	tenant, err := pacingTenant(req.GetTenant())
	if err != nil {
		return nil, err
	}
	p, fe := PacingFromPublic(tenant, req.GetPacing())
	if len(fe) > 0 {
		return nil, fieldErrors(fe).status()
	}
	if err := pacingAccess(ctx, tenant, auth.RoleAdmin); err != nil {
		return nil, err
	}
	cmd := fsm.SetPacingCommand(p)
	idx, err := applySetting(ctx, s.repl, s.opts.WriteTimeout, cmd, false)
	if err != nil {
		return nil, err
	}
	out := &pb.SetPacingResponse{NodeId: s.repl.NodeID(), Index: idx}
	if s.waitApplied(ctx, idx) == nil {
		out.Pacing = s.entry(tenant)
	} else {
		// Committed, but not yet applied here: answer what was written.
		global, _ := s.store.Pacing("")
		if tenant == "" {
			global = p
		}
		out.Pacing = entryOf(tenant, p, global)
	}
	return out, nil
}

// DeletePacing removes the tenant's entry (NotFound if none).
func (s *Dialer) DeletePacing(ctx context.Context, req *pb.DeletePacingRequest) (*pb.DeletePacingResponse, error) {
	tenant, err := pacingTenant(req.GetTenant())
	if err != nil {
		return nil, err
	}
	if err := pacingAccess(ctx, tenant, auth.RoleAdmin); err != nil {
		return nil, err
	}
	cmd := fsm.DeletePacingCommand(tenant)
	idx, err := applySetting(ctx, s.repl, s.opts.WriteTimeout, cmd, true)
	if err != nil {
		if status.Code(err) == codes.NotFound {
			return nil, status.Errorf(codes.NotFound, "no pacing entry for %s", pacingName(tenant))
		}
		return nil, err
	}
	_ = s.waitApplied(ctx, idx)
	return &pb.DeletePacingResponse{NodeId: s.repl.NodeID(), Index: idx}, nil
}

// GetDialerStatus answers the leader's engine statistics: on the leader
// from its engine, on a follower by forwarding the call (with the caller's
// credentials, over the internal connection that carries the cluster
// secret) to the leader.
func (s *Dialer) GetDialerStatus(ctx context.Context, req *pb.GetDialerStatusRequest) (*pb.DialerStatus, error) {
	if !s.repl.IsLeader() {
		return s.forwardStatus(ctx, req)
	}
	if s.stats == nil {
		return nil, status.Errorf(codes.Unavailable, "dialer not running on this node (%s)", s.repl.NodeID())
	}
	out := DialerStatusToPublic(s.stats.Stats(), s.repl.NodeID())
	filterStatus(principal(ctx), out)
	return out, nil
}

func (s *Dialer) forwardStatus(ctx context.Context, req *pb.GetDialerStatusRequest) (*pb.DialerStatus, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	if first(md, forwardedHeader) != "" {
		// Forwarded to a node that no longer leads: let the caller retry.
		return nil, status.Errorf(codes.Unavailable, "node %s is not the leader (leadership is changing); retry", s.repl.NodeID())
	}
	if s.leader == nil {
		return nil, status.Errorf(codes.Unavailable, "node %s is not the leader and cannot forward", s.repl.NodeID())
	}
	conn, err := s.leader.LeaderConn()
	if err != nil {
		return nil, status.Errorf(codes.Unavailable, "dialer status lives on the leader: %v", err)
	}
	ctx, cancel := withDefaultTimeout(ctx, s.opts.ReadTimeout)
	defer cancel()
	// The leader authorises the caller again: pass the credentials on.
	// The connection itself adds the cluster secret.
	out := metadata.Pairs(forwardedHeader, s.repl.NodeID())
	if a := first(md, "authorization"); a != "" {
		out.Set("authorization", a)
	}
	resp, err := pb.NewDialerServiceClient(conn).GetDialerStatus(metadata.NewOutgoingContext(ctx, out), req)
	if err != nil {
		if _, ok := status.FromError(err); ok {
			return nil, err
		}
		return nil, status.Errorf(codes.Unavailable, "forwarding to the leader: %v", err)
	}
	filterStatus(principal(ctx), resp)
	return resp, nil
}

// filterStatus drops the tenants p may not see.
func filterStatus(p *auth.Principal, st *pb.DialerStatus) {
	if p == nil {
		return
	}
	kept := st.Tenants[:0]
	for _, t := range st.Tenants {
		if p.CanAccess(t.Tenant) {
			kept = append(kept, t)
		}
	}
	st.Tenants = kept
}

// readBarrier applies a read's consistency ("", "local" or
// "linearizable").
func (s *Dialer) readBarrier(ctx context.Context, consistency string) error {
	switch consistency {
	case "", "local":
		return nil
	case "linearizable":
		return settingsBarrier(ctx, s.repl, s.opts.ReadTimeout)
	}
	return FieldErrorStatus("consistency", fmt.Sprintf("%q must be \"local\" or \"linearizable\"", truncate(consistency, 40)))
}

// waitApplied waits briefly for this node to apply a write it made.
func (s *Dialer) waitApplied(ctx context.Context, idx uint64) error {
	if s.store.AppliedIndex() >= idx {
		return nil
	}
	ctx, cancel := withDefaultTimeout(ctx, s.opts.ReadTimeout)
	defer cancel()
	return s.repl.WaitApplied(ctx, idx)
}

// entry is tenant's entry from this node's replica.
func (s *Dialer) entry(tenant string) *pb.PacingEntry {
	global, _ := s.store.Pacing("")
	stored, _ := s.store.Pacing(tenant)
	return entryOf(tenant, stored, global)
}

// entryOf builds the public entry of tenant from its stored entry (nil if
// none) and the global one (nil if none).
func entryOf(tenant string, stored, global *fsmpb.Pacing) *pb.PacingEntry {
	e := &pb.PacingEntry{Tenant: pacingName(tenant), Stored: stored != nil, Settings: &pb.Pacing{}}
	if stored != nil {
		e.Settings = PacingToPublic(stored)
	}
	if tenant == "" {
		e.Effective = EffectivePacingToPublic(pacing.Resolve(stored, nil))
	} else {
		e.Effective = EffectivePacingToPublic(pacing.Resolve(global, stored))
	}
	return e
}

// pacingName is the public name of a stored tenant ("" → "_global").
func pacingName(tenant string) string {
	if tenant == "" {
		return GlobalPacingTenant
	}
	return tenant
}

// pacingTenant is the stored tenant of a path tenant ("_global" → "").
func pacingTenant(name string) (string, error) {
	if name == GlobalPacingTenant {
		return "", nil
	}
	if err := ValidateTenant(name); err != nil {
		return "", FieldErrorStatus("tenant", err.(FieldError).Reason+` (or "`+GlobalPacingTenant+`" for the global entry)`)
	}
	return name, nil
}

// pacingAccess checks, when ctx carries a principal, that it holds role
// and may act for tenant; the global entry ("") needs every tenant.
func pacingAccess(ctx context.Context, tenant string, role auth.Role) error {
	p := principal(ctx)
	if p == nil {
		return nil
	}
	if tenant == "" {
		if err := Authorize(p, role, "*", true); err != nil {
			return status.Errorf(codes.PermissionDenied, "principal %s may not act for the global pacing entry (it needs every tenant, \"*\")", quote(p.Name))
		}
		return nil
	}
	if err := Authorize(p, role, tenant, true); err != nil {
		return status.Error(codes.PermissionDenied, err.Error())
	}
	return nil
}

// PacingToPublic is a stored entry's settings in the public form: a zero
// duration (inherited) is left empty.
func PacingToPublic(p *fsmpb.Pacing) *pb.Pacing {
	dur := func(ms int64) string {
		if ms == 0 {
			return ""
		}
		return FormatDuration(ms)
	}
	return &pb.Pacing{
		Caps:                   p.GetCaps(),
		PortLoadFactor:         p.GetPortLoadFactor(),
		BatchSizeMode:          p.GetBatchSizeMode(),
		BatchSize:              p.GetBatchSize(),
		QueueLowWatermark:      p.GetQueueLowWatermark(),
		SlotCalculation:        p.GetSlotCalculation(),
		EqualPriorityNewAndOld: p.GetEqualPriorityNewAndOld(),
		NextRetryInterval:      dur(p.GetNextRetryIntervalMs()),
		CleanInterval:          dur(p.GetCleanIntervalMs()),
		Retention:              dur(p.GetRetentionMs()),
	}
}

// EffectivePacingToPublic is resolved settings in the public form; every
// duration is given ("0s" included), batch_size only with mode Fixed.
func EffectivePacingToPublic(s pacing.Settings) *pb.Pacing {
	out := &pb.Pacing{
		Caps:                   s.CAPS,
		PortLoadFactor:         s.PortLoadFactor,
		BatchSizeMode:          s.BatchMode,
		QueueLowWatermark:      s.LowWatermark,
		SlotCalculation:        s.Slots,
		EqualPriorityNewAndOld: s.EqualNewAndOld,
		NextRetryInterval:      FormatDuration(s.NextRetryInterval.Milliseconds()),
		CleanInterval:          FormatDuration(s.CleanInterval.Milliseconds()),
		Retention:              FormatDuration(s.Retention.Milliseconds()),
	}
	if s.BatchMode == pacing.BatchFixed {
		out.BatchSize = s.BatchSize
	}
	return out
}

// PacingFromPublic validates public settings for tenant ("" for the
// global entry) with pacing.Validate and returns the entry to store. Field
// errors name the public fields ("pacing.caps",
// "pacing.next_retry_interval", ...). s.tenant may be empty or must name
// tenant ("_global" for the global entry). Nil settings are an empty entry
// (every field inherits).
func PacingFromPublic(tenant string, s *pb.Pacing) (*fsmpb.Pacing, []FieldError) {
	var fe fieldErrors
	if t := s.GetTenant(); t != "" && t != pacingName(tenant) {
		fe.add("pacing.tenant", "%q differs from the tenant of the path %q (leave it empty)", truncate(t, 70), pacingName(tenant))
	}
	dur := func(name, v string) int64 {
		if v == "" {
			return 0
		}
		d, err := ParseDuration(v)
		switch {
		case err != nil:
			fe.add("pacing."+name, "%v", err)
			return 0
		case d%time.Millisecond != 0:
			fe.add("pacing."+name, "%s must be a whole number of milliseconds", truncate(v, 40))
			return 0
		}
		return d.Milliseconds()
	}
	p := &fsmpb.Pacing{
		Tenant:                 tenant,
		Caps:                   s.GetCaps(),
		PortLoadFactor:         s.GetPortLoadFactor(),
		BatchSizeMode:          s.GetBatchSizeMode(),
		BatchSize:              s.GetBatchSize(),
		QueueLowWatermark:      s.GetQueueLowWatermark(),
		SlotCalculation:        s.GetSlotCalculation(),
		EqualPriorityNewAndOld: s.GetEqualPriorityNewAndOld(),
		NextRetryIntervalMs:    dur("next_retry_interval", s.GetNextRetryInterval()),
		CleanIntervalMs:        dur("clean_interval", s.GetCleanInterval()),
		RetentionMs:            dur("retention", s.GetRetention()),
	}
	var es pacing.Errors
	if err := pacing.Validate(p); errors.As(err, &es) {
		for _, e := range es {
			fe.add(publicPacingField(e.Field), "%s", e.Reason)
		}
	} else if err != nil {
		fe.add("pacing", "%v", err)
	}
	if len(fe) > 0 {
		// In the order the message declares the fields.
		slices.SortStableFunc(fe, func(a, b FieldError) int { return pacingFieldRank(a.Field) - pacingFieldRank(b.Field) })
		return nil, fe
	}
	return p, nil
}

// publicPacingField maps an fsmpb.Pacing field to its public path.
func publicPacingField(f string) string {
	if f == "tenant" {
		return f
	}
	return "pacing." + strings.TrimSuffix(f, "_ms")
}

var pacingFieldOrder = []string{"tenant", "pacing.tenant", "caps", "port_load_factor", "batch_size_mode", "batch_size", "queue_low_watermark",
	"slot_calculation", "equal_priority_new_and_old", "next_retry_interval", "clean_interval", "retention"}

func pacingFieldRank(field string) int {
	if i := slices.Index(pacingFieldOrder, field); i >= 0 {
		return i
	}
	if i := slices.Index(pacingFieldOrder, strings.TrimPrefix(field, "pacing.")); i >= 0 {
		return i
	}
	return len(pacingFieldOrder)
}

// DialerStatusToPublic converts engine statistics for nodeID.
func DialerStatusToPublic(st dialer.Stats, nodeID string) *pb.DialerStatus {
	out := &pb.DialerStatus{NodeId: nodeID, Running: st.Running, GlobalCaps: st.GlobalCAPS}
	for _, t := range st.Tenants {
		ts := &pb.DialerTenantStatus{
			Tenant:         t.Tenant,
			Queued:         count32(t.Queued),
			InProgress:     count32(t.InProgress),
			PortBudget:     count32(t.PortBudget),
			PortsTotal:     t.PortsTotal,
			PortsInUse:     t.PortsInUse,
			Caps:           t.CAPS,
			AttemptsPerSec: t.AttemptsPerSec,
			NotifyPending:  count32(t.NotifyPending),
			NotifyRetries:  t.NotifyRetries,
			LimitedBy:      t.LimitedBy,
		}
		if len(t.QueuedProfile) > 0 {
			ts.QueuedProfile = make(map[string]uint32, len(t.QueuedProfile))
			for k, v := range t.QueuedProfile {
				ts.QueuedProfile[k] = count32(v)
			}
		}
		if len(t.Waiting) > 0 {
			ts.Waiting = make(map[string]uint32, len(t.Waiting))
			for k, v := range t.Waiting {
				ts.Waiting[k] = count32(v)
			}
		}
		if len(t.Outcomes) > 0 {
			ts.Outcomes = make(map[string]uint64, len(t.Outcomes))
			for k, v := range t.Outcomes {
				ts.Outcomes[k] = v
			}
		}
		out.Tenants = append(out.Tenants, ts)
	}
	return out
}

// count32 clamps a count to uint32.
func count32(n int) uint32 {
	switch {
	case n < 0:
		return 0
	case uint64(n) > math.MaxUint32:
		return math.MaxUint32
	}
	return uint32(n)
}
