package node

import (
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/seed-7bfc04c2/dialtone/internal/cluster"
	"github.com/seed-7bfc04c2/dialtone/internal/config"
	"github.com/seed-7bfc04c2/dialtone/internal/dialer"
	"github.com/seed-7bfc04c2/dialtone/internal/fsm"
	"github.com/seed-7bfc04c2/dialtone/internal/notify"
	"github.com/seed-7bfc04c2/dialtone/internal/portusage"
	"github.com/seed-7bfc04c2/dialtone/internal/telephony"
	"github.com/seed-7bfc04c2/dialtone/internal/telephony/simcall"
	"github.com/seed-7bfc04c2/dialtone/internal/telephony/sipcall"
)

// newDialer builds the node's dialer engine. It is leader-only work: Start
// runs it as a leader task (runLeaderTasks), so it commits with
// ApplyLeader, which never forwards to another node.
func newDialer(cfg config.Config, store *fsm.FSM, cl *cluster.Cluster, ports dialer.Ports, backend telephony.Backend, reg prometheus.Registerer, log *slog.Logger, sendLog io.Writer) *dialer.Engine {
	return dialer.New(dialer.Options{
		Store:   store,
		Apply:   cl,
		Ports:   ports,
		Backend: backend,
		Lease:   cl,
		Sender: notify.Sender{
			Client:  &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: cfg.Dialer.NotifyConcurrency, IdleConnTimeout: 90 * time.Second}},
			Timeout: cfg.Dialer.NotifyTimeout.Duration,
		},
		Metrics:               dialer.NewMetrics(reg),
		Logger:                log,
		InterruptedRetryDelay: cfg.Dialer.InterruptedRetryDelay.Duration,
		HalfOpenHold:          halfOpenHold(cfg),
		NotifyMaxBackoff:      cfg.Dialer.NotifyMaxBackoff.Duration,
		NotifyConcurrency:     cfg.Dialer.NotifyConcurrency,
		PortView:              cfg.Dialer.PortView,
		Clock:                 clockOf(cfg),
		SendLog:               sendLog,
		// Adopting needs the far ends to reach the new leader: the SIP
		// service address. Without it calls are interrupted as before (and
		// no dialog state is replicated).
		Takeover: !cfg.Dialer.DisableTakeover && cfg.Telephony.Backend == "sip" && cfg.Telephony.SIP.ServiceAddr != "",
	})
}

// clockOf is the node's clock for the dialer and the entries it stamps:
// the real one, shifted by dialer.test_clock_offset (test only).
func clockOf(cfg config.Config) dialer.Clock {
	if d := cfg.Dialer.TestClockOffset.Duration; d != 0 {
		return dialer.OffsetClock(d)
	}
	return dialer.RealClock{}
}

// sipT1 is SIP's round-trip estimate (RFC 3261 §17.1.1.1; sipgo's
// default): a UAS retransmits an unacknowledged 200 OK for 64×T1.
const sipT1 = 500 * time.Millisecond

// halfOpenHold is how long a call may stay up at the far end once the
// node that sent it is gone (dialer.Options.HalfOpenHold), as
// dialer.half_open_hold sets it: over SIP, "auto" is the ring timeout or
// 64×T1 (an unacknowledged 200 OK is retransmitted that long), whichever
// is longer. The simulated platform ends a call when its caller's
// connection drops, and the new leader revokes it: 0.
func halfOpenHold(cfg config.Config) time.Duration {
	if cfg.Telephony.Backend != "sip" {
		return 0
	}
	switch h := cfg.Dialer.HalfOpenHold; h {
	case "", "0", "0s":
		return 0
	case "auto":
		return max(cfg.Telephony.SIP.RingTimeout.Duration, 64*sipT1)
	default:
		d, _ := time.ParseDuration(h) // validated with the configuration
		return d
	}
}

// Dialer is the node's dialer engine (running only while it leads).
func (n *Node) Dialer() *dialer.Engine { return n.dialer }

// dialerPorts are the dialer's port figures: the port-usage cache, plus
// the capacity a backend states itself (may be nil).
type dialerPorts struct {
	cache  *portusage.Cache
	stated statedPorts
}

func (p dialerPorts) TenantPorts(tenant string) dialer.PortReport {
	total, inUse, newest, ok := p.cache.TenantPorts(tenant)
	r := dialer.PortReport{Total: total, InUse: inUse, ReceivedAt: time.UnixMilli(newest), OK: ok}
	if p.stated != nil {
		// A backend that states its capacity (a SIP trunk's ports) counts
		// its calls in progress itself, live: its figures are as of now.
		if t, u, ok := p.stated.Ports(tenant); ok {
			r.Total, r.InUse, r.ReceivedAt, r.OK = r.Total+t, r.InUse+u, time.Now(), true
		}
	}
	return r
}

// statedPorts is a call backend that states its own capacity per tenant
// (sipcall.Backend: trunks with a ports setting).
type statedPorts interface {
	Ports(tenant string) (total, inUse uint32, ok bool)
}

// callBackend is the backend the [telephony] section names, unless the
// caller gave one, and what closes it (nil when nothing needs closing).
func callBackend(cfg config.Config, nodeCfg config.Node, log *slog.Logger, reg prometheus.Registerer, override telephony.Backend, servers sipcall.ServerPorts) (telephony.Backend, io.Closer, error) {
	if override != nil {
		return override, nil, nil
	}
	switch cfg.Telephony.Backend {
	case "sip":
		b, err := sipcall.New(sipcall.Options{SIP: cfg.Telephony.SIP, Listen: nodeCfg.SIP, Logger: log, Registerer: reg, ServerPorts: servers,
			Handover: !cfg.Dialer.DisableTakeover})
		if err != nil {
			return nil, nil, fmt.Errorf("node: telephony.sip: %w", err)
		}
		return b, b, nil
	case "sim":
		// The simulated media platform serves plaintext gRPC on a
		// development host; the node's TLS settings are for its peers.
		// Calls carry the node id, so the platform's call log shows
		// which node dialled (the chaos suite checks deposed leaders).
		c, err := simcall.NewClient(cfg.Telephony.SimAddr, simcall.CallerDialOption(nodeCfg.ID))
		if err != nil {
			return nil, nil, fmt.Errorf("node: telephony.sim_addr: %w", err)
		}
		return c, c, nil
	default:
		return nil, nil, nil
	}
}

// mediaServerPorts is the port-usage cache's per-server view as the SIP
// backend's IVR pools read it: a media server publishes under its SIP
// host:port as its server id; a stale one has no free port.
type mediaServerPorts struct{ cache *portusage.Cache }

func (p mediaServerPorts) FreePorts(server string) (int, bool) {
	v, ok := p.cache.Server(server)
	if !ok {
		return 0, false
	}
	if v.Stale {
		return 0, true
	}
	return int(v.Available()), true
}
