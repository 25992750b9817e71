package fsm

import "github.com/seed-7bfc04c2/dialtone/internal/fsm/fsmpb"

// Command constructors: one per fsmpb.Command body, named after it, so
// callers never build the oneof envelope by hand. They set only the body;
// the time (NowUnixMs) and the version are stamped where the command is
// proposed.

// CreateCommand stores new requests; maxRecords is the configured maximum
// of stored records (0: unlimited).
func CreateCommand(reqs []*fsmpb.Request, maxRecords uint64) *fsmpb.Command {
	return &fsmpb.Command{Body: &fsmpb.Command_Create{Create: &fsmpb.CreateRequests{Requests: reqs, MaxRecords: maxRecords}}}
}

// CancelCommand cancels a tenant's requests.
func CancelCommand(tenant string, ids []string) *fsmpb.Command {
	return &fsmpb.Command{Body: &fsmpb.Command_Cancel{Cancel: &fsmpb.CancelRequests{Tenant: tenant, Ids: ids}}}
}

// ClaimCommand moves due requests from PENDING to INITIATED (the dialer's
// fetch).
func ClaimCommand(ids []string) *fsmpb.Command {
	return &fsmpb.Command{Body: &fsmpb.Command_Claim{Claim: &fsmpb.ClaimRequests{Ids: ids}}}
}

// StartAttemptsCommand starts attempts of INITIATED requests.
func StartAttemptsCommand(starts []*fsmpb.AttemptStart) *fsmpb.Command {
	return &fsmpb.Command{Body: &fsmpb.Command_StartAttempts{StartAttempts: &fsmpb.StartAttempts{Starts: starts}}}
}

// BatchStartAttemptsCommand claims and starts attempts of due PENDING (or
// INITIATED) requests: one update per request instead of a ClaimCommand
// and a StartAttemptsCommand.
func BatchStartAttemptsCommand(starts []*fsmpb.AttemptStart) *fsmpb.Command {
	return &fsmpb.Command{Body: &fsmpb.Command_BatchStartAttempts{BatchStartAttempts: &fsmpb.BatchStartAttempts{Starts: starts}}}
}

// RecordResultsCommand records the outcomes of attempts in progress.
func RecordResultsCommand(results []*fsmpb.AttemptResult) *fsmpb.Command {
	return &fsmpb.Command{Body: &fsmpb.Command_RecordResults{RecordResults: &fsmpb.RecordResults{Results: results}}}
}

// BatchRecordResultsCommand records attempt outcomes and delivered
// notifications in one entry (see fsmpb.BatchRecordResults).
func BatchRecordResultsCommand(results []*fsmpb.AttemptResult, notified []string) *fsmpb.Command {
	return &fsmpb.Command{Body: &fsmpb.Command_BatchRecordResults{BatchRecordResults: &fsmpb.BatchRecordResults{Results: results, Notified: notified}}}
}

// MarkNotifiedCommand records delivered result notifications.
func MarkNotifiedCommand(ids []string) *fsmpb.Command {
	return &fsmpb.Command{Body: &fsmpb.Command_MarkNotified{MarkNotified: &fsmpb.MarkNotified{Ids: ids}}}
}

// PurgeCommand removes finished requests.
func PurgeCommand(ids []string) *fsmpb.Command {
	return &fsmpb.Command{Body: &fsmpb.Command_Purge{Purge: &fsmpb.PurgeRequests{Ids: ids}}}
}

// RequeueCommand returns INITIATED requests to PENDING.
func RequeueCommand(ids []string) *fsmpb.Command {
	return &fsmpb.Command{Body: &fsmpb.Command_Requeue{Requeue: &fsmpb.RequeueRequests{Ids: ids}}}
}

// ExpireCommand ends waiting requests whose TTL ran out.
func ExpireCommand(ids []string) *fsmpb.Command {
	return &fsmpb.Command{Body: &fsmpb.Command_Expire{Expire: &fsmpb.ExpireRequests{Ids: ids}}}
}

// SetEntitlementCommand stores or replaces a tenant's entitlement;
// maxEntitlements is the configured maximum (0: unlimited).
func SetEntitlementCommand(e *fsmpb.Entitlement, maxEntitlements uint32) *fsmpb.Command {
	return &fsmpb.Command{Body: &fsmpb.Command_SetEntitlement{SetEntitlement: &fsmpb.SetEntitlement{Entitlement: e, MaxEntitlements: maxEntitlements}}}
}

// DeleteEntitlementCommand removes a tenant's entitlement.
func DeleteEntitlementCommand(tenant string) *fsmpb.Command {
	return &fsmpb.Command{Body: &fsmpb.Command_DeleteEntitlement{DeleteEntitlement: &fsmpb.DeleteEntitlement{Tenant: tenant}}}
}

// SetThresholdCommand stores or replaces a port-usage threshold;
// maxThresholds is the configured maximum (0: unlimited).
func SetThresholdCommand(th *fsmpb.Threshold, maxThresholds uint32) *fsmpb.Command {
	return &fsmpb.Command{Body: &fsmpb.Command_SetThreshold{SetThreshold: &fsmpb.SetThreshold{Threshold: th, MaxThresholds: maxThresholds}}}
}

// DeleteThresholdCommand removes a port-usage threshold.
func DeleteThresholdCommand(id string) *fsmpb.Command {
	return &fsmpb.Command{Body: &fsmpb.Command_DeleteThreshold{DeleteThreshold: &fsmpb.DeleteThreshold{Id: id}}}
}

// SetPacingCommand stores or replaces a tenant's (or, for tenant "", the
// global) dialer settings.
func SetPacingCommand(p *fsmpb.Pacing) *fsmpb.Command {
	return &fsmpb.Command{Body: &fsmpb.Command_SetPacing{SetPacing: &fsmpb.SetPacing{Pacing: p}}}
}

// DeletePacingCommand removes a tenant's (or the global) dialer settings.
func DeletePacingCommand(tenant string) *fsmpb.Command {
	return &fsmpb.Command{Body: &fsmpb.Command_DeletePacing{DeletePacing: &fsmpb.DeletePacing{Tenant: tenant}}}
}

// DeferCommand moves waiting requests' next eligible time (calling
// windows, frequency caps); the leader computes the times.
func DeferCommand(items []*fsmpb.DeferItem) *fsmpb.Command {
	return &fsmpb.Command{Body: &fsmpb.Command_Defer{Defer: &fsmpb.DeferRequests{Items: items}}}
}

// EndCommand ends waiting requests FAILURE with a reason, no attempt
// counted (suppression hits, unknown time zones).
func EndCommand(items []*fsmpb.EndItem) *fsmpb.Command {
	return &fsmpb.Command{Body: &fsmpb.Command_End{End: &fsmpb.EndRequests{Items: items}}}
}

// SetCallingWindowCommand stores or replaces a tenant's (or one IVR
// profile's) calling window.
func SetCallingWindowCommand(w *fsmpb.CallingWindow) *fsmpb.Command {
	return &fsmpb.Command{Body: &fsmpb.Command_SetCallingWindow{SetCallingWindow: &fsmpb.SetCallingWindow{Window: w}}}
}

// DeleteCallingWindowCommand removes a tenant's (or profile's) calling
// window.
func DeleteCallingWindowCommand(tenant, profile string) *fsmpb.Command {
	return &fsmpb.Command{Body: &fsmpb.Command_DeleteCallingWindow{DeleteCallingWindow: &fsmpb.DeleteCallingWindow{Tenant: tenant, IvrProfile: profile}}}
}

// AddSuppressionsCommand adds numbers (with their expiries, or none) to a
// tenant's suppression list.
func AddSuppressionsCommand(c *fsmpb.SuppressionChunk) *fsmpb.Command {
	return &fsmpb.Command{Body: &fsmpb.Command_AddSuppressions{AddSuppressions: &fsmpb.AddSuppressions{Chunk: c}}}
}

// RemoveSuppressionsCommand removes numbers from a tenant's suppression
// list.
func RemoveSuppressionsCommand(tenant string, numbers []uint64) *fsmpb.Command {
	return &fsmpb.Command{Body: &fsmpb.Command_RemoveSuppressions{RemoveSuppressions: &fsmpb.RemoveSuppressions{Tenant: tenant, Numbers: numbers}}}
}

// FreqSetCapCommand stores or replaces a tenant's per-contact frequency
// cap.
func FreqSetCapCommand(c *fsmpb.FreqCap) *fsmpb.Command {
	return &fsmpb.Command{Body: &fsmpb.Command_FreqSetCap{FreqSetCap: &fsmpb.FreqSetCap{Cap: c}}}
}

// FreqDeleteCapCommand removes a tenant's frequency cap and its history.
func FreqDeleteCapCommand(tenant string) *fsmpb.Command {
	return &fsmpb.Command{Body: &fsmpb.Command_FreqDeleteCap{FreqDeleteCap: &fsmpb.FreqDeleteCap{Tenant: tenant}}}
}

// DialogUpdatesCommand records the SIP dialog state of attempts in
// progress (what a new leader needs to adopt their calls).
func DialogUpdatesCommand(updates []*fsmpb.DialogUpdate) *fsmpb.Command {
	return &fsmpb.Command{Body: &fsmpb.Command_DialogUpdates{DialogUpdates: &fsmpb.DialogUpdates{Updates: updates}}}
}
