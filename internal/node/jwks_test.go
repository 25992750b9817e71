package node_test

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/seed-7bfc04c2/dialtone/internal/config"
)

// TestJWKSRotationOnEveryNode: three nodes with auth.jwt.jwks_url on a
// slow identity provider. A token whose kid is not published answers 401
// at once on every node; after the IdP publishes the key, every node
// accepts it within one refresh interval (plus the download); no request
// waits on the IdP.
func TestJWKSRotationOnEveryNode(t *testing.T) {
	const interval, slow = time.Second, 500 * time.Millisecond
	var mu sync.Mutex
	published := map[string]*rsa.PrivateKey{}
	var delay time.Duration
	idp := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		d := delay
		var keys []map[string]any
		for kid, k := range published {
			keys = append(keys, map[string]any{"kty": "RSA", "kid": kid, "alg": "RS256", "use": "sig",
				"n": base64.RawURLEncoding.EncodeToString(k.N.Bytes()), "e": base64.RawURLEncoding.EncodeToString(big.NewInt(int64(k.E)).Bytes())})
		}
		mu.Unlock()
		select {
		case <-time.After(d):
		case <-r.Context().Done():
			return
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"keys": keys})
	}))
	t.Cleanup(idp.Close) // after the nodes (cleanups run last-in first-out)
	k1, _ := rsa.GenerateKey(rand.Reader, 2048)
	k2, _ := rsa.GenerateKey(rand.Reader, 2048)
	published["k1"] = k1

	tc := newTestCluster(t, 3, func(c *config.Config) {
		c.Cluster.Secret = "0123456789abcdef-cluster"
		c.Auth.Mode = "jwt"
		c.Auth.JWT.JWKSURL = idp.URL
		c.Auth.JWT.Issuer = "https://idp.example"
		c.Auth.JWT.Audience = "dialtone"
		c.Auth.JWT.RefreshInterval = config.Duration{Duration: interval}
	})
	token := func(kid string, key *rsa.PrivateKey) string {
		tok := jwt.NewWithClaims(jwt.SigningMethodRS256, jwt.MapClaims{
			"iss": "https://idp.example", "aud": "dialtone", "sub": "crm", "exp": time.Now().Add(time.Hour).Unix(),
			"tenants": []string{"acme"}, "roles": []string{"read"},
		})
		tok.Header["kid"] = kid
		s, err := tok.SignedString(key)
		if err != nil {
			t.Fatal(err)
		}
		return "Bearer " + s
	}
	get := func(id, auth string) int {
		t.Helper()
		start := time.Now()
		code, _ := httpDoHeaders(t, "GET", "http://"+tc.Node(id).HTTPAddr()+"/v1/tenants/acme/requests", map[string]string{"Authorization": auth}, nil)
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("%s: a request waited %s", id, d)
		}
		return code
	}
	tok1, tok2 := token("k1", k1), token("k2", k2)
	for _, id := range tc.ids() {
		if code := get(id, tok1); code != 200 {
			t.Fatalf("%s: k1: %d", id, code)
		}
	}
	mu.Lock()
	delay = slow
	mu.Unlock()
	for range 5 {
		for _, id := range tc.ids() {
			start := time.Now()
			if code := get(id, tok2); code != 401 {
				t.Fatalf("%s: unpublished kid: %d", id, code)
			}
			if d := time.Since(start); d > 300*time.Millisecond {
				t.Errorf("%s: unknown kid refused after %s, want at once", id, d)
			}
		}
	}
	mu.Lock()
	published["k2"] = k2
	mu.Unlock()
	at := time.Now()
	for _, id := range tc.ids() {
		eventually(t, interval+slow+2*time.Second-time.Since(at), id+" accepts the new key", func() error {
			if code := get(id, tok2); code != 200 {
				return errStatus(code)
			}
			return nil
		})
	}
	t.Logf("new key accepted on every node %s after publication", time.Since(at).Round(time.Millisecond))
}

type errStatus int

func (e errStatus) Error() string { return http.StatusText(int(e)) }
