package console

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"

	pb "github.com/seed-7bfc04c2/dialtone/api/dialtonev1"
	"github.com/seed-7bfc04c2/dialtone/internal/auth"
)

// snapshot is one update of a view, as the viewer may see it. Every
// update carries this node's own status ("node": id, state, leader, term,
// commit and applied index, last contact) so a follower's figures come
// with their freshness. A failing part is reported under "errors" and the
// rest still shown.
func (h *Handler) snapshot(ctx context.Context, view string, v viewer) map[string]any {
	ctx, cancel := context.WithTimeout(v.ctx(ctx), 3*time.Second)
	defer cancel()
	now := time.Now()
	out := map[string]any{"view": view, "served_at_ms": now.UnixMilli()}
	errs := map[string]string{}
	defer func() {
		if len(errs) > 0 {
			out["errors"] = errs
		}
	}()
	if st, err := h.opts.API.ClusterStatus(ctx); err != nil {
		errs["node"] = errText(err)
	} else {
		out["node"] = raw(st)
	}
	switch view {
	case "cluster":
		if m, err := h.opts.API.Members(ctx); err != nil {
			errs["members"] = errText(err)
		} else {
			out["members"] = raw(m)
		}
		out["timeline"] = h.hist.leaderChanges()
	case "dialer":
		st, err := h.opts.API.DialerStatus(ctx)
		if err != nil {
			errs["dialer"] = errText(err)
			return out
		}
		h.hist.recordDialer(now, st)
		out["dialer"] = raw(st)
		hist, why := map[string][]Point{}, map[string]string{}
		for _, t := range st.GetTenants() {
			// The API scoped st to the viewer; the history, shared by
			// every viewer of this node, is scoped here the same way.
			if !v.p.CanAccess(t.GetTenant()) {
				continue
			}
			hist[t.GetTenant()] = h.hist.dialer(t.GetTenant())
			why[t.GetTenant()] = IdleReason(st.GetRunning(), t)
		}
		out["history"], out["why"] = hist, why
	case "ports":
		if u, err := h.opts.API.Usage(ctx); err != nil {
			errs["usage"] = errText(err)
		} else {
			out["usage"] = raw(u)
		}
		servers, err := h.servers(ctx, v)
		if err != nil {
			errs["servers"] = errText(err)
		} else {
			out["servers"] = servers
		}
		if e, err := h.opts.API.Entitlements(ctx); err != nil {
			errs["entitlements"] = errText(err)
		} else {
			out["entitlements"] = raw(e)
		}
		if a, err := h.opts.API.Alerts(ctx); err != nil {
			errs["alerts"] = errText(err)
		} else {
			out["alerts"] = raw(a)
		}
	case "settings":
		if p, err := h.opts.API.ListPacing(ctx); err != nil {
			errs["pacing"] = errText(err)
		} else {
			out["pacing"] = raw(p)
		}
	}
	return out
}

// servers lists the media servers the viewer may see: all at once for a
// viewer of every tenant, else tenant by tenant (the API scopes the call
// to the tenant it names).
func (h *Handler) servers(ctx context.Context, v viewer) ([]json.RawMessage, error) {
	tenants := []string{""}
	if !v.allTenants() {
		tenants = v.p.Tenants
	}
	out := []json.RawMessage{}
	for _, t := range tenants {
		resp, err := h.opts.API.Servers(ctx, t)
		if err != nil {
			return nil, err
		}
		for _, s := range resp.GetServers() {
			out = append(out, raw(s))
		}
	}
	return out, nil
}

// IdleReason says why a tenant is not dialling, or not faster, from its
// engine figures; "" while it dials freely. The reasons are the blocks the
// engine knows today: no engine, nothing queued, no ports, CAPS.
func IdleReason(running bool, t *pb.DialerTenantStatus) string {
	switch {
	case !running:
		return "not dialling: the dialer engine is not running (no leader yet, or it is starting)"
	case t.GetQueued() == 0 && t.GetInProgress() == 0:
		return "idle: no request is waiting to be dialled"
	case t.GetQueued() == 0:
		return ""
	case t.GetPortsTotal() == 0:
		return "waiting: no ports (no fresh media-server report for this tenant)"
	case t.GetInProgress() >= t.GetPortBudget():
		return fmt.Sprintf("waiting: no ports (all %d ports of the budget are in use)", t.GetPortBudget())
	case t.GetLimitedBy() == "fenced":
		return "not sending: the leader's lease is not fresh (leadership in doubt)"
	case t.GetLimitedBy() == "sending":
		return fmt.Sprintf("below CAPS: the sends lag their slots, the machine cannot sustain %g per second", t.GetCaps())
	case t.GetLimitedBy() == "commit":
		return "below CAPS: attempt starts wait for Raft commits"
	case t.GetCaps() > 0 && t.GetAttemptsPerSec() >= 0.9*t.GetCaps():
		return fmt.Sprintf("waiting: CAPS (attempts held at the limit of %g per second)", t.GetCaps())
	}
	return ""
}

// tenantParam is the tenant a request route names, or the viewer's only
// tenant when it names none.
func tenantParam(r *http.Request, p *auth.Principal) (string, error) {
	t := r.URL.Query().Get("tenant")
	if t == "" && len(p.Tenants) == 1 && p.Tenants[0] != "*" {
		t = p.Tenants[0]
	}
	if t == "" {
		return "", fmt.Errorf("tenant: is required")
	}
	return t, nil
}

// findScanPages bounds a search by token or number (ListRequests has no
// such filter, so the console pages through the tenant's requests).
const (
	findScanPages = 50
	findMax       = 100
)

// findRequests finds a tenant's requests by id, token or number; with no
// query it lists the first page.
func (h *Handler) findRequests(w http.ResponseWriter, r *http.Request, v viewer) {
	tenant, err := tenantParam(r, v.p)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	q := strings.TrimSpace(r.URL.Query().Get("q"))
	ctx := v.ctx(r.Context())
	if q != "" {
		got, err := h.opts.API.GetRequest(ctx, tenant, q)
		switch status.Code(err) {
		case codes.OK:
			writeJSON(w, map[string]any{"requests": []json.RawMessage{raw(got.GetRequest())}, "scanned": 1})
			return
		case codes.NotFound, codes.InvalidArgument:
		default:
			writeAPIError(w, err)
			return
		}
	}
	number := strings.Map(func(r rune) rune {
		if r == ' ' || r == '-' || r == '(' || r == ')' {
			return -1
		}
		return r
	}, q)
	found := []json.RawMessage{}
	scanned, token, truncated := 0, "", false
	for page := 0; page < findScanPages; page++ {
		size := int32(1000)
		if q == "" {
			size = 50
		}
		resp, err := h.opts.API.ListRequests(ctx, &pb.ListRequestsRequest{Tenant: tenant, PageSize: size, PageToken: token})
		if err != nil {
			writeAPIError(w, err)
			return
		}
		for _, rq := range resp.GetRequests() {
			scanned++
			s := rq.GetSpec()
			if q == "" || s.GetToken() == q || (number != "" && s.GetTelnum() == number) {
				found = append(found, raw(rq))
			}
		}
		token = resp.GetNextPageToken()
		if q == "" || token == "" || len(found) >= findMax {
			truncated = token != ""
			break
		}
	}
	if len(found) > findMax {
		found, truncated = found[:findMax], true
	}
	writeJSON(w, map[string]any{"requests": found, "scanned": scanned, "truncated": truncated})
}

func (h *Handler) getRequest(w http.ResponseWriter, r *http.Request, v viewer) {
	tenant, err := tenantParam(r, v.p)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	got, err := h.opts.API.GetRequest(v.ctx(r.Context()), tenant, r.URL.Query().Get("id"))
	if err != nil {
		writeAPIError(w, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(raw(got))
}

func (h *Handler) cancel(w http.ResponseWriter, r *http.Request, v viewer) {
	tenant, err := tenantParam(r, v.p)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	got, err := h.opts.API.CancelRequest(v.ctx(r.Context()), tenant, r.URL.Query().Get("id"))
	if err != nil {
		writeAPIError(w, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(raw(got))
}

func (h *Handler) setPacing(w http.ResponseWriter, r *http.Request, v viewer) {
	tenant := r.URL.Query().Get("tenant")
	if tenant == "" {
		writeError(w, http.StatusBadRequest, `tenant: is required (a tenant, or "_global")`)
		return
	}
	body, err := readBody(r)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	var p pb.Pacing
	if err := (protojson.UnmarshalOptions{}).Unmarshal(body, &p); err != nil {
		writeError(w, http.StatusBadRequest, "pacing: "+err.Error())
		return
	}
	got, err := h.opts.API.SetPacing(v.ctx(r.Context()), tenant, &p)
	if err != nil {
		writeAPIError(w, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(raw(got))
}
