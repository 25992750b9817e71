package server

import (
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/seed-7bfc04c2/dialtone/api/dialtonev1"
	"github.com/seed-7bfc04c2/dialtone/internal/fsm/fsmpb"
)

func msTime(ms int64) *timestamppb.Timestamp {
	if ms == 0 {
		return nil
	}
	return timestamppb.New(time.UnixMilli(ms))
}

// TTLRemaining is how long the request may still be attempted at now.
func TTLRemaining(r *fsmpb.Request, now time.Time) time.Duration {
	if r.State == fsmpb.State_PROCESSED {
		return 0
	}
	d := time.UnixMilli(r.ExpiresUnixMs).Sub(now)
	if d < 0 {
		return 0
	}
	return d.Truncate(time.Millisecond)
}

// StatusText is the human-readable status the SSG reports for a request.
func StatusText(r *fsmpb.Request) string {
	switch r.State {
	case fsmpb.State_PENDING:
		if r.WaitReason != "" {
			return "Waiting: " + r.WaitReason + " until " + time.UnixMilli(r.NextRetryUnixMs).UTC().Format(time.RFC3339)
		}
		if r.AttemptsMade == 0 && len(r.Attempts) == 0 {
			return "Waiting to be processed"
		}
		return "Waiting for retry"
	case fsmpb.State_INITIATED:
		return "Queued for dialing"
	case fsmpb.State_IN_PROGRESS:
		return "Call in progress"
	case fsmpb.State_PROCESSED:
		switch r.Result {
		case fsmpb.Result_SUCCESS:
			return "Processed: SUCCESS"
		case fsmpb.Result_CANCELLED:
			return "Cancelled"
		default:
			if r.ResultReason != "" {
				return "Processed: FAILURE (" + r.ResultReason + ")"
			}
			return "Processed: FAILURE"
		}
	}
	return "Unknown"
}

func resultName(r fsmpb.Result) string {
	if r == fsmpb.Result_RESULT_UNSPECIFIED {
		return ""
	}
	return r.String()
}

func notifyName(n fsmpb.NotifyState) string {
	switch n {
	case fsmpb.NotifyState_NOTIFY_PENDING:
		return "PENDING"
	case fsmpb.NotifyState_NOTIFIED:
		return "NOTIFIED"
	case fsmpb.NotifyState_NOTIFY_NOT_REQUIRED:
		return "NOT_REQUIRED"
	}
	return "NONE"
}

func outcomeName(o fsmpb.OutcomeClass) string {
	switch o {
	case fsmpb.OutcomeClass_OUTCOME_SUCCESS:
		return "SUCCESS"
	case fsmpb.OutcomeClass_OUTCOME_PERMANENT:
		return "PERMANENT"
	case fsmpb.OutcomeClass_OUTCOME_BUSY:
		return "BUSY"
	case fsmpb.OutcomeClass_OUTCOME_TEMPORARY:
		return "TEMPORARY"
	case fsmpb.OutcomeClass_OUTCOME_INTERNAL:
		return "INTERNAL"
	case fsmpb.OutcomeClass_OUTCOME_INTERRUPTED:
		return "INTERRUPTED"
	}
	return ""
}

// specOf returns the client-visible spec of a stored record.
func specOf(r *fsmpb.Request) *pb.RequestSpec {
	s := &pb.RequestSpec{
		Token:           r.Token,
		IvrProfile:      r.IvrProfile,
		Telnum:          r.Telnum,
		Ani:             r.Ani,
		NotificationUrl: r.NotificationUrl,
		MaxAttempts:     r.MaxAttempts,
		TimeToLive:      FormatDuration(r.TtlMs),
		IdempotencyKey:  r.IdempotencyKey,
		TimeZone:        r.TimeZone,
	}
	for _, kv := range r.CustomData {
		s.CustomData = append(s.CustomData, &pb.KeyValue{Key: kv.Key, Value: kv.Value})
	}
	if c := r.Cpd; c != nil {
		s.Cpd = &pb.Cpd{Record: c.Record, Preconnect: c.Preconnect, Detect: c.Detect}
		if c.PostConnectTimeoutMs != nil {
			s.Cpd.PostConnectTimeout = FormatDuration(*c.PostConnectTimeoutMs)
		}
		if c.RnaTimeoutMs != nil {
			s.Cpd.RnaTimeout = FormatDuration(*c.RnaTimeoutMs)
		}
	}
	return s
}

// toPublic renders a stored record for clients at time now.
func toPublic(r *fsmpb.Request, now time.Time) *pb.Request {
	out := &pb.Request{
		Id:           r.Id,
		Tenant:       r.Tenant,
		Spec:         specOf(r),
		State:        r.State.String(),
		Result:       resultName(r.Result),
		ResultReason: r.ResultReason,
		Status:       StatusText(r),
		AttemptsMade: r.AttemptsMade,
		TtlRemaining: durationpb.New(TTLRemaining(r, now)),
		Created:      msTime(r.CreatedUnixMs),
		NextRetry:    msTime(r.NextRetryUnixMs),
		Expires:      msTime(r.ExpiresUnixMs),
		LastCallUuid: r.LastCallUuid,
		Notification: notifyName(r.NotifyState),
		CreateIndex:  r.CreateIndex,
		ModifyIndex:  r.ModifyIndex,
		WaitReason:   r.WaitReason,
	}
	for _, a := range r.Attempts {
		out.Attempts = append(out.Attempts, &pb.Attempt{
			Number:   a.Number,
			CallUuid: a.CallUuid,
			Started:  msTime(a.StartedUnixMs),
			Ended:    msTime(a.EndedUnixMs),
			Outcome:  outcomeName(a.Outcome),
			Reason:   a.Reason,
		})
	}
	return out
}
