package auth

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// fakeIdP serves a JWKS whose keys can be rotated, after a configurable
// delay (a slow identity provider).
type fakeIdP struct {
	mu      sync.Mutex
	keys    map[string]*rsa.PrivateKey
	delay   time.Duration
	fetches atomic.Int64
	srv     *httptest.Server
}

func newFakeIdP(t *testing.T) *fakeIdP {
	idp := &fakeIdP{keys: map[string]*rsa.PrivateKey{}}
	idp.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		idp.fetches.Add(1)
		idp.mu.Lock()
		delay := idp.delay
		var set []map[string]any
		for kid, k := range idp.keys {
			set = append(set, map[string]any{"kty": "RSA", "kid": kid, "alg": "RS256", "use": "sig", "n": b64(k.N.Bytes()), "e": b64(big.NewInt(int64(k.E)).Bytes())})
		}
		idp.mu.Unlock()
		select {
		case <-time.After(delay):
		case <-r.Context().Done():
			return
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"keys": set})
	}))
	t.Cleanup(idp.srv.Close)
	return idp
}

func (idp *fakeIdP) set(delay time.Duration, keys map[string]*rsa.PrivateKey) {
	idp.mu.Lock()
	defer idp.mu.Unlock()
	idp.delay, idp.keys = delay, keys
}

func rsaKey(t *testing.T) *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// TestJWKSRefreshNeverBlocks runs three nodes' authenticators against one
// fake IdP that rotates keys and answers slowly: no request waits more than
// 2 s (here: 200 ms), a token with an unknown kid is refused at once, and a
// newly published key is accepted on every node within one refresh
// interval plus the IdP's delay.
func TestJWKSRefreshNeverBlocks(t *testing.T) {
	const interval = time.Second
	const slow = 700 * time.Millisecond
	idp := newFakeIdP(t)
	k1, k2 := rsaKey(t), rsaKey(t)
	idp.set(0, map[string]*rsa.PrivateKey{"k1": k1})

	cfg := JWTConfig{Issuer: "https://idp.example", Audience: "dialtone", JWKSURL: idp.srv.URL, RefreshInterval: interval}
	var nodes []*Authenticator
	for range 3 {
		a, err := New(context.Background(), Config{Mode: ModeJWT, JWT: cfg}, slog.Default())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(a.Close) // before idp.srv.Close: cleanups run last-in first-out
		nodes = append(nodes, a)
	}
	const bound = 200 * time.Millisecond // far below the 2 s the API promises
	auth := func(a *Authenticator, tok string) (time.Duration, error) {
		start := time.Now()
		_, err := a.Authenticate(context.Background(), "Bearer "+tok)
		d := time.Since(start)
		if d > bound {
			t.Errorf("a request waited %s", d)
		}
		return d, err
	}
	tok1 := sign(t, jwt.SigningMethodRS256, k1, "k1", claims(nil))
	tok2 := sign(t, jwt.SigningMethodRS256, k2, "k2", claims(nil))
	for i, a := range nodes {
		if _, err := auth(a, tok1); err != nil {
			t.Fatalf("node %d: k1: %v", i, err)
		}
	}

	// The IdP turns slow; a token naming a key it has not published yet is
	// refused at once, again and again (each asks for a refresh; none
	// waits for it).
	idp.set(slow, map[string]*rsa.PrivateKey{"k1": k1})
	for range 20 {
		for i, a := range nodes {
			if _, err := auth(a, tok2); !errors.Is(err, ErrUnauthenticated) {
				t.Fatalf("node %d: unpublished k2 accepted: %v", i, err)
			}
		}
		time.Sleep(10 * time.Millisecond)
	}

	// Rotate: k2 published, k1 withdrawn. Every node accepts k2 within one
	// refresh interval plus the slow download (and slack for -race).
	idp.set(slow, map[string]*rsa.PrivateKey{"k2": k2})
	published := time.Now()
	deadline := published.Add(interval + slow + time.Second)
	for i, a := range nodes {
		for {
			if _, err := auth(a, tok2); err == nil {
				break
			} else if time.Now().After(deadline) {
				t.Fatalf("node %d: k2 still refused %s after it was published: %v", i, time.Since(published), err)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	t.Logf("k2 accepted on every node %s after publication", time.Since(published).Round(time.Millisecond))
	for i, a := range nodes {
		eventuallyAuth(t, deadline.Add(interval+slow), func() error {
			if _, err := auth(a, tok1); err == nil {
				return fmt.Errorf("node %d: withdrawn k1 still accepted", i)
			}
			return nil
		})
	}

	// An IdP that hangs: requests still answer at once from the cache.
	idp.set(time.Minute, map[string]*rsa.PrivateKey{"k2": k2})
	until := time.Now().Add(2*interval + 200*time.Millisecond)
	for time.Now().Before(until) {
		for i, a := range nodes {
			if _, err := auth(a, tok2); err != nil {
				t.Fatalf("node %d: k2 refused while the IdP hangs: %v", i, err)
			}
			if _, err := auth(a, tok1); !errors.Is(err, ErrUnauthenticated) {
				t.Fatalf("node %d: k1: %v", i, err)
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestJWKSUnknownKIDRefreshIsRateLimited: a flood of unknown kids costs the
// IdP at most one download per gap, not one per request.
func TestJWKSUnknownKIDRefreshIsRateLimited(t *testing.T) {
	idp := newFakeIdP(t)
	k1 := rsaKey(t)
	idp.set(0, map[string]*rsa.PrivateKey{"k1": k1})
	a, err := New(context.Background(), Config{Mode: ModeJWT, JWT: JWTConfig{Issuer: "https://idp.example", Audience: "dialtone", JWKSURL: idp.srv.URL, RefreshInterval: time.Hour}}, slog.Default())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.Close)
	var toks []string
	for i := range 200 {
		toks = append(toks, sign(t, jwt.SigningMethodRS256, k1, fmt.Sprintf("bogus-%d", i), claims(nil)))
	}
	start := time.Now()
	for _, tok := range toks {
		if _, err := a.Authenticate(context.Background(), "Bearer "+tok); !errors.Is(err, ErrUnauthenticated) {
			t.Fatalf("bogus kid: %v", err)
		}
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("200 refusals took %s", d)
	}
	// One download at start, then at most one right away and one per gap.
	elapsed := time.Since(start)
	if n, max := idp.fetches.Load(), int64(2+elapsed/jwksUnknownKIDGap+1); n > max {
		t.Fatalf("%d downloads in %s, want at most %d", n, elapsed, max)
	}
}

func eventuallyAuth(t *testing.T, deadline time.Time, cond func() error) {
	t.Helper()
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
