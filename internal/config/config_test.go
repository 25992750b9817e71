package config

import (
	"os"
	"strings"
	"testing"
	"time"
)

const threeNodes = `
[cluster]
initial_voters = ["n1", "n2", "n3"]
[[node]]
id = "n1"
http = "127.0.0.1:8081"
grpc = "127.0.0.1:9081"
raft = "127.0.0.1:7081"
gossip = "127.0.0.1:7946"
[[node]]
id = "n2"
http = "127.0.0.1:8082"
grpc = "127.0.0.1:9082"
raft = "127.0.0.1:7082"
gossip = "127.0.0.1:7947"
[[node]]
id = "n3"
http = "127.0.0.1:8083"
grpc = "127.0.0.1:9083"
raft = "127.0.0.1:7083"
gossip = "127.0.0.1:7948"
`

func TestParseDefaults(t *testing.T) {
	cfg, err := Parse(threeNodes)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Cluster.HeartbeatTimeout.Duration != 500*time.Millisecond || cfg.Limits.MaxBulk != 1000 {
		t.Fatalf("defaults not applied: %+v", cfg)
	}
	n2, err := cfg.Node("n2")
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.JoinAddrs(n2); strings.Join(got, ",") != "127.0.0.1:7946,127.0.0.1:7948" {
		t.Fatalf("join addrs = %v", got)
	}
	if got := cfg.NodeDataDir(n2); got != "data/n2" {
		t.Fatalf("data dir = %q", got)
	}
	if _, err := cfg.Node("n9"); err == nil || !strings.Contains(err.Error(), `"n9"`) {
		t.Fatalf("unknown node error = %v", err)
	}
}

func TestExampleConfigIsValid(t *testing.T) {
	cfg, err := Load("../../cluster.example.toml")
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []string{"127.0.0.1:8081", "127.0.0.1:8082", "127.0.0.1:8083"} {
		if cfg.Nodes[i].HTTP != want {
			t.Errorf("node %d http = %s, want %s", i, cfg.Nodes[i].HTTP, want)
		}
	}
}

func TestValidationNamesTheKey(t *testing.T) {
	for _, tc := range []struct {
		name, edit, want string
	}{
		{"unknown key", "[cluster]\nbogus = 1\n", "unknown key cluster.bogus"},
		{"bad duration", "[cluster]\nheartbeat_timeout = \"fast\"\n", "heartbeat_timeout"},
		{"bad address", "[[node]]\nid=\"n4\"\nhttp=\"nope\"\ngrpc=\"127.0.0.1:1\"\nraft=\"127.0.0.1:2\"\ngossip=\"127.0.0.1:3\"\n", "node[3].http"},
		{"duplicate id", "[[node]]\nid=\"n1\"\nhttp=\"127.0.0.1:1\"\ngrpc=\"127.0.0.1:2\"\nraft=\"127.0.0.1:3\"\ngossip=\"127.0.0.1:4\"\n", "node[3].id"},
		{"duplicate address", "[[node]]\nid=\"n4\"\nhttp=\"127.0.0.1:8081\"\ngrpc=\"127.0.0.1:2\"\nraft=\"127.0.0.1:3\"\ngossip=\"127.0.0.1:4\"\n", "node[3].http"},
		{"bad bind", "[[node]]\nid=\"n4\"\nhttp=\"10.0.0.4:8080\"\ngrpc=\"10.0.0.4:9000\"\nraft=\"10.0.0.4:7000\"\ngossip=\"10.0.0.4:7946\"\ngrpc_bind=\"9000\"\n", "node[3].grpc_bind"},
		{"bad voter", "", "cluster.initial_voters[0]"},
		{"bad level", "[log]\nlevel = \"loud\"\n", "log.level"},
		{"bad bulk", "[limits]\nmax_bulk = 0\n", "limits.max_bulk"},
		{"bad port view", "[dialer]\nport_view = \"sampled\"\n", "dialer.port_view"},
		{"bad default tenant", "[port_usage]\ndefault_tenant = \"a b\"\n", "port_usage.default_tenant"},
		{"wrong type", "[limits]\nmax_bulk = \"many\"\n", "max_bulk"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			text := threeNodes + tc.edit
			if tc.name == "bad voter" {
				text = strings.Replace(threeNodes, `"n1", "n2"`, `"x1", "n2"`, 1)
			}
			// [cluster]/[limits] tables may not be repeated; splice edits in place.
			text = mergeTables(text)
			_, err := Parse(text)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error = %v, want it to name %q", err, tc.want)
			}
		})
	}
}

// mergeTables moves a trailing [cluster] edit's keys into the first [cluster]
// table so the test inputs stay valid TOML apart from the fault under test.
func mergeTables(text string) string {
	first := strings.Index(text, "[cluster]\n")
	last := strings.LastIndex(text, "[cluster]\n")
	if first == last {
		return text
	}
	edit := text[last+len("[cluster]\n"):]
	text = text[:last]
	return text[:first+len("[cluster]\n")] + edit + text[first+len("[cluster]\n"):]
}

func TestLoadMissingFile(t *testing.T) {
	_, err := Load(t.TempDir() + "/none.toml")
	if err == nil || !os.IsNotExist(unwrapAll(err)) {
		t.Fatalf("err = %v", err)
	}
}

func unwrapAll(err error) error {
	for {
		u, ok := err.(interface{ Unwrap() error })
		if !ok {
			return err
		}
		err = u.Unwrap()
	}
}
