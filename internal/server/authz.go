package server

import (
	"context"
	"crypto/subtle"
	"errors"
	"net/http"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	pb "github.com/seed-7bfc04c2/dialtone/api/dialtonev1"
	"github.com/seed-7bfc04c2/dialtone/internal/auth"
)

// anyPrincipal marks methods open to every authenticated principal.
const anyPrincipal auth.Role = ""

// methodRoles is the role each public RPC needs. A method missing here is
// refused: new RPCs must be given a role deliberately.
var methodRoles = map[string]auth.Role{
	pb.RequestService_CreateRequests_FullMethodName:         auth.RoleSubmit,
	pb.RequestService_CancelRequest_FullMethodName:          auth.RoleSubmit,
	pb.RequestService_BatchCancelRequests_FullMethodName:    auth.RoleSubmit,
	pb.RequestService_GetRequest_FullMethodName:             auth.RoleRead,
	pb.RequestService_BatchGetRequests_FullMethodName:       auth.RoleRead,
	pb.RequestService_ListRequests_FullMethodName:           auth.RoleRead,
	pb.ClusterService_GetStatus_FullMethodName:              anyPrincipal,
	pb.ClusterService_ListMembers_FullMethodName:            anyPrincipal,
	pb.ClusterService_Join_FullMethodName:                   auth.RoleAdmin,
	pb.ClusterService_Leave_FullMethodName:                  auth.RoleAdmin,
	pb.ClusterService_RemoveServer_FullMethodName:           auth.RoleAdmin,
	pb.ClusterService_TransferLeadership_FullMethodName:     auth.RoleAdmin,
	pb.PortUsageService_Publish_FullMethodName:              auth.RolePublish,
	pb.PortUsageService_GetUsage_FullMethodName:             auth.RoleRead,
	pb.PortUsageService_GetTenantUsage_FullMethodName:       auth.RoleRead,
	pb.PortUsageService_ListServers_FullMethodName:          auth.RoleRead,
	pb.PortUsageService_GetServer_FullMethodName:            auth.RoleRead,
	pb.PortSettingsService_ListEntitlements_FullMethodName:  auth.RoleRead,
	pb.PortSettingsService_SetEntitlement_FullMethodName:    auth.RoleAdmin,
	pb.PortSettingsService_DeleteEntitlement_FullMethodName: auth.RoleAdmin,
	pb.PortSettingsService_ListThresholds_FullMethodName:    auth.RoleRead,
	pb.PortSettingsService_SetThreshold_FullMethodName:      auth.RoleAdmin,
	pb.PortSettingsService_DeleteThreshold_FullMethodName:   auth.RoleAdmin,
	pb.PortSettingsService_ListAlerts_FullMethodName:        auth.RoleRead,
	pb.DialerService_GetPacing_FullMethodName:               auth.RoleRead,
	pb.DialerService_ListPacing_FullMethodName:              auth.RoleRead,
	pb.DialerService_SetPacing_FullMethodName:               auth.RoleAdmin,
	pb.DialerService_DeletePacing_FullMethodName:            auth.RoleAdmin,
	pb.DialerService_GetDialerStatus_FullMethodName:         auth.RoleRead,
	pb.DialerService_GetCallingWindow_FullMethodName:        auth.RoleRead,
	pb.DialerService_SetCallingWindow_FullMethodName:        auth.RoleAdmin,
	pb.DialerService_DeleteCallingWindow_FullMethodName:     auth.RoleAdmin,
	pb.DialerService_AddSuppressions_FullMethodName:         auth.RoleAdmin,
	pb.DialerService_LoadSuppressions_FullMethodName:        auth.RoleAdmin,
	pb.DialerService_RemoveSuppressions_FullMethodName:      auth.RoleAdmin,
	pb.DialerService_CheckSuppression_FullMethodName:        auth.RoleRead,
	pb.DialerService_GetFrequencyCap_FullMethodName:         auth.RoleRead,
	pb.DialerService_SetFrequencyCap_FullMethodName:         auth.RoleAdmin,
	pb.DialerService_DeleteFrequencyCap_FullMethodName:      auth.RoleAdmin,
}

// internalPrefix is the cluster-internal service, authenticated by the
// cluster secret instead of client credentials.
const internalPrefix = "/dialtone.cluster.v1.Internal/"

// SecretHeader carries the cluster secret on internal calls.
const SecretHeader = "x-dialtone-cluster-secret"

// Authz authenticates and authorises every RPC: client credentials, the
// method's role and the request's tenant for the public services; the
// cluster secret for the internal one.
type Authz struct {
	a      *auth.Authenticator
	secret []byte
}

// NewAuthz returns the interceptor. An empty secret leaves internal calls
// unauthenticated (development only: config refuses it when auth is on).
func NewAuthz(a *auth.Authenticator, secret string) *Authz {
	return &Authz{a: a, secret: []byte(secret)}
}

// Unary is the unary server interceptor.
func (z *Authz) Unary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	if strings.HasPrefix(info.FullMethod, internalPrefix) {
		if len(z.secret) > 0 {
			got := first(md, SecretHeader)
			if subtle.ConstantTimeCompare([]byte(got), z.secret) != 1 {
				return nil, status.Error(codes.Unauthenticated, "cluster-internal call without the cluster secret")
			}
		}
		return handler(ctx, req)
	}
	role, known := methodRoles[info.FullMethod]
	if !known {
		return nil, status.Errorf(codes.PermissionDenied, "method %s is not open to clients", info.FullMethod)
	}
	p, err := z.a.Authenticate(ctx, first(md, "authorization"))
	if err != nil {
		return nil, status.Error(codes.Unauthenticated, err.Error())
	}
	tenant, scoped := tenantOf(req)
	if err := Authorize(p, role, tenant, scoped); err != nil {
		return nil, status.Error(codes.PermissionDenied, err.Error())
	}
	return handler(auth.NewContext(ctx, p), req)
}

// Stream is the stream server interceptor. It authenticates once, at
// stream start, requires the method's role, and checks the tenant of every
// message the client sends (RecvMsg) against the principal: a report for
// another tenant ends the stream with PermissionDenied.
func (z *Authz) Stream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	ctx := ss.Context()
	md, _ := metadata.FromIncomingContext(ctx)
	if strings.HasPrefix(info.FullMethod, internalPrefix) {
		if len(z.secret) > 0 {
			got := first(md, SecretHeader)
			if subtle.ConstantTimeCompare([]byte(got), z.secret) != 1 {
				return status.Error(codes.Unauthenticated, "cluster-internal call without the cluster secret")
			}
		}
		return handler(srv, ss)
	}
	role, known := methodRoles[info.FullMethod]
	if !known {
		return status.Errorf(codes.PermissionDenied, "method %s is not open to clients", info.FullMethod)
	}
	p, err := z.a.Authenticate(ctx, first(md, "authorization"))
	if err != nil {
		return status.Error(codes.Unauthenticated, err.Error())
	}
	if err := Authorize(p, role, "", false); err != nil {
		return status.Error(codes.PermissionDenied, err.Error())
	}
	return handler(srv, &authStream{ServerStream: ss, ctx: auth.NewContext(ctx, p), p: p, role: role})
}

// authStream carries the principal and checks each received message.
type authStream struct {
	grpc.ServerStream
	ctx  context.Context
	p    *auth.Principal
	role auth.Role
}

func (s *authStream) Context() context.Context { return s.ctx }

func (s *authStream) RecvMsg(m any) error {
	if err := s.ServerStream.RecvMsg(m); err != nil {
		return err
	}
	tenant, scoped := tenantOf(m)
	if err := Authorize(s.p, s.role, tenant, scoped); err != nil {
		return status.Error(codes.PermissionDenied, err.Error())
	}
	return nil
}

func first(md metadata.MD, key string) string {
	if v := md.Get(key); len(v) > 0 {
		return v[0]
	}
	return ""
}

func tenantOf(req any) (string, bool) {
	if t, ok := req.(interface{ GetTenant() string }); ok {
		return t.GetTenant(), true
	}
	return "", false
}

// Authorize checks that p holds role and, when the call names a tenant, may
// act for it.
func Authorize(p *auth.Principal, role auth.Role, tenant string, scoped bool) error {
	if role != anyPrincipal && !p.Has(role) {
		return errors.New("principal " + quote(p.Name) + " lacks the " + string(role) + " role")
	}
	if scoped && !p.CanAccess(tenant) {
		return errors.New("principal " + quote(p.Name) + " may not act for tenant " + quote(tenant))
	}
	return nil
}

func quote(s string) string { return `"` + s + `"` }

// secretCreds attaches the cluster secret to internal calls.
type secretCreds struct{ secret string }

func (c secretCreds) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{SecretHeader: c.secret}, nil
}
func (c secretCreds) RequireTransportSecurity() bool { return false }

// ClusterSecretDialOption makes internal calls carry the cluster secret.
func ClusterSecretDialOption(secret string) grpc.DialOption {
	var creds credentials.PerRPCCredentials = secretCreds{secret}
	return grpc.WithPerRPCCredentials(creds)
}

// HTTPAuth guards a plain HTTP handler (metrics, OpenAPI, the Cisco
// paths) with the same credentials and rules as the RPCs. roleFor picks the
// role a request needs; tenantOf, when not nil, names the tenant it acts
// for. 401 and 403 are written by WriteHTTPError.
func HTTPAuth(a *auth.Authenticator, roleFor func(*http.Request) auth.Role, tenantOf func(*http.Request) string, next http.Handler) http.Handler {
	return HTTPAuthErrors(a, roleFor, tenantOf, WriteHTTPError, next)
}

// HTTPAuthErrors is HTTPAuth writing 401 and 403 with writeErr (the SSG
// endpoint answers them as an SSGResponse).
func HTTPAuthErrors(a *auth.Authenticator, roleFor func(*http.Request) auth.Role, tenantOf func(*http.Request) string, writeErr ErrorWriter, next http.Handler) http.Handler {
	if !a.Enabled() {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, err := a.Authenticate(r.Context(), r.Header.Get("Authorization"))
		if err != nil {
			w.Header().Set("WWW-Authenticate", a.Challenge())
			writeErr(w, http.StatusUnauthorized, err.Error())
			return
		}
		tenant, scoped := "", tenantOf != nil
		if scoped {
			tenant = tenantOf(r)
		}
		if err := Authorize(p, roleFor(r), tenant, scoped); err != nil {
			writeErr(w, http.StatusForbidden, err.Error())
			return
		}
		next.ServeHTTP(w, r.WithContext(auth.NewContext(r.Context(), p)))
	})
}
