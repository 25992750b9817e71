package node

import (
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/seed-7bfc04c2/dialtone/internal/auth"
	"github.com/seed-7bfc04c2/dialtone/internal/cluster"
	"github.com/seed-7bfc04c2/dialtone/internal/config"
	"github.com/seed-7bfc04c2/dialtone/internal/portusage"
	"github.com/seed-7bfc04c2/dialtone/internal/server"
	"github.com/seed-7bfc04c2/dialtone/internal/server/cvp"
)

// sweepInterval is how often the port-usage cache forgets expired servers.
const sweepInterval = 5 * time.Second

// portUsage is the node's port-usage subsystem: the in-memory cache, the
// Publish/read service over it, and the relay that hands every report this
// node accepts to its peers (gossip user messages, not Raft) and ingests
// theirs.
type portUsage struct {
	cache   *portusage.Cache
	relay   *portusage.Relay
	service *server.PortUsage
}

// newPortUsageCache builds the cache and its metrics.
func newPortUsageCache(cfg config.PortUsage, reg prometheus.Registerer) (*portusage.Cache, *portusage.Metrics) {
	cache := portusage.New(portusage.Options{
		Window:      cfg.Window.Duration,
		StaleAfter:  cfg.StaleAfter.Duration,
		ExpireAfter: cfg.ExpireAfter.Duration,
		// Unfiltered aggregate reads share one computation per 50 ms.
		ReadCacheTTL: 50 * time.Millisecond,
	})
	return cache, portusage.NewMetrics(reg, cache)
}

// newPortUsage builds the service over cache and connects the relay to
// the peers of cl, both ways. The relay's Run sends its batches.
func newPortUsage(nodeID string, cache *portusage.Cache, metrics *portusage.Metrics, cl *cluster.Cluster, ents server.Entitlements) *portUsage {
	relay := portusage.NewRelay(func(packet []byte) {
		cl.SendToPeers(cluster.MsgPortUsage, packet)
	}, portusage.RelayOptions{Metrics: metrics})
	service := server.NewPortUsage(cache, server.PortUsageOptions{
		NodeID:       nodeID,
		Entitlements: ents,
		Relay:        relay.Add,
		Metrics:      metrics,
	})
	cl.SetMessageHandler(cluster.MsgPortUsage, service.IngestRelayed)
	return &portUsage{cache: cache, relay: relay, service: service}
}

// PortUsage is the node's port-usage cache.
func (n *Node) PortUsage() *portusage.Cache { return n.portUsage.cache }

// cvpHandlers are the Cisco-compatible port-usage endpoints: GET needs the
// read role, POST (set entitled ports) admin; tenants are scoped inside.
func cvpHandlers(authn *auth.Authenticator, usage cvp.Usage, licenses cvp.Licenses, opts cvp.Options) map[string]http.Handler {
	roleFor := func(r *http.Request) auth.Role {
		if r.Method == http.MethodGet || r.Method == http.MethodHead {
			return auth.RoleRead
		}
		return auth.RoleAdmin
	}
	out := map[string]http.Handler{}
	for pattern, h := range cvp.New(usage, licenses, opts).Handlers() {
		out[pattern] = server.HTTPAuth(authn, roleFor, nil, h)
	}
	return out
}
