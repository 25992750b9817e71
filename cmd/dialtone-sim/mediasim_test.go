package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/seed-7bfc04c2/dialtone/internal/fsm/fsmpb"
	"github.com/seed-7bfc04c2/dialtone/internal/sim/mediasim"
	"github.com/seed-7bfc04c2/dialtone/internal/telephony"
)

// syncBuffer is a bytes.Buffer safe to read while runMediasim writes to it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func okMediasimFlags() mediasimFlags {
	return mediasimFlags{
		listen: "127.0.0.1:0", httpAddr: "127.0.0.1:0", tenants: "acme", servers: 1, ports: 2, prefix: "vxml",
		ring: "10ms", talk: "10ms", mix: "success=1", logLevel: "error", maxLog: 100,
		interval: time.Second, ackTimeout: time.Second, returnAfter: time.Second,
	}
}

func TestMediasimValidatesFlags(t *testing.T) {
	for name, edit := range map[string]func(*mediasimFlags){
		"no tenant":    func(f *mediasimFlags) { f.tenants = " , " },
		"twice":        func(f *mediasimFlags) { f.tenants = "acme,acme" },
		"no servers":   func(f *mediasimFlags) { f.servers = 0 },
		"no ports":     func(f *mediasimFlags) { f.ports = 0 },
		"no listen":    func(f *mediasimFlags) { f.listen = "" },
		"bad ring":     func(f *mediasimFlags) { f.ring = "3s-1s" },
		"bad talk":     func(f *mediasimFlags) { f.talk = "soon" },
		"bad mix":      func(f *mediasimFlags) { f.mix = "success=1,loud=2" },
		"zero mix":     func(f *mediasimFlags) { f.mix = "success=0" },
		"bad rule":     func(f *mediasimFlags) { f.rules = []string{"5550001"} },
		"bad level":    func(f *mediasimFlags) { f.logLevel = "loud" },
		"bad listen":   func(f *mediasimFlags) { f.listen = "nonsense" },
		"two creds":    func(f *mediasimFlags) { f.endpoints = "127.0.0.1:1" },
		"bad http":     func(f *mediasimFlags) { f.httpAddr = "nonsense" },
		"bad notifier": func(f *mediasimFlags) { f.notifyListen = "nonsense" },
	} {
		f := okMediasimFlags()
		edit(&f)
		if err := runMediasim(context.Background(), &bytes.Buffer{}, &creds{user: "u", token: "t"}, f); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// TestMediasimServes runs the verb with every listener, places calls through
// the gRPC service, reads the HTTP stats, delivers a notification, and stops
// it with its context.
func TestMediasimServes(t *testing.T) {
	type addrs struct{ grpc, http, notify string }
	ready := make(chan addrs, 1)
	f := okMediasimFlags()
	f.notifyListen = "127.0.0.1:0"
	f.tenants = "acme,globex"
	f.rules = []string{"5550001=busy"}
	f.ready = func(g, h, n string) { ready <- addrs{g, h, n} }
	// Publishing to a node that is not there must not get in the way.
	f.endpoints = "127.0.0.1:1"

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out syncBuffer
	done := make(chan error, 1)
	go func() { done <- runMediasim(ctx, &out, &creds{}, f) }()
	var a addrs
	select {
	case a = <-ready:
	case err := <-done:
		t.Fatalf("mediasim ended: %v\n%s", err, out.String())
	case <-time.After(10 * time.Second):
		t.Fatal("mediasim did not start")
	}

	c, err := mediasim.NewClient(a.grpc)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	res, err := c.Place(ctx, telephony.Call{RequestID: "r1", Tenant: "acme", Telnum: "5550001"})
	if err != nil || res.Class != fsmpb.OutcomeClass_OUTCOME_BUSY || res.Reason != "DestinationBusy" {
		t.Fatalf("rule: %v %v", res, err)
	}
	res, err = c.Place(ctx, telephony.Call{RequestID: "r2", Tenant: "globex", Telnum: "1"})
	if err != nil || res.Class != fsmpb.OutcomeClass_OUTCOME_SUCCESS {
		t.Fatalf("mix: %v %v", res, err)
	}

	resp, err := http.Get("http://" + a.http + "/stats")
	if err != nil {
		t.Fatal(err)
	}
	var stats struct {
		Platforms []mediasim.Stats `json:"platforms"`
	}
	err = json.NewDecoder(resp.Body).Decode(&stats)
	resp.Body.Close()
	if err != nil || len(stats.Platforms) != 2 || stats.Platforms[0].ByOutcome["busy"] != 1 ||
		stats.Platforms[1].Servers[0].ID != "vxml-globex-1" {
		t.Fatalf("stats: %+v %v", stats, err)
	}

	resp, err = http.Get("http://" + a.notify + "/notify?RequestID=r1&Result=FAILURE&Status=DestinationBusy&AttemptsMade=1&MaxAttempts=1")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("notification answered %d", resp.StatusCode)
	}
	if !strings.Contains(out.String(), "notification #1 for r1: Result=FAILURE Status=DestinationBusy") {
		t.Fatalf("no notification line:\n%s", out.String())
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("mediasim did not stop")
	}
	o := out.String()
	for _, want := range []string{"PlaceCall gRPC on " + a.grpc, "stats http://" + a.http, "notification receiver http://" + a.notify,
		"acme: placed 1", "mediasim: stopped"} {
		if !strings.Contains(o, want) {
			t.Errorf("output lacks %q:\n%s", want, o)
		}
	}
}

// TestMediasimRefusesWhenFull: through the verb, a full platform answers
// ErrFull to the client, and stopping it ends the calls in progress.
func TestMediasimRefusesWhenFull(t *testing.T) {
	ready := make(chan string, 1)
	f := okMediasimFlags()
	f.httpAddr = ""
	f.ports = 1
	f.ring = "1h"
	f.ready = func(g, _, _ string) { ready <- g }
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- runMediasim(ctx, &syncBuffer{}, &creds{}, f) }()
	var addr string
	select {
	case addr = <-ready:
	case err := <-done:
		t.Fatalf("mediasim ended: %v", err)
	}
	c, err := mediasim.NewClient(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	callCtx, hangUp := context.WithCancel(context.Background())
	defer hangUp()
	first := make(chan error, 1)
	go func() {
		_, err := c.Place(callCtx, telephony.Call{RequestID: "a", Tenant: "acme"})
		first <- err
	}()
	deadline := time.Now().Add(10 * time.Second)
	for {
		st, err := c.Stats(ctx, "acme")
		if err == nil && len(st) == 1 && st[0].InProgress == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the first call never started: %+v %v", st, err)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if _, err := c.Place(ctx, telephony.Call{RequestID: "b", Tenant: "acme"}); !errors.Is(err, telephony.ErrFull) {
		t.Fatalf("want ErrFull, got %v", err)
	}
	// Stopping mediasim hangs up the call in progress: the dialer sees an
	// error, not a hang.
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-first:
		if err == nil || errors.Is(err, telephony.ErrFull) || errors.Is(err, context.Canceled) {
			t.Fatalf("call in progress at stop: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("a call outlived mediasim")
	}
}
