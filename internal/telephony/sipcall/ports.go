package sipcall

import "slices"

// Ports is the capacity the backend states for a tenant's calls, and its
// calls counted against it; ok is false when it states none, and the port
// budget comes from port-usage reports alone. Two things may bound a
// tenant's calls: the trunk serving it (trunkPorts) and, in 3PCC, the
// media servers its IVR legs go to when they publish no port usage
// (ivrPorts). With both, the one with fewer free ports is stated, so the
// budget never arms a call that the trunk or the IVR pool would refuse
// (PortsFull).
func (b *Backend) Ports(tenant string) (total, inUse uint32, ok bool) {
	tt, tu, tok := b.trunkPorts(tenant)
	it, iu, iok := b.ivrPorts(tenant)
	switch {
	case tok && iok:
		if int(it)-int(iu) < int(tt)-int(tu) {
			return it, iu, true
		}
		return tt, tu, true
	case iok:
		return it, iu, true
	}
	return tt, tu, tok
}

// ivrPorts is the IVR legs' capacity for a tenant: over every
// [[telephony.sip.ivr]] block that may serve the tenant (any profile), the
// block's ports per server, with Dialtone's legs on them in use (as pick
// counts them). Nothing is stated (ok false) when the tenant has no block,
// when a block is unbounded (ports = 0), or when one of its servers
// reports to the port-usage cache: then its reports are the budget's
// figures, as for any media platform that publishes.
func (b *Backend) ivrPorts(tenant string) (total, inUse uint32, ok bool) {
	var tot, use int
	for _, p := range b.ivr {
		if len(p.Tenants) > 0 && !slices.Contains(p.Tenants, "*") && !slices.Contains(p.Tenants, tenant) {
			continue
		}
		if p.Ports <= 0 {
			return 0, 0, false
		}
		for _, s := range p.servers {
			if b.ports != nil {
				if _, reported := b.ports.FreePorts(s.addr); reported {
					return 0, 0, false
				}
			}
			tot += p.Ports
			use += max(int(s.active.Load()), 0)
		}
		ok = true
	}
	return uint32(tot), uint32(use), ok
}
