package auth

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/MicahParks/keyfunc/v3"
	"github.com/golang-jwt/jwt/v5"
)

// Bounds of the JWKS refresher.
const (
	// jwksFetchTimeout bounds one JWKS download (in the background: a
	// request never waits for it).
	jwksFetchTimeout = 10 * time.Second
	// jwksStartTimeout bounds the first download, done before the node
	// serves; on failure the node starts with no keys and keeps trying.
	jwksStartTimeout = 5 * time.Second
	// jwksUnknownKIDGap is the least time between two refreshes triggered
	// by tokens naming a key id not in the set (so a flood of bogus kids
	// cannot hammer the IdP); never above the refresh interval.
	jwksUnknownKIDGap = 5 * time.Second
)

// jwksCache holds the keys of a JWKS URL in memory and refreshes them in
// one background goroutine: every interval, and (at most once per
// jwksUnknownKIDGap) when a token names a key id the set lacks. Requests
// only read memory, so they never wait on the IdP: a token with an unknown
// kid is refused at once, and a key published at the IdP is usable within
// one refresh interval (plus the download time), or sooner when a token
// using it triggered a refresh. keyfunc's own unknown-kid refresh is not
// used: it makes the request wait on a rate limiter (up to a minute).
type jwksCache struct {
	url      string
	interval time.Duration
	gap      time.Duration
	client   *http.Client
	log      *slog.Logger

	store jwkset.Storage // in memory; replaced wholesale by each download
	kf    keyfunc.Keyfunc
	kick  chan struct{}

	cancel context.CancelFunc
	wg     sync.WaitGroup
}

func newJWKSCache(ctx context.Context, url string, interval time.Duration, client *http.Client, log *slog.Logger) (*jwksCache, error) {
	if interval <= 0 {
		interval = time.Hour
	}
	if client == nil {
		client = http.DefaultClient
	}
	c := &jwksCache{
		url: url, interval: interval, gap: min(jwksUnknownKIDGap, interval), client: client, log: log,
		store: jwkset.NewMemoryStorage(), kick: make(chan struct{}, 1),
	}
	kf, err := keyfunc.New(keyfunc.Options{Ctx: ctx, Storage: c.store})
	if err != nil {
		return nil, fmt.Errorf("auth: jwks: %w", err)
	}
	c.kf = kf
	if err := c.fetch(ctx, jwksStartTimeout); err != nil {
		log.Warn("JWKS download failed; starting without keys and retrying in the background", "url", url, "err", err)
	}
	ctx, c.cancel = context.WithCancel(ctx)
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		c.run(ctx)
	}()
	return c, nil
}

// fetch downloads the set and replaces the keys in memory (jwkset parses
// and validates them; a failed download keeps the previous keys).
func (c *jwksCache) fetch(ctx context.Context, timeout time.Duration) error {
	_, err := jwkset.NewStorageFromHTTP(c.url, jwkset.HTTPClientStorageOptions{
		Client:      c.client,
		Ctx:         ctx,
		HTTPTimeout: timeout,
		Storage:     c.store,
		// RefreshInterval 0: one download now, no goroutine of jwkset's.
	})
	return err
}

func (c *jwksCache) run(ctx context.Context) {
	ticker := time.NewTicker(c.interval)
	defer ticker.Stop()
	last := time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		case <-c.kick:
			if wait := c.gap - time.Since(last); wait > 0 {
				select {
				case <-ctx.Done():
					return
				case <-time.After(wait):
				}
			}
		}
		last = time.Now()
		if err := c.fetch(ctx, jwksFetchTimeout); err != nil && ctx.Err() == nil {
			c.log.Warn("JWKS refresh failed; keeping the cached keys", "url", c.url, "err", err)
		}
	}
}

// Keyfunc finds the token's key in memory. An unknown kid is refused at
// once and asks the refresher for a download.
func (c *jwksCache) Keyfunc(t *jwt.Token) (any, error) {
	k, err := c.kf.Keyfunc(t)
	if errors.Is(err, jwkset.ErrKeyNotFound) {
		select {
		case c.kick <- struct{}{}:
		default: // a refresh is already asked for
		}
	}
	return k, err
}

// close stops the refresher and waits for it.
func (c *jwksCache) close() {
	c.cancel()
	c.wg.Wait()
}
