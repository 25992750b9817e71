package config

import (
	"strings"
	"testing"
	"time"
)

const sipBase = `
[telephony]
backend = "sip"
[telephony.sip]
listen = "127.0.0.1:5070"
`

const sipTrunk = `
[[telephony.sip.trunk]]
name = "carrier"
address = "10.0.0.5:5060"
`

func TestSIPConfig(t *testing.T) {
	cfg, err := Parse(threeNodes + sipBase + `
ring_timeout = "20s"
[telephony.sip.outcomes]
"480" = "busy/NotAvailable"
[telephony.sip.tenant_prefix]
acme = "9"
[[telephony.sip.trunk]]
name = "carrier"
address = "10.0.0.5:5060"
transport = "tcp"
tenants = ["acme"]
caps = 20
max_calls = 100
ports = 100
username = "u"
password = "p"
`)
	if err != nil {
		t.Fatal(err)
	}
	s := cfg.Telephony.SIP
	if s.RingTimeout.Duration != 20*time.Second || s.MaxCallDuration.Duration != time.Hour || s.RequestIDHeader != "X-Dialtone-Request-ID" ||
		len(s.Trunks) != 1 || s.Trunks[0].Ports != 100 || s.Trunks[0].Transport != "tcp" || s.TenantPrefix["acme"] != "9" {
		t.Fatalf("parsed %+v", s)
	}
	if s.IVRAnswerTimeout.Duration != 10*time.Second || s.MinConnected.Duration != time.Second {
		t.Fatalf("3PCC defaults: ivr_answer_timeout %s min_connected %s", s.IVRAnswerTimeout.Duration, s.MinConnected.Duration)
	}
	cfg, err = Parse(threeNodes + sipBase + `min_connected = "3s"
[telephony.sip.outcomes]
"event:short-call" = "temporary/Abandoned"
[[telephony.sip.ivr]]
profile = "Sales"
tenants = ["acme"]
uri = "sip:{ivr_profile}@{server};transport=udp"
servers = ["10.0.1.1:5060", "10.0.1.2:5060"]
ports = 30
` + sipTrunk)
	if err != nil {
		t.Fatal(err)
	}
	if v := cfg.Telephony.SIP.IVR; len(v) != 1 || v[0].Profile != "Sales" || len(v[0].Servers) != 2 || v[0].Ports != 30 || cfg.Telephony.SIP.MinConnected.Duration != 3*time.Second {
		t.Fatalf("parsed IVR %+v", v)
	}
}

func TestSIPValidationNamesTheKey(t *testing.T) {
	for _, tc := range []struct{ name, sip, trunk, want string }{
		{"no trunk", "", "", "telephony.sip.trunk"},
		{"bad listen", "listen = \"nowhere\"\n", sipTrunk, "telephony.sip.listen"},
		{"bad ring timeout", "ring_timeout = \"1ms\"\n", sipTrunk, "telephony.sip.ring_timeout"},
		{"tls cert without key", "tls_cert_file = \"c.pem\"\n", sipTrunk, "telephony.sip.tls_key_file"},
		{"bad header", "request_id_header = \"X Bad\"\n", sipTrunk, "telephony.sip.request_id_header"},
		{"bad outcome key", "[telephony.sip.outcomes]\n\"busy\" = \"busy/Busy\"\n", sipTrunk, "telephony.sip.outcomes.busy"},
		{"bad outcome class", "[telephony.sip.outcomes]\n\"486\" = \"maybe/Busy\"\n", sipTrunk, "telephony.sip.outcomes.486"},
		{"colon in reason", "[telephony.sip.outcomes]\n\"486\" = \"busy/A:B\"\n", sipTrunk, "telephony.sip.outcomes.486"},
		{"bad tenant prefix", "[telephony.sip.tenant_prefix]\nacme = \"9x\"\n", sipTrunk, "telephony.sip.tenant_prefix.acme"},
		{"bad address", "", "[[telephony.sip.trunk]]\nname = \"a\"\naddress = \"10.0.0.5\"\n", "telephony.sip.trunk[0].address"},
		{"bad transport", "", sipTrunk + "transport = \"sctp\"\n", "telephony.sip.trunk[0].transport"},
		{"bad uri", "", sipTrunk + "request_uri = \"tel:{telnum}\"\n", "telephony.sip.trunk[0].request_uri"},
		{"negative caps", "", sipTrunk + "caps = -1.0\n", "telephony.sip.trunk[0].caps"},
		{"negative ports", "", sipTrunk + "ports = -1\n", "telephony.sip.trunk[0].ports"},
		{"password without user", "", sipTrunk + "password = \"x\"\n", "telephony.sip.trunk[0].username"},
		{"duplicate name", "", sipTrunk + sipTrunk, "telephony.sip.trunk[1].name"},
		{"ivr without servers", "", sipTrunk + "[[telephony.sip.ivr]]\nprofile = \"Sales\"\n", "telephony.sip.ivr[0].servers"},
		{"ivr bad server", "", sipTrunk + "[[telephony.sip.ivr]]\nservers = [\"ms1\"]\n", "telephony.sip.ivr[0].servers[0]"},
		{"ivr bad uri", "", sipTrunk + "[[telephony.sip.ivr]]\nservers = [\"ms1:5060\"]\nuri = \"sip:app@ms1\"\n", "telephony.sip.ivr[0].uri"},
		{"ivr tls", "", sipTrunk + "[[telephony.sip.ivr]]\nservers = [\"ms1:5060\"]\ntransport = \"tls\"\n", "telephony.sip.ivr[0].transport"},
		{"ivr duplicate", "", sipTrunk + "[[telephony.sip.ivr]]\nservers = [\"ms1:5060\"]\n[[telephony.sip.ivr]]\nprofile = \"*\"\nservers = [\"ms2:5060\"]\n", "telephony.sip.ivr[1].tenants"},
		{"ivr negative ports", "", sipTrunk + "[[telephony.sip.ivr]]\nservers = [\"ms1:5060\"]\nports = -2\n", "telephony.sip.ivr[0].ports"},
		{"ivr answer timeout", "ivr_answer_timeout = \"40s\"\n", sipTrunk, "telephony.sip.ivr_answer_timeout"},
		{"floating without address", "service_addr_dev = \"auto\"\n", sipTrunk, "telephony.sip.service_addr_dev"},
		{"floating on a name", "service_addr = \"sip.example:5060\"\nservice_addr_dev = \"eth0\"\n", sipTrunk, "telephony.sip.service_addr_dev"},
		{"bad event key", "[telephony.sip.outcomes]\n\"event:nope\" = \"busy/B\"\n", sipTrunk, "telephony.sip.outcomes.event:nope"},
		{"tenant on two trunks", "", sipTrunk + "tenants = [\"acme\"]\n[[telephony.sip.trunk]]\nname = \"b\"\naddress = \"10.0.0.6:5060\"\ntenants = [\"acme\"]\n", "telephony.sip.trunk[1].tenants[0]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse(threeNodes + sipBase + tc.sip + tc.trunk)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error = %v, want it to name %q", err, tc.want)
			}
		})
	}
	_, err := Parse(strings.Replace(threeNodes, "gossip = \"127.0.0.1:7946\"", "gossip = \"127.0.0.1:7946\"\nsip = \"bad\"", 1) + sipBase + sipTrunk)
	if err == nil || !strings.Contains(err.Error(), "node[0].sip") {
		t.Fatalf("node sip: %v", err)
	}
	_, err = Parse(threeNodes + "[telephony]\nbackend = \"h323\"\n")
	if err == nil || !strings.Contains(err.Error(), "telephony.backend") {
		t.Fatalf("backend: %v", err)
	}
}
