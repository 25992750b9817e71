package server

import (
	"context"
	"math"
	"regexp"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/seed-7bfc04c2/dialtone/api/dialtonev1"
	"github.com/seed-7bfc04c2/dialtone/internal/auth"
	"github.com/seed-7bfc04c2/dialtone/internal/fsm"
	"github.com/seed-7bfc04c2/dialtone/internal/fsm/fsmpb"
)

// Port-usage settings limits and vocabulary.
const (
	// MaxLicensedPorts bounds an entitlement.
	MaxLicensedPorts = 1_000_000
	// DefaultMaxEntitlements and DefaultMaxThresholds bound the replicated
	// settings (enforced by the state machine, so concurrent writers cannot
	// overshoot).
	DefaultMaxEntitlements = 10_000
	DefaultMaxThresholds   = 1_000

	MetricInUsePercentOfEntitlement = "in_use_percent_of_entitlement"
	MetricInUsePercentOfTotal       = "in_use_percent_of_total"
	MetricAvailablePorts            = "available_ports"
	DirectionAbove                  = "above"
	DirectionBelow                  = "below"

	// maxEntitlementPercent allows thresholds on oversubscription (in use
	// beyond the licence).
	maxEntitlementPercent = 1000
	// Default hysteresis when clear_value is 0: 5 points for a percentage,
	// 1 port for available_ports.
	defaultPercentHysteresis = 5
	defaultPortsHysteresis   = 1
)

var thresholdIDPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$`)

// SettingsStore is the local replicated port-usage configuration the
// settings service reads (the FSM).
type SettingsStore interface {
	Entitlement(tenant string) (uint32, bool)
	Entitlements() []*fsmpb.Entitlement
	Threshold(id string) (*fsmpb.Threshold, bool)
	Thresholds() []*fsmpb.Threshold
}

// AlertLister lists the alerts currently raised (the alert evaluator).
type AlertLister interface {
	ActiveAlerts() []*pb.Alert
}

// PortSettingsOptions tune the settings service.
type PortSettingsOptions struct {
	MaxEntitlements uint32 // 0: DefaultMaxEntitlements
	MaxThresholds   uint32 // 0: DefaultMaxThresholds
	// WriteTimeout bounds a write that has no deadline of its own.
	WriteTimeout time.Duration
}

// PortSettings implements PortSettingsService: entitlements and alert
// thresholds are written through Raft (a follower forwards to the leader)
// and read from this node's replica.
//
// Tenant scoping: the interceptor checks the role and, for calls that name
// a tenant at the top level, the tenant. A threshold names its tenant
// inside the message, so SetThreshold and DeleteThreshold check it here,
// and the lists show only what the principal may see. A deployment-wide
// threshold (tenant "") and its alerts belong to principals with every
// tenant ("*"). Without a principal in the context (auth mode none, or an
// in-process caller) nothing is filtered.
type PortSettings struct {
	pb.UnimplementedPortSettingsServiceServer
	store  SettingsStore
	repl   Replicator
	alerts AlertLister
	opts   PortSettingsOptions
}

// NewPortSettings returns the settings service. alerts may be nil (no
// alerts are listed).
func NewPortSettings(store SettingsStore, repl Replicator, alerts AlertLister, opts PortSettingsOptions) *PortSettings {
	if opts.MaxEntitlements == 0 {
		opts.MaxEntitlements = DefaultMaxEntitlements
	}
	if opts.MaxThresholds == 0 {
		opts.MaxThresholds = DefaultMaxThresholds
	}
	if opts.WriteTimeout == 0 {
		opts.WriteTimeout = 15 * time.Second
	}
	return &PortSettings{store: store, repl: repl, alerts: alerts, opts: opts}
}

// principal returns the caller, or nil when unrestricted.
func principal(ctx context.Context) *auth.Principal {
	p, _ := auth.FromContext(ctx)
	return p
}

// visible reports whether p may see settings of tenant ("" = deployment).
func visible(p *auth.Principal, tenant string) bool {
	if p == nil {
		return true
	}
	if tenant == "" {
		return p.CanAccess("*")
	}
	return p.CanAccess(tenant)
}

// ListEntitlements lists the entitlements the caller may see, by tenant.
func (s *PortSettings) ListEntitlements(ctx context.Context, _ *pb.ListEntitlementsRequest) (*pb.ListEntitlementsResponse, error) {
	p := principal(ctx)
	out := &pb.ListEntitlementsResponse{}
	for _, e := range s.store.Entitlements() {
		if visible(p, e.Tenant) {
			out.Entitlements = append(out.Entitlements, &pb.Entitlement{Tenant: e.Tenant, LicensedPorts: e.LicensedPorts})
		}
	}
	return out, nil
}

// Entitlement returns a tenant's licensed ports from this node's replica
// (with EntitlementList, the entitlements the port-usage service reads).
func (s *PortSettings) Entitlement(tenant string) (uint32, bool) {
	return s.store.Entitlement(tenant)
}

// EntitlementList returns every entitlement, sorted by tenant, from this
// node's replica (for the Cisco-compatible handler; it applies its own
// tenant scoping).
func (s *PortSettings) EntitlementList() []*pb.Entitlement {
	ents := s.store.Entitlements()
	out := make([]*pb.Entitlement, len(ents))
	for i, e := range ents {
		out[i] = &pb.Entitlement{Tenant: e.Tenant, LicensedPorts: e.LicensedPorts}
	}
	return out
}

// SetEntitlement creates or replaces a tenant's entitlement.
func (s *PortSettings) SetEntitlement(ctx context.Context, req *pb.SetEntitlementRequest) (*pb.Entitlement, error) {
	if err := s.SetEntitlementPorts(ctx, req.GetTenant(), req.GetLicensedPorts()); err != nil {
		return nil, err
	}
	return &pb.Entitlement{Tenant: req.GetTenant(), LicensedPorts: req.GetLicensedPorts()}, nil
}

// SetEntitlementPorts validates and stores a tenant's entitlement through
// Raft, exactly as SetEntitlement does; errors are gRPC statuses
// (InvalidArgument naming the field, PermissionDenied, Unavailable, ...).
// When ctx carries a principal it must hold the admin role and may act for
// tenant.
func (s *PortSettings) SetEntitlementPorts(ctx context.Context, tenant string, ports uint32) error {
	var fe fieldErrors
	if err := ValidateTenant(tenant); err != nil {
		fe = append(fe, err.(FieldError))
	}
	if ports > MaxLicensedPorts { // 0 is an entitlement: no purchased ports
		fe.add("licensed_ports", "must be between 0 and %d", MaxLicensedPorts)
	}
	if len(fe) > 0 {
		return fe.status()
	}
	if p := principal(ctx); p != nil {
		if err := Authorize(p, auth.RoleAdmin, tenant, true); err != nil {
			return status.Error(codes.PermissionDenied, err.Error())
		}
	}
	cmd := fsm.SetEntitlementCommand(&fsmpb.Entitlement{Tenant: tenant, LicensedPorts: ports}, s.opts.MaxEntitlements)
	_, err := s.apply(ctx, cmd, false)
	return err
}

// DeleteEntitlement removes a tenant's entitlement (NotFound if none).
func (s *PortSettings) DeleteEntitlement(ctx context.Context, req *pb.DeleteEntitlementRequest) (*pb.DeleteEntitlementResponse, error) {
	if err := ValidateTenant(req.GetTenant()); err != nil {
		return nil, FieldErrorStatus("tenant", err.(FieldError).Reason)
	}
	cmd := fsm.DeleteEntitlementCommand(req.GetTenant())
	if _, err := s.apply(ctx, cmd, true); err != nil {
		return nil, err
	}
	return &pb.DeleteEntitlementResponse{}, nil
}

// ListThresholds lists the thresholds the caller may see, by id.
func (s *PortSettings) ListThresholds(ctx context.Context, _ *pb.ListThresholdsRequest) (*pb.ListThresholdsResponse, error) {
	p := principal(ctx)
	out := &pb.ListThresholdsResponse{}
	for _, t := range s.store.Thresholds() {
		if visible(p, t.Tenant) {
			out.Thresholds = append(out.Thresholds, thresholdToPublic(t))
		}
	}
	return out, nil
}

func thresholdToPublic(t *fsmpb.Threshold) *pb.Threshold {
	return &pb.Threshold{
		Id: t.Id, Tenant: t.Tenant, Metric: t.Metric, Direction: t.Direction,
		Value: t.Value, ClearValue: t.ClearValue, WebhookUrl: t.WebhookUrl,
	}
}

// SetThreshold validates, defaults clear_value and stores a threshold;
// it answers the stored threshold.
func (s *PortSettings) SetThreshold(ctx context.Context, req *pb.SetThresholdRequest) (*pb.Threshold, error) {
	th, errs := ValidateThreshold("threshold", req.GetThreshold())
	if len(errs) > 0 {
		return nil, fieldErrors(errs).status()
	}
	p := principal(ctx)
	if !visible(p, th.Tenant) {
		what := "tenant " + quote(th.Tenant)
		if th.Tenant == "" {
			what = "the whole deployment (tenant \"\")"
		}
		return nil, status.Errorf(codes.PermissionDenied, "principal %s may not set thresholds for %s", quote(p.Name), what)
	}
	if p != nil && !p.CanAccess("*") {
		// Threshold ids are one namespace: a scoped principal must not
		// replace another tenant's threshold. Check the latest state.
		if err := s.barrier(ctx); err != nil {
			return nil, err
		}
		if old, ok := s.store.Threshold(th.Id); ok && !visible(p, old.Tenant) {
			return nil, status.Errorf(codes.PermissionDenied, "threshold id %q is taken by a tenant principal %s may not act for", th.Id, quote(p.Name))
		}
	}
	cmd := fsm.SetThresholdCommand(th, s.opts.MaxThresholds)
	if _, err := s.apply(ctx, cmd, false); err != nil {
		return nil, err
	}
	return thresholdToPublic(th), nil
}

// DeleteThreshold removes a threshold (NotFound if none, or if it belongs
// to a tenant the caller may not see).
func (s *PortSettings) DeleteThreshold(ctx context.Context, req *pb.DeleteThresholdRequest) (*pb.DeleteThresholdResponse, error) {
	if !thresholdIDPattern.MatchString(req.GetId()) {
		return nil, FieldErrorStatus("id", thresholdIDReason)
	}
	if p := principal(ctx); p != nil && !p.CanAccess("*") {
		if err := s.barrier(ctx); err != nil {
			return nil, err
		}
		if old, ok := s.store.Threshold(req.GetId()); ok && !visible(p, old.Tenant) {
			return nil, status.Errorf(codes.NotFound, "threshold %q not found", req.GetId())
		}
	}
	cmd := fsm.DeleteThresholdCommand(req.GetId())
	if _, err := s.apply(ctx, cmd, true); err != nil {
		return nil, err
	}
	return &pb.DeleteThresholdResponse{}, nil
}

// ListAlerts lists the alerts currently raised that the caller may see,
// as evaluated on this node (every node evaluates every second).
func (s *PortSettings) ListAlerts(ctx context.Context, _ *pb.ListAlertsRequest) (*pb.ListAlertsResponse, error) {
	out := &pb.ListAlertsResponse{}
	if s.alerts == nil {
		return out, nil
	}
	p := principal(ctx)
	for _, a := range s.alerts.ActiveAlerts() {
		if visible(p, a.Tenant) {
			out.Alerts = append(out.Alerts, a)
		}
	}
	return out, nil
}

// barrier makes this replica reflect every write committed before the call.
func (s *PortSettings) barrier(ctx context.Context) error {
	return settingsBarrier(ctx, s.repl, s.opts.WriteTimeout)
}

// settingsBarrier makes this replica reflect every write committed before
// the call, waiting at most timeout when ctx has no deadline.
func settingsBarrier(ctx context.Context, repl Replicator, timeout time.Duration) error {
	ctx, cancel := withDefaultTimeout(ctx, timeout)
	defer cancel()
	idx, err := repl.ReadIndex(ctx)
	if err == nil {
		err = repl.WaitApplied(ctx, idx)
	}
	if err != nil {
		return status.Errorf(codes.Unavailable, "cluster unavailable: %v", err)
	}
	return nil
}

// withDefaultTimeout bounds ctx by timeout unless it has a deadline.
func withDefaultTimeout(ctx context.Context, timeout time.Duration) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, timeout)
}

// apply commits a settings command, retrying while leadership changes
// (settings commands are safe to replay). A delete replayed after an
// unknown outcome may find the item gone: with isDelete that counts as
// done.
func (s *PortSettings) apply(ctx context.Context, cmd *fsmpb.Command, isDelete bool) (uint64, error) {
	return applySetting(ctx, s.repl, s.opts.WriteTimeout, cmd, isDelete)
}

// applySetting is PortSettings.apply for any settings command (the
// dialer's pacing uses it too): committed through repl.Apply (a follower
// forwards to the leader), waiting at most timeout when ctx has no
// deadline.
func applySetting(ctx context.Context, repl Replicator, timeout time.Duration, cmd *fsmpb.Command, isDelete bool) (uint64, error) {
	ctx, cancel := withDefaultTimeout(ctx, timeout)
	defer cancel()
	res, idx, replayed, err := applyReplaying(ctx, repl, cmd)
	if err != nil {
		return 0, err
	}
	item := itemAt(res, 0)
	switch item.GetCode() {
	case fsmpb.Code_CODE_OK:
		return idx, nil
	case fsmpb.Code_CODE_NOT_FOUND:
		if isDelete && replayed {
			return idx, nil
		}
		return 0, status.Errorf(codes.NotFound, "%s", item.GetReason())
	case fsmpb.Code_CODE_CAPACITY:
		return 0, status.Errorf(codes.ResourceExhausted, "%s", item.GetReason())
	default:
		return 0, status.Errorf(codes.FailedPrecondition, "%s: %s", item.GetCode(), item.GetReason())
	}
}

const thresholdIDReason = "must be 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit"

// metricRange is the valid range of a metric's value and its default
// hysteresis.
func metricRange(metric string) (maxV, step float64, whole bool) {
	switch metric {
	case MetricInUsePercentOfEntitlement:
		return maxEntitlementPercent, defaultPercentHysteresis, false
	case MetricInUsePercentOfTotal:
		return 100, defaultPercentHysteresis, false
	default: // MetricAvailablePorts
		return MaxLicensedPorts, defaultPortsHysteresis, true
	}
}

// ValidateThreshold checks a threshold and returns its replicated form with
// clear_value defaulted (0 means: value - 5 points, or - 1 port, for
// "above"; value + 5 points, or + 1 port, for "below"; clamped to the
// metric's range). prefix names the message in errors ("threshold").
func ValidateThreshold(prefix string, t *pb.Threshold) (*fsmpb.Threshold, []FieldError) {
	var fe fieldErrors
	if t == nil {
		fe.add(prefix, "is required")
		return nil, fe
	}
	field := func(name string) string { return prefix + "." + name }
	if !thresholdIDPattern.MatchString(t.Id) {
		fe.add(field("id"), thresholdIDReason)
	}
	if t.Tenant != "" {
		if err := ValidateTenant(t.Tenant); err != nil {
			fe.add(field("tenant"), "%s (or empty for the whole deployment)", err.(FieldError).Reason)
		}
	}
	metricOK := true
	switch t.Metric {
	case MetricInUsePercentOfEntitlement, MetricInUsePercentOfTotal, MetricAvailablePorts:
	default:
		metricOK = false
		fe.add(field("metric"), "%q must be %s, %s or %s", truncate(t.Metric, 40), MetricInUsePercentOfEntitlement, MetricInUsePercentOfTotal, MetricAvailablePorts)
	}
	dirOK := t.Direction == DirectionAbove || t.Direction == DirectionBelow
	if !dirOK {
		fe.add(field("direction"), "%q must be %s or %s", truncate(t.Direction, 40), DirectionAbove, DirectionBelow)
	}
	if t.WebhookUrl != "" {
		if why := validateNotificationURL(t.WebhookUrl); why != "" {
			fe.add(field("webhook_url"), "%s", why)
		}
	}
	clear := t.ClearValue
	if metricOK && dirOK {
		maxV, step, whole := metricRange(t.Metric)
		unit := "percent"
		if whole {
			unit = "ports"
		}
		valueOK := true
		switch {
		case math.IsNaN(t.Value) || math.IsInf(t.Value, 0) || t.Value < 0 || t.Value > maxV:
			fe.add(field("value"), "must be between 0 and %g %s", maxV, unit)
			valueOK = false
		case whole && t.Value != math.Trunc(t.Value):
			fe.add(field("value"), "must be a whole number of ports")
			valueOK = false
		case t.Direction == DirectionAbove && t.Value == 0:
			fe.add(field("value"), "must be above 0 for direction above (it would always fire)")
			valueOK = false
		case t.Direction == DirectionBelow && t.Value == maxV:
			fe.add(field("value"), "must be below %g for direction below (it would always fire)", maxV)
			valueOK = false
		}
		if clear == 0 && valueOK {
			if t.Direction == DirectionAbove {
				clear = math.Max(0, t.Value-step)
			} else {
				clear = math.Min(maxV, t.Value+step)
			}
		}
		switch {
		case math.IsNaN(clear) || math.IsInf(clear, 0) || clear < 0 || clear > maxV:
			fe.add(field("clear_value"), "must be between 0 and %g %s", maxV, unit)
		case whole && clear != math.Trunc(clear):
			fe.add(field("clear_value"), "must be a whole number of ports")
		case !valueOK:
		case t.Direction == DirectionAbove && clear >= t.Value:
			fe.add(field("clear_value"), "%g must be below value %g for direction above (hysteresis)", clear, t.Value)
		case t.Direction == DirectionBelow && clear <= t.Value:
			fe.add(field("clear_value"), "%g must be above value %g for direction below (hysteresis)", clear, t.Value)
		}
	}
	if len(fe) > 0 {
		return nil, fe
	}
	return &fsmpb.Threshold{
		Id: t.Id, Tenant: t.Tenant, Metric: t.Metric, Direction: t.Direction,
		Value: t.Value, ClearValue: clear, WebhookUrl: t.WebhookUrl,
	}, nil
}
