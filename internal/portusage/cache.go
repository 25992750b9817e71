// Package portusage is the in-memory port-usage cache (the CVP "Cache
// Service"): media servers report their total ports and ports in use about
// once a second; each node keeps, per server, a per-second ring of the last
// window (15 s by default) and answers aggregate, per-tenant, per-server and
// window queries from memory.
//
// Samples are bucketed by the clock of the node that took the report
// (Report.ReceivedUnixMs, stamped once and kept by relayed copies), never by
// the publisher's clock, so a publisher with a skewed clock cannot misplace
// its samples. Seq orders a server's reports: duplicates and older reports
// (a relayed copy arriving after a newer direct one) are dropped.
//
// A server with no report for StaleAfter is stale: it is left out of every
// current aggregate (the dialer treats stale or missing data as no
// capacity). After ExpireAfter it is forgotten entirely.
//
// The cache is pure: the clock is injected (Options.Now), so window
// arithmetic is tested without sleeping.
package portusage

import (
	"context"
	"slices"
	"strings"
	"sync"
	"time"
)

// Report is one port-usage report of one media server.
type Report struct {
	ServerID string
	Address  string
	Tenant   string
	Total    uint32
	InUse    uint32
	// TimeUnixMs is the publisher's clock (informational only).
	TimeUnixMs int64
	// Seq increases with every report of this server. 0 means unordered:
	// the report is always taken.
	Seq uint64
	// ReceivedUnixMs is the clock of the node that took the report from
	// the publisher; relayed copies keep it. It decides the bucket.
	ReceivedUnixMs int64
	// ReceivedBy is the id of that node.
	ReceivedBy string
}

// Options configure a cache.
type Options struct {
	// Window is the span of the per-second series (default 15 s; whole
	// seconds, at least 1 s).
	Window time.Duration
	// StaleAfter is how long a server may be silent before it is stale
	// (default 3 s).
	StaleAfter time.Duration
	// ExpireAfter is how long a silent server stays listed (as stale)
	// before it is forgotten (default 5 min; at least StaleAfter).
	ExpireAfter time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
	// ReadCacheTTL, when positive, lets unfiltered Usage calls within this
	// time share one computation (a read-heavy node with thousands of
	// servers). 0 computes every call.
	ReadCacheTTL time.Duration
}

// Defaults for Options.
const (
	DefaultWindow      = 15 * time.Second
	DefaultStaleAfter  = 3 * time.Second
	DefaultExpireAfter = 5 * time.Minute
)

func (o *Options) setDefaults() {
	if o.Window <= 0 {
		o.Window = DefaultWindow
	}
	if o.Window < time.Second {
		o.Window = time.Second
	}
	if o.StaleAfter <= 0 {
		o.StaleAfter = DefaultStaleAfter
	}
	if o.ExpireAfter <= 0 {
		o.ExpireAfter = DefaultExpireAfter
	}
	if o.ExpireAfter < o.StaleAfter {
		o.ExpireAfter = o.StaleAfter
	}
	if o.Now == nil {
		o.Now = time.Now
	}
}

// Result says what Ingest did with a report.
type Result int

// Ingest results.
const (
	Accepted  Result = iota // stored (newest report of its server)
	Duplicate               // seq not newer than the last stored one: dropped
	TooOld                  // received before the window and not newer: dropped
)

func (r Result) String() string {
	switch r {
	case Accepted:
		return "accepted"
	case Duplicate:
		return "duplicate"
	case TooOld:
		return "too_old"
	}
	return "unknown"
}

// bucket is one second of a server's ring.
type bucket struct {
	sec   int64 // unix second; 0 = empty
	total uint32
	inUse uint32
}

type server struct {
	id, address, tenant, receivedBy string
	seq                             uint64
	lastMs                          int64 // ReceivedUnixMs of the newest report
	total, inUse                    uint32
	ring                            []bucket
}

// Cache is the port-usage cache. It is safe for concurrent use; reads take
// a shared lock and do no allocation beyond their answer.
type Cache struct {
	opts       Options
	windowSecs int64
	staleMs    int64
	expireMs   int64
	ringLen    int64

	mu      sync.RWMutex
	servers map[string]*server

	memoMu   sync.Mutex
	memoAt   int64 // ms; 0 = none
	memoAll  Aggregate
	memoRows []Aggregate
}

// New returns an empty cache.
func New(opts Options) *Cache {
	opts.setDefaults()
	w := int64(opts.Window / time.Second)
	staleSecs := int64((opts.StaleAfter + time.Second - 1) / time.Second)
	return &Cache{
		opts:       opts,
		windowSecs: w,
		staleMs:    opts.StaleAfter.Milliseconds(),
		expireMs:   opts.ExpireAfter.Milliseconds(),
		// The ring keeps StaleAfter more than the window, so a value
		// carried into the first second of the window is known.
		ringLen: w + staleSecs + 1,
		servers: make(map[string]*server),
	}
}

// Options returns the effective options.
func (c *Cache) Options() Options { return c.opts }

func (c *Cache) nowMs() int64 { return c.opts.Now().UnixMilli() }

// Ingest stores a report. ReceivedUnixMs must be set by the caller (Stamp);
// a value in the future of this node's clock (peer clock skew) is clamped
// to now.
func (c *Cache) Ingest(r Report) Result {
	now := c.nowMs()
	if r.ReceivedUnixMs == 0 || r.ReceivedUnixMs > now {
		r.ReceivedUnixMs = now
	}
	sec := floorDiv(r.ReceivedUnixMs, 1000)
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.servers[r.ServerID]
	if s == nil {
		if now-r.ReceivedUnixMs > c.expireMs {
			return TooOld
		}
		s = &server{id: r.ServerID, ring: make([]bucket, c.ringLen)}
		c.servers[r.ServerID] = s
	} else {
		switch {
		case r.Seq != 0 && s.seq != 0 && r.Seq <= s.seq:
			// A restarted publisher starts its seq again: accept a lower
			// seq once the server has gone stale (and the report is newer).
			if !(now-s.lastMs > c.staleMs && r.ReceivedUnixMs > s.lastMs) {
				return Duplicate
			}
		case r.ReceivedUnixMs < s.lastMs && r.Seq == 0:
			return TooOld
		}
	}
	s.address, s.tenant, s.receivedBy = r.Address, r.Tenant, r.ReceivedBy
	s.seq = r.Seq
	if r.ReceivedUnixMs >= s.lastMs {
		s.lastMs = r.ReceivedUnixMs
	}
	s.total, s.inUse = r.Total, r.InUse
	b := &s.ring[mod(sec, c.ringLen)]
	if b.sec <= sec {
		*b = bucket{sec: sec, total: r.Total, inUse: r.InUse}
	}
	return Accepted
}

// Sweep forgets servers silent for longer than ExpireAfter. Reads ignore
// them anyway; Sweep frees their memory. Call it every few seconds.
func (c *Cache) Sweep() int {
	now := c.nowMs()
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for id, s := range c.servers {
		if now-s.lastMs > c.expireMs {
			delete(c.servers, id)
			n++
		}
	}
	return n
}

// RunSweeper calls Sweep every interval until ctx ends.
func (c *Cache) RunSweeper(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			c.Sweep()
		}
	}
}

// Sample is one second of a series.
type Sample struct {
	SecondUnix int64
	Total      uint32
	InUse      uint32
}

// Stats summarise ports in use over the window (over the seconds that have
// a value).
type Stats struct {
	MinInUse      uint32
	MaxInUse      uint32
	AvgInUse      float64
	WindowSeconds int
}

// ServerView is one server as read.
type ServerView struct {
	ID, Address, Tenant, ReceivedBy string
	Stale                           bool
	LastReportUnixMs                int64
	Total, InUse                    uint32
	Window                          Stats
	// Series is filled by Server (and Servers with series=true): the
	// window's seconds, oldest first, only those with a value.
	Series []Sample
}

// Available is Total - InUse (0 if InUse exceeds Total).
func (v ServerView) Available() uint32 { return sub(v.Total, v.InUse) }

// Aggregate sums fresh servers, for one tenant or the deployment.
type Aggregate struct {
	Tenant       string // "" for the deployment
	Total, InUse uint32
	Servers      uint32 // fresh servers counted in Total and InUse
	StaleServers uint32
	Window       Stats
}

// Available is Total - InUse (0 if InUse exceeds Total).
func (a Aggregate) Available() uint32 { return sub(a.Total, a.InUse) }

// windowState accumulates per-second sums of in-use ports.
type windowState struct {
	sums []uint64 // per second of the window, oldest first
	has  []bool
}

func (c *Cache) newWindow() *windowState {
	return &windowState{sums: make([]uint64, c.windowSecs), has: make([]bool, c.windowSecs)}
}

func (w *windowState) stats() Stats {
	st := Stats{WindowSeconds: len(w.sums)}
	var sum uint64
	n := 0
	for i, v := range w.sums {
		if !w.has[i] {
			continue
		}
		if n == 0 || clamp32(v) < st.MinInUse {
			st.MinInUse = clamp32(v)
		}
		if clamp32(v) > st.MaxInUse {
			st.MaxInUse = clamp32(v)
		}
		sum += v
		n++
	}
	if n > 0 {
		st.AvgInUse = float64(sum) / float64(n)
	}
	return st
}

// walk calls f for each second of the window (index i, oldest first) in
// which s has a value: the sample of that second, or the last earlier one
// still within StaleAfter (a second without a report keeps the previous
// figures until the server would be stale).
func (c *Cache) walk(s *server, nowSec int64, f func(i int, sec int64, total, inUse uint32)) {
	first := nowSec - c.windowSecs + 1
	// Carry-in: the newest sample before the window, within StaleAfter.
	var carry bucket
	for sec := first - (c.ringLen - c.windowSecs); sec < first; sec++ {
		if b := s.ring[mod(sec, c.ringLen)]; b.sec == sec {
			carry = b
		}
	}
	for i := int64(0); i < c.windowSecs; i++ {
		sec := first + i
		if b := s.ring[mod(sec, c.ringLen)]; b.sec == sec {
			carry = b
		}
		if carry.sec == 0 || (sec-carry.sec)*1000 > c.staleMs {
			continue
		}
		if sec*1000 > s.lastMs+c.staleMs {
			continue // the server went silent: no value past staleness
		}
		f(int(i), sec, carry.total, carry.inUse)
	}
}

func (c *Cache) view(s *server, now int64, series bool) ServerView {
	v := ServerView{
		ID: s.id, Address: s.address, Tenant: s.tenant, ReceivedBy: s.receivedBy,
		Stale:            now-s.lastMs > c.staleMs,
		LastReportUnixMs: s.lastMs,
		Total:            s.total, InUse: s.inUse,
	}
	w := c.newWindow()
	c.walk(s, floorDiv(now, 1000), func(i int, sec int64, total, inUse uint32) {
		w.sums[i], w.has[i] = uint64(inUse), true
		if series {
			v.Series = append(v.Series, Sample{SecondUnix: sec, Total: total, InUse: inUse})
		}
	})
	v.Window = w.stats()
	return v
}

// Server returns one server with its series.
func (c *Cache) Server(id string) (ServerView, bool) {
	now := c.nowMs()
	c.mu.RLock()
	defer c.mu.RUnlock()
	s := c.servers[id]
	if s == nil || now-s.lastMs > c.expireMs {
		return ServerView{}, false
	}
	return c.view(s, now, true), true
}

// Servers lists servers sorted by id, of one tenant when tenant is not
// empty, or those for which keep returns true when keep is not nil.
func (c *Cache) Servers(tenant string, keep func(tenant string) bool, series bool) []ServerView {
	now := c.nowMs()
	c.mu.RLock()
	out := make([]ServerView, 0, len(c.servers))
	for _, s := range c.servers {
		if now-s.lastMs > c.expireMs || (tenant != "" && s.tenant != tenant) || (keep != nil && !keep(s.tenant)) {
			continue
		}
		out = append(out, c.view(s, now, series))
	}
	c.mu.RUnlock()
	slices.SortFunc(out, func(a, b ServerView) int { return strings.Compare(a.ID, b.ID) })
	return out
}

type aggAcc struct {
	agg Aggregate
	w   *windowState
}

// Usage returns the deployment aggregate and one per tenant (sorted), over
// the tenants for which keep returns true (every tenant when keep is nil).
// Current figures count fresh servers only; the window counts, per second,
// every server that had a value in that second.
func (c *Cache) Usage(keep func(tenant string) bool) (Aggregate, []Aggregate) {
	now := c.nowMs()
	if keep == nil && c.opts.ReadCacheTTL > 0 {
		c.memoMu.Lock()
		defer c.memoMu.Unlock()
		if c.memoAt != 0 && now >= c.memoAt && now-c.memoAt < c.opts.ReadCacheTTL.Milliseconds() {
			return c.memoAll, slices.Clone(c.memoRows)
		}
		all, rows := c.usage(now, nil)
		c.memoAt, c.memoAll, c.memoRows = now, all, rows
		return all, slices.Clone(rows)
	}
	return c.usage(now, keep)
}

func (c *Cache) usage(now int64, keep func(tenant string) bool) (Aggregate, []Aggregate) {
	nowSec := floorDiv(now, 1000)
	all := aggAcc{w: c.newWindow()}
	byTenant := map[string]*aggAcc{}
	c.mu.RLock()
	for _, s := range c.servers {
		if now-s.lastMs > c.expireMs || (keep != nil && !keep(s.tenant)) {
			continue
		}
		t := byTenant[s.tenant]
		if t == nil {
			t = &aggAcc{agg: Aggregate{Tenant: s.tenant}, w: c.newWindow()}
			byTenant[s.tenant] = t
		}
		c.add(s, now, nowSec, t, &all)
	}
	c.mu.RUnlock()
	all.agg.Window = all.w.stats()
	out := make([]Aggregate, 0, len(byTenant))
	for _, t := range byTenant {
		t.agg.Window = t.w.stats()
		out = append(out, t.agg)
	}
	slices.SortFunc(out, func(a, b Aggregate) int { return strings.Compare(a.Tenant, b.Tenant) })
	return all.agg, out
}

func (c *Cache) add(s *server, now, nowSec int64, accs ...*aggAcc) {
	stale := now-s.lastMs > c.staleMs
	for _, a := range accs {
		if stale {
			a.agg.StaleServers++
		} else {
			a.agg.Servers++
			a.agg.Total = addSat(a.agg.Total, s.total)
			a.agg.InUse = addSat(a.agg.InUse, s.inUse)
		}
	}
	c.walk(s, nowSec, func(i int, _ int64, _, inUse uint32) {
		for _, a := range accs {
			a.w.sums[i] += uint64(inUse)
			a.w.has[i] = true
		}
	})
}

// TenantUsage returns one tenant's aggregate; ok is false when the tenant
// has no listed server (fresh or stale).
func (c *Cache) TenantUsage(tenant string) (Aggregate, bool) {
	now := c.nowMs()
	acc := aggAcc{agg: Aggregate{Tenant: tenant}, w: c.newWindow()}
	found := false
	c.mu.RLock()
	for _, s := range c.servers {
		if s.tenant != tenant || now-s.lastMs > c.expireMs {
			continue
		}
		found = true
		c.add(s, now, floorDiv(now, 1000), &acc)
	}
	c.mu.RUnlock()
	acc.agg.Window = acc.w.stats()
	return acc.agg, found
}

// Tenant returns a tenant's current total and in-use ports over its fresh
// servers; ok is false when it has no fresh server (treat as no capacity).
func (c *Cache) Tenant(tenant string) (total, inUse uint32, ok bool) {
	total, inUse, _, ok = c.TenantPorts(tenant)
	return total, inUse, ok
}

// TenantPorts is Tenant plus the receive time (ReceivedUnixMs) of the
// newest report among the tenant's fresh servers. Servers publish on every
// change, so a call placed before that time (less the relay latency) is
// already counted in inUse; the dialer counts the calls it placed since.
//
// A tenant without fresh servers of its own is served by the shared pool:
// the servers that report tenant AnyTenant ("*"), whose figures count
// every tenant's calls.
func (c *Cache) TenantPorts(tenant string) (total, inUse uint32, newestMs int64, ok bool) {
	now := c.nowMs()
	c.mu.RLock()
	defer c.mu.RUnlock()
	sum := func(tenant string) {
		for _, s := range c.servers {
			if s.tenant != tenant || now-s.lastMs > c.staleMs {
				continue
			}
			total, inUse, ok = addSat(total, s.total), addSat(inUse, s.inUse), true
			newestMs = max(newestMs, s.lastMs)
		}
	}
	sum(tenant)
	if !ok && tenant != AnyTenant {
		sum(AnyTenant)
	}
	return total, inUse, newestMs, ok
}

// AnyTenant is the tenant a shared media server reports: it serves every
// tenant that has no server of its own.
const AnyTenant = "*"

// Deployment returns the current total and in-use ports over every fresh
// server; ok is false when there is none.
func (c *Cache) Deployment() (total, inUse uint32, ok bool) {
	now := c.nowMs()
	c.mu.RLock()
	defer c.mu.RUnlock()
	for _, s := range c.servers {
		if now-s.lastMs > c.staleMs {
			continue
		}
		total, inUse, ok = addSat(total, s.total), addSat(inUse, s.inUse), true
	}
	return total, inUse, ok
}

// Len is the number of servers held (fresh, stale, or expired not yet
// swept).
func (c *Cache) Len() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.servers)
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if (a%b != 0) && ((a < 0) != (b < 0)) {
		q--
	}
	return q
}

func mod(a, b int64) int64 {
	m := a % b
	if m < 0 {
		m += b
	}
	return m
}

func sub(a, b uint32) uint32 {
	if b > a {
		return 0
	}
	return a - b
}

func addSat(a, b uint32) uint32 {
	if s := uint64(a) + uint64(b); s <= uint64(^uint32(0)) {
		return uint32(s)
	}
	return ^uint32(0)
}

func clamp32(v uint64) uint32 {
	if v > uint64(^uint32(0)) {
		return ^uint32(0)
	}
	return uint32(v)
}
