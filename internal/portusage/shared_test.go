package portusage

import (
	"testing"
)

// A tenant without fresh servers of its own is served by the shared pool
// (servers of tenant "*"); a tenant with servers never sees the pool.
func TestTenantPortsSharedPool(t *testing.T) {
	c, clk := newTestCache(Options{})
	c.Ingest(rep("a1", "acme", 100, 40, 1, clk.Now()))
	c.Ingest(rep("s1", AnyTenant, 50, 5, 1, clk.Now()))
	c.Ingest(rep("s2", AnyTenant, 50, 7, 1, clk.Now()))
	cases := []struct {
		tenant       string
		total, inUse uint32
	}{
		{"acme", 100, 40},
		{"Environment", 100, 12},
		{AnyTenant, 100, 12},
	}
	for _, cs := range cases {
		total, inUse, _, ok := c.TenantPorts(cs.tenant)
		if !ok || total != cs.total || inUse != cs.inUse {
			t.Errorf("%s: %d/%d %v, want %d/%d", cs.tenant, inUse, total, ok, cs.inUse, cs.total)
		}
	}
}
