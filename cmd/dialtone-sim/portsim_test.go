package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"
)

func TestPortsimValidatesFlags(t *testing.T) {
	ok := portsimFlags{servers: 1, ports: 1, endpoints: "127.0.0.1:1", load: "walk", logLevel: "error", step: time.Second}
	for name, edit := range map[string]func(*portsimFlags){
		"no endpoints": func(f *portsimFlags) { f.endpoints = " , " },
		"no servers":   func(f *portsimFlags) { f.servers = 0 },
		"bad load":     func(f *portsimFlags) { f.load = "spiky" },
		"bad level":    func(f *portsimFlags) { f.logLevel = "loud" },
	} {
		f := ok
		edit(&f)
		if err := runPortsim(context.Background(), &bytes.Buffer{}, &creds{}, f); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := publishDialOptions(&creds{user: "u", token: "t"}, false); err == nil {
		t.Error("--user and --bearer together accepted")
	}
	if opts, err := publishDialOptions(&creds{user: "u", password: "p"}, false); err != nil || len(opts) != 1 {
		t.Errorf("basic auth: %d options, %v", len(opts), err)
	}
}

// TestPortsimStopsWithContext: with no node reachable it keeps trying and
// returns cleanly when its context ends.
func TestPortsimStopsWithContext(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	var out bytes.Buffer
	f := portsimFlags{servers: 2, ports: 10, tenant: "acme", endpoints: "127.0.0.1:1,127.0.0.1:2", load: "walk",
		step: 50 * time.Millisecond, interval: time.Second, ackTimeout: time.Second, returnAfter: time.Second, logLevel: "error"}
	if err := runPortsim(ctx, &out, &creds{}, f); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "portsim: stopped") {
		t.Fatalf("output: %s", out.String())
	}
}

// The simulators publish to the cluster `dialtone dev` runs by default.
func TestDefaultEndpointsAreTheDevCluster(t *testing.T) {
	if devGRPCEndpoints != "127.0.0.1:9081,127.0.0.1:9082,127.0.0.1:9083" {
		t.Fatalf("devGRPCEndpoints = %s; keep it equal to cmd/dialtone's dev cluster", devGRPCEndpoints)
	}
}
