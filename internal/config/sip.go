package config

import (
	"fmt"
	"net"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// SIP configures the SIP call backend ([telephony.sip], used with
// telephony.backend = "sip"). See docs/sip.md.
type SIP struct {
	// Listen is the local address INVITEs are sent from and in-dialog
	// requests (BYE) are received on, over UDP and TCP. A [[node]]'s sip
	// key overrides it per node.
	Listen string `toml:"listen"`
	// Advertise is the host (or host:port) put in Via, Contact and From
	// when it differs from the listen address (NAT, 0.0.0.0).
	Advertise string `toml:"advertise"`
	// UserAgent is the User-Agent header.
	UserAgent string `toml:"user_agent"`
	// RingTimeout: a call not answered within this is cancelled (CANCEL)
	// and ends as no answer, unless the request's cpd.rna_timeout says
	// otherwise.
	RingTimeout Duration `toml:"ring_timeout"`
	// MaxCallDuration: an answered call is hung up (BYE) after this. 0
	// means no limit.
	MaxCallDuration Duration `toml:"max_call_duration"`
	// PAssertedIdentity adds a P-Asserted-Identity header with the ANI.
	PAssertedIdentity bool `toml:"p_asserted_identity"`
	// TLSCAFile verifies trunks reached over TLS; the system roots when
	// empty.
	TLSCAFile string `toml:"tls_ca_file"`
	// TLSCertFile and TLSKeyFile, when set, make Dialtone listen for TLS
	// (on the listen port + 1) so a far end can open a connection for
	// in-dialog requests; without them it must reuse Dialtone's.
	TLSCertFile string `toml:"tls_cert_file"`
	TLSKeyFile  string `toml:"tls_key_file"`
	// Header names the far end reads: the request id, tenant, IVR profile
	// and call UUID, and the prefix of the CPD headers
	// (<prefix>Record, <prefix>RNATimeout, ...). An empty name leaves the
	// header out.
	RequestIDHeader  string `toml:"request_id_header"`
	TenantHeader     string `toml:"tenant_header"`
	IVRProfileHeader string `toml:"ivr_profile_header"`
	CallUUIDHeader   string `toml:"call_uuid_header"`
	CPDHeaderPrefix  string `toml:"cpd_header_prefix"`
	// DetectionHeader is the header in which the far end reports what
	// answered (human, machine, fax) on the 200 OK or a final response.
	DetectionHeader string `toml:"detection_header"`
	// Outcomes overrides entries of the outcome table: a SIP status code
	// ("486"), a Q.850 cause from a Reason header ("q850:1") or a detection
	// value ("detect:machine"), mapped to "class/Reason" with class one of
	// success, busy, temporary, permanent, internal.
	Outcomes map[string]string `toml:"outcomes"`
	// TenantPrefix is a dial prefix per tenant, put before the telnum in
	// the Request-URI (before the trunk's own prefix).
	TenantPrefix map[string]string `toml:"tenant_prefix"`
	// Trunks are the gateways, trunks or media servers calls are sent to.
	Trunks []SIPTrunk `toml:"trunk"`
	// IVR maps IVR profiles to applications on media servers: a call whose
	// tenant and profile match an entry is connected to that application
	// by third-party call control (RFC 3725); other calls are direct (the
	// trunk's far end applies the treatment). See docs/sip.md.
	IVR []SIPIVR `toml:"ivr"`
	// IVRAnswerTimeout bounds the IVR leg's INVITE, which holds the
	// answered callee's ACK: keep it well below 32 s (64*T1), after which
	// the callee gives up on the ACK.
	IVRAnswerTimeout Duration `toml:"ivr_answer_timeout"`
	// MinConnected: a call the far end (callee or media server) hangs up
	// within this of being connected is not a success (ShortCall). 0
	// disables the check.
	MinConnected Duration `toml:"min_connected"`
	// ServiceAddr is the cluster's SIP service address (host:port, UDP):
	// the address in every dialog's Via and Contact, bound only by the
	// leader and released when it stops leading, so that a new leader
	// receives the far ends' in-dialog requests and adopts the calls its
	// predecessor left up (docs/sip.md, "Failover"). On one host any
	// 127.x address works; across hosts it is a floating IP that the
	// leader adds (ServiceAddrUp). Empty: each node uses its own address
	// and calls do not survive a failover.
	ServiceAddr string `toml:"service_addr"`
	// ServiceAddrUp and ServiceAddrDown, when set, are run (argv, no
	// shell; {addr} is the service address's host) before the leader
	// binds the service address and after it released it: e.g.
	// ["ip", "addr", "add", "{addr}/32", "dev", "eth0"] (needs
	// CAP_NET_ADMIN).
	ServiceAddrUp   []string `toml:"service_addr_up"`
	ServiceAddrDown []string `toml:"service_addr_down"`
	// ServiceAddrDev, when set, makes the service address a floating IP
	// that Dialtone moves itself (Linux, CAP_NET_ADMIN and CAP_NET_RAW):
	// the leader adds it to this interface (on its subnet's prefix) and
	// sends a gratuitous ARP before binding, and removes it after
	// releasing. "auto" picks the interface already on the address's
	// subnet. An alternative to ServiceAddrUp/Down with `ip`, for images
	// that have no `ip` (the FROM-scratch image).
	ServiceAddrDev string `toml:"service_addr_dev"`
	// SessionExpires is the session interval Dialtone asks for (RFC 4028
	// Session-Expires, refresher uac: Dialtone refreshes at half of it),
	// so that a far end whose dialog nobody refreshes any more (a leader
	// died and no one adopted its calls) ends it by itself. 0: no
	// session timer. At least 90s (the RFC's minimum Min-SE).
	SessionExpires Duration `toml:"session_expires"`
}

// SIPIVR is one IVR application on a pool of media servers.
type SIPIVR struct {
	// Profile is the IVR profile of the requests this entry serves; "*"
	// (or empty) any profile not named by another entry.
	Profile string `toml:"profile"`
	// Tenants this entry serves; empty or "*": every tenant.
	Tenants []string `toml:"tenants"`
	// URI is the application's Request-URI template: {ivr_profile},
	// {server} (the chosen media server's host:port), {host}, {tenant}.
	// Default "sip:{ivr_profile}@{server}".
	URI string `toml:"uri"`
	// Servers are the media servers (host:port) the application runs on;
	// each IVR leg goes to the one with the most free ports.
	Servers []string `toml:"servers"`
	// Ports bounds the IVR legs per server when no port-usage report of
	// it is known (0: no bound). A server that reports is bounded by its
	// reports, and a stale one gets no legs.
	Ports int `toml:"ports"`
	// Transport is udp (default) or tcp.
	Transport string `toml:"transport"`
}

// SIPTrunk is one destination for calls.
type SIPTrunk struct {
	Name string `toml:"name"`
	// Address is the next hop, host:port.
	Address string `toml:"address"`
	// Transport is udp (default), tcp or tls.
	Transport string `toml:"transport"`
	// Tenants whose calls go to this trunk; empty or "*": every tenant not
	// named by another trunk.
	Tenants []string `toml:"tenants"`
	// RequestURI is the Request-URI template: {telnum}, {prefix} (tenant
	// prefix then trunk prefix), {address} (this trunk's address), {host},
	// {tenant}, {ivr_profile}. Default "sip:{prefix}{telnum}@{address}".
	RequestURI string `toml:"request_uri"`
	// Prefix is put before the telnum (after the tenant prefix).
	Prefix string `toml:"prefix"`
	// CAPS limits call attempts per second on this trunk (0: no limit
	// beyond the dialer's pacing).
	CAPS float64 `toml:"caps"`
	// MaxCalls limits calls in progress on this trunk (0: no limit); a call
	// beyond it is refused before it is sent (recorded as PortsFull).
	MaxCalls int `toml:"max_calls"`
	// Ports states the trunk's capacity to the dialer's port budget, for
	// trunks nothing reports port usage for: each tenant of the trunk gets
	// this many ports, less the trunk's calls in progress. 0: the port
	// budget comes from port-usage reports only.
	Ports int `toml:"ports"`
	// Username and Password answer digest challenges (401/407).
	Username string `toml:"username"`
	Password string `toml:"password"`
}

// SIPOutcomeClasses are the class names of an outcome table entry.
var SIPOutcomeClasses = []string{"success", "busy", "temporary", "permanent", "internal"}

func defaultSIP() SIP {
	return SIP{
		Listen:           "0.0.0.0:5060",
		UserAgent:        "Dialtone",
		RingTimeout:      Duration{30 * time.Second},
		MaxCallDuration:  Duration{time.Hour},
		RequestIDHeader:  "X-Dialtone-Request-ID",
		TenantHeader:     "X-Dialtone-Tenant",
		IVRProfileHeader: "X-Dialtone-IVR-Profile",
		CallUUIDHeader:   "X-Dialtone-Call-UUID",
		CPDHeaderPrefix:  "X-Dialtone-CPD-",
		DetectionHeader:  "X-Dialtone-Detection",
		IVRAnswerTimeout: Duration{10 * time.Second},
		MinConnected:     Duration{time.Second},
	}
}

var (
	headerName   = regexp.MustCompile(`^[A-Za-z0-9!%*_+.'~-]*$`)
	outcomeKey   = regexp.MustCompile(`^([1-6][0-9][0-9]|q850:[0-9]{1,3}|detect:[a-z0-9_-]+|event:(callee-hangup|ivr-failed|short-call|no-offer))$`)
	reasonString = regexp.MustCompile(`^[A-Za-z0-9 _.()-]{1,64}$`)
)

// ParseSIPOutcome splits an outcome table value "class/Reason".
func ParseSIPOutcome(v string) (class, reason string, err error) {
	class, reason, ok := strings.Cut(v, "/")
	class, reason = strings.TrimSpace(class), strings.TrimSpace(reason)
	if !ok || !slices.Contains(SIPOutcomeClasses, class) {
		return "", "", fmt.Errorf("%q must be \"class/Reason\" with class one of %s", v, strings.Join(SIPOutcomeClasses, ", "))
	}
	if !reasonString.MatchString(reason) {
		return "", "", fmt.Errorf("%q: the reason must be 1-64 letters, digits, spaces or _.()- (no ':', the Status separator)", v)
	}
	return class, reason, nil
}

func (c *Config) validateSIP(bad func(key, format string, args ...any)) {
	s := c.Telephony.SIP
	if _, _, err := net.SplitHostPort(s.Listen); err != nil {
		bad("telephony.sip.listen", "%q is not a host:port address", s.Listen)
	}
	for i, n := range c.Nodes {
		if n.SIP == "" {
			continue
		}
		if _, _, err := net.SplitHostPort(n.SIP); err != nil {
			bad(fmt.Sprintf("node[%d].sip", i), "%q is not a host:port address", n.SIP)
		}
	}
	if (s.TLSCertFile == "") != (s.TLSKeyFile == "") {
		bad("telephony.sip.tls_key_file", "set both tls_cert_file and tls_key_file, or neither")
	}
	if strings.ContainsAny(s.Advertise, " <>;@") {
		bad("telephony.sip.advertise", "%q must be a host or host:port", s.Advertise)
	}
	if s.RingTimeout.Duration < 100*time.Millisecond || s.RingTimeout.Duration > 10*time.Minute {
		bad("telephony.sip.ring_timeout", "%s is outside 100ms..10m", s.RingTimeout.Duration)
	}
	if s.MaxCallDuration.Duration != 0 && s.MaxCallDuration.Duration < 100*time.Millisecond {
		bad("telephony.sip.max_call_duration", "%s is below 100ms (0 means no limit)", s.MaxCallDuration.Duration)
	}
	for _, h := range []struct{ key, v string }{
		{"request_id_header", s.RequestIDHeader}, {"tenant_header", s.TenantHeader},
		{"ivr_profile_header", s.IVRProfileHeader}, {"call_uuid_header", s.CallUUIDHeader},
		{"cpd_header_prefix", s.CPDHeaderPrefix}, {"detection_header", s.DetectionHeader},
	} {
		if !headerName.MatchString(h.v) {
			bad("telephony.sip."+h.key, "%q is not a valid SIP header name", h.v)
		}
	}
	for _, k := range slices.Sorted(mapKeys(s.Outcomes)) {
		if !outcomeKey.MatchString(k) {
			bad("telephony.sip.outcomes."+k, "the key must be a SIP status code (\"486\"), \"q850:<cause>\", \"detect:<value>\" or \"event:\" callee-hangup, ivr-failed, short-call or no-offer")
			continue
		}
		if _, _, err := ParseSIPOutcome(s.Outcomes[k]); err != nil {
			bad("telephony.sip.outcomes."+k, "%v", err)
		}
	}
	for _, t := range slices.Sorted(mapKeys(s.TenantPrefix)) {
		if !dialString.MatchString(s.TenantPrefix[t]) {
			bad("telephony.sip.tenant_prefix."+t, "%q may hold only digits, '+', '*' and '#'", s.TenantPrefix[t])
		}
	}
	c.validateSIPIVR(bad)
	if len(s.Trunks) == 0 {
		bad("telephony.sip.trunk", "at least one [[telephony.sip.trunk]] is required with backend \"sip\"")
	}
	names := map[string]bool{}
	tenants := map[string]string{}
	for i, t := range s.Trunks {
		p := fmt.Sprintf("telephony.sip.trunk[%d]", i)
		if !idPattern.MatchString(t.Name) {
			bad(p+".name", "%q must be 1-63 letters, digits, '.', '_' or '-'", t.Name)
		} else if names[t.Name] {
			bad(p+".name", "%q is used by another trunk", t.Name)
		}
		names[t.Name] = true
		if host, port, err := net.SplitHostPort(t.Address); err != nil || host == "" {
			bad(p+".address", "%q is not a host:port address", t.Address)
		} else if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			bad(p+".address", "%q: port must be 1..65535", t.Address)
		}
		switch t.Transport {
		case "", "udp", "tcp", "tls":
		default:
			bad(p+".transport", "%q must be udp, tcp or tls", t.Transport)
		}
		for j, tn := range t.Tenants {
			if tn == "*" {
				continue
			}
			if other, dup := tenants[tn]; dup {
				bad(fmt.Sprintf("%s.tenants[%d]", p, j), "tenant %q is already routed to trunk %q", tn, other)
			}
			tenants[tn] = t.Name
		}
		if t.RequestURI != "" && (!strings.HasPrefix(t.RequestURI, "sip:") && !strings.HasPrefix(t.RequestURI, "sips:") || !strings.Contains(t.RequestURI, "{telnum}")) {
			bad(p+".request_uri", "%q must start with sip: or sips: and contain {telnum}", t.RequestURI)
		}
		if !dialString.MatchString(t.Prefix) {
			bad(p+".prefix", "%q may hold only digits, '+', '*' and '#'", t.Prefix)
		}
		if t.CAPS < 0 || t.CAPS > 100_000 {
			bad(p+".caps", "%g is outside 0..100000", t.CAPS)
		}
		if t.MaxCalls < 0 || t.MaxCalls > 1_000_000 {
			bad(p+".max_calls", "%d is outside 0..1000000", t.MaxCalls)
		}
		if t.Ports < 0 || t.Ports > 1_000_000 {
			bad(p+".ports", "%d is outside 0..1000000", t.Ports)
		}
		if t.Password != "" && t.Username == "" {
			bad(p+".username", "is required with a password")
		}
	}
}

func (c *Config) validateSIPIVR(bad func(key, format string, args ...any)) {
	s := c.Telephony.SIP
	if d := s.IVRAnswerTimeout.Duration; d < 100*time.Millisecond || d > 30*time.Second {
		bad("telephony.sip.ivr_answer_timeout", "%s is outside 100ms..30s (the callee waits at most 32 s for its ACK)", d)
	}
	if d := s.SessionExpires.Duration; d != 0 && (d < 90*time.Second || d > 24*time.Hour) {
		bad("telephony.sip.session_expires", "%s is outside 90s..24h (or 0: no session timer)", d)
	}
	if a := s.ServiceAddr; a != "" {
		if _, _, err := net.SplitHostPort(a); err != nil {
			bad("telephony.sip.service_addr", "%q is not host:port: %v", a, err)
		}
	}
	if s.ServiceAddrDev != "" {
		host, _, _ := net.SplitHostPort(s.ServiceAddr)
		if ip := net.ParseIP(host); ip == nil || ip.To4() == nil {
			bad("telephony.sip.service_addr_dev", "needs a service_addr with an IPv4 address, not %q", s.ServiceAddr)
		}
	}
	if d := s.MinConnected.Duration; d < 0 || d > time.Hour {
		bad("telephony.sip.min_connected", "%s is outside 0..1h", d)
	}
	seen := map[string]int{}
	for i, v := range s.IVR {
		p := fmt.Sprintf("telephony.sip.ivr[%d]", i)
		if v.Profile != "" && v.Profile != "*" && !idPattern.MatchString(v.Profile) {
			bad(p+".profile", "%q must be 1-63 letters, digits, '.', '_' or '-', or \"*\"", v.Profile)
		}
		tenants := v.Tenants
		if len(tenants) == 0 {
			tenants = []string{"*"}
		}
		prof := v.Profile
		if prof == "" {
			prof = "*"
		}
		for _, tn := range tenants {
			if j, dup := seen[prof+"\x00"+tn]; dup {
				bad(p+".tenants", "profile %q for tenant %q is already served by telephony.sip.ivr[%d]", prof, tn, j)
			}
			seen[prof+"\x00"+tn] = i
		}
		if v.URI != "" && (!strings.HasPrefix(v.URI, "sip:") && !strings.HasPrefix(v.URI, "sips:") || !strings.Contains(v.URI, "{server}")) {
			bad(p+".uri", "%q must start with sip: or sips: and contain {server}", v.URI)
		}
		if len(v.Servers) == 0 {
			bad(p+".servers", "at least one media server (host:port) is required")
		}
		for j, srv := range v.Servers {
			if host, port, err := net.SplitHostPort(srv); err != nil || host == "" {
				bad(fmt.Sprintf("%s.servers[%d]", p, j), "%q is not a host:port address", srv)
			} else if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
				bad(fmt.Sprintf("%s.servers[%d]", p, j), "%q: port must be 1..65535", srv)
			}
		}
		if v.Ports < 0 || v.Ports > 1_000_000 {
			bad(p+".ports", "%d is outside 0..1000000", v.Ports)
		}
		switch v.Transport {
		case "", "udp", "tcp":
		default:
			bad(p+".transport", "%q must be udp or tcp", v.Transport)
		}
	}
}

var dialString = regexp.MustCompile(`^[0-9+*#]*$`)

func mapKeys[V any](m map[string]V) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}
