package auth

import (
	"context"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// JWTConfig configures bearer-token verification.
type JWTConfig struct {
	// JWKSURL is fetched at start and refreshed in the background every
	// RefreshInterval (default 1h), and at most every 5 s when a token
	// names a key id the set lacks; requests never wait for a download
	// (jwks.go).
	JWKSURL         string
	RefreshInterval time.Duration
	// HTTPClient downloads the JWKS (default http.DefaultClient).
	HTTPClient *http.Client
	// PublicKeyFile is a PEM RSA or EC public key, instead of JWKSURL.
	PublicKeyFile string
	Issuer        string
	Audience      string
	// TenantsClaim and RolesClaim name the claims holding the principal's
	// tenants and roles (string or list of strings).
	TenantsClaim string
	RolesClaim   string
	// Leeway tolerates clock skew on exp and nbf.
	Leeway time.Duration
}

type jwtVerifier struct {
	cfg     JWTConfig
	keyfunc jwt.Keyfunc
	jwks    *jwksCache // nil with a PEM key
	parser  *jwt.Parser
}

func (v *jwtVerifier) close() {
	if v.jwks != nil {
		v.jwks.close()
	}
}

func newJWTVerifier(ctx context.Context, cfg JWTConfig, log *slog.Logger) (*jwtVerifier, error) {
	if cfg.TenantsClaim == "" {
		cfg.TenantsClaim = "tenants"
	}
	if cfg.RolesClaim == "" {
		cfg.RolesClaim = "roles"
	}
	if cfg.Issuer == "" || cfg.Audience == "" {
		return nil, errors.New("auth: jwt needs both issuer and audience")
	}
	v := &jwtVerifier{cfg: cfg}
	switch {
	case cfg.PublicKeyFile != "" && cfg.JWKSURL != "":
		return nil, errors.New("auth: jwt: set either jwks_url or public_key_file, not both")
	case cfg.PublicKeyFile != "":
		key, err := loadPublicKey(cfg.PublicKeyFile)
		if err != nil {
			return nil, err
		}
		v.keyfunc = func(*jwt.Token) (any, error) { return key, nil }
	case cfg.JWKSURL != "":
		c, err := newJWKSCache(ctx, cfg.JWKSURL, cfg.RefreshInterval, cfg.HTTPClient, log)
		if err != nil {
			return nil, err
		}
		v.jwks = c
		v.keyfunc = c.Keyfunc
	default:
		return nil, errors.New("auth: jwt needs jwks_url or public_key_file")
	}
	// Only asymmetric algorithms: "none" and HMAC (which an attacker could
	// sign with the public key as the secret) are refused by the parser.
	v.parser = jwt.NewParser(
		jwt.WithValidMethods([]string{"RS256", "ES256"}),
		jwt.WithIssuer(cfg.Issuer),
		jwt.WithAudience(cfg.Audience),
		jwt.WithExpirationRequired(),
		jwt.WithLeeway(cfg.Leeway),
	)
	return v, nil
}

func loadPublicKey(path string) (any, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("auth: public key: %w", err)
	}
	block, _ := pem.Decode(b)
	if block == nil {
		return nil, fmt.Errorf("auth: public key %s: no PEM block", path)
	}
	if k, err := x509.ParsePKIXPublicKey(block.Bytes); err == nil {
		switch k.(type) {
		case *rsa.PublicKey, *ecdsa.PublicKey:
			return k, nil
		}
		return nil, fmt.Errorf("auth: public key %s: %T is neither RSA nor EC", path, k)
	}
	if k, err := x509.ParsePKCS1PublicKey(block.Bytes); err == nil {
		return k, nil
	}
	if c, err := x509.ParseCertificate(block.Bytes); err == nil {
		return c.PublicKey, nil
	}
	return nil, fmt.Errorf("auth: public key %s: not a PKIX, PKCS#1 or certificate PEM", path)
}

func (v *jwtVerifier) verify(ctx context.Context, raw string) (*Principal, error) {
	claims := jwt.MapClaims{}
	if _, err := v.parser.ParseWithClaims(raw, claims, v.keyfunc); err != nil {
		return nil, fmt.Errorf("%w: invalid token: %v", ErrUnauthenticated, err)
	}
	sub, _ := claims.GetSubject()
	p := &Principal{Name: sub, Tenants: stringList(claims[v.cfg.TenantsClaim])}
	for _, r := range stringList(claims[v.cfg.RolesClaim]) {
		p.Roles = append(p.Roles, Role(r))
	}
	if len(p.Tenants) == 0 {
		return nil, fmt.Errorf("%w: token has no %q claim", ErrUnauthenticated, v.cfg.TenantsClaim)
	}
	return p, nil
}

func stringList(v any) []string {
	switch x := v.(type) {
	case string:
		return []string{x}
	case []any:
		var out []string
		for _, e := range x {
			if s, ok := e.(string); ok {
				out = append(out, s)
			}
		}
		return out
	}
	return nil
}
