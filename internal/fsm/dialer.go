package fsm

import (
	"math"

	"github.com/seed-7bfc04c2/dialtone/internal/fsm/fsmpb"
)

// Reads for the dialer engine.

// Tenants returns, sorted, the tenants that have records in state (any
// state when state is STATE_UNSPECIFIED). It costs O(tenants × states ×
// profiles), not O(records).
func (f *FSM) Tenants(state fsmpb.State) []string {
	var out []string
	f.view().counts.Ascend(func(c countItem) bool {
		if state != fsmpb.State_STATE_UNSPECIFIED && c.state != state {
			return true
		}
		if len(out) == 0 || out[len(out)-1] != c.tenant {
			out = append(out, c.tenant)
		}
		return true
	})
	return out
}

// Expired returns up to limit PENDING or INITIATED records whose TTL ended
// at or before nowUnixMs, earliest expiry first.
func (f *FSM) Expired(nowUnixMs int64, limit int) []*fsmpb.Request {
	if limit <= 0 {
		return nil
	}
	var out []*fsmpb.Request
	st := f.view()
	st.expiry.AscendLessThan(expiryItem{expires: nowUnixMs, id: string([]byte{math.MaxUint8})}, func(it expiryItem) bool {
		out = append(out, st.mustGet(it.id))
		return len(out) < limit
	})
	return out
}

// InState returns up to limit records of tenant in state, after the id
// after (exclusive; "" starts at the beginning), in id order.
func (f *FSM) InState(tenant string, state fsmpb.State, after string, limit int) []*fsmpb.Request {
	if limit <= 0 {
		return nil
	}
	st := f.view()
	ids := st.listIDs(tenant, "", state, after, limit)
	var out []*fsmpb.Request
	for _, id := range ids {
		out = append(out, st.mustGet(id))
	}
	return out
}
