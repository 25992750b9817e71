// Package config loads and validates Dialtone's operator configuration: one
// TOML file that describes every node of the cluster, from which each node
// picks its own block by id.
package config

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
)

// Config is the whole operator configuration.
type Config struct {
	Cluster Cluster `toml:"cluster"`
	Limits  Limits  `toml:"limits"`
	Log     Log     `toml:"log"`
	Auth    Auth    `toml:"auth"`
	TLS     TLS     `toml:"tls"`
	Nodes   []Node  `toml:"node"`
	// PortUsage configures the port-usage cache.
	PortUsage PortUsage `toml:"port_usage"`
	// Telephony chooses the call backend the dialer places calls through.
	Telephony Telephony `toml:"telephony"`
	// Dialer tunes the leader's dialer engine beyond the replicated pacing
	// settings (which are changed at runtime through the admin API).
	Dialer Dialer `toml:"dialer"`
}

// Telephony configures the call backend.
type Telephony struct {
	// Backend is "none" (the dialer places no calls: requests wait, expire
	// and are notified), "sim" (the simulated media platform, dialtone
	// mediasim, reached over gRPC at SimAddr) or "sip" (calls over SIP, see
	// SIP).
	Backend string `toml:"backend"`
	// SimAddr is the gRPC address of the simulated media platform.
	SimAddr string `toml:"sim_addr"`
	// SIP configures the SIP backend.
	SIP SIP `toml:"sip"`
}

// Dialer tunes the dialer engine.
type Dialer struct {
	// InterruptedRetryDelay: a new leader retries an attempt its
	// predecessor left in progress no sooner than this, so the old call has
	// surely been torn down (a deposed leader hangs up within its leader
	// lease).
	InterruptedRetryDelay Duration `toml:"interrupted_retry_delay"`
	// HalfOpenHold: with the SIP backend, a new leader re-dials an
	// attempt its predecessor left in progress (and did not record ended)
	// no sooner than the attempt's start + 2 s + this, because the far end
	// may still ring or retransmit its 200 OK for that long with nobody to
	// end it; until then the attempt counts in the port budget. "auto" is
	// max(telephony.sip.ring_timeout, 64×T1 = 32 s); 0 (the default) turns
	// the rule off, so a graceful leadership transfer re-dials after
	// interrupted_retry_delay (the old leader has hung its calls up). The
	// simulated platform never needs it (the new leader revokes the calls).
	HalfOpenHold string `toml:"half_open_hold"`
	// DisableTakeover: a new leader ends its predecessor's calls in
	// progress as interrupted (and retries them) instead of adopting
	// their SIP dialogs. For tests and as an escape hatch.
	DisableTakeover bool `toml:"disable_takeover"`
	// NotifyTimeout bounds one notification GET.
	NotifyTimeout Duration `toml:"notify_timeout"`
	// NotifyMaxBackoff caps the delay between notification retries.
	NotifyMaxBackoff Duration `toml:"notify_max_backoff"`
	// NotifyConcurrency bounds notifications in flight.
	NotifyConcurrency int `toml:"notify_concurrency"`
	// PortView is how the port budget sees the media platform: "live"
	// (the port-usage cache plus the calls placed since its newest report)
	// or "sampled-5s", an SSG-style baseline that reads the ports once
	// every 5 s, for benchmarks only (docs/dialer.md).
	PortView string `toml:"port_view"`
	// TestClockOffset shifts the clock of the dialer and of the entries
	// this node stamps as leader by a fixed offset. TEST ONLY (end-to-end
	// tests of calling windows and frequency caps with real processes):
	// never set it in production; every node of a cluster must have the
	// same. Default 0.
	TestClockOffset Duration `toml:"test_clock_offset,omitempty"`
}

// PortUsage configures the in-memory port-usage cache.
type PortUsage struct {
	// Window is the span of each server's per-second series (whole
	// seconds).
	Window Duration `toml:"window"`
	// StaleAfter: a server silent this long is stale and left out of
	// every aggregate (its capacity counts as none).
	StaleAfter Duration `toml:"stale_after"`
	// ExpireAfter: a server silent this long is no longer listed.
	ExpireAfter Duration `toml:"expire_after"`
	// DefaultTenant, when set, is the tenant of a Cisco licensePurchased
	// POST that names none (a single-tenant deployment); empty: such a POST
	// needs a principal scoped to exactly one tenant.
	DefaultTenant string `toml:"default_tenant"`
}

// TLS configures TLS on every node's HTTP and gRPC listeners. The same
// certificate serves clients and peers, so it must name every node address
// that clients and peers dial (IP SANs for IP addresses).
type TLS struct {
	CertFile string `toml:"cert_file"`
	KeyFile  string `toml:"key_file"`
	// CAFile verifies peers' certificates on cluster-internal calls; the
	// system roots when empty.
	CAFile string `toml:"ca_file"`
}

// Enabled reports whether the listeners serve TLS.
func (t TLS) Enabled() bool { return t.CertFile != "" }

// Auth configures client authentication and authorisation.
type Auth struct {
	// Mode: "none" (development only), "basic", "jwt" or "basic+jwt".
	Mode  string     `toml:"mode"`
	Users []AuthUser `toml:"user"`
	JWT   AuthJWT    `toml:"jwt"`
	// ProtectMetrics and ProtectOpenAPI require credentials for /metrics
	// (role admin) and /openapi.json (any principal).
	ProtectMetrics bool `toml:"protect_metrics"`
	ProtectOpenAPI bool `toml:"protect_openapi"`
}

// AuthUser is one basic-auth user.
type AuthUser struct {
	Name         string   `toml:"name"`
	PasswordHash string   `toml:"password_hash"` // bcrypt, e.g. from `dialtone hash-password`
	Tenants      []string `toml:"tenants"`       // tenant names, or "*"
	Roles        []string `toml:"roles"`         // submit, read, publish, admin
}

// AuthJWT configures bearer tokens.
type AuthJWT struct {
	JWKSURL         string   `toml:"jwks_url"`
	PublicKeyFile   string   `toml:"public_key_file"`
	Issuer          string   `toml:"issuer"`
	Audience        string   `toml:"audience"`
	TenantsClaim    string   `toml:"tenants_claim"`
	RolesClaim      string   `toml:"roles_claim"`
	RefreshInterval Duration `toml:"refresh_interval"`
	Leeway          Duration `toml:"leeway"`
}

// Cluster holds the settings shared by every node.
type Cluster struct {
	// DataDir is the parent of every node's data directory (<data_dir>/<id>).
	DataDir string `toml:"data_dir"`
	// InitialVoters bootstraps a fresh cluster with exactly these node ids.
	InitialVoters []string `toml:"initial_voters"`
	// BootstrapExpect bootstraps once this many nodes see each other
	// (used when initial_voters is empty).
	BootstrapExpect    int      `toml:"bootstrap_expect"`
	HeartbeatTimeout   Duration `toml:"heartbeat_timeout"`
	ElectionTimeout    Duration `toml:"election_timeout"`
	LeaderLeaseTimeout Duration `toml:"leader_lease_timeout"`
	ApplyTimeout       Duration `toml:"apply_timeout"`
	SnapshotThreshold  uint64   `toml:"snapshot_threshold"`
	SnapshotInterval   Duration `toml:"snapshot_interval"`
	TrailingLogs       uint64   `toml:"trailing_logs"`
	// Secret authenticates cluster-internal calls (write forwarding, read
	// index). Required when auth.mode is not "none". SecretFile reads it
	// from a file instead.
	Secret     string `toml:"secret"`
	SecretFile string `toml:"secret_file"`
}

// Limits bounds what clients may store and send.
type Limits struct {
	// MaxRecords is the maximum number of stored request records.
	MaxRecords uint64 `toml:"max_records"`
	// MaxBulk is the maximum number of requests in one call.
	MaxBulk int `toml:"max_bulk"`
	// MaxBodyBytes bounds an HTTP request body.
	MaxBodyBytes int64 `toml:"max_body_bytes"`
	// ReadTimeout bounds how long a read waits for min_index or a
	// linearizable read index.
	ReadTimeout Duration `toml:"read_timeout"`
}

// Log configures logging.
type Log struct {
	Level  string `toml:"level"`  // debug, info, warn, error
	Format string `toml:"format"` // text or json
}

// Node is one node's addresses.
type Node struct {
	ID     string `toml:"id"`
	HTTP   string `toml:"http"`
	GRPC   string `toml:"grpc"`
	Raft   string `toml:"raft"`
	Gossip string `toml:"gossip"`
	// HTTPBind and GRPCBind, when set, are what the listeners bind (e.g.
	// "0.0.0.0:8080" in a container on two networks); HTTP and GRPC stay
	// the addresses advertised to peers (write forwarding) and clients.
	HTTPBind string `toml:"http_bind"`
	GRPCBind string `toml:"grpc_bind"`
	// DataDir overrides <cluster.data_dir>/<id>.
	DataDir string `toml:"data_dir"`
	// Join lists gossip addresses to join at start; by default the gossip
	// addresses of every other node in this file.
	Join []string `toml:"join"`
	// SIP overrides telephony.sip.listen for this node.
	SIP string `toml:"sip"`
}

// Duration is a time.Duration written as a string such as "500ms".
type Duration struct{ time.Duration }

// UnmarshalText parses a Go duration string.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("invalid duration %q (use e.g. \"500ms\", \"10s\")", string(b))
	}
	if v < 0 {
		return fmt.Errorf("duration %q must not be negative", string(b))
	}
	d.Duration = v
	return nil
}

// MarshalText writes the duration back as a string.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// Default returns the configuration used for unset keys.
func Default() Config {
	return Config{
		Cluster: Cluster{
			DataDir:          "./data",
			HeartbeatTimeout: Duration{500 * time.Millisecond},
			ElectionTimeout:  Duration{500 * time.Millisecond},
			// 0.8 × heartbeat: see docs/dialer.md "Leadership under load".
			LeaderLeaseTimeout: Duration{400 * time.Millisecond},
			ApplyTimeout:       Duration{10 * time.Second},
			SnapshotThreshold:  8192,
			SnapshotInterval:   Duration{2 * time.Minute},
			TrailingLogs:       10240,
		},
		Limits: Limits{
			MaxRecords:   1_000_000,
			MaxBulk:      1000,
			MaxBodyBytes: 8 << 20,
			ReadTimeout:  Duration{5 * time.Second},
		},
		Log: Log{Level: "info", Format: "text"},
		PortUsage: PortUsage{
			Window:      Duration{15 * time.Second},
			StaleAfter:  Duration{3 * time.Second},
			ExpireAfter: Duration{5 * time.Minute},
		},
		Telephony: Telephony{Backend: "none", SIP: defaultSIP()},
		Dialer: Dialer{
			InterruptedRetryDelay: Duration{2 * time.Second},
			NotifyTimeout:         Duration{5 * time.Second},
			NotifyMaxBackoff:      Duration{time.Minute},
			NotifyConcurrency:     64,
			PortView:              "live",
		},
		Auth: Auth{Mode: "none", JWT: AuthJWT{TenantsClaim: "tenants", RolesClaim: "roles", RefreshInterval: Duration{time.Hour}}},
	}
}

// Load reads a TOML file over the defaults and validates it. Unknown keys
// are errors, named by their path.
func Load(path string) (Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("config: %w", err)
	}
	return Parse(string(b))
}

// Parse decodes TOML text over the defaults and validates it.
func Parse(text string) (Config, error) {
	cfg := Default()
	md, err := toml.Decode(text, &cfg)
	if err != nil {
		return Config{}, fmt.Errorf("config: %w", err)
	}
	if und := md.Undecoded(); len(und) > 0 {
		keys := make([]string, len(und))
		for i, k := range und {
			keys[i] = k.String()
		}
		return Config{}, fmt.Errorf("config: unknown key %s", strings.Join(keys, ", "))
	}
	if err := cfg.Validate(); err != nil {
		return Config{}, err
	}
	return cfg, nil
}

var idPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$`)

// Validate checks every key and names the first bad one.
func (c *Config) Validate() error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("config: %s: %s", key, fmt.Sprintf(format, args...)))
	}
	if len(c.Nodes) == 0 {
		bad("node", "at least one [[node]] block is required")
	}
	ids := map[string]bool{}
	addrs := map[string]string{}
	for i, n := range c.Nodes {
		p := fmt.Sprintf("node[%d]", i)
		if !idPattern.MatchString(n.ID) {
			bad(p+".id", "%q must be 1-63 letters, digits, '.', '_' or '-'", n.ID)
		} else if ids[n.ID] {
			bad(p+".id", "%q is used by another node", n.ID)
		}
		ids[n.ID] = true
		for _, f := range []struct{ key, val string }{{"http", n.HTTP}, {"grpc", n.GRPC}, {"raft", n.Raft}, {"gossip", n.Gossip}} {
			if _, _, err := net.SplitHostPort(f.val); err != nil {
				bad(p+"."+f.key, "%q is not a host:port address", f.val)
				continue
			}
			if other, dup := addrs[f.val]; dup && !strings.HasSuffix(f.val, ":0") {
				bad(p+"."+f.key, "%q is already used by %s", f.val, other)
			}
			addrs[f.val] = p + "." + f.key
		}
		for _, f := range []struct{ key, val string }{{"http_bind", n.HTTPBind}, {"grpc_bind", n.GRPCBind}} {
			if f.val == "" {
				continue
			}
			if _, _, err := net.SplitHostPort(f.val); err != nil {
				bad(p+"."+f.key, "%q is not a host:port address", f.val)
			}
		}
		for j, a := range n.Join {
			if _, _, err := net.SplitHostPort(a); err != nil {
				bad(fmt.Sprintf("%s.join[%d]", p, j), "%q is not a host:port address", a)
			}
		}
	}
	for i, v := range c.Cluster.InitialVoters {
		if !ids[v] {
			bad(fmt.Sprintf("cluster.initial_voters[%d]", i), "%q is not the id of a [[node]]", v)
		}
	}
	if c.Cluster.BootstrapExpect < 0 {
		bad("cluster.bootstrap_expect", "must not be negative")
	}
	if len(c.Cluster.InitialVoters) > 0 && c.Cluster.BootstrapExpect > 0 {
		bad("cluster.bootstrap_expect", "set either initial_voters or bootstrap_expect, not both")
	}
	if c.Cluster.DataDir == "" {
		bad("cluster.data_dir", "must not be empty")
	}
	for _, d := range []struct {
		key string
		v   time.Duration
		min time.Duration
	}{
		{"cluster.heartbeat_timeout", c.Cluster.HeartbeatTimeout.Duration, 5 * time.Millisecond},
		{"cluster.election_timeout", c.Cluster.ElectionTimeout.Duration, 5 * time.Millisecond},
		{"cluster.leader_lease_timeout", c.Cluster.LeaderLeaseTimeout.Duration, 5 * time.Millisecond},
		{"cluster.apply_timeout", c.Cluster.ApplyTimeout.Duration, 100 * time.Millisecond},
		{"cluster.snapshot_interval", c.Cluster.SnapshotInterval.Duration, time.Second},
		{"limits.read_timeout", c.Limits.ReadTimeout.Duration, 10 * time.Millisecond},
	} {
		if d.v < d.min {
			bad(d.key, "%s is below the minimum %s", d.v, d.min)
		}
	}
	if c.Cluster.LeaderLeaseTimeout.Duration > c.Cluster.HeartbeatTimeout.Duration {
		bad("cluster.leader_lease_timeout", "must not exceed heartbeat_timeout")
	}
	if c.Cluster.SnapshotThreshold == 0 {
		bad("cluster.snapshot_threshold", "must be positive")
	}
	if c.Limits.MaxBulk < 1 || c.Limits.MaxBulk > 100_000 {
		bad("limits.max_bulk", "%d is outside 1..100000", c.Limits.MaxBulk)
	}
	if c.Limits.MaxBodyBytes < 1024 {
		bad("limits.max_body_bytes", "%d is below 1024", c.Limits.MaxBodyBytes)
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		bad("log.level", "%q must be debug, info, warn or error", c.Log.Level)
	}
	switch c.Log.Format {
	case "text", "json":
	default:
		bad("log.format", "%q must be text or json", c.Log.Format)
	}
	c.validatePortUsage(bad)
	c.validateDialer(bad)
	c.validateAuth(bad)
	if (c.TLS.CertFile == "") != (c.TLS.KeyFile == "") {
		bad("tls.key_file", "set both tls.cert_file and tls.key_file, or neither")
	}
	if c.TLS.CAFile != "" && c.TLS.CertFile == "" {
		bad("tls.ca_file", "needs tls.cert_file and tls.key_file")
	}
	return errors.Join(errs...)
}

func (c *Config) validateDialer(bad func(key, format string, args ...any)) {
	switch c.Telephony.Backend {
	case "none":
	case "sip":
		c.validateSIP(bad)
	case "sim":
		if _, _, err := net.SplitHostPort(c.Telephony.SimAddr); err != nil {
			bad("telephony.sim_addr", "%q is not a host:port address (required with backend \"sim\")", c.Telephony.SimAddr)
		}
	default:
		bad("telephony.backend", "%q must be \"none\", \"sim\" or \"sip\"", c.Telephony.Backend)
	}
	d := c.Dialer
	if d.InterruptedRetryDelay.Duration < 0 || d.InterruptedRetryDelay.Duration > time.Hour {
		bad("dialer.interrupted_retry_delay", "%s is outside 0..1h", d.InterruptedRetryDelay.Duration)
	}
	if h := d.HalfOpenHold; h != "" && h != "auto" {
		if v, err := time.ParseDuration(h); err != nil || v < 0 || v > time.Hour {
			bad("dialer.half_open_hold", "%q is neither \"auto\" nor a duration in 0..1h", h)
		}
	}
	if d.NotifyTimeout.Duration < 10*time.Millisecond || d.NotifyTimeout.Duration > 5*time.Minute {
		bad("dialer.notify_timeout", "%s is outside 10ms..5m", d.NotifyTimeout.Duration)
	}
	if d.NotifyMaxBackoff.Duration < 10*time.Millisecond || d.NotifyMaxBackoff.Duration > 24*time.Hour {
		bad("dialer.notify_max_backoff", "%s is outside 10ms..24h", d.NotifyMaxBackoff.Duration)
	}
	if d.NotifyConcurrency < 1 || d.NotifyConcurrency > 10_000 {
		bad("dialer.notify_concurrency", "%d is outside 1..10000", d.NotifyConcurrency)
	}
	if d.PortView != "live" && d.PortView != "sampled-5s" {
		bad("dialer.port_view", "%q must be \"live\" or \"sampled-5s\"", d.PortView)
	}
}

var roleNames = map[string]bool{"submit": true, "read": true, "publish": true, "admin": true}

func (c *Config) validateAuth(bad func(key, format string, args ...any)) {
	a := c.Auth
	basic, jwt := false, false
	switch a.Mode {
	case "none":
	case "basic":
		basic = true
	case "jwt":
		jwt = true
	case "basic+jwt":
		basic, jwt = true, true
	default:
		bad("auth.mode", "%q must be none, basic, jwt or basic+jwt", a.Mode)
	}
	if a.Mode != "none" && c.Cluster.Secret == "" && c.Cluster.SecretFile == "" {
		bad("cluster.secret", "is required when auth.mode is %q: it authenticates cluster-internal calls", a.Mode)
	}
	if c.Cluster.Secret != "" && c.Cluster.SecretFile != "" {
		bad("cluster.secret_file", "set either cluster.secret or cluster.secret_file, not both")
	}
	if c.Cluster.Secret != "" && len(c.Cluster.Secret) < 16 {
		bad("cluster.secret", "must be at least 16 characters")
	}
	if basic && len(a.Users) == 0 {
		bad("auth.user", "basic mode needs at least one [[auth.user]]")
	}
	names := map[string]bool{}
	for i, u := range a.Users {
		p := fmt.Sprintf("auth.user[%d]", i)
		if u.Name == "" || strings.ContainsAny(u.Name, ":") {
			bad(p+".name", "must be non-empty and contain no ':'")
		} else if names[u.Name] {
			bad(p+".name", "%q is used by another user", u.Name)
		}
		names[u.Name] = true
		if !strings.HasPrefix(u.PasswordHash, "$2") {
			bad(p+".password_hash", "must be a bcrypt hash (see `dialtone hash-password`)")
		}
		if len(u.Tenants) == 0 {
			bad(p+".tenants", "must list tenant names or \"*\"")
		}
		for j, r := range u.Roles {
			if !roleNames[r] {
				bad(fmt.Sprintf("%s.roles[%d]", p, j), "%q must be submit, read, publish or admin", r)
			}
		}
	}
	if jwt {
		if a.JWT.Issuer == "" {
			bad("auth.jwt.issuer", "is required in jwt mode")
		}
		if a.JWT.Audience == "" {
			bad("auth.jwt.audience", "is required in jwt mode")
		}
		if (a.JWT.JWKSURL == "") == (a.JWT.PublicKeyFile == "") {
			bad("auth.jwt.jwks_url", "set exactly one of jwks_url and public_key_file in jwt mode")
		}
		if a.JWT.JWKSURL != "" && !strings.HasPrefix(a.JWT.JWKSURL, "https://") && !strings.HasPrefix(a.JWT.JWKSURL, "http://") {
			bad("auth.jwt.jwks_url", "%q is not an http(s) URL", a.JWT.JWKSURL)
		}
	}
}

// ClusterSecret returns the cluster secret, reading secret_file if set.
func (c *Config) ClusterSecret() (string, error) {
	if c.Cluster.SecretFile == "" {
		return c.Cluster.Secret, nil
	}
	b, err := os.ReadFile(c.Cluster.SecretFile)
	if err != nil {
		return "", fmt.Errorf("config: cluster.secret_file: %w", err)
	}
	s := strings.TrimSpace(string(b))
	if len(s) < 16 {
		return "", fmt.Errorf("config: cluster.secret_file: the secret must be at least 16 characters")
	}
	return s, nil
}

// Node returns the block of the node with this id.
func (c *Config) Node(id string) (Node, error) {
	for _, n := range c.Nodes {
		if n.ID == id {
			return n, nil
		}
	}
	ids := make([]string, len(c.Nodes))
	for i, n := range c.Nodes {
		ids[i] = n.ID
	}
	return Node{}, fmt.Errorf("config: no [[node]] with id %q (have %s)", id, strings.Join(ids, ", "))
}

// NodeDataDir is where node id keeps its data.
func (c *Config) NodeDataDir(n Node) string {
	if n.DataDir != "" {
		return n.DataDir
	}
	return filepath.Join(c.Cluster.DataDir, n.ID)
}

// JoinAddrs is whom node n contacts at start: its own join list, or else
// every other node's gossip address.
func (c *Config) JoinAddrs(n Node) []string {
	if len(n.Join) > 0 {
		return n.Join
	}
	var out []string
	for _, o := range c.Nodes {
		if o.ID != n.ID {
			out = append(out, o.Gossip)
		}
	}
	return out
}

func (c *Config) validatePortUsage(bad func(key, format string, args ...any)) {
	p := c.PortUsage
	switch w := p.Window.Duration; {
	case w < time.Second || w > time.Hour:
		bad("port_usage.window", "%s is outside 1s..1h", w)
	case w%time.Second != 0:
		bad("port_usage.window", "%s must be whole seconds", w)
	}
	if p.StaleAfter.Duration < 100*time.Millisecond {
		bad("port_usage.stale_after", "%s is below the minimum 100ms", p.StaleAfter.Duration)
	}
	if p.ExpireAfter.Duration < p.StaleAfter.Duration {
		bad("port_usage.expire_after", "%s must not be below stale_after (%s)", p.ExpireAfter.Duration, p.StaleAfter.Duration)
	}
	if t := p.DefaultTenant; t != "" && !tenantName.MatchString(t) {
		bad("port_usage.default_tenant", "%q must be 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit", t)
	}
}

// tenantName is a tenant's name, as the API validates it.
var tenantName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)
