package fsm

import (
	"fmt"

	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/seed-7bfc04c2/dialtone/internal/fsm/fsmpb"
)

// Result reasons stored on records; other packages may show them to clients.
const (
	reasonCancelled   = "Cancelled"
	reasonTTLExpired  = "TTL Expired"
	reasonMaxAttempts = "MaxAttempts Exceeded"
)

// applier applies commands to the writer's version of the state, in place.
type applier struct {
	st *state

	// Of the entry being applied.
	index uint64
	now   int64
}

// apply applies one decoded command entry. Everything it does depends only
// on the state and the entry, never on a clock or on randomness, so every
// replica computes the same state.
func (a *applier) apply(index uint64, cmd *fsmpb.Command) *fsmpb.ApplyResult {
	a.index, a.now = index, cmd.NowUnixMs

	switch b := cmd.Body.(type) {
	case *fsmpb.Command_Create:
		return a.create(b.Create)
	case *fsmpb.Command_Cancel:
		return a.forEach(b.Cancel.GetIds(), a.cancelFn(b.Cancel.GetTenant()))
	case *fsmpb.Command_Claim:
		return a.forEach(b.Claim.GetIds(), a.claim)
	case *fsmpb.Command_StartAttempts:
		return a.startAttempts(b.StartAttempts.GetStarts(), false)
	case *fsmpb.Command_BatchStartAttempts:
		return a.startAttempts(b.BatchStartAttempts.GetStarts(), true)
	case *fsmpb.Command_RecordResults:
		return a.recordResults(b.RecordResults.GetResults(), nil)
	case *fsmpb.Command_BatchRecordResults:
		return a.recordResults(b.BatchRecordResults.GetResults(), b.BatchRecordResults.GetNotified())
	case *fsmpb.Command_MarkNotified:
		return a.forEach(b.MarkNotified.GetIds(), a.markNotified)
	case *fsmpb.Command_Purge:
		return a.forEach(b.Purge.GetIds(), a.purge)
	case *fsmpb.Command_Requeue:
		return a.forEach(b.Requeue.GetIds(), a.requeue)
	case *fsmpb.Command_Expire:
		return a.forEach(b.Expire.GetIds(), a.expire)
	case *fsmpb.Command_SetEntitlement:
		return a.setEntitlement(b.SetEntitlement)
	case *fsmpb.Command_DeleteEntitlement:
		return a.deleteEntitlement(b.DeleteEntitlement)
	case *fsmpb.Command_SetThreshold:
		return a.setThreshold(b.SetThreshold)
	case *fsmpb.Command_DeleteThreshold:
		return a.deleteThreshold(b.DeleteThreshold)
	case *fsmpb.Command_SetPacing:
		return a.setPacing(b.SetPacing)
	case *fsmpb.Command_DeletePacing:
		return a.deletePacing(b.DeletePacing)
	case *fsmpb.Command_Defer:
		return a.deferRequests(b.Defer)
	case *fsmpb.Command_End:
		return a.endRequests(b.End)
	case *fsmpb.Command_SetCallingWindow:
		return a.setCallingWindow(b.SetCallingWindow)
	case *fsmpb.Command_DeleteCallingWindow:
		return a.deleteCallingWindow(b.DeleteCallingWindow)
	case *fsmpb.Command_AddSuppressions:
		return a.addSuppressions(b.AddSuppressions)
	case *fsmpb.Command_RemoveSuppressions:
		return a.removeSuppressions(b.RemoveSuppressions)
	case *fsmpb.Command_FreqSetCap:
		return a.freqSetCap(b.FreqSetCap)
	case *fsmpb.Command_FreqDeleteCap:
		return a.freqDeleteCap(b.FreqDeleteCap)
	case *fsmpb.Command_DialogUpdates:
		return a.dialogUpdates(b.DialogUpdates)
	default:
		panic(unknownBody(index, cmd)) // decode rejects these before any entry is applied
	}
}

func ok(id string) *fsmpb.ItemResult { return &fsmpb.ItemResult{Id: id} }

// okItem is ok(id) in an item the caller allocated (zero).
func okItem(item *fsmpb.ItemResult, id string) *fsmpb.ItemResult {
	item.Id = id
	return item
}

func fail(id string, code fsmpb.Code, format string, args ...interface{}) *fsmpb.ItemResult {
	return &fsmpb.ItemResult{Id: id, Code: code, Reason: fmt.Sprintf(format, args...)}
}

func notFound(id string) *fsmpb.ItemResult {
	return &fsmpb.ItemResult{Id: id, Code: fsmpb.Code_CODE_NOT_FOUND, Reason: "request not found"}
}

func invalidState(r *fsmpb.Request, want string) *fsmpb.ItemResult {
	return fail(r.Id, fsmpb.Code_CODE_INVALID_STATE, "request is %s, not %s", r.State, want)
}

// forEach applies fn to the stored record of every id in order.
func (a *applier) forEach(ids []string, fn func(r *fsmpb.Request) *fsmpb.ItemResult) *fsmpb.ApplyResult {
	res := &fsmpb.ApplyResult{Items: make([]*fsmpb.ItemResult, 0, len(ids))}
	for _, id := range ids {
		r, found := a.get(id)
		if !found {
			res.Items = append(res.Items, notFound(id))
			continue
		}
		res.Items = append(res.Items, fn(r))
	}
	return res
}

func (a *applier) get(id string) (*fsmpb.Request, bool) { return a.st.get(id) }

func (a *applier) create(c *fsmpb.CreateRequests) *fsmpb.ApplyResult {
	reqs := c.GetRequests()
	res := &fsmpb.ApplyResult{Items: make([]*fsmpb.ItemResult, 0, len(reqs))}
	// The results of stored records, allocated once per entry rather than
	// once per record.
	oks := make([]fsmpb.ItemResult, len(reqs))
	for i, spec := range reqs {
		r := newRecord(spec, a.now, a.index)
		k := newKeys{id: r.Id, tenant: r.Tenant, profile: r.IvrProfile, key: r.IdempotencyKey, ttlMs: r.TtlMs, fingerprint: r.Fingerprint}
		res.Items = append(res.Items, a.createOne(&k, idItem{id: r.Id, r: r}, c.GetMaxRecords(), &oks[i]))
		r.Tenant, r.IvrProfile = k.tenant, k.profile
	}
	return res
}

// createFresh is create for an entry read in place (viewCreate): each
// record is stored as a fresh (see fresh.go).
func (a *applier) createFresh(v *createView) *fsmpb.ApplyResult {
	res := &fsmpb.ApplyResult{Items: make([]*fsmpb.ItemResult, 0, len(v.reqs))}
	oks := make([]fsmpb.ItemResult, len(v.reqs))
	fs := make([]fresh, len(v.reqs)) // one allocation per entry
	for i := range v.reqs {
		spec := &v.reqs[i]
		k := newKeys{id: spec.id, tenant: spec.tenant, profile: spec.profile, key: spec.idempotencyKey, ttlMs: spec.ttlMs, fingerprint: spec.fingerprint}
		f := &fs[i]
		res.Items = append(res.Items, a.createOne(&k, idItem{id: spec.id, f: f}, v.maxRecords, &oks[i]))
		*f = fresh{raw: spec.raw, tenant: k.tenant, profile: k.profile, created: a.now, index: a.index}
	}
	return res
}

// newKeys is what a create checks and indexes of a new record.
type newKeys struct {
	id, tenant, profile, key string
	ttlMs                    int64
	fingerprint              []byte
}

// createOne stores it, the item of a new record whose keys are k, and
// returns its result: item, set, when it is stored. It sets k's tenant and
// profile to its group's strings (state.group), which the caller gives the
// stored record.
func (a *applier) createOne(k *newKeys, it idItem, maxRecords uint64, item *fsmpb.ItemResult) *fsmpb.ItemResult {
	switch {
	case k.id == "":
		return fail("", fsmpb.Code_CODE_INVALID_STATE, "id is required")
	case k.tenant == "":
		return fail(k.id, fsmpb.Code_CODE_INVALID_STATE, "tenant is required")
	}
	full := maxRecords > 0 && uint64(a.st.count()) >= maxRecords
	g := a.st.group(k.tenant, k.profile, fsmpb.State_PENDING)
	k.tenant, k.profile = g.tenant, g.profile

	// The checks in order: the idempotency key, the id, the capacity.
	prev, found, byKey := a.st.insertNew(it, k.tenant, k.key)
	switch {
	case found && byKey:
		p := prev.record()
		if string(p.Fingerprint) == string(k.fingerprint) {
			return fail(p.Id, fsmpb.Code_CODE_DUPLICATE, "idempotency key already used by this request")
		}
		return fail(k.id, fsmpb.Code_CODE_CONFLICT, "idempotency key already used by a different request")
	case found:
		// The same request under the same id is a replay of this very
		// command (a proposer retrying after an unknown outcome): answer
		// as the original did, not with an error.
		p := prev.record()
		if p.Tenant == k.tenant && string(p.Fingerprint) == string(k.fingerprint) {
			return fail(p.Id, fsmpb.Code_CODE_DUPLICATE, "request already stored under this id")
		}
		return fail(k.id, fsmpb.Code_CODE_EXISTS, "id already exists")
	case full:
		a.st.dropNew(k.id, k.tenant, k.key)
		return fail(k.id, fsmpb.Code_CODE_CAPACITY, "maximum of %d stored records reached", maxRecords)
	}
	a.st.insertKeys(queueItem{
		g: g, state: fsmpb.State_PENDING,
		nextRetry: a.now, expires: a.now + k.ttlMs, id: k.id,
	}, true)
	return okItem(item, k.id)
}

func (a *applier) cancelFn(tenant string) func(r *fsmpb.Request) *fsmpb.ItemResult {
	return func(r *fsmpb.Request) *fsmpb.ItemResult {
		if r.Tenant != tenant {
			// Same answer as a missing id: do not reveal other tenants' ids.
			return notFound(r.Id)
		}
		switch r.State {
		case fsmpb.State_IN_PROGRESS:
			return fail(r.Id, fsmpb.Code_CODE_IN_PROGRESS, "an attempt is in progress")
		case fsmpb.State_PROCESSED:
			return fail(r.Id, fsmpb.Code_CODE_FINISHED, "request is already finished")
		case fsmpb.State_PENDING, fsmpb.State_INITIATED:
			a.update(r, func(n *fsmpb.Request) {
				setProcessed(n, fsmpb.Result_CANCELLED, reasonCancelled)
				// The client learns the outcome from its cancel call.
				n.NotifyState = fsmpb.NotifyState_NOTIFY_NOT_REQUIRED
			})
			return ok(r.Id)
		default:
			return invalidState(r, "PENDING or INITIATED")
		}
	}
}

func (a *applier) claim(r *fsmpb.Request) *fsmpb.ItemResult {
	if r.State != fsmpb.State_PENDING {
		return invalidState(r, "PENDING")
	}
	a.update(r, func(n *fsmpb.Request) { n.State = fsmpb.State_INITIATED })
	return ok(r.Id)
}

// startAttempts starts attempts of INITIATED requests (StartAttempts) and,
// with claim, also of due PENDING ones (BatchStartAttempts: claim and start
// in one update of the record).
func (a *applier) startAttempts(starts []*fsmpb.AttemptStart, claim bool) *fsmpb.ApplyResult {
	res := &fsmpb.ApplyResult{Items: make([]*fsmpb.ItemResult, 0, len(starts))}
	a.st.freq.prune(a.now)
	for _, s := range starts {
		res.Items = append(res.Items, a.startOne(s, claim))
	}
	return res
}

func (a *applier) startOne(s *fsmpb.AttemptStart, claim bool) *fsmpb.ItemResult {
	r, found := a.get(s.GetId())
	switch {
	case !found:
		return notFound(s.GetId())
	case claim && r.State == fsmpb.State_PENDING:
		if r.NextRetryUnixMs > a.now {
			// Deferred (a retry, a calling window) after the dialer
			// fetched it: not due, so not dialled.
			return fail(r.Id, fsmpb.Code_CODE_INVALID_STATE, "not due until %d", r.NextRetryUnixMs)
		}
	case claim && r.State != fsmpb.State_INITIATED:
		return invalidState(r, "PENDING or INITIATED")
	case !claim && r.State != fsmpb.State_INITIATED:
		return invalidState(r, "INITIATED")
	}
	switch {
	case r.AttemptsMade >= r.MaxAttempts:
		return fail(r.Id, fsmpb.Code_CODE_INVALID_STATE, "all %d attempts made", r.MaxAttempts)
	case a.now >= r.ExpiresUnixMs:
		return fail(r.Id, fsmpb.Code_CODE_INVALID_STATE, "TTL expired")
	}
	if a.isSuppressed(r) {
		// Listed after the dialer fetched it: never dialled.
		a.update(r, func(n *fsmpb.Request) {
			setProcessed(n, fsmpb.Result_FAILURE, ReasonSuppressed)
			n.WaitReason = ""
		})
		return fail(r.Id, fsmpb.Code_CODE_FINISHED, "number is on the tenant's suppression list")
	}
	if res, refused := a.freqRefuse(r); refused {
		return res
	}
	a.freqRecord(r)
	a.update(r, func(n *fsmpb.Request) {
		n.State = fsmpb.State_IN_PROGRESS
		n.WaitReason = ""
		n.AttemptsMade++
		n.LastCallUuid = s.GetCallUuid()
		n.Attempts = append(n.Attempts, &fsmpb.Attempt{
			Number:        n.AttemptsMade,
			CallUuid:      s.GetCallUuid(),
			StartedUnixMs: a.now,
		})
	})
	return ok(r.Id)
}

// recordResults records attempt outcomes, then delivered notifications
// (BatchRecordResults; RecordResults has none).
func (a *applier) recordResults(results []*fsmpb.AttemptResult, notified []string) *fsmpb.ApplyResult {
	res := &fsmpb.ApplyResult{Items: make([]*fsmpb.ItemResult, 0, len(results)+len(notified))}
	for _, ar := range results {
		res.Items = append(res.Items, a.recordOne(ar))
	}
	for _, id := range notified {
		if r, found := a.get(id); found {
			res.Items = append(res.Items, a.markNotified(r))
		} else {
			res.Items = append(res.Items, notFound(id))
		}
	}
	return res
}

func (a *applier) recordOne(ar *fsmpb.AttemptResult) *fsmpb.ItemResult {
	r, found := a.get(ar.GetId())
	switch {
	case !found:
		return notFound(ar.GetId())
	case r.State != fsmpb.State_IN_PROGRESS:
		return invalidState(r, "IN_PROGRESS")
	case r.LastCallUuid != ar.GetCallUuid():
		return fail(r.Id, fsmpb.Code_CODE_INVALID_STATE, "stale result: call %q is not the current attempt", ar.GetCallUuid())
	}
	switch ar.GetOutcome() {
	case fsmpb.OutcomeClass_OUTCOME_SUCCESS, fsmpb.OutcomeClass_OUTCOME_PERMANENT,
		fsmpb.OutcomeClass_OUTCOME_BUSY, fsmpb.OutcomeClass_OUTCOME_TEMPORARY,
		fsmpb.OutcomeClass_OUTCOME_INTERNAL, fsmpb.OutcomeClass_OUTCOME_INTERRUPTED:
	default:
		return fail(r.Id, fsmpb.Code_CODE_INVALID_STATE, "unknown outcome %s", ar.GetOutcome())
	}

	if k := len(r.Attempts); k > 0 {
		a.freqEnd(r, r.Attempts[k-1].GetStartedUnixMs())
	}
	a.update(r, func(n *fsmpb.Request) {
		if k := len(n.Attempts); k > 0 {
			// n.Attempts is n's own slice but its elements are shared.
			last := copyAttempt(n.Attempts[k-1])
			n.Attempts[k-1] = last
			last.EndedUnixMs = a.now
			last.Outcome = ar.GetOutcome()
			last.Reason = ar.GetReason()
			last.Dialogs = nil // ended: nothing left to adopt
		}
		nextRetry := max(ar.GetNextRetryUnixMs(), a.now)
		switch ar.GetOutcome() {
		case fsmpb.OutcomeClass_OUTCOME_SUCCESS:
			setProcessed(n, fsmpb.Result_SUCCESS, "")
		case fsmpb.OutcomeClass_OUTCOME_PERMANENT:
			setProcessed(n, fsmpb.Result_FAILURE, ar.GetReason())
		case fsmpb.OutcomeClass_OUTCOME_INTERNAL, fsmpb.OutcomeClass_OUTCOME_INTERRUPTED:
			// Not the callee's doing: the attempt does not count.
			if n.AttemptsMade > 0 {
				n.AttemptsMade--
			}
			if a.now >= n.ExpiresUnixMs {
				setProcessed(n, fsmpb.Result_FAILURE, reasonTTLExpired)
			} else {
				setPending(n, nextRetry)
			}
		case fsmpb.OutcomeClass_OUTCOME_BUSY, fsmpb.OutcomeClass_OUTCOME_TEMPORARY:
			switch {
			case n.AttemptsMade >= n.MaxAttempts:
				setProcessed(n, fsmpb.Result_FAILURE, reasonMaxAttempts)
			case nextRetry >= n.ExpiresUnixMs: // covers now >= expires
				setProcessed(n, fsmpb.Result_FAILURE, reasonTTLExpired)
			default:
				setPending(n, nextRetry)
			}
		}
	})
	return ok(r.Id)
}

func (a *applier) markNotified(r *fsmpb.Request) *fsmpb.ItemResult {
	if r.State != fsmpb.State_PROCESSED || r.NotifyState != fsmpb.NotifyState_NOTIFY_PENDING {
		return fail(r.Id, fsmpb.Code_CODE_INVALID_STATE, "request is %s with notification %s, not PROCESSED with NOTIFY_PENDING", r.State, r.NotifyState)
	}
	a.update(r, func(n *fsmpb.Request) { n.NotifyState = fsmpb.NotifyState_NOTIFIED })
	return ok(r.Id)
}

func (a *applier) purge(r *fsmpb.Request) *fsmpb.ItemResult {
	if r.State != fsmpb.State_PROCESSED ||
		(r.NotifyState != fsmpb.NotifyState_NOTIFIED && r.NotifyState != fsmpb.NotifyState_NOTIFY_NOT_REQUIRED) {
		return fail(r.Id, fsmpb.Code_CODE_INVALID_STATE, "request is %s with notification %s, not finished and notified", r.State, r.NotifyState)
	}
	a.st.remove(r)
	return ok(r.Id)
}

func (a *applier) requeue(r *fsmpb.Request) *fsmpb.ItemResult {
	if r.State != fsmpb.State_INITIATED {
		return invalidState(r, "INITIATED")
	}
	a.update(r, func(n *fsmpb.Request) { n.State = fsmpb.State_PENDING })
	return ok(r.Id)
}

func (a *applier) expire(r *fsmpb.Request) *fsmpb.ItemResult {
	if r.State != fsmpb.State_PENDING && r.State != fsmpb.State_INITIATED {
		return invalidState(r, "PENDING or INITIATED")
	}
	if a.now < r.ExpiresUnixMs {
		return fail(r.Id, fsmpb.Code_CODE_INVALID_STATE, "TTL not expired yet")
	}
	a.update(r, func(n *fsmpb.Request) { setProcessed(n, fsmpb.Result_FAILURE, reasonTTLExpired) })
	return ok(r.Id)
}

// setProcessed finishes n; the notification is pending unless the caller
// overrides it.
func setProcessed(n *fsmpb.Request, result fsmpb.Result, reason string) {
	n.State = fsmpb.State_PROCESSED
	n.Result = result
	n.ResultReason = reason
	n.DeleteFlag = true
	n.NotifyState = fsmpb.NotifyState_NOTIFY_PENDING
}

func setPending(n *fsmpb.Request, nextRetry int64) {
	n.State = fsmpb.State_PENDING
	n.NextRetryUnixMs = nextRetry
}

// update stores a modified copy of the stored record old: stored records are
// shared with readers and snapshots and are never modified in place.
func (a *applier) update(old *fsmpb.Request, mutate func(n *fsmpb.Request)) {
	n := copyRequest(old)
	mutate(n)
	n.UpdatedUnixMs = a.now
	n.ModifyIndex = a.index
	a.st.replace(old, n)
}

// copyRequest returns a copy of r that mutate functions may modify: every
// field, including unknown ones, is copied, and Attempts is a new slice
// (with room for one more). Sub-messages and byte slices (CustomData, Cpd,
// Fingerprint, the Attempt elements) are shared, so they must be replaced,
// never modified, in the copy (see copyAttempt). It is several times faster
// than proto.Clone; TestCopyRequest checks it covers every field.
func copyRequest(r *fsmpb.Request) *fsmpb.Request {
	n := &fsmpb.Request{
		Id:              r.Id,
		Tenant:          r.Tenant,
		Token:           r.Token,
		IvrProfile:      r.IvrProfile,
		Telnum:          r.Telnum,
		Ani:             r.Ani,
		NotificationUrl: r.NotificationUrl,
		CustomData:      r.CustomData,
		Cpd:             r.Cpd,
		MaxAttempts:     r.MaxAttempts,
		TtlMs:           r.TtlMs,
		IdempotencyKey:  r.IdempotencyKey,
		Fingerprint:     r.Fingerprint,
		TimeZone:        r.TimeZone,

		State:           r.State,
		Result:          r.Result,
		AttemptsMade:    r.AttemptsMade,
		CreatedUnixMs:   r.CreatedUnixMs,
		NextRetryUnixMs: r.NextRetryUnixMs,
		ExpiresUnixMs:   r.ExpiresUnixMs,
		LastCallUuid:    r.LastCallUuid,
		DeleteFlag:      r.DeleteFlag,
		NotifyState:     r.NotifyState,
		UpdatedUnixMs:   r.UpdatedUnixMs,
		ResultReason:    r.ResultReason,
		CreateIndex:     r.CreateIndex,
		ModifyIndex:     r.ModifyIndex,
		WaitReason:      r.WaitReason,
	}
	if len(r.Attempts) > 0 {
		n.Attempts = make([]*fsmpb.Attempt, len(r.Attempts), len(r.Attempts)+1)
		copy(n.Attempts, r.Attempts)
	}
	if u := r.ProtoReflect().GetUnknown(); len(u) > 0 {
		n.ProtoReflect().SetUnknown(append(protoreflect.RawFields(nil), u...))
	}
	return n
}

// copyAttempt returns a copy of a, including its unknown fields.
func copyAttempt(a *fsmpb.Attempt) *fsmpb.Attempt {
	n := &fsmpb.Attempt{
		Number:        a.Number,
		CallUuid:      a.CallUuid,
		StartedUnixMs: a.StartedUnixMs,
		EndedUnixMs:   a.EndedUnixMs,
		Outcome:       a.Outcome,
		Reason:        a.Reason,
		Dialogs:       a.Dialogs, // replaced, never changed in place
	}
	if u := a.ProtoReflect().GetUnknown(); len(u) > 0 {
		n.ProtoReflect().SetUnknown(append(protoreflect.RawFields(nil), u...))
	}
	return n
}
