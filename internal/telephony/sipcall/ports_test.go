package sipcall

import (
	"testing"

	"github.com/seed-7bfc04c2/dialtone/internal/config"
)

// TestPortsStatesIVRCapacity: the capacity stated for a tenant's port
// budget includes the IVR pools' configured ports (legs in use counted),
// the tighter of trunk and pool when both state one, and nothing from a
// pool that is unbounded or whose servers publish their ports.
func TestPortsStatesIVRCapacity(t *testing.T) {
	pool := func(tenants []string, ports int, servers ...string) config.SIPIVR {
		return config.SIPIVR{Profile: "*", Tenants: tenants, Ports: ports, Servers: servers}
	}
	for _, c := range []struct {
		name       string
		trunkPorts int
		ivr        []config.SIPIVR
		legs       int // legs in use on the first pool's first server
		reports    fakePorts
		total, use uint32
		ok         bool
	}{
		{name: "trunk only", trunkPorts: 30, total: 30, ok: true},
		{name: "nothing stated"},
		{name: "pool only", ivr: []config.SIPIVR{pool(nil, 4, "a:1", "b:1")}, legs: 1, total: 8, use: 1, ok: true},
		{name: "pool tighter than the trunk", trunkPorts: 30, ivr: []config.SIPIVR{pool(nil, 4, "a:1", "b:1")}, legs: 3, total: 8, use: 3, ok: true},
		{name: "trunk tighter than the pool", trunkPorts: 5, ivr: []config.SIPIVR{pool(nil, 40, "a:1")}, total: 5, ok: true},
		{name: "pools of the tenant add up", ivr: []config.SIPIVR{pool([]string{"acme"}, 2, "a:1"), pool([]string{"*"}, 3, "b:1"), pool([]string{"other"}, 50, "c:1")}, total: 5, ok: true},
		{name: "an unbounded pool states nothing", trunkPorts: 30, ivr: []config.SIPIVR{pool(nil, 4, "a:1"), pool(nil, 0, "b:1")}, total: 30, ok: true},
		{name: "a publishing server states nothing", trunkPorts: 30, ivr: []config.SIPIVR{pool(nil, 4, "a:1")}, reports: fakePorts{"a:1": 2}, total: 30, ok: true},
	} {
		t.Run(c.name, func(t *testing.T) {
			tr := &trunk{SIPTrunk: config.SIPTrunk{Name: "t", Tenants: []string{"acme"}, Ports: c.trunkPorts}}
			b := &Backend{byTenant: map[string]*trunk{"acme": tr}}
			if c.reports != nil {
				b.ports = c.reports
			}
			for _, v := range c.ivr {
				b.ivr = append(b.ivr, newIVRPool(v, nil, nil))
			}
			if c.legs > 0 {
				b.ivr[0].servers[0].active.Add(int64(c.legs))
			}
			total, use, ok := b.Ports("acme")
			if total != c.total || use != c.use || ok != c.ok {
				t.Errorf("Ports = %d, %d, %v; want %d, %d, %v", total, use, ok, c.total, c.use, c.ok)
			}
		})
	}
}
