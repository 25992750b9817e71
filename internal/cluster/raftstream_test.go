package cluster

import (
	"errors"
	"io"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

func listenStream(t *testing.T, key []byte) *raftStream {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := newRaftStream(ln, nil, key, nil, nil)
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// acceptOne accepts a connection and reports what its first Read gave.
func acceptOne(s *raftStream) <-chan error {
	res := make(chan error, 1)
	go func() {
		c, err := s.Accept()
		if err != nil {
			res <- err
			return
		}
		defer c.Close()
		buf := make([]byte, 5)
		if _, err := io.ReadFull(c, buf); err != nil {
			res <- err
			return
		}
		if string(buf) != "hello" {
			res <- errors.New("got " + string(buf))
			return
		}
		_, err = c.Write([]byte("world"))
		res <- err
	}()
	return res
}

func TestRaftStreamHandshake(t *testing.T) {
	key := []byte("0123456789abcdef0123456789abcdef")
	other := []byte("fedcba9876543210fedcba9876543210")
	tests := []struct {
		name            string
		server, client  []byte
		wantDialErr     bool
		wantServerError bool
	}{
		{"same key", key, key, false, false},
		{"no key on either side", nil, nil, false, false},
		{"wrong key", key, other, true, true},
		{"client without key", key, nil, false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := listenStream(t, tt.server)
			got := acceptOne(srv)
			cli := newRaftStream(nil, nil, tt.client, nil, nil)
			conn, err := cli.Dial(raft.ServerAddress(srv.Addr().String()), 2*time.Second)
			if tt.wantDialErr {
				if !errors.Is(err, errRaftAuth) {
					t.Fatalf("dial: %v, want errRaftAuth", err)
				}
			} else {
				if err != nil {
					t.Fatalf("dial: %v", err)
				}
				defer conn.Close()
				_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
				// A keyless client talks Raft at once: those bytes must never
				// reach Raft on a keyed server.
				_, _ = conn.Write([]byte("hello"))
				if tt.wantServerError {
					_ = conn.Close() // the server must reject what it got, not wait for more
				} else {
					buf := make([]byte, 5)
					if _, err := io.ReadFull(conn, buf); err != nil || string(buf) != "world" {
						t.Fatalf("reply %q, %v", buf, err)
					}
				}
			}
			select {
			case err := <-got:
				if tt.wantServerError && err == nil {
					t.Fatal("server read the client's bytes without a valid handshake")
				}
				if !tt.wantServerError && err != nil {
					t.Fatalf("server: %v", err)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("server did not finish")
			}
		})
	}
}

// A Raft transport without the key cannot deliver an AppendEntries to a
// node whose transport has it.
func TestRaftTransportRefusesUnauthenticatedRPC(t *testing.T) {
	key := []byte("0123456789abcdef0123456789abcdef")
	srv := listenStream(t, key)
	hl := hcLogger(slog.New(slog.DiscardHandler), "raft", 0)
	server := raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{Stream: srv, MaxPool: 1, Timeout: 2 * time.Second, Logger: hl})
	defer server.Close()

	for _, k := range [][]byte{nil, []byte("fedcba9876543210fedcba9876543210"), key} {
		cli := listenStream(t, k)
		client := raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{Stream: cli, MaxPool: 1, Timeout: 2 * time.Second, Logger: hl})
		done := make(chan error, 1)
		go func() {
			var resp raft.AppendEntriesResponse
			done <- client.AppendEntries("n1", raft.ServerAddress(srv.Addr().String()), &raft.AppendEntriesRequest{RPCHeader: raft.RPCHeader{ID: []byte("intruder")}, Term: 99}, &resp)
		}()
		authorised := string(k) == string(key)
		select {
		case rpc := <-server.Consumer():
			if !authorised {
				t.Fatalf("key %q: server received %T", k, rpc.Command)
			}
			rpc.Respond(&raft.AppendEntriesResponse{Term: 99, Success: true}, nil)
			if err := <-done; err != nil {
				t.Fatalf("authorised AppendEntries: %v", err)
			}
		case err := <-done:
			if authorised {
				t.Fatalf("authorised AppendEntries failed: %v", err)
			}
			if err == nil {
				t.Fatalf("key %q: AppendEntries succeeded", k)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("key %q: no outcome", k)
		}
		_ = client.Close()
	}
}
