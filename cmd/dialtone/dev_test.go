package main

import (
	"bytes"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/BurntSushi/toml"

	"github.com/seed-7bfc04c2/dialtone/config"
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
	// The dev flags name a verb that exists.
	root := newRoot()
	if c, _, err := root.Find([]string{"mediasim"}); err != nil || c.Name() != "mediasim" {
		t.Fatalf("mediasim verb: %v", err)
	}
	dev, _, err := root.Find([]string{"dev"})
	if err != nil || dev.Flags().Lookup("mediasim") == nil || dev.Flags().Lookup("portsim") != nil {
		t.Fatalf("dev flags: %v", err)
	}
}
