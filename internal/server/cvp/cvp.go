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

// Handler serves the Cisco-compatible endpoints.
type Handler struct {
	usage    Usage
	licenses Licenses // nil: licensePurchased POST answers 501
	now      func() time.Time
}

// New returns the handler; licenses may be nil.
func New(usage Usage, licenses Licenses) *Handler {
	return &Handler{usage: usage, licenses: licenses, now: time.Now}
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

// SetLicense is the licensePurchased POST body. Tenant may be left out by
// a principal scoped to exactly one tenant.
type SetLicense struct {
	Tenant                   string  `json:"tenant"`
	EntitledSelfServicePorts *uint32 `json:"entitledSelfServicePorts"`
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
	u, err := h.usage.GetUsage(r.Context(), &pb.GetUsageRequest{})
	if err != nil {
		writeStatus(w, err)
		return
	}
	out := LicensePurchased{TotalEntitledSelfServicePorts: u.EntitledPorts, Tenants: []TenantLicense{}}
	for _, t := range u.Tenants {
		if t.EntitledPorts > 0 {
			out.Tenants = append(out.Tenants, TenantLicense{Tenant: t.Tenant, EntitledSelfServicePorts: t.EntitledPorts})
		}
	}
	writeJSON(w, http.StatusOK, out)
}

func (h *Handler) setPurchased(w http.ResponseWriter, r *http.Request) {
	if h.licenses == nil {
		writeError(w, http.StatusNotImplemented, "entitlements cannot be set on this node")
		return
	}
	var body SetLicense
	dec := json.NewDecoder(io.LimitReader(r.Body, 64<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&body); err != nil {
		writeError(w, http.StatusBadRequest, "body: "+err.Error())
		return
	}
	if body.EntitledSelfServicePorts == nil {
		writeError(w, http.StatusBadRequest, "entitledSelfServicePorts: is required")
		return
	}
	p, authOn := auth.FromContext(r.Context())
	if body.Tenant == "" {
		if authOn && len(p.Tenants) == 1 && p.Tenants[0] != "*" {
			body.Tenant = p.Tenants[0]
		} else {
			writeError(w, http.StatusBadRequest, "tenant: is required")
			return
		}
	}
	if authOn && !p.CanAccess(body.Tenant) {
		writeError(w, http.StatusForbidden, fmt.Sprintf("principal %q may not act for tenant %q", p.Name, body.Tenant))
		return
	}
	if err := h.licenses.SetEntitlementPorts(r.Context(), body.Tenant, *body.EntitledSelfServicePorts); err != nil {
		writeStatus(w, err)
		return
	}
	writeJSON(w, http.StatusOK, TenantLicense{Tenant: body.Tenant, EntitledSelfServicePorts: *body.EntitledSelfServicePorts})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

// Error is the error body.
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
	case codes.Unavailable, codes.DeadlineExceeded, codes.Aborted:
		code = http.StatusServiceUnavailable
	case codes.Unimplemented:
		code = http.StatusNotImplemented
	case codes.ResourceExhausted:
		code = http.StatusTooManyRequests
	}
	writeError(w, code, st.Message())
}
