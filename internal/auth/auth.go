// Package auth authenticates callers and says what they may do. A caller is
// a Principal: a name, the tenants it may act for ("*" for all) and its
// roles. Principals come from HTTP basic credentials checked against bcrypt
// hashes in the configuration, or from JWTs (RS256/ES256) verified against a
// JWKS URL or a PEM public key. Mode "none" (development only) makes every
// caller an all-powerful anonymous principal.
package auth

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"

	"golang.org/x/crypto/bcrypt"
)

// Role is a permission a principal holds.
type Role string

// The roles. They do not imply each other: an operator who should also read
// requests is given both admin and read.
const (
	RoleSubmit  Role = "submit"  // create and cancel requests
	RoleRead    Role = "read"    // read requests
	RolePublish Role = "publish" // publish port usage
	RoleAdmin   Role = "admin"   // cluster operations, entitlements, pacing
)

// AllRoles lists every role.
var AllRoles = []Role{RoleSubmit, RoleRead, RolePublish, RoleAdmin}

// Principal is an authenticated caller.
type Principal struct {
	Name    string
	Tenants []string
	Roles   []Role
}

// Has reports whether p holds role r.
func (p *Principal) Has(r Role) bool { return slices.Contains(p.Roles, r) }

// CanAccess reports whether p may act for tenant.
func (p *Principal) CanAccess(tenant string) bool {
	return slices.Contains(p.Tenants, "*") || slices.Contains(p.Tenants, tenant)
}

var (
	// ErrUnauthenticated means no or invalid credentials.
	ErrUnauthenticated = errors.New("unauthenticated")
	// ErrPermissionDenied means valid credentials without the right.
	ErrPermissionDenied = errors.New("permission denied")
)

// Mode selects the accepted credentials.
type Mode string

// The modes.
const (
	ModeNone     Mode = "none"
	ModeBasic    Mode = "basic"
	ModeJWT      Mode = "jwt"
	ModeBasicJWT Mode = "basic+jwt"
)

// User is one basic-auth user.
type User struct {
	Name         string
	PasswordHash string // bcrypt
	Tenants      []string
	Roles        []Role
}

// Config configures an Authenticator.
type Config struct {
	Mode  Mode
	Users []User
	JWT   JWTConfig
}

// Authenticator turns an Authorization header into a Principal.
type Authenticator struct {
	mode  Mode
	users map[string]User
	jwt   *jwtVerifier

	// verified caches a digest of each password that bcrypt accepted, so
	// only the first request of a user pays bcrypt's deliberate slowness.
	mu       sync.Mutex
	verified map[string][32]byte
}

// New builds an Authenticator. ctx bounds background JWKS refreshing.
func New(ctx context.Context, cfg Config, log *slog.Logger) (*Authenticator, error) {
	a := &Authenticator{mode: cfg.Mode, users: map[string]User{}, verified: map[string][32]byte{}}
	switch cfg.Mode {
	case ModeNone, "":
		a.mode = ModeNone
		return a, nil
	case ModeBasic, ModeJWT, ModeBasicJWT:
	default:
		return nil, fmt.Errorf("auth: unknown mode %q", cfg.Mode)
	}
	if a.basic() {
		for _, u := range cfg.Users {
			if _, err := bcrypt.Cost([]byte(u.PasswordHash)); err != nil {
				return nil, fmt.Errorf("auth: user %q: password_hash is not a bcrypt hash: %w", u.Name, err)
			}
			a.users[u.Name] = u
		}
	}
	if a.jwtOn() {
		v, err := newJWTVerifier(ctx, cfg.JWT, log)
		if err != nil {
			return nil, err
		}
		a.jwt = v
	}
	return a, nil
}

// Close stops background work (the JWKS refresher) and waits for it. The
// context given to New stops it too.
func (a *Authenticator) Close() {
	if a.jwt != nil {
		a.jwt.close()
	}
}

func (a *Authenticator) basic() bool { return a.mode == ModeBasic || a.mode == ModeBasicJWT }
func (a *Authenticator) jwtOn() bool { return a.mode == ModeJWT || a.mode == ModeBasicJWT }

// Enabled reports whether credentials are checked at all.
func (a *Authenticator) Enabled() bool { return a.mode != ModeNone }

// Mode reports the configured mode.
func (a *Authenticator) Mode() Mode { return a.mode }

var anonymous = &Principal{Name: "anonymous", Tenants: []string{"*"}, Roles: AllRoles}

// Authenticate checks an Authorization header value ("Basic ..." or
// "Bearer ...").
func (a *Authenticator) Authenticate(ctx context.Context, header string) (*Principal, error) {
	if a.mode == ModeNone {
		return anonymous, nil
	}
	scheme, cred, ok := strings.Cut(strings.TrimSpace(header), " ")
	if !ok || cred == "" {
		return nil, fmt.Errorf("%w: missing credentials (send an Authorization header: %s)", ErrUnauthenticated, a.schemes())
	}
	switch {
	case strings.EqualFold(scheme, "Basic") && a.basic():
		return a.checkBasic(cred)
	case strings.EqualFold(scheme, "Bearer") && a.jwtOn():
		return a.jwt.verify(ctx, strings.TrimSpace(cred))
	}
	return nil, fmt.Errorf("%w: authorization scheme %q is not accepted (use %s)", ErrUnauthenticated, scheme, a.schemes())
}

func (a *Authenticator) schemes() string {
	switch a.mode {
	case ModeBasic:
		return "Basic"
	case ModeJWT:
		return "Bearer"
	}
	return "Basic or Bearer"
}

// Challenge is the WWW-Authenticate value for 401 answers.
func (a *Authenticator) Challenge() string {
	switch a.mode {
	case ModeBasic:
		return `Basic realm="dialtone"`
	case ModeJWT:
		return `Bearer realm="dialtone"`
	}
	return `Basic realm="dialtone", Bearer realm="dialtone"`
}

func (a *Authenticator) checkBasic(cred string) (*Principal, error) {
	raw, err := base64.StdEncoding.DecodeString(cred)
	if err != nil {
		return nil, fmt.Errorf("%w: basic credentials are not base64", ErrUnauthenticated)
	}
	name, pass, ok := strings.Cut(string(raw), ":")
	if !ok {
		return nil, fmt.Errorf("%w: basic credentials are not user:password", ErrUnauthenticated)
	}
	u, known := a.users[name]
	digest := sha256.Sum256([]byte(name + "\x00" + pass))
	a.mu.Lock()
	cached, hit := a.verified[name]
	a.mu.Unlock()
	switch {
	case known && hit && subtle.ConstantTimeCompare(cached[:], digest[:]) == 1:
	case known && bcrypt.CompareHashAndPassword([]byte(u.PasswordHash), []byte(pass)) == nil:
		a.mu.Lock()
		a.verified[name] = digest
		a.mu.Unlock()
	default:
		return nil, fmt.Errorf("%w: invalid user name or password", ErrUnauthenticated)
	}
	return &Principal{Name: u.Name, Tenants: u.Tenants, Roles: u.Roles}, nil
}

type ctxKey struct{}

// NewContext returns ctx carrying p.
func NewContext(ctx context.Context, p *Principal) context.Context {
	return context.WithValue(ctx, ctxKey{}, p)
}

// FromContext returns the principal in ctx, if any.
func FromContext(ctx context.Context) (*Principal, bool) {
	p, ok := ctx.Value(ctxKey{}).(*Principal)
	return p, ok
}
