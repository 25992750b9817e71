package main

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/BurntSushi/toml"

	"github.com/seed-7bfc04c2/dialtone/internal/config"
)

// TestDevConfigUsesMediasim: the generated dev config places calls on the
// mediasim child and survives the TOML round trip the nodes read it through.
func TestDevConfigUsesMediasim(t *testing.T) {
	cfg := devConfig(t.TempDir())
	if cfg.Telephony.Backend != "sim" || cfg.Telephony.SimAddr != devMediasimAddr {
		t.Fatalf("telephony: %+v", cfg.Telephony)
	}
	var buf bytes.Buffer
	if err := toml.NewEncoder(&buf).Encode(cfg); err != nil {
		t.Fatal(err)
	}
	back, err := config.Parse(buf.String())
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back.Telephony, cfg.Telephony) || len(back.Nodes) != 3 {
		t.Fatalf("round trip: %+v", back.Telephony)
	}
	// The mediasim child publishes to the nodes' gRPC addresses, which the
	// default --endpoints of portsim and mediasim also name.
	var grpcAddrs []string
	for _, n := range cfg.Nodes {
		grpcAddrs = append(grpcAddrs, n.GRPC)
	}
	if !slices.Equal(grpcAddrs, strings.Split(devGRPCEndpoints, ",")) {
		t.Fatalf("node gRPC addresses %v, devGRPCEndpoints %s", grpcAddrs, devGRPCEndpoints)
	}
	dev, _, err := newRoot().Find([]string{"dev"})
	if err != nil || dev.Flags().Lookup("mediasim") == nil || dev.Flags().Lookup("portsim") != nil {
		t.Fatalf("dev flags: %v", err)
	}
}

// dev finds dialtone-sim beside its own binary, else on PATH, else says how
// to build it.
func TestDevFindsSimulator(t *testing.T) {
	dir := t.TempDir()
	self := filepath.Join(dir, "dialtone")
	t.Setenv("PATH", t.TempDir())
	if _, err := simBinary(self); err == nil || !strings.Contains(err.Error(), "make dev") {
		t.Fatalf("no simulator anywhere: %v", err)
	}
	onPath := filepath.Join(os.Getenv("PATH"), "dialtone-sim")
	if err := os.WriteFile(onPath, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if got, err := simBinary(self); err != nil || got != onPath {
		t.Fatalf("on PATH: %q, %v", got, err)
	}
	beside := filepath.Join(dir, "dialtone-sim")
	if err := os.WriteFile(beside, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if got, err := simBinary(self); err != nil || got != beside {
		t.Fatalf("beside: %q, %v", got, err)
	}
}
