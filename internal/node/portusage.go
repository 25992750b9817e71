package node

import (
	"context"
	"net/http"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/seed-7bfc04c2/dialtone/api/dialtonev1"
	"github.com/seed-7bfc04c2/dialtone/internal/auth"
	"github.com/seed-7bfc04c2/dialtone/internal/cluster"
	"github.com/seed-7bfc04c2/dialtone/internal/config"
	"github.com/seed-7bfc04c2/dialtone/internal/portusage"
	"github.com/seed-7bfc04c2/dialtone/internal/server"
	"github.com/seed-7bfc04c2/dialtone/internal/server/cvp"
)

// portUsage is the node's port-usage cache, its Publish/read service and
// the relay to the peers (memberlist user messages, not Raft).
type portUsage struct {
	cache   *portusage.Cache
	relay   *portusage.Relay
	service *server.PortUsage
	metrics *portusage.Metrics
	// defaultTenant: port_usage.default_tenant, for the Cisco POST.
	defaultTenant string
}

// startPortUsage builds the cache and service, registers the gRPC service
// and the relay handler, and starts the relay flusher and the sweeper
// (they stop with n.ctx).
func (n *Node) startPortUsage(cfg config.Config, nodeID string) *portUsage {
	pu := &portUsage{defaultTenant: cfg.PortUsage.DefaultTenant}
	pu.cache = portusage.New(portusage.Options{
		Window:      cfg.PortUsage.Window.Duration,
		StaleAfter:  cfg.PortUsage.StaleAfter.Duration,
		ExpireAfter: cfg.PortUsage.ExpireAfter.Duration,
		// Unfiltered aggregate reads share one computation per 50 ms.
		ReadCacheTTL: 50 * time.Millisecond,
	})
	pu.metrics = portusage.NewMetrics(n.reg, pu.cache)
	pu.relay = portusage.NewRelay(func(packet []byte) {
		n.cluster.SendToPeers(cluster.MsgPortUsage, packet)
	}, portusage.RelayOptions{})
	pu.service = server.NewPortUsage(pu.cache, server.PortUsageOptions{
		NodeID:       nodeID,
		Entitlements: portEntitlements{n},
		Relay: func(r portusage.Report) {
			pu.metrics.Count(portusage.EventRelayedOut, 1)
			pu.relay.Add(r)
		},
		Metrics: pu.metrics,
	})
	pb.RegisterPortUsageServiceServer(n.grpc, pu.service)
	n.cluster.SetMessageHandler(cluster.MsgPortUsage, pu.service.IngestRelayed)
	n.wg.Add(2)
	go func() {
		defer n.wg.Done()
		pu.relay.Run(n.ctx)
	}()
	go func() {
		defer n.wg.Done()
		t := time.NewTicker(5 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-n.ctx.Done():
				return
			case <-t.C:
				pu.cache.Sweep()
			}
		}
	}()
	return pu
}

// PortUsage is the node's port-usage cache (for the alert evaluator and
// the dialer: Tenant and Deployment).
func (n *Node) PortUsage() *portusage.Cache { return n.portUsage.cache }

// SetPortLicenses gives the Cisco licensePurchased endpoint and the usage
// totals their entitlement source (the PortSettings service).
func (n *Node) SetPortLicenses(l cvp.Licenses) {
	n.licensesMu.Lock()
	n.portLicenses = l
	n.licensesMu.Unlock()
}

func (n *Node) licenses() cvp.Licenses {
	n.licensesMu.RLock()
	defer n.licensesMu.RUnlock()
	return n.portLicenses
}

// portEntitlements reads entitlements from the FSM once it provides them
// (Entitlement) and lists them through the settings service when set. Both
// are optional: without them entitled ports read 0.
type portEntitlements struct{ n *Node }

func (e portEntitlements) Entitlement(tenant string) (uint32, bool) {
	if s, ok := any(e.n.fsm).(server.Entitlements); ok {
		return s.Entitlement(tenant)
	}
	return 0, false
}

func (e portEntitlements) EntitlementList() []*pb.Entitlement {
	if l := e.n.licenses(); l != nil {
		return l.EntitlementList()
	}
	return nil
}

// lazyLicenses forwards to the licenses set later (SetPortLicenses).
type lazyLicenses struct{ n *Node }

func (l lazyLicenses) EntitlementList() []*pb.Entitlement {
	return portEntitlements(l).EntitlementList()
}

func (l lazyLicenses) SetEntitlementPorts(ctx context.Context, tenant string, ports uint32) error {
	s := l.n.licenses()
	if s == nil {
		return errNoLicenses
	}
	return s.SetEntitlementPorts(ctx, tenant, ports)
}

// cvpHandlers are the Cisco-compatible port-usage endpoints: GET needs the
// read role, POST (set entitled ports) admin; tenants are scoped inside.
func (n *Node) cvpHandlers(authn *auth.Authenticator) map[string]http.Handler {
	h := cvp.New(n.portUsage.service, lazyLicenses{n}, cvp.Options{DefaultTenant: n.portUsage.defaultTenant})
	roleFor := func(r *http.Request) auth.Role {
		if r.Method == http.MethodGet || r.Method == http.MethodHead {
			return auth.RoleRead
		}
		return auth.RoleAdmin
	}
	out := map[string]http.Handler{}
	for pattern, hh := range h.Handlers() {
		out[pattern] = server.HTTPAuth(authn, roleFor, nil, hh)
	}
	return out
}

var errNoLicenses = status.Error(codes.Unimplemented, "entitlements cannot be set: the port settings service is not wired on this node")
