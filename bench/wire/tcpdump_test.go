package wire

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/seed-7bfc04c2/dialtone/internal/fsm/fsmpb"
	"github.com/seed-7bfc04c2/dialtone/internal/telephony/simcall/simpb"
)

// A tcpdump that cannot capture (here: a stand-in that fails as one run
// without root does) is an error that says why.
func TestStartCaptureCannotCapture(t *testing.T) {
	dir := t.TempDir()
	fake := "#!/bin/sh\necho 'tcpdump: lo: You don'\"'\"'t have permission to perform this capture on that device' >&2\nexit 1\n"
	if err := os.WriteFile(filepath.Join(dir, "tcpdump"), []byte(fake), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", dir)
	_, err := StartCapture(context.Background(), filepath.Join(dir, "x.pcap"), 9)
	if err == nil || !strings.Contains(err.Error(), "permission") {
		t.Fatalf("got %v, want the reason", err)
	}
	t.Setenv("PATH", t.TempDir())
	if _, err := StartCapture(context.Background(), filepath.Join(dir, "x.pcap"), 9); !errors.Is(err, ErrNoTcpdump) {
		t.Fatalf("got %v, want ErrNoTcpdump", err)
	}
}

// recorder is a MediaSim server that stamps each PlaceCalls message with
// place set as it receives it.
type recorder struct {
	simpb.UnimplementedMediaSimServer
	mu   sync.Mutex
	got  []int64
	done chan struct{}
}

func (r *recorder) PlaceCalls(s simpb.MediaSim_PlaceCallsServer) error {
	for {
		m, err := s.Recv()
		at := time.Now().UnixNano()
		if errors.Is(err, io.EOF) {
			close(r.done)
			return nil
		}
		if err != nil {
			return err
		}
		if m.GetPlace() != nil {
			r.mu.Lock()
			r.got = append(r.got, at)
			r.mu.Unlock()
		}
	}
}

// TestCaptureGRPC captures a real gRPC client's PlaceCalls stream (grpc-go's
// HPACK, framing and batching) and finds every attempt, each on the wire
// after the client sent it and before the server received it. It needs
// tcpdump and root (CI has both).
func TestCaptureGRPC(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := uint16(lis.Addr().(*net.TCPAddr).Port)
	c, err := StartCapture(context.Background(), filepath.Join(t.TempDir(), "c.pcap"), port)
	if err != nil {
		lis.Close()
		t.Skipf("cannot capture: %v", err)
	}
	defer c.Stop()
	srv := grpc.NewServer()
	rec := &recorder{done: make(chan struct{})}
	simpb.RegisterMediaSimServer(srv, rec)
	go func() { _ = srv.Serve(lis) }()
	defer srv.Stop()

	cc, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	api := simpb.NewMediaSimClient(cc)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// Another method on the same connection does not count.
	_, _ = api.PlaceCall(ctx, &simpb.PlaceCallRequest{Tenant: "t"})
	stream, err := api.PlaceCalls(ctx)
	if err != nil {
		t.Fatal(err)
	}
	const n = 300
	var sent []int64
	for i := range n {
		req := &simpb.PlaceCallsRequest{Id: uint64(i + 1), Place: &simpb.PlaceCallRequest{Tenant: "t", CallUuid: "u", Telnum: "4930123456"}}
		if i%100 == 7 { // over several DATA frames (16 KiB each)
			req.Place.CustomData = []*fsmpb.KeyValue{{Key: "k", Value: strings.Repeat("v", 40_000)}}
		}
		sent = append(sent, time.Now().UnixNano())
		if err := stream.Send(req); err != nil {
			t.Fatal(err)
		}
		if i%10 == 0 {
			if err := stream.Send(&simpb.PlaceCallsRequest{Id: 10_000 + uint64(i), Hangup: uint64(i + 1)}); err != nil {
				t.Fatal(err)
			}
			time.Sleep(time.Millisecond)
		}
	}
	if err := stream.CloseSend(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-rec.done:
	case <-ctx.Done():
		t.Fatal("the server did not see the stream end")
	}
	rec.mu.Lock()
	got := slices.Clone(rec.got)
	rec.mu.Unlock()
	if len(got) != n {
		t.Fatalf("the server received %d of %d", len(got), n)
	}
	if !c.WaitPast(ctx, got[n-1], 10*time.Second) {
		t.Fatal("the capture did not reach the last receipt")
	}
	res, err := c.Decode()
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Problems) > 0 || len(res.Attempts) != n || res.Hangups != n/10 || res.Streams != 1 {
		t.Fatalf("problems %q, %d attempts (want %d), %d hangups (want %d), %d streams (want 1)", res.Problems, len(res.Attempts), n, res.Hangups, n/10, res.Streams)
	}
	for i, a := range res.Attempts {
		// Stamps are whole µs: allow one.
		if a.At+1000 < sent[i] || a.At > got[i] || a.Tenant != "t" {
			t.Fatalf("attempt %d on the wire at %d: sent at %d (%+d ns), received at %d (%+d ns)", i, a.At, sent[i], a.At-sent[i], got[i], got[i]-a.At)
		}
	}
	t.Logf("%d attempts in %d packets; received p50 %.3f ms after the wire", n, res.Packets, float64(got[n/2]-res.Attempts[n/2].At)/1e6)
}
