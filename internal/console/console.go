// Package console is the operator's web console every node serves at /ui/:
// cluster, dialer, port usage, requests and pacing settings, updated once a
// second over Server-Sent Events. The page, script and styles are embedded
// (no build step, no third-party code) and draw their charts as inline SVG.
//
// The console holds no authority of its own: it authenticates the viewer
// with the node's authenticator only to know whom it is showing (name,
// roles, tenants), and makes every read and write through the public API
// (API, implemented over the node's own gRPC server) with the viewer's
// credential, so roles and tenant scoping are the API's. A follower serves
// from its own replica; every update carries the node's applied index and
// last contact with the leader so the viewer knows how fresh it is.
package console

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/seed-7bfc04c2/dialtone/internal/auth"
)

//go:embed assets
var assets embed.FS

// Prefix is the path the console is served under.
const Prefix = "/ui/"

// apiHeader must accompany every /ui/api/ call. A browser cannot add it to
// a cross-site form post or image load without a CORS preflight (which the
// console never grants), so a credential the browser might hold for this
// origin cannot be ridden by another site.
const apiHeader = "X-Dialtone-Console"

// Interval is how often a stream sends an update.
const Interval = time.Second

// Options configure the console.
type Options struct {
	// API is the public API the console reads and writes through.
	API API
	// Auth identifies the viewer; nil or mode none: every viewer is an
	// anonymous principal with every role and tenant (development).
	Auth *auth.Authenticator
	// Leader reports the leader this node sees and its term; Run samples
	// it for the leader-change timeline. Nil: no timeline.
	Leader func() (id string, term uint64)
	// Interval overrides the update interval (tests).
	Interval time.Duration
}

// Handler serves the console.
type Handler struct {
	opts    Options
	mux     *http.ServeMux
	hist    *history
	closing chan struct{}
	once    sync.Once
	hooked  sync.Once
}

// New returns the console handler, to be mounted at Prefix.
func New(opts Options) *Handler {
	if opts.Interval <= 0 {
		opts.Interval = Interval
	}
	h := &Handler{opts: opts, mux: http.NewServeMux(), hist: newHistory(), closing: make(chan struct{})}
	static, _ := fs.Sub(assets, "assets")
	files := http.StripPrefix(strings.TrimSuffix(Prefix, "/"), http.FileServerFS(static))
	h.mux.Handle("GET "+Prefix+"{$}", files)
	for _, f := range []string{"app.js", "app.css"} {
		h.mux.Handle("GET "+Prefix+f, files)
	}
	h.mux.Handle("GET "+Prefix+"api/whoami", h.api(h.whoami))
	h.mux.Handle("GET "+Prefix+"api/stream", h.api(h.stream))
	h.mux.Handle("GET "+Prefix+"api/snapshot", h.api(h.snapshotOnce))
	h.mux.Handle("GET "+Prefix+"api/requests", h.api(h.findRequests))
	h.mux.Handle("GET "+Prefix+"api/request", h.api(h.getRequest))
	h.mux.Handle("POST "+Prefix+"api/cancel", h.api(h.cancel))
	h.mux.Handle("PUT "+Prefix+"api/pacing", h.api(h.setPacing))
	return h
}

// Run samples the leader for the timeline until ctx ends.
func (h *Handler) Run(ctx context.Context) {
	if h.opts.Leader == nil {
		return
	}
	t := time.NewTicker(h.opts.Interval)
	defer t.Stop()
	for {
		id, term := h.opts.Leader()
		h.hist.recordLeader(time.Now(), id, term)
		select {
		case <-ctx.Done():
			return
		case <-h.closing:
			return
		case <-t.C:
		}
	}
}

// Close ends every open stream (an HTTP server's graceful shutdown waits
// for them otherwise). It is idempotent. The first stream registers it
// with the http.Server serving it, so a graceful shutdown ends the streams
// without the owner having to call it.
func (h *Handler) Close() { h.once.Do(func() { close(h.closing) }) }

// securityHeaders go on every console response: the page loads only its
// own script and styles, talks only to its own origin, may not be framed,
// and nothing it shows is cached.
func securityHeaders(w http.ResponseWriter) {
	hd := w.Header()
	hd.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'none'; base-uri 'none'; frame-ancestors 'none'")
	hd.Set("X-Frame-Options", "DENY")
	hd.Set("Cache-Control", "no-store")
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("Referrer-Policy", "no-referrer")
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	securityHeaders(w)
	h.mux.ServeHTTP(w, r)
}

// viewer is the authenticated caller of an API route.
type viewer struct {
	p    *auth.Principal
	cred string // the Authorization header, passed on to the API
}

func (v viewer) ctx(ctx context.Context) context.Context { return WithCredential(ctx, v.cred) }

// allTenants: the viewer may see every tenant ("*").
func (v viewer) allTenants() bool { return v.p.CanAccess("*") }

var anonymous = &auth.Principal{Name: "anonymous", Tenants: []string{"*"},
	Roles: []auth.Role{auth.RoleRead, auth.RoleSubmit, auth.RoleAdmin}}

// api authenticates an API route. No WWW-Authenticate challenge is sent:
// the console's own login form asks for credentials, and a browser prompt
// would make the browser keep them beyond the session.
func (h *Handler) api(fn func(http.ResponseWriter, *http.Request, viewer)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get(apiHeader) == "" {
			writeError(w, http.StatusForbidden, "console API calls must carry the "+apiHeader+" header")
			return
		}
		cred := r.Header.Get("Authorization")
		v := viewer{p: anonymous, cred: cred}
		if h.opts.Auth != nil && h.opts.Auth.Enabled() {
			p, err := h.opts.Auth.Authenticate(r.Context(), cred)
			if err != nil {
				writeError(w, http.StatusUnauthorized, err.Error())
				return
			}
			v.p = p
		}
		fn(w, r, v)
	})
}

func (h *Handler) whoami(w http.ResponseWriter, r *http.Request, v viewer) {
	mode := "none"
	if h.opts.Auth != nil {
		mode = string(h.opts.Auth.Mode())
	}
	writeJSON(w, map[string]any{"name": v.p.Name, "tenants": v.p.Tenants, "roles": v.p.Roles, "auth_mode": mode})
}

// views are the names a stream may ask for.
var views = map[string]bool{"cluster": true, "dialer": true, "ports": true, "settings": true}

func (h *Handler) stream(w http.ResponseWriter, r *http.Request, v viewer) {
	view := r.URL.Query().Get("view")
	if !views[view] {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("view: %q is not one of cluster, dialer, ports, settings", view))
		return
	}
	fl, ok := w.(http.Flusher)
	if !ok {
		writeError(w, http.StatusInternalServerError, "streaming unsupported")
		return
	}
	if srv, ok := r.Context().Value(http.ServerContextKey).(*http.Server); ok {
		h.hooked.Do(func() { srv.RegisterOnShutdown(h.Close) })
	}
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	t := time.NewTicker(h.opts.Interval)
	defer t.Stop()
	for {
		data, err := json.Marshal(h.snapshot(r.Context(), view, v))
		if err != nil {
			return
		}
		if _, err := fmt.Fprintf(w, "event: snapshot\ndata: %s\n\n", data); err != nil {
			return
		}
		fl.Flush()
		select {
		case <-r.Context().Done():
			return
		case <-h.closing:
			return
		case <-t.C:
		}
	}
}

// snapshotOnce answers one update: the polling fallback where a proxy
// buffers event streams.
func (h *Handler) snapshotOnce(w http.ResponseWriter, r *http.Request, v viewer) {
	view := r.URL.Query().Get("view")
	if !views[view] {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("view: %q is not one of cluster, dialer, ports, settings", view))
		return
	}
	writeJSON(w, h.snapshot(r.Context(), view, v))
}

var pj = protojson.MarshalOptions{UseProtoNames: true, EmitUnpopulated: true}

// raw is a protobuf message as the REST API's JSON.
func raw(m proto.Message) json.RawMessage {
	b, err := pj.Marshal(m)
	if err != nil {
		return json.RawMessage("null")
	}
	return b
}

// errText is an API error as the viewer should read it.
func errText(err error) string {
	if s, ok := status.FromError(err); ok {
		return s.Code().String() + ": " + s.Message()
	}
	return err.Error()
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": msg})
}

// writeAPIError answers an API error with the HTTP status the REST gateway
// would give it.
func writeAPIError(w http.ResponseWriter, err error) {
	code := http.StatusBadGateway
	if s, ok := status.FromError(err); ok {
		code = runtime.HTTPStatusFromCode(s.Code())
	}
	writeError(w, code, errText(err))
}

// readBody reads a small JSON body.
func readBody(r *http.Request) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r.Body, 1<<16+1))
	if err != nil {
		return nil, err
	}
	if len(b) > 1<<16 {
		return nil, errors.New("body: larger than 64 KiB")
	}
	return b, nil
}
