package server

import (
	"context"
	"fmt"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/seed-7bfc04c2/dialtone/api/dialtonev1"
	"github.com/seed-7bfc04c2/dialtone/internal/auth"
	"github.com/seed-7bfc04c2/dialtone/internal/fsm"
	"github.com/seed-7bfc04c2/dialtone/internal/fsm/fsmpb"
)

// Per-contact frequency caps (docs/compliance.md): one per tenant,
// replicated through Raft; the state machine enforces them when an
// attempt starts.

// Bounds of a cap's durations: Amazon Connect's communication limits run
// from 1 to 30 days; a minute lets tests and short campaigns use them.
const (
	minFreqPeriod = time.Minute
	maxFreqPeriod = 720 * time.Hour
	maxFreqCount  = 1000
)

// FreqCapStore is the replicated frequency caps (the FSM).
type FreqCapStore interface {
	FrequencyCap(tenant string) (*fsmpb.FreqCap, bool)
}

// GetFrequencyCap answers the tenant's stored cap (this node's replica).
func (s *Dialer) GetFrequencyCap(ctx context.Context, req *pb.GetFrequencyCapRequest) (*pb.GetFrequencyCapResponse, error) {
	if err := windowTarget(ctx, req.GetTenant(), "", auth.RoleRead); err != nil {
		return nil, err
	}
	st, ok := s.store.(FreqCapStore)
	if !ok {
		return nil, status.Error(codes.Unimplemented, "frequency caps are not served by this node")
	}
	out := &pb.GetFrequencyCapResponse{NodeId: s.repl.NodeID()}
	if c, ok := st.FrequencyCap(req.GetTenant()); ok {
		out.Stored, out.Cap = true, FreqCapToPublic(c)
	}
	return out, nil
}

// SetFrequencyCap validates and replaces the tenant's cap through Raft.
func (s *Dialer) SetFrequencyCap(ctx context.Context, req *pb.SetFrequencyCapRequest) (*pb.SetFrequencyCapResponse, error) {
	if err := windowTarget(ctx, req.GetTenant(), "", auth.RoleAdmin); err != nil {
		return nil, err
	}
	c, fe := FreqCapFromPublic(req.GetTenant(), req.GetCap())
	if len(fe) > 0 {
		return nil, fe.status()
	}
	idx, err := applySetting(ctx, s.repl, s.opts.WriteTimeout, fsm.FreqSetCapCommand(c), false)
	if err != nil {
		return nil, err
	}
	_ = s.waitApplied(ctx, idx)
	return &pb.SetFrequencyCapResponse{NodeId: s.repl.NodeID(), Index: idx, Cap: FreqCapToPublic(c)}, nil
}

// DeleteFrequencyCap removes the tenant's cap and its history (NotFound
// if none).
func (s *Dialer) DeleteFrequencyCap(ctx context.Context, req *pb.DeleteFrequencyCapRequest) (*pb.DeleteFrequencyCapResponse, error) {
	if err := windowTarget(ctx, req.GetTenant(), "", auth.RoleAdmin); err != nil {
		return nil, err
	}
	idx, err := applySetting(ctx, s.repl, s.opts.WriteTimeout, fsm.FreqDeleteCapCommand(req.GetTenant()), true)
	if err != nil {
		if status.Code(err) == codes.NotFound {
			return nil, status.Errorf(codes.NotFound, "no frequency cap for tenant %s", quote(req.GetTenant()))
		}
		return nil, err
	}
	_ = s.waitApplied(ctx, idx)
	return &pb.DeleteFrequencyCapResponse{NodeId: s.repl.NodeID(), Index: idx}, nil
}

// FreqCapFromPublic validates a public cap for tenant; field errors name
// the public fields ("cap.period", ...).
func FreqCapFromPublic(tenant string, c *pb.FrequencyCap) (*fsmpb.FreqCap, fieldErrors) {
	var fe fieldErrors
	out := &fsmpb.FreqCap{Tenant: tenant, MaxAttempts: c.GetMaxAttempts()}
	if c.GetMaxAttempts() > maxFreqCount {
		fe.add("cap.max_attempts", "must be at most %d", maxFreqCount)
	}
	if p := c.GetPeriod(); p != "" {
		d, err := ParseDuration(p)
		switch {
		case err != nil:
			fe.add("cap.period", "%v", err)
		case d < minFreqPeriod || d > maxFreqPeriod:
			fe.add("cap.period", "must be %s..%s", minFreqPeriod, maxFreqPeriod)
		default:
			out.PeriodMs = d.Milliseconds()
		}
	} else if c.GetMaxAttempts() > 0 {
		fe.add("cap.period", "is required with max_attempts")
	}
	if c.GetPeriod() != "" && c.GetMaxAttempts() == 0 {
		fe.add("cap.max_attempts", "is required with period")
	}
	if g := c.GetMinGap(); g != "" {
		d, err := ParseDuration(g)
		switch {
		case err != nil:
			fe.add("cap.min_gap", "%v", err)
		case d < 0 || d > maxFreqPeriod:
			fe.add("cap.min_gap", "must be 0s..%s", maxFreqPeriod)
		default:
			out.MinGapMs = d.Milliseconds()
		}
	}
	if len(fe) == 0 && out.MaxAttempts == 0 && out.MinGapMs == 0 {
		fe.add("cap", "limits nothing: give max_attempts and period, or min_gap (or delete the cap)")
	}
	if len(fe) > 0 {
		return nil, fe
	}
	return out, nil
}

// FreqCapToPublic renders a stored cap.
func FreqCapToPublic(c *fsmpb.FreqCap) *pb.FrequencyCap {
	out := &pb.FrequencyCap{MaxAttempts: c.GetMaxAttempts()}
	if c.GetPeriodMs() > 0 {
		out.Period = fmtHours(c.GetPeriodMs())
	}
	if c.GetMinGapMs() > 0 {
		out.MinGap = fmtHours(c.GetMinGapMs())
	}
	return out
}

// fmtHours writes a duration as Go does ("24h0m0s" → "24h", "90m"), which
// ParseDuration reads back.
func fmtHours(ms int64) string {
	d := time.Duration(ms) * time.Millisecond
	switch {
	case d%time.Hour == 0:
		return fmt.Sprintf("%dh", d/time.Hour)
	case d%time.Minute == 0:
		return fmt.Sprintf("%dm", d/time.Minute)
	}
	return FormatDuration(ms)
}
