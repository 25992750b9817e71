package node

import (
	"testing"
	"time"

	"github.com/seed-7bfc04c2/dialtone/internal/portusage"
)

type fixedPorts map[string][2]uint32

func (f fixedPorts) Ports(tenant string) (total, inUse uint32, ok bool) {
	p, ok := f[tenant]
	return p[0], p[1], ok
}

// TestStatedPortsJoinTheBudget: a backend's stated capacity (a SIP trunk's
// ports) is fresh capacity for the dialer with no port report, and adds to
// the reports of a tenant that has them.
func TestStatedPortsJoinTheBudget(t *testing.T) {
	cache := portusage.New(portusage.Options{})
	if r := (dialerPorts{cache: cache}).TenantPorts("acme"); r.OK {
		t.Fatalf("no report, no stated ports: %+v, want no capacity", r)
	}
	ports := dialerPorts{cache: cache, stated: fixedPorts{"acme": {30, 4}}}
	r := ports.TenantPorts("acme")
	if !r.OK || r.Total != 30 || r.InUse != 4 || time.Since(r.ReceivedAt) > time.Second {
		t.Fatalf("stated only: %+v, want 30 total, 4 in use, as of now", r)
	}
	cache.Ingest(portusage.Report{ServerID: "vxml1", Tenant: "acme", Total: 10, InUse: 2, ReceivedUnixMs: time.Now().UnixMilli()})
	if r := ports.TenantPorts("acme"); !r.OK || r.Total != 40 || r.InUse != 6 {
		t.Fatalf("stated plus reported: %+v, want 40 total, 6 in use", r)
	}
	if r := ports.TenantPorts("other"); r.OK {
		t.Fatalf("a tenant without a trunk or report: %+v", r)
	}
}
