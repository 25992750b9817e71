package portusage

import (
	"sync"
	"testing"
	"time"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

var t0 = time.Unix(1_700_000_000, 0)

func newTestCache(opts Options) (*Cache, *clock) {
	clk := &clock{t: t0}
	opts.Now = clk.Now
	return New(opts), clk
}

func rep(id, tenant string, total, inUse uint32, seq uint64, at time.Time) Report {
	return Report{ServerID: id, Tenant: tenant, Address: "10.0.0.1", Total: total, InUse: inUse, Seq: seq, ReceivedUnixMs: at.UnixMilli(), ReceivedBy: "n1"}
}

func TestIngestOrdering(t *testing.T) {
	for _, tc := range []struct {
		name  string
		steps []struct {
			after time.Duration
			seq   uint64
			inUse uint32
			want  Result
		}
		wantInUse uint32
	}{
		{"in order", steps(0, 1, 1, Accepted, 0, 2, 2, Accepted, 0, 3, 3, Accepted), 3},
		{"duplicate", steps(0, 5, 5, Accepted, 0, 5, 9, Duplicate), 5},
		{"older after newer (relayed copy late)", steps(0, 7, 7, Accepted, 0, 6, 6, Duplicate), 7},
		{"publisher restart after staleness", steps(0, 100, 10, Accepted, 4*time.Second, 1, 1, Accepted), 1},
		{"publisher restart before staleness is dropped", steps(0, 100, 10, Accepted, time.Second, 1, 1, Duplicate), 10},
		{"seq 0 always taken", steps(0, 0, 1, Accepted, 0, 0, 2, Accepted), 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, clk := newTestCache(Options{})
			for i, s := range tc.steps {
				clk.Add(s.after)
				if got := c.Ingest(rep("s1", "acme", 100, s.inUse, s.seq, clk.Now())); got != s.want {
					t.Fatalf("step %d: %v, want %v", i, got, s.want)
				}
			}
			v, ok := c.Server("s1")
			if !ok || v.InUse != tc.wantInUse {
				t.Fatalf("server %+v %v, want in use %d", v, ok, tc.wantInUse)
			}
		})
	}
}

func steps(v ...any) []struct {
	after time.Duration
	seq   uint64
	inUse uint32
	want  Result
} {
	var out []struct {
		after time.Duration
		seq   uint64
		inUse uint32
		want  Result
	}
	for i := 0; i < len(v); i += 4 {
		var d time.Duration
		switch x := v[i].(type) {
		case int:
			d = time.Duration(x)
		case time.Duration:
			d = x
		}
		out = append(out, struct {
			after time.Duration
			seq   uint64
			inUse uint32
			want  Result
		}{d, uint64(v[i+1].(int)), uint32(v[i+2].(int)), v[i+3].(Result)})
	}
	return out
}

func TestWindowSeriesAndStats(t *testing.T) {
	c, clk := newTestCache(Options{Window: 15 * time.Second})
	for i := range 20 {
		c.Ingest(rep("s1", "acme", 100, uint32(i), uint64(i+1), clk.Now()))
		clk.Add(time.Second)
	}
	clk.Add(-time.Second) // now = the second of the last report
	v, _ := c.Server("s1")
	if len(v.Series) != 15 {
		t.Fatalf("series has %d seconds, want 15: %+v", len(v.Series), v.Series)
	}
	if v.Series[0].SecondUnix != t0.Unix()+5 || v.Series[14].SecondUnix != t0.Unix()+19 {
		t.Fatalf("series spans %d..%d", v.Series[0].SecondUnix, v.Series[14].SecondUnix)
	}
	want := Stats{MinInUse: 5, MaxInUse: 19, AvgInUse: 12, WindowSeconds: 15}
	if v.Window != want {
		t.Fatalf("stats %+v, want %+v", v.Window, want)
	}
}

func TestWindowGapsCarryUntilStale(t *testing.T) {
	for _, tc := range []struct {
		name       string
		reportsAt  []int // seconds after t0, in use = 10*(index+1)
		readAt     int
		wantSecs   []int
		wantStale  bool
		wantMax    uint32
		wantSeries int
	}{
		{"one missed second is carried", []int{0, 2}, 2, []int{0, 1, 2}, false, 20, 3},
		{"a long gap stops after stale_after", []int{0, 8}, 8, []int{0, 1, 2, 3, 8}, false, 20, 5},
		{"silent server: nothing past staleness", []int{0}, 10, []int{0, 1, 2, 3}, true, 10, 4},
		{"aged out of the window", []int{0}, 30, nil, true, 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, clk := newTestCache(Options{Window: 15 * time.Second, StaleAfter: 3 * time.Second})
			for i, s := range tc.reportsAt {
				clk.t = t0.Add(time.Duration(s) * time.Second)
				c.Ingest(rep("s1", "acme", 100, uint32(10*(i+1)), uint64(i+1), clk.Now()))
			}
			clk.t = t0.Add(time.Duration(tc.readAt)*time.Second + 500*time.Millisecond)
			v, ok := c.Server("s1")
			if !ok {
				t.Fatal("server missing")
			}
			var secs []int
			for _, s := range v.Series {
				secs = append(secs, int(s.SecondUnix-t0.Unix()))
			}
			if len(secs) != len(tc.wantSecs) {
				t.Fatalf("seconds %v, want %v", secs, tc.wantSecs)
			}
			for i := range secs {
				if secs[i] != tc.wantSecs[i] {
					t.Fatalf("seconds %v, want %v", secs, tc.wantSecs)
				}
			}
			if v.Stale != tc.wantStale || v.Window.MaxInUse != tc.wantMax {
				t.Fatalf("stale %v max %d, want %v %d", v.Stale, v.Window.MaxInUse, tc.wantStale, tc.wantMax)
			}
		})
	}
}

func TestClockSkew(t *testing.T) {
	c, clk := newTestCache(Options{})
	// The publisher's clock is an hour off: it does not matter.
	r := rep("s1", "acme", 100, 40, 1, clk.Now())
	r.TimeUnixMs = clk.Now().Add(time.Hour).UnixMilli()
	c.Ingest(r)
	// A peer whose clock runs ahead stamps a report in our future: clamped.
	r2 := rep("s2", "acme", 50, 10, 1, clk.Now().Add(10*time.Second))
	c.Ingest(r2)
	for _, id := range []string{"s1", "s2"} {
		v, _ := c.Server(id)
		if v.LastReportUnixMs != clk.Now().UnixMilli() || len(v.Series) != 1 || v.Series[0].SecondUnix != t0.Unix() {
			t.Fatalf("%s: %+v", id, v)
		}
	}
	// A relayed copy stamped a little in our past lands in its own second.
	c.Ingest(rep("s3", "acme", 10, 1, 1, clk.Now().Add(-2*time.Second)))
	v, _ := c.Server("s3")
	if v.Series[0].SecondUnix != t0.Unix()-2 {
		t.Fatalf("s3 series %+v", v.Series)
	}
}

func TestAggregationAndStaleness(t *testing.T) {
	c, clk := newTestCache(Options{StaleAfter: 3 * time.Second, ExpireAfter: time.Minute})
	c.Ingest(rep("a1", "acme", 100, 40, 1, clk.Now()))
	c.Ingest(rep("a2", "acme", 50, 10, 1, clk.Now()))
	c.Ingest(rep("g1", "globex", 30, 30, 1, clk.Now()))

	check := func(what string, gotT, gotU uint32, gotOK bool, wantT, wantU uint32, wantOK bool) {
		t.Helper()
		if gotT != wantT || gotU != wantU || gotOK != wantOK {
			t.Fatalf("%s: %d/%d %v, want %d/%d %v", what, gotU, gotT, gotOK, wantU, wantT, wantOK)
		}
	}
	tot, use, ok := c.Tenant("acme")
	check("acme", tot, use, ok, 150, 50, true)
	tot, use, ok = c.Deployment()
	check("deployment", tot, use, ok, 180, 80, true)
	tot, use, ok = c.Tenant("nobody")
	check("unknown tenant", tot, use, ok, 0, 0, false)

	all, tenants := c.Usage(nil)
	if all.Total != 180 || all.InUse != 80 || all.Available() != 100 || all.Servers != 3 || len(tenants) != 2 || tenants[0].Tenant != "acme" || tenants[1].Available() != 0 {
		t.Fatalf("usage %+v %+v", all, tenants)
	}
	all, tenants = c.Usage(func(t string) bool { return t == "globex" })
	if all.Total != 30 || len(tenants) != 1 {
		t.Fatalf("filtered usage %+v %+v", all, tenants)
	}

	// a1 keeps reporting; a2 and g1 go silent.
	clk.Add(2 * time.Second)
	c.Ingest(rep("a1", "acme", 100, 45, 2, clk.Now()))
	clk.Add(1500 * time.Millisecond)
	tot, use, ok = c.Tenant("acme")
	check("acme after a2 stale", tot, use, ok, 100, 45, true)
	tot, use, ok = c.Tenant("globex")
	check("globex stale", tot, use, ok, 0, 0, false)
	ta, found := c.TenantUsage("acme")
	if !found || ta.Servers != 1 || ta.StaleServers != 1 || ta.Window.MaxInUse != 55 {
		t.Fatalf("acme aggregate %+v", ta)
	}
	if n := len(c.Servers("", nil, false)); n != 3 {
		t.Fatalf("%d servers listed, want 3 (stale ones too)", n)
	}
	if s := c.Servers("globex", nil, false); len(s) != 1 || !s[0].Stale {
		t.Fatalf("globex servers %+v", s)
	}

	// Past expire_after everything silent is forgotten.
	clk.Add(time.Minute)
	if _, ok := c.Server("g1"); ok {
		t.Fatal("expired server still readable")
	}
	if n := c.Sweep(); n != 3 || c.Len() != 0 {
		t.Fatalf("swept %d, left %d", n, c.Len())
	}
	if _, _, ok := c.Deployment(); ok {
		t.Fatal("empty deployment reported ok")
	}
	// A report received longer ago than expire_after is not resurrected.
	if r := c.Ingest(rep("old", "acme", 1, 0, 1, clk.Now().Add(-2*time.Minute))); r != TooOld {
		t.Fatalf("ancient relayed report: %v", r)
	}
}

func TestCodecRoundTripAndMalformed(t *testing.T) {
	in := []Report{
		{ServerID: "vxml-1", Address: "10.1.2.3", Tenant: "acme", Total: 400, InUse: 123, TimeUnixMs: -5, Seq: 1 << 40, ReceivedUnixMs: t0.UnixMilli(), ReceivedBy: "n2"},
		{ServerID: "x", Tenant: "t"},
	}
	out, err := DecodeReports(EncodeReports(in...))
	if err != nil || len(out) != 2 || out[0] != in[0] || out[1] != in[1] {
		t.Fatalf("round trip: %v %+v", err, out)
	}
	good := EncodeReports(in...)
	for _, bad := range [][]byte{nil, {9}, good[:len(good)-1], append([]byte{1, 0xff, 0xff, 0xff, 0xff, 0x0f}, 'x')} {
		if _, err := DecodeReports(bad); err == nil {
			t.Fatalf("decoded malformed %x", bad)
		}
	}
}

func TestRelayBatches(t *testing.T) {
	var mu sync.Mutex
	var packets [][]byte
	r := NewRelay(func(p []byte) {
		mu.Lock()
		packets = append(packets, append([]byte(nil), p...))
		mu.Unlock()
	}, RelayOptions{MaxPacket: 300})
	const n = 100
	for i := range n {
		r.Add(rep("server-with-a-long-name", "acme", 10, 1, uint64(i+1), t0))
	}
	r.Flush()
	got := 0
	for _, p := range packets {
		if len(p) > 300 {
			t.Fatalf("packet of %d bytes", len(p))
		}
		reps, err := DecodeReports(p)
		if err != nil {
			t.Fatal(err)
		}
		for _, x := range reps {
			got++
			if x.Seq != uint64(got) {
				t.Fatalf("report %d has seq %d", got, x.Seq)
			}
		}
	}
	if got != n || len(packets) < 2 {
		t.Fatalf("%d reports in %d packets", got, len(packets))
	}
}

func BenchmarkIngest(b *testing.B) {
	c := New(Options{})
	now := time.Now()
	for i := 0; b.Loop(); i++ {
		c.Ingest(rep("s"+string(rune('a'+i%100)), "acme", 100, uint32(i%100), uint64(i+1), now))
	}
}

func BenchmarkUsage1000Servers(b *testing.B) {
	c := New(Options{})
	now := time.Now()
	for i := range 1000 {
		c.Ingest(rep(string(rune(i+1000)), []string{"acme", "globex", "initech"}[i%3], 100, 50, 1, now))
	}
	for b.Loop() {
		c.Usage(nil)
	}
}

func TestReadCacheTTL(t *testing.T) {
	c, clk := newTestCache(Options{ReadCacheTTL: 50 * time.Millisecond})
	c.Ingest(rep("s1", "acme", 10, 1, 1, clk.Now()))
	if all, _ := c.Usage(nil); all.Total != 10 {
		t.Fatalf("%+v", all)
	}
	c.Ingest(rep("s2", "acme", 5, 1, 1, clk.Now()))
	if all, _ := c.Usage(nil); all.Total != 10 {
		t.Fatalf("within the TTL: %+v", all)
	}
	if all, _ := c.Usage(func(string) bool { return true }); all.Total != 15 {
		t.Fatalf("filtered reads are not cached: %+v", all)
	}
	clk.Add(50 * time.Millisecond)
	if all, _ := c.Usage(nil); all.Total != 15 {
		t.Fatalf("after the TTL: %+v", all)
	}
}
