package auth

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"log/slog"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/crypto/bcrypt"
)

func basicHeader(user, pass string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))
}

func TestBasic(t *testing.T) {
	hash, _ := bcrypt.GenerateFromPassword([]byte("s3cret"), bcrypt.MinCost)
	a, err := New(context.Background(), Config{Mode: ModeBasic, Users: []User{
		{Name: "crm", PasswordHash: string(hash), Tenants: []string{"acme"}, Roles: []Role{RoleSubmit, RoleRead}},
	}}, slog.Default())
	if err != nil {
		t.Fatal(err)
	}
	for range 2 { // the second time from the cache
		p, err := a.Authenticate(context.Background(), basicHeader("crm", "s3cret"))
		if err != nil || p.Name != "crm" || !p.CanAccess("acme") || p.CanAccess("globex") || !p.Has(RoleSubmit) || p.Has(RoleAdmin) {
			t.Fatalf("principal %+v, err %v", p, err)
		}
	}
	for name, h := range map[string]string{
		"wrong password":    basicHeader("crm", "guess"),
		"unknown user":      basicHeader("eve", "s3cret"),
		"no header":         "",
		"not base64":        "Basic !!!",
		"no colon":          "Basic " + base64.StdEncoding.EncodeToString([]byte("crm")),
		"bearer not on":     "Bearer abc",
		"unknown scheme":    "Digest x",
		"cached then wrong": basicHeader("crm", "s3cret!"),
	} {
		if _, err := a.Authenticate(context.Background(), h); !errors.Is(err, ErrUnauthenticated) {
			t.Errorf("%s: err = %v", name, err)
		}
	}
	if _, err := New(context.Background(), Config{Mode: ModeBasic, Users: []User{{Name: "x", PasswordHash: "plain"}}}, slog.Default()); err == nil {
		t.Fatal("a non-bcrypt hash was accepted")
	}
}

func TestNoneIsAnonymousWithEverything(t *testing.T) {
	a, _ := New(context.Background(), Config{Mode: ModeNone}, slog.Default())
	p, err := a.Authenticate(context.Background(), "")
	if err != nil || !p.CanAccess("any") || !p.Has(RoleAdmin) || a.Enabled() {
		t.Fatalf("%+v %v", p, err)
	}
}

type keys struct {
	rsa *rsa.PrivateKey
	ec  *ecdsa.PrivateKey
}

func newKeys(t *testing.T) keys {
	r, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	e, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return keys{r, e}
}

func claims(mod func(jwt.MapClaims)) jwt.MapClaims {
	c := jwt.MapClaims{
		"iss": "https://idp.example", "aud": "dialtone", "sub": "crm-app",
		"exp": time.Now().Add(time.Hour).Unix(), "nbf": time.Now().Add(-time.Minute).Unix(),
		"tenants": []string{"acme"}, "roles": []string{"submit", "read"},
	}
	if mod != nil {
		mod(c)
	}
	return c
}

func sign(t *testing.T, method jwt.SigningMethod, key any, kid string, c jwt.MapClaims) string {
	tok := jwt.NewWithClaims(method, c)
	if kid != "" {
		tok.Header["kid"] = kid
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func writePEM(t *testing.T, pub any) string {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "key.pem")
	if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func jwksServer(t *testing.T, k keys) *httptest.Server {
	set := map[string]any{"keys": []map[string]any{
		{"kty": "RSA", "kid": "r1", "alg": "RS256", "use": "sig", "n": b64(k.rsa.N.Bytes()), "e": b64(big.NewInt(int64(k.rsa.E)).Bytes())},
		{"kty": "EC", "kid": "e1", "alg": "ES256", "use": "sig", "crv": "P-256", "x": b64(k.ec.X.FillBytes(make([]byte, 32))), "y": b64(k.ec.Y.FillBytes(make([]byte, 32)))},
	}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewEncoder(w).Encode(set)
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestJWT(t *testing.T) {
	k := newKeys(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	base := JWTConfig{Issuer: "https://idp.example", Audience: "dialtone"}
	fromJWKS := base
	fromJWKS.JWKSURL = jwksServer(t, k).URL
	fromPEM := base
	fromPEM.PublicKeyFile = writePEM(t, &k.rsa.PublicKey)
	rsaPEM, _ := os.ReadFile(fromPEM.PublicKeyFile)

	for _, src := range []struct {
		name string
		cfg  JWTConfig
	}{{"jwks", fromJWKS}, {"pem", fromPEM}} {
		a, err := New(ctx, Config{Mode: ModeJWT, JWT: src.cfg}, slog.Default())
		if err != nil {
			t.Fatal(err)
		}
		good := sign(t, jwt.SigningMethodRS256, k.rsa, "r1", claims(nil))
		p, err := a.Authenticate(ctx, "Bearer "+good)
		if err != nil || p.Name != "crm-app" || !p.CanAccess("acme") || !p.Has(RoleSubmit) {
			t.Fatalf("%s: good token: %+v %v", src.name, p, err)
		}
		if src.name == "jwks" {
			es := sign(t, jwt.SigningMethodES256, k.ec, "e1", claims(nil))
			if _, err := a.Authenticate(ctx, "Bearer "+es); err != nil {
				t.Fatalf("ES256 from JWKS: %v", err)
			}
		}
		other, _ := rsa.GenerateKey(rand.Reader, 2048)
		bad := map[string]string{
			"expired":          sign(t, jwt.SigningMethodRS256, k.rsa, "r1", claims(func(c jwt.MapClaims) { c["exp"] = time.Now().Add(-time.Hour).Unix() })),
			"no exp":           sign(t, jwt.SigningMethodRS256, k.rsa, "r1", claims(func(c jwt.MapClaims) { delete(c, "exp") })),
			"not yet valid":    sign(t, jwt.SigningMethodRS256, k.rsa, "r1", claims(func(c jwt.MapClaims) { c["nbf"] = time.Now().Add(time.Hour).Unix() })),
			"wrong issuer":     sign(t, jwt.SigningMethodRS256, k.rsa, "r1", claims(func(c jwt.MapClaims) { c["iss"] = "https://evil" })),
			"wrong audience":   sign(t, jwt.SigningMethodRS256, k.rsa, "r1", claims(func(c jwt.MapClaims) { c["aud"] = "other" })),
			"no tenants":       sign(t, jwt.SigningMethodRS256, k.rsa, "r1", claims(func(c jwt.MapClaims) { delete(c, "tenants") })),
			"other key":        sign(t, jwt.SigningMethodRS256, other, "r1", claims(nil)),
			"alg none":         sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, "r1", claims(nil)),
			"hmac with pubkey": sign(t, jwt.SigningMethodHS256, rsaPEM, "r1", claims(nil)),
			"garbage":          "not.a.token",
		}
		for name, tok := range bad {
			if _, err := a.Authenticate(ctx, "Bearer "+tok); !errors.Is(err, ErrUnauthenticated) {
				t.Errorf("%s: %s accepted: %v", src.name, name, err)
			}
		}
	}
}

func TestJWTConfigErrors(t *testing.T) {
	for name, cfg := range map[string]JWTConfig{
		"no source":   {Issuer: "i", Audience: "a"},
		"no issuer":   {Audience: "a", PublicKeyFile: "x"},
		"both":        {Issuer: "i", Audience: "a", PublicKeyFile: "x", JWKSURL: "http://127.0.0.1:1"},
		"missing pem": {Issuer: "i", Audience: "a", PublicKeyFile: "/nonexistent.pem"},
	} {
		if _, err := New(context.Background(), Config{Mode: ModeJWT, JWT: cfg}, slog.Default()); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
