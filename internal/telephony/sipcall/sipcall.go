// Package sipcall is the SIP call backend: it places each call attempt as
// an INVITE to a configured trunk and, for requests whose IVR profile has
// a [[telephony.sip.ivr]] entry, connects the answered callee to that IVR
// application on a media server by third-party call control (RFC 3725
// flow I, or the IVR leg first with cpd.preconnect); it maps what happened to the dialer's outcome classes.
//
// DESIGN
//
//   - One sipgo user agent per node. UDP is sent from the listening socket
//     (WithClientConnectionAddr), which has 4 MiB buffers: on loopback all
//     loss at high rates was receive-buffer overflow, and responses and
//     in-dialog requests arrive on the socket requests left from. TCP and
//     TLS calls use connections the client opens; a TCP listener on the
//     same port, and a TLS one on the next port when a certificate is
//     configured, take new ones.
//   - sipgo provides the transport and transaction layers (retransmissions,
//     timers, ACK of non-2xx). The dialogs are Dialtone's own (leg.go):
//     sipgo's DialogClientSession composes CANCEL from the early dialog
//     (the 1xx's Record-Route, a Contact) and terminates the INVITE
//     transaction when the CANCEL fails, so a late final response is never
//     ACKed; here CANCEL copies the INVITE (§9.1) and an attempt ends only
//     when its INVITE transaction has its final response (or 64*T1 after
//     the CANCEL, or Timer B).
//   - Place is one call, run in the caller's goroutine: the callee's INVITE
//     without an offer; its 2xx's offer goes in the IVR leg's INVITE; the
//     IVR's answer in the callee's ACK (with cpd.preconnect the IVR leg
//     comes first, its offer in the callee's INVITE: preconnect.go). Media
//     then flows between the
//     callee's gateway and the media server; Dialtone never carries RTP.
//     Direct mode (no IVR entry) ACKs an offer with an inactive answer. A
//     BYE on either leg ends the other; re-INVITE and UPDATE offers are
//     relayed to the other leg. Cancelling ctx (leadership lost, node
//     stopping) always ends the call on the wire before Place returns.
//   - Per-trunk limits: an even CAPS limiter (x/time/rate, burst 1) that
//     delays the INVITE, and a concurrent-call limit that refuses the call
//     (telephony.ErrFull, recorded as PortsFull); IVR legs go to the media
//     server with the most free ports, and a call with none is refused the
//     same way before the callee is called.
//   - Ports states a trunk's capacity to the dialer's port budget for
//     trunks nothing reports port usage for (see docs/sip.md).
//   - Failover (adopt.go, lead.go, timer.go): each leg reports its
//     replicable dialog state through telephony.Call.Dialog; with a
//     service address, which only the leader binds (Lead) and every
//     dialog's Via and Contact name, a new leader rebuilds the dialogs
//     (Adopt) and carries the calls on; a leader that stops hands its
//     calls over instead of hanging them up. RFC 4028 session timers end
//     at the far end a dialog no leader refreshes.
//   - Close cancels every call, waits for their dialogs to end, then stops
//     the user agent.
package sipcall

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"

	"github.com/seed-7bfc04c2/dialtone/internal/config"
	"github.com/seed-7bfc04c2/dialtone/internal/telephony"
)

// ErrNoTrunk: no trunk is configured for the call's tenant.
var ErrNoTrunk = errors.New("no SIP trunk for tenant")

// socketBuffer is the UDP socket's receive and send buffer.
const socketBuffer = 4 << 20

// byeTimeout bounds the wait for the answer to a BYE sent at teardown.
const byeTimeout = 5 * time.Second

// Options configure a backend.
type Options struct {
	SIP config.SIP
	// Listen overrides SIP.Listen (a node's own address).
	Listen string
	Logger *slog.Logger
	// Registerer registers the backend's metrics (nil: unregistered).
	Registerer prometheus.Registerer
	// ServerPorts, when set, reports media servers' free ports from the
	// port-usage cache, so IVR legs go to the least loaded fresh server.
	ServerPorts ServerPorts
	// Handover: with SIP.ServiceAddr, a call whose context ends (this
	// node stops leading) is left up for the next leader to adopt instead
	// of being hung up. Set when the dialer adopts calls.
	Handover bool
}

// ServerPorts is the port-usage cache's per-server view as the IVR pools
// need it.
type ServerPorts interface {
	// FreePorts is the free ports of the media server with this id
	// (host:port as configured in telephony.sip.ivr servers); reported is
	// false when no report of it is known, and then its configured ports
	// bound it. A stale server must report 0 free ports.
	FreePorts(server string) (free int, reported bool)
}

// Backend places calls over SIP. Safe for concurrent use.
type Backend struct {
	cfg      config.SIP
	log      *slog.Logger
	outcomes outcomeTable
	trunks   []*trunk
	byTenant map[string]*trunk
	fallback *trunk
	m        *metrics

	ivr   []*ivrPool
	ports ServerPorts
	legs  sync.Map // dialog key (Call-ID, local tag) -> *leg

	// Service address (lead.go): bound only while this node leads.
	svcAddr    string
	svcClient  *sipgo.Client // UDP, sent from the service address
	svcContact sip.ContactHeader
	svcMu      sync.Mutex
	svcConn    net.PacketConn // bound while leading
	svcServe   sync.WaitGroup
	leadSince  atomic.Int64 // unix ms of the bind; 0: not leading
	handover   bool
	term       atomic.Pointer[context.Context] // the current (or last) term of leadership
	byes       sync.WaitGroup                  // far-end BYEs being committed before their 200 (leg.onBye)
	pending    sync.Map                        // Via branch of a predecessor's INVITE being adopted -> chan *sip.Response

	ua   *sipgo.UserAgent
	srv  *sipgo.Server
	udp  *net.UDPConn
	tcp  net.Listener
	tls  net.Listener
	host string // advertised host
	port int    // bound port

	ctx       context.Context // cancelled by Close: ends every call
	cancel    context.CancelFunc
	mu        sync.Mutex
	closed    bool
	calls     sync.WaitGroup
	serve     sync.WaitGroup
	closeOnce sync.Once
}

// trunk is one configured destination with its limits.
type trunk struct {
	config.SIPTrunk
	transport string // "UDP", "TCP" or "TLS"
	limiter   *rate.Limiter
	active    atomic.Int64
	cli       *sipgo.Client
	contact   sip.ContactHeader
}

func (t *trunk) acquire() bool {
	if t.MaxCalls <= 0 {
		t.active.Add(1)
		return true
	}
	for {
		n := t.active.Load()
		if n >= int64(t.MaxCalls) {
			return false
		}
		if t.active.CompareAndSwap(n, n+1) {
			return true
		}
	}
}

// New binds the listen address and starts the user agent.
func New(o Options) (_ *Backend, err error) {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	listen := o.SIP.Listen
	if o.Listen != "" {
		listen = o.Listen
	}
	outcomes, err := newOutcomeTable(o.SIP.Outcomes)
	if err != nil {
		return nil, err
	}
	b := &Backend{cfg: o.SIP, log: o.Logger.With("component", "sip"), outcomes: outcomes, byTenant: map[string]*trunk{}, m: newMetrics(o.Registerer), ports: o.ServerPorts,
		svcAddr: o.SIP.ServiceAddr, handover: o.Handover && o.SIP.ServiceAddr != ""}
	b.ctx, b.cancel = context.WithCancel(context.Background())
	defer func() {
		if err != nil {
			_ = b.Close()
		}
	}()

	addr, err := net.ResolveUDPAddr("udp", listen)
	if err != nil {
		return nil, fmt.Errorf("sipcall: telephony.sip.listen %q: %w", listen, err)
	}
	network := "udp"
	if addr.IP.To4() != nil {
		network = "udp4" // so that the socket's address is the one requests are sent from
	}
	if b.udp, err = net.ListenUDP(network, addr); err != nil {
		return nil, fmt.Errorf("sipcall: listen %s: %w", listen, err)
	}
	_ = b.udp.SetReadBuffer(socketBuffer)
	_ = b.udp.SetWriteBuffer(socketBuffer)
	bound := b.udp.LocalAddr().(*net.UDPAddr)
	b.port = bound.Port

	var uaOpts []sipgo.UserAgentOption
	if ua := o.SIP.UserAgent; ua != "" {
		uaOpts = append(uaOpts, sipgo.WithUserAgent(ua))
	}
	needTCP, needTLS := false, false
	for _, tc := range o.SIP.Trunks {
		needTCP = needTCP || tc.Transport == "tcp"
		needTLS = needTLS || tc.Transport == "tls"
	}
	for _, v := range o.SIP.IVR {
		needTCP = needTCP || v.Transport == "tcp"
	}
	if needTLS {
		tc, err := tlsClientConfig(o.SIP.TLSCAFile)
		if err != nil {
			return nil, err
		}
		uaOpts = append(uaOpts, sipgo.WithUserAgenTLSConfig(tc))
	}
	b.host = advertisedHost(o.SIP.Advertise, bound.IP, o.SIP.Trunks)
	advPort := b.port
	if h, p, err := net.SplitHostPort(o.SIP.Advertise); err == nil {
		b.host = h
		advPort, _ = strconv.Atoi(p)
	}
	if b.svcAddr != "" {
		// Every dialog's Via and Contact name the service address, which
		// the leader holds.
		h, p, _ := net.SplitHostPort(b.svcAddr)
		b.host = h
		advPort, _ = strconv.Atoi(p)
	}
	uaOpts = append(uaOpts, sipgo.WithUserAgentHostname(b.host),
		sipgo.WithUserAgentTransactionLayerOptions(sip.WithTransactionLayerUnhandledResponseHandler(b.onStray)))
	if b.ua, err = sipgo.NewUA(uaOpts...); err != nil {
		return nil, fmt.Errorf("sipcall: user agent: %w", err)
	}
	if b.srv, err = sipgo.NewServer(b.ua, sipgo.WithServerLogger(b.log)); err != nil {
		return nil, fmt.Errorf("sipcall: server: %w", err)
	}
	if needTCP {
		if b.tcp, err = net.Listen("tcp", net.JoinHostPort(bound.IP.String(), strconv.Itoa(b.port))); err != nil {
			return nil, fmt.Errorf("sipcall: listen tcp: %w", err)
		}
	}
	tlsPort := 0 // the TLS listener's advertised port
	if needTLS && o.SIP.TLSCertFile != "" {
		cert, err := tls.LoadX509KeyPair(o.SIP.TLSCertFile, o.SIP.TLSKeyFile)
		if err != nil {
			return nil, fmt.Errorf("sipcall: telephony.sip.tls_cert_file: %w", err)
		}
		port := 0
		if addr.Port != 0 {
			port = addr.Port + 1
		}
		if b.tls, err = tls.Listen("tcp", net.JoinHostPort(bound.IP.String(), strconv.Itoa(port)), &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}); err != nil {
			return nil, fmt.Errorf("sipcall: listen tls: %w", err)
		}
		tlsPort = b.tls.Addr().(*net.TCPAddr).Port
		if advPort != b.port {
			tlsPort = advPort + 1
		}
	}

	// UDP is sent from the listening socket (with a service address: from
	// that, bound while leading); TCP and TLS from connections of their own.
	connAddr := b.udp.LocalAddr().String()
	if b.svcAddr != "" {
		connAddr = b.svcAddr
	}
	udpClient, err := sipgo.NewClient(b.ua, sipgo.WithClientHostname(b.host), sipgo.WithClientPort(advPort),
		sipgo.WithClientConnectionAddr(connAddr), sipgo.WithClientLogger(b.log))
	if err != nil {
		return nil, fmt.Errorf("sipcall: client: %w", err)
	}
	streamClient, err := sipgo.NewClient(b.ua, sipgo.WithClientHostname(b.host), sipgo.WithClientLogger(b.log))
	if err != nil {
		return nil, fmt.Errorf("sipcall: client: %w", err)
	}
	clients := map[string]*sipgo.Client{}
	contacts := map[string]sip.ContactHeader{}
	for _, tp := range []string{"UDP", "TCP", "TLS"} {
		cli, contact := udpClient, sip.ContactHeader{Address: sip.Uri{Scheme: "sip", User: "dialtone", Host: b.host, Port: advPort}}
		if tp != "UDP" {
			cli = streamClient
			contact.Address.UriParams = sip.NewParams()
			contact.Address.UriParams.Add("transport", strings.ToLower(tp))
		}
		if tp == "TLS" && tlsPort != 0 {
			contact.Address.Port = tlsPort
		}
		clients[tp], contacts[tp] = cli, contact
	}

	for _, tc := range o.SIP.Trunks {
		t := &trunk{SIPTrunk: tc, transport: strings.ToUpper(tc.Transport)}
		if t.transport == "" {
			t.transport = "UDP"
		}
		if t.RequestURI == "" {
			t.RequestURI = "sip:{prefix}{telnum}@{address}"
		}
		if tc.CAPS > 0 {
			t.limiter = rate.NewLimiter(rate.Limit(tc.CAPS), 1)
		}
		t.cli, t.contact = clients[t.transport], contacts[t.transport]
		b.trunks = append(b.trunks, t)
		if len(tc.Tenants) == 0 || slices.Contains(tc.Tenants, "*") {
			if b.fallback == nil {
				b.fallback = t
			}
		}
		for _, tn := range tc.Tenants {
			if tn != "*" {
				b.byTenant[tn] = t
			}
		}
	}

	for _, v := range o.SIP.IVR {
		b.ivr = append(b.ivr, newIVRPool(v, clients, contacts))
	}

	for _, m := range []sip.RequestMethod{sip.BYE, sip.INVITE, sip.ACK, sip.UPDATE, sip.INFO, sip.OPTIONS} {
		b.srv.OnRequest(m, b.onRequest)
	}
	b.srv.OnNoRoute(b.onRequest)
	b.serve.Add(1)
	go func() {
		defer b.serve.Done()
		_ = b.srv.ServeUDP(b.udp)
	}()
	if b.svcAddr != "" {
		b.svcClient, b.svcContact = clients["UDP"], contacts["UDP"]
		connAddr = b.udp.LocalAddr().String()
	}
	// Requests may be sent only once the socket is in the transport layer's
	// pool; before that sipgo would try to bind a second socket.
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
		if c, _ := b.ua.TransportLayer().GetConnection("udp", connAddr); c != nil {
			break
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("sipcall: UDP listener %s not serving", connAddr)
		}
	}
	if b.tcp != nil {
		b.serve.Add(1)
		go func() {
			defer b.serve.Done()
			_ = b.srv.ServeTCP(b.tcp)
		}()
	}
	if b.tls != nil {
		b.serve.Add(1)
		go func() {
			defer b.serve.Done()
			_ = b.srv.ServeTLS(b.tls)
		}()
	}
	b.log.Info("SIP backend listening", "addr", b.udp.LocalAddr().String(), "advertise", net.JoinHostPort(b.host, strconv.Itoa(advPort)), "trunks", len(b.trunks))
	return b, nil
}

func tlsClientConfig(caFile string) (*tls.Config, error) {
	c := &tls.Config{MinVersion: tls.VersionTLS12}
	if caFile == "" {
		return c, nil
	}
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("sipcall: telephony.sip.tls_ca_file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("sipcall: telephony.sip.tls_ca_file %s: no PEM certificate", caFile)
	}
	c.RootCAs = pool
	return c, nil
}

// advertisedHost is the host put in Via, Contact and From: the configured
// one, else the listen IP, else (listening on every interface) the local
// address the system would use toward the first trunk.
func advertisedHost(advertise string, bound net.IP, trunks []config.SIPTrunk) string {
	if advertise != "" {
		if h, _, err := net.SplitHostPort(advertise); err == nil {
			return h
		}
		return advertise
	}
	if !bound.IsUnspecified() {
		return bound.String()
	}
	if len(trunks) > 0 {
		if c, err := net.Dial("udp", trunks[0].Address); err == nil {
			defer c.Close()
			return c.LocalAddr().(*net.UDPAddr).IP.String()
		}
	}
	return "127.0.0.1"
}

// Addr is the bound UDP address.
func (b *Backend) Addr() string { return b.udp.LocalAddr().String() }

// InProgress is the number of calls in progress (dialogs not ended).
func (b *Backend) InProgress() int {
	n := 0
	for _, t := range b.trunks {
		n += int(t.active.Load())
	}
	return n
}

// trunkPorts is the capacity the trunk serving a tenant states (its ports
// setting, at most its max_calls) and its calls in progress; ok is false
// when it states none (see Ports, ports.go).
func (b *Backend) trunkPorts(tenant string) (total, inUse uint32, ok bool) {
	t := b.route(tenant)
	if t == nil || t.Ports <= 0 {
		return 0, 0, false
	}
	n := t.Ports
	if t.MaxCalls > 0 {
		n = min(n, t.MaxCalls)
	}
	return uint32(n), uint32(max(t.active.Load(), 0)), true
}

func (b *Backend) route(tenant string) *trunk {
	if t, ok := b.byTenant[tenant]; ok {
		return t
	}
	return b.fallback
}

// invite builds the INVITE of one call.
func (b *Backend) invite(t *trunk, c telephony.Call) (*sip.Request, error) {
	prefix := b.cfg.TenantPrefix[c.Tenant] + t.Prefix
	host, _, _ := net.SplitHostPort(t.Address)
	uri := strings.NewReplacer(
		"{telnum}", c.Telnum, "{prefix}", prefix, "{address}", t.Address, "{host}", host,
		"{tenant}", c.Tenant, "{ivr_profile}", c.IVRProfile,
	).Replace(t.RequestURI)
	var recipient sip.Uri
	if err := sip.ParseUri(uri, &recipient); err != nil {
		return nil, fmt.Errorf("sipcall: trunk %s: Request-URI %q: %w", t.Name, uri, err)
	}
	route := ""
	if net.JoinHostPort(recipient.Host, strconv.Itoa(recipient.Port)) != t.Address {
		// The trunk is the next hop for a Request-URI elsewhere: a
		// pre-loaded route, which CANCEL carries too.
		route = t.Address
	}
	return b.buildInvite(recipient, t.transport, route, t.contact, c), nil
}

// buildInvite is an INVITE of call c (either leg) with Dialtone's headers
// and no body; route, when set, is the next hop (a pre-loaded Route).
func (b *Backend) buildInvite(recipient sip.Uri, transport, route string, contact sip.ContactHeader, c telephony.Call) *sip.Request {
	req := sip.NewRequest(sip.INVITE, recipient)
	req.SetTransport(transport)
	callID := sip.CallIDHeader(sip.GenerateTagN(24) + "@" + b.host)
	req.AppendHeader(&callID)
	req.AppendHeader(&sip.CSeqHeader{SeqNo: 1, MethodName: sip.INVITE})
	mf := sip.MaxForwardsHeader(70)
	req.AppendHeader(&mf)
	if route != "" {
		req.AppendHeader(sip.NewHeader("Route", "<sip:"+route+";lr>"))
	}
	user := c.Ani
	if user == "" {
		user = "anonymous"
	}
	from := &sip.FromHeader{DisplayName: c.Ani, Address: sip.Uri{Scheme: "sip", User: user, Host: b.host}, Params: sip.NewParams()}
	from.Params.Add("tag", sip.GenerateTagN(16))
	req.AppendHeader(from)
	req.AppendHeader(&sip.ToHeader{Address: sip.Uri{Scheme: recipient.Scheme, User: recipient.User, Host: recipient.Host, Port: recipient.Port}})
	req.AppendHeader(&contact)
	req.AppendHeader(sip.NewHeader("Allow", allowed))
	req.AppendHeader(sip.NewHeader("Supported", "timer"))
	if d := b.cfg.SessionExpires.Duration; d > 0 {
		req.AppendHeader(sip.NewHeader("Session-Expires", strconv.Itoa(int(d/time.Second))+";refresher=uac"))
	}
	if b.cfg.PAssertedIdentity && c.Ani != "" {
		req.AppendHeader(sip.NewHeader("P-Asserted-Identity", "<sip:"+c.Ani+"@"+b.host+">"))
	}
	if ua := b.cfg.UserAgent; ua != "" {
		req.AppendHeader(sip.NewHeader("User-Agent", ua))
	}
	add := func(name, v string) {
		if name != "" && v != "" {
			req.AppendHeader(sip.NewHeader(name, v))
		}
	}
	add(b.cfg.RequestIDHeader, c.RequestID)
	add(b.cfg.TenantHeader, c.Tenant)
	add(b.cfg.IVRProfileHeader, c.IVRProfile)
	add(b.cfg.CallUUIDHeader, c.CallUUID)
	if p, cpd := b.cfg.CPDHeaderPrefix, c.Cpd; p != "" && cpd != nil {
		if cpd.Record != nil {
			add(p+"Record", strconv.FormatBool(cpd.GetRecord()))
		}
		if cpd.PostConnectTimeoutMs != nil {
			add(p+"PostConnectTimeout", strconv.FormatInt(cpd.GetPostConnectTimeoutMs(), 10)+"ms")
		}
		if cpd.RnaTimeoutMs != nil {
			add(p+"RNATimeout", strconv.FormatInt(cpd.GetRnaTimeoutMs(), 10)+"ms")
		}
		if cpd.Preconnect != nil {
			add(p+"Preconnect", strconv.FormatBool(cpd.GetPreconnect()))
		}
		add(p+"Detect", cpd.GetDetect())
	}
	req.SetBody(nil)
	return req
}

// Close ends every call (CANCEL or BYE), waits for them, then stops the
// user agent and closes the sockets. Idempotent.
func (b *Backend) Close() error {
	b.closeOnce.Do(func() {
		b.mu.Lock()
		b.closed = true
		b.mu.Unlock()
		b.cancel()
		done := make(chan struct{})
		go func() { b.calls.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(2 * byeTimeout):
			b.log.Warn("SIP calls still ending at close", "in_progress", b.InProgress())
		}
		b.byes.Wait() // bounded: the calls' contexts have ended
		b.release()
		if b.srv != nil {
			_ = b.srv.Close()
		}
		if b.ua != nil {
			_ = b.ua.Close()
		}
		if b.udp != nil {
			_ = b.udp.Close()
		}
		if b.tcp != nil {
			_ = b.tcp.Close()
		}
		if b.tls != nil {
			_ = b.tls.Close()
		}
		b.serve.Wait()
	})
	return nil
}
