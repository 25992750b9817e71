// Package cvp serves the Cisco CVP Port Usage API shape over Dialtone's
// port-usage cache, so an existing CVP Port Usage client works unchanged:
//
//	GET  /cache-service/api/v1/licenseUsage[?ipAddress=a.b.c.d]
//	GET  /cache-service/api/v1/licensePurchased
//	POST /cache-service/api/v1/licensePurchased
//
// The JSON shapes are documented in docs/port-usage.md. Authentication and
// the role check (read for GET, admin for POST) are done by the caller's
// wrapper (server.HTTPAuth); tenant isolation here: a principal not scoped to
// every tenant ("*") sees and sets only its tenants.
package cvp

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/seed-7bfc04c2/dialtone/api/dialtonev1"
	"github.com/seed-7bfc04c2/dialtone/internal/auth"
	"github.com/seed-7bfc04c2/dialtone/internal/server/jsonbody"
)

// Paths served.
const (
	UsagePath     = "/cache-service/api/v1/licenseUsage"
	PurchasedPath = "/cache-service/api/v1/licensePurchased"
)

// Usage is the port-usage read service (server.PortUsage).
type Usage interface {
	GetUsage(ctx context.Context, req *pb.GetUsageRequest) (*pb.Usage, error)
	ListServers(ctx context.Context, req *pb.ListServersRequest) (*pb.ListServersResponse, error)
}

// Licenses reads and sets entitlements (server.PortSettings).
type Licenses interface {
	EntitlementList() []*pb.Entitlement
	SetEntitlementPorts(ctx context.Context, tenant string, ports uint32) error
}

// Options configure the handler.
type Options struct {
	// DefaultTenant is the tenant of a licensePurchased POST that names
	// none, for a single-tenant deployment (port_usage.default_tenant).
	DefaultTenant string
	// MaxBodyBytes bounds a POST body (default 64 KiB).
	MaxBodyBytes int64
}

// Handler serves the Cisco-compatible endpoints.
type Handler struct {
	usage    Usage
	licenses Licenses // nil: licensePurchased POST answers 501
	opts     Options
	now      func() time.Time
}

// New returns the handler; licenses may be nil.
func New(usage Usage, licenses Licenses, opts Options) *Handler {
	if opts.MaxBodyBytes <= 0 {
		opts.MaxBodyBytes = 64 << 10
	}
	return &Handler{usage: usage, licenses: licenses, opts: opts, now: time.Now}
}

// Handlers returns the handlers by ServeMux pattern.
func (h *Handler) Handlers() map[string]http.Handler {
	return map[string]http.Handler{
		"GET " + UsagePath:      http.HandlerFunc(h.licenseUsage),
		"GET " + PurchasedPath:  http.HandlerFunc(h.getPurchased),
		"POST " + PurchasedPath: http.HandlerFunc(h.setPurchased),
	}
}

// ServerUsage is one VXML server in licenseUsage.
type ServerUsage struct {
	ServerID            string  `json:"serverId"`
	IPAddress           string  `json:"ipAddress"`
	Tenant              string  `json:"tenant"`
	TotalPorts          uint32  `json:"totalPorts"`
	TotalAvailablePorts uint32  `json:"totalAvailablePorts"`
	PortsInUse          uint32  `json:"portsInUse"`
	MinPortsInUse       uint32  `json:"minPortsInUse"`
	MaxPortsInUse       uint32  `json:"maxPortsInUse"`
	AvgPortsInUse       float64 `json:"avgPortsInUse"`
	Stale               bool    `json:"stale"`
	LastUpdated         int64   `json:"lastUpdated"`
}

// LicenseUsage is the licenseUsage answer.
type LicenseUsage struct {
	TotalAvailablePorts           uint32        `json:"totalAvailablePorts"`
	PortsInUse                    uint32        `json:"portsInUse"`
	TotalPorts                    uint32        `json:"totalPorts"`
	TotalEntitledSelfServicePorts uint32        `json:"totalEntitledSelfServicePorts"`
	WindowSeconds                 int32         `json:"windowSeconds"`
	Timestamp                     int64         `json:"timestamp"`
	Servers                       []ServerUsage `json:"servers"`
}

// TenantLicense is one tenant's entitlement.
type TenantLicense struct {
	Tenant                   string `json:"tenant"`
	EntitledSelfServicePorts uint32 `json:"entitledSelfServicePorts"`
}

// LicensePurchased is the licensePurchased answer.
type LicensePurchased struct {
	TotalEntitledSelfServicePorts uint32          `json:"totalEntitledSelfServicePorts"`
	Tenants                       []TenantLicense `json:"tenants"`
}

// SetLicense is the licensePurchased POST body. The figure may be named
// entitledSelfServicePorts (the per-tenant name) or
// totalEntitledSelfServicePorts (the name licenseUsage and the
// licensePurchased GET return); both at once must agree. Tenant may be left
// out by a principal scoped to exactly one tenant, or in a deployment with
// a default tenant.
type SetLicense struct {
	Tenant                        string  `json:"tenant"`
	EntitledSelfServicePorts      *uint32 `json:"entitledSelfServicePorts"`
	TotalEntitledSelfServicePorts *uint32 `json:"totalEntitledSelfServicePorts"`
}

// ports returns the figure, whichever name carried it.
func (b SetLicense) ports() (uint32, error) {
	a, t := b.EntitledSelfServicePorts, b.TotalEntitledSelfServicePorts
	switch {
	case a == nil && t == nil:
		return 0, errors.New("entitledSelfServicePorts: is required (or its alias totalEntitledSelfServicePorts)")
	case a != nil && t != nil && *a != *t:
		return 0, fmt.Errorf("entitledSelfServicePorts (%d) and totalEntitledSelfServicePorts (%d) disagree: send one of them", *a, *t)
	case a != nil:
		return *a, nil
	}
	return *t, nil
}

func (h *Handler) licenseUsage(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	ip := r.URL.Query().Get("ipAddress")
	u, err := h.usage.GetUsage(ctx, &pb.GetUsageRequest{})
	if err != nil {
		writeStatus(w, err)
		return
	}
	list, err := h.usage.ListServers(ctx, &pb.ListServersRequest{})
	if err != nil {
		writeStatus(w, err)
		return
	}
	out := LicenseUsage{
		TotalEntitledSelfServicePorts: u.EntitledPorts,
		WindowSeconds:                 u.GetWindow().GetWindowSeconds(),
		Timestamp:                     h.now().UnixMilli(),
		Servers:                       []ServerUsage{},
	}
	if ip == "" {
		out.TotalAvailablePorts, out.PortsInUse, out.TotalPorts = u.AvailablePorts, u.PortsInUse, u.TotalPorts
	}
	for _, s := range list.Servers {
		if ip != "" && s.Address != ip {
			continue
		}
		out.Servers = append(out.Servers, ServerUsage{
			ServerID: s.Id, IPAddress: s.Address, Tenant: s.Tenant,
			TotalPorts: s.TotalPorts, TotalAvailablePorts: s.AvailablePorts, PortsInUse: s.PortsInUse,
			MinPortsInUse: s.GetWindow().GetMinInUse(), MaxPortsInUse: s.GetWindow().GetMaxInUse(), AvgPortsInUse: s.GetWindow().GetAvgInUse(),
			Stale: s.Stale, LastUpdated: s.LastReportUnixMs,
		})
		if ip != "" && !s.Stale {
			out.TotalAvailablePorts += s.AvailablePorts
			out.PortsInUse += s.PortsInUse
			out.TotalPorts += s.TotalPorts
		}
	}
	if ip != "" && len(out.Servers) == 0 {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no VXML server with ipAddress %q", ip))
		return
	}
	writeJSON(w, http.StatusOK, out)
}

func (h *Handler) getPurchased(w http.ResponseWriter, r *http.Request) {
	out := LicensePurchased{Tenants: []TenantLicense{}}
	if h.licenses == nil {
		u, err := h.usage.GetUsage(r.Context(), &pb.GetUsageRequest{})
		if err != nil {
			writeStatus(w, err)
			return
		}
		out.TotalEntitledSelfServicePorts = u.EntitledPorts
		for _, t := range u.Tenants {
			if t.EntitledPorts > 0 {
				out.Tenants = append(out.Tenants, TenantLicense{Tenant: t.Tenant, EntitledSelfServicePorts: t.EntitledPorts})
			}
		}
		writeJSON(w, http.StatusOK, out)
		return
	}
	// Every entitlement the caller may see, those of 0 ports included (a
	// customer with no purchased self-service ports).
	p, authOn := auth.FromContext(r.Context())
	for _, e := range h.licenses.EntitlementList() {
		if authOn && !p.CanAccess(e.Tenant) {
			continue
		}
		out.Tenants = append(out.Tenants, TenantLicense{Tenant: e.Tenant, EntitledSelfServicePorts: e.LicensedPorts})
		out.TotalEntitledSelfServicePorts += e.LicensedPorts
	}
	writeJSON(w, http.StatusOK, out)
}

func (h *Handler) setPurchased(w http.ResponseWriter, r *http.Request) {
	if h.licenses == nil {
		writeError(w, http.StatusNotImplemented, "entitlements cannot be set on this node")
		return
	}
	if err := jsonbody.CheckContentType(r.Header.Get("Content-Type")); err != nil {
		writeError(w, http.StatusUnsupportedMediaType, err.Error())
		return
	}
	var body SetLicense
	if err := jsonbody.Decode(r.Body, h.opts.MaxBodyBytes, &body); err != nil {
		switch {
		case errors.Is(err, jsonbody.ErrTooLarge):
			writeError(w, http.StatusRequestEntityTooLarge, err.Error())
		case errors.Is(err, io.EOF):
			writeError(w, http.StatusBadRequest, `body: empty; expected {"tenant": "...", "entitledSelfServicePorts": N}`)
		default:
			writeError(w, http.StatusBadRequest, err.Error())
		}
		return
	}
	ports, err := body.ports()
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	p, authOn := auth.FromContext(r.Context())
	if body.Tenant == "" {
		switch {
		case authOn && len(p.Tenants) == 1 && p.Tenants[0] != "*":
			body.Tenant = p.Tenants[0]
		case h.opts.DefaultTenant != "":
			body.Tenant = h.opts.DefaultTenant
		default:
			writeError(w, http.StatusBadRequest, "tenant: is required (no port_usage.default_tenant is configured, and the caller is not scoped to exactly one tenant)")
			return
		}
	}
	if authOn && !p.CanAccess(body.Tenant) {
		writeError(w, http.StatusForbidden, fmt.Sprintf("principal %q may not act for tenant %q", p.Name, body.Tenant))
		return
	}
	if err := h.licenses.SetEntitlementPorts(r.Context(), body.Tenant, ports); err != nil {
		writeStatus(w, err)
		return
	}
	writeJSON(w, http.StatusOK, TenantLicense{Tenant: body.Tenant, EntitledSelfServicePorts: ports})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

// Error is the error body of every Cisco path: Code is the response's HTTP
// status (never a gRPC code), Message says what went wrong.
type Error struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
}

func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, Error{Code: code, Message: msg})
}

func writeStatus(w http.ResponseWriter, err error) {
	st, ok := status.FromError(err)
	if !ok {
		if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
			writeError(w, http.StatusServiceUnavailable, err.Error())
			return
		}
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	code := http.StatusInternalServerError
	switch st.Code() {
	case codes.InvalidArgument, codes.FailedPrecondition, codes.OutOfRange:
		code = http.StatusBadRequest
	case codes.NotFound:
		code = http.StatusNotFound
	case codes.PermissionDenied:
		code = http.StatusForbidden
	case codes.Unauthenticated:
		code = http.StatusUnauthorized
	case codes.Unavailable, codes.Aborted:
		code = http.StatusServiceUnavailable
	case codes.DeadlineExceeded:
		code = http.StatusGatewayTimeout
	case codes.Unimplemented:
		code = http.StatusNotImplemented
	case codes.ResourceExhausted:
		code = http.StatusTooManyRequests
	}
	writeError(w, code, st.Message())
}
