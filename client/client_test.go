package client_test

import (
	"context"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	pb "github.com/seed-7bfc04c2/dialtone/api/dialtonev1"
	"github.com/seed-7bfc04c2/dialtone/client"
)

// fake serves the API through the generated gateway handlers, as a node
// does, and records the request message each call arrived as.
type fake struct {
	pb.UnimplementedRequestServiceServer
	pb.UnimplementedClusterServiceServer
	pb.UnimplementedDialerServiceServer
	pb.UnimplementedPortUsageServiceServer
	mu  sync.Mutex
	got proto.Message
}

func (f *fake) record(in proto.Message) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.got = proto.Clone(in)
}

func (f *fake) last() proto.Message {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.got
}

func (f *fake) CreateRequests(_ context.Context, in *pb.CreateRequestsRequest) (*pb.CreateRequestsResponse, error) {
	f.record(in)
	out := &pb.CreateRequestsResponse{Index: 7}
	for i, s := range in.Requests {
		out.Results = append(out.Results, &pb.CreateResult{Ok: true, Id: fmt.Sprint("r", i), Token: s.Token})
	}
	return out, nil
}

func (f *fake) GetRequest(_ context.Context, in *pb.GetRequestRequest) (*pb.GetRequestResponse, error) {
	f.record(in)
	if in.Id == "missing" {
		return nil, status.Error(codes.NotFound, "request missing not found")
	}
	return &pb.GetRequestResponse{Request: &pb.Request{Id: in.Id, Tenant: in.Tenant, State: "PENDING"}}, nil
}

func (f *fake) BatchGetRequests(_ context.Context, in *pb.BatchGetRequestsRequest) (*pb.BatchGetRequestsResponse, error) {
	f.record(in)
	return &pb.BatchGetRequestsResponse{Results: []*pb.GetResult{{Id: in.Ids[0], Request: &pb.Request{Id: in.Ids[0]}}}}, nil
}

func (f *fake) ListRequests(_ context.Context, in *pb.ListRequestsRequest) (*pb.ListRequestsResponse, error) {
	f.record(in)
	return &pb.ListRequestsResponse{NextPageToken: "next"}, nil
}

func (f *fake) CancelRequest(_ context.Context, in *pb.CancelRequestRequest) (*pb.CancelRequestResponse, error) {
	f.record(in)
	return &pb.CancelRequestResponse{Result: &pb.CancelResult{Id: in.Id, Ok: true}}, nil
}

func (f *fake) BatchCancelRequests(_ context.Context, in *pb.BatchCancelRequestsRequest) (*pb.BatchCancelRequestsResponse, error) {
	f.record(in)
	return &pb.BatchCancelRequestsResponse{Results: []*pb.CancelResult{{Id: in.Ids[0], Code: "IN_PROGRESS"}}}, nil
}

func (f *fake) GetStatus(_ context.Context, in *pb.GetStatusRequest) (*pb.ClusterStatus, error) {
	f.record(in)
	return &pb.ClusterStatus{NodeId: "n1", State: "Leader", LeaderId: "n1", Term: 1 << 40}, nil
}

func (f *fake) ListMembers(_ context.Context, in *pb.ListMembersRequest) (*pb.ListMembersResponse, error) {
	f.record(in)
	return &pb.ListMembersResponse{Members: []*pb.Member{{Id: "n1", Status: "alive"}}}, nil
}

func (f *fake) Leave(_ context.Context, in *pb.LeaveRequest) (*pb.LeaveResponse, error) {
	f.record(in)
	return &pb.LeaveResponse{}, nil
}

func (f *fake) RemoveServer(_ context.Context, in *pb.RemoveServerRequest) (*pb.RemoveServerResponse, error) {
	f.record(in)
	return &pb.RemoveServerResponse{}, nil
}

func (f *fake) TransferLeadership(_ context.Context, in *pb.TransferLeadershipRequest) (*pb.TransferLeadershipResponse, error) {
	f.record(in)
	return &pb.TransferLeadershipResponse{NewLeaderId: "n2"}, nil
}

func (f *fake) GetPacing(_ context.Context, in *pb.GetPacingRequest) (*pb.GetPacingResponse, error) {
	f.record(in)
	return &pb.GetPacingResponse{Pacing: &pb.PacingEntry{Tenant: in.Tenant}}, nil
}

func (f *fake) ListPacing(_ context.Context, in *pb.ListPacingRequest) (*pb.ListPacingResponse, error) {
	f.record(in)
	return &pb.ListPacingResponse{GlobalCaps: 300}, nil
}

func (f *fake) SetPacing(_ context.Context, in *pb.SetPacingRequest) (*pb.SetPacingResponse, error) {
	f.record(in)
	if in.GetPacing().GetCaps() > 100000 {
		return nil, status.Error(codes.InvalidArgument, "pacing.caps: 200001 is above 100000")
	}
	return &pb.SetPacingResponse{Pacing: &pb.PacingEntry{Tenant: in.Tenant, Stored: true, Settings: in.Pacing}}, nil
}

func (f *fake) DeletePacing(_ context.Context, in *pb.DeletePacingRequest) (*pb.DeletePacingResponse, error) {
	f.record(in)
	return &pb.DeletePacingResponse{Index: 9}, nil
}

func (f *fake) GetDialerStatus(_ context.Context, in *pb.GetDialerStatusRequest) (*pb.DialerStatus, error) {
	f.record(in)
	return nil, status.Error(codes.FailedPrecondition, "dialer not running on this node (n1)")
}

func (f *fake) GetUsage(_ context.Context, in *pb.GetUsageRequest) (*pb.Usage, error) {
	f.record(in)
	return &pb.Usage{Tenants: []*pb.TenantUsage{{Tenant: "acme", TotalPorts: 50}}}, nil
}

func (f *fake) GetTenantUsage(_ context.Context, in *pb.GetTenantUsageRequest) (*pb.TenantUsage, error) {
	f.record(in)
	return &pb.TenantUsage{Tenant: in.Tenant}, nil
}

func (f *fake) ListServers(_ context.Context, in *pb.ListServersRequest) (*pb.ListServersResponse, error) {
	f.record(in)
	return &pb.ListServersResponse{}, nil
}

func (f *fake) GetServer(_ context.Context, in *pb.GetServerRequest) (*pb.ServerUsage, error) {
	f.record(in)
	return &pb.ServerUsage{Id: in.Id}, nil
}

// gateway serves f the way a node's REST handler does.
func gateway(t *testing.T, f *fake) *httptest.Server {
	t.Helper()
	srv, err := newGateway(f)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	return srv
}

func newGateway(f *fake) (*httptest.Server, error) {
	ctx := context.Background()
	mux := runtime.NewServeMux(runtime.WithMarshalerOption(runtime.MIMEWildcard, &runtime.JSONPb{
		MarshalOptions: protojson.MarshalOptions{UseProtoNames: true},
	}))
	for _, reg := range []error{
		pb.RegisterRequestServiceHandlerServer(ctx, mux, f),
		pb.RegisterClusterServiceHandlerServer(ctx, mux, f),
		pb.RegisterDialerServiceHandlerServer(ctx, mux, f),
		pb.RegisterPortUsageServiceHandlerServer(ctx, mux, f),
	} {
		if reg != nil {
			return nil, reg
		}
	}
	return httptest.NewServer(mux), nil
}

// TestCallsReachTheGateway: every call arrives at the RPC it names with
// the fields it was given (path, query and body), and its answer decodes.
func TestCallsReachTheGateway(t *testing.T) {
	f := &fake{}
	srv := gateway(t, f)
	c, err := client.New(strings.TrimPrefix(srv.URL, "http://")) // host:port means http
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	spec := &pb.RequestSpec{Token: "t1", IvrProfile: "Sales", Telnum: "+4930123", MaxAttempts: 3, TimeToLive: "600s",
		CustomData: []*pb.KeyValue{{Key: "k", Value: "v"}}}
	for _, tc := range []struct {
		name  string
		call  func() (proto.Message, error)
		want  proto.Message // what the server received
		check func(proto.Message) bool
	}{
		{"create", func() (proto.Message, error) {
			return c.CreateRequests(ctx, &pb.CreateRequestsRequest{Tenant: "acme", Requests: []*pb.RequestSpec{spec}})
		}, &pb.CreateRequestsRequest{Tenant: "acme", Requests: []*pb.RequestSpec{spec}},
			func(m proto.Message) bool {
				r := m.(*pb.CreateRequestsResponse)
				return r.Index == 7 && r.Results[0].Token == "t1"
			}},
		{"get with query", func() (proto.Message, error) {
			return c.GetRequest(ctx, &pb.GetRequestRequest{Tenant: "a b", Id: "r1", Consistency: client.Linearizable, MinIndex: 12})
		}, &pb.GetRequestRequest{Tenant: "a b", Id: "r1", Consistency: "linearizable", MinIndex: 12},
			func(m proto.Message) bool { r := m.(*pb.GetRequestResponse); return r.Request.Tenant == "a b" }},
		{"batch get", func() (proto.Message, error) {
			return c.BatchGetRequests(ctx, &pb.BatchGetRequestsRequest{Tenant: "acme", Ids: []string{"r1", "r2"}, Consistency: client.Linearizable})
		}, &pb.BatchGetRequestsRequest{Tenant: "acme", Ids: []string{"r1", "r2"}, Consistency: "linearizable"},
			func(m proto.Message) bool { return m.(*pb.BatchGetRequestsResponse).Results[0].Request.Id == "r1" }},
		{"list", func() (proto.Message, error) {
			return c.ListRequests(ctx, &pb.ListRequestsRequest{Tenant: "acme", State: "PROCESSED", IvrProfile: "Sales", PageSize: 5, PageToken: "p"})
		}, &pb.ListRequestsRequest{Tenant: "acme", State: "PROCESSED", IvrProfile: "Sales", PageSize: 5, PageToken: "p"},
			func(m proto.Message) bool { return m.(*pb.ListRequestsResponse).NextPageToken == "next" }},
		{"cancel", func() (proto.Message, error) {
			return c.CancelRequest(ctx, &pb.CancelRequestRequest{Tenant: "acme", Id: "r1"})
		}, &pb.CancelRequestRequest{Tenant: "acme", Id: "r1"},
			func(m proto.Message) bool { return m.(*pb.CancelRequestResponse).Result.Ok }},
		{"batch cancel", func() (proto.Message, error) {
			return c.BatchCancelRequests(ctx, &pb.BatchCancelRequestsRequest{Tenant: "acme", Ids: []string{"r1"}})
		}, &pb.BatchCancelRequestsRequest{Tenant: "acme", Ids: []string{"r1"}},
			func(m proto.Message) bool {
				return m.(*pb.BatchCancelRequestsResponse).Results[0].Code == "IN_PROGRESS"
			}},
		{"cluster status", func() (proto.Message, error) { return c.GetClusterStatus(ctx) }, &pb.GetStatusRequest{},
			func(m proto.Message) bool { return m.(*pb.ClusterStatus).Term == 1<<40 }},
		{"members", func() (proto.Message, error) { return c.ListMembers(ctx) }, &pb.ListMembersRequest{},
			func(m proto.Message) bool { return m.(*pb.ListMembersResponse).Members[0].Status == "alive" }},
		{"leave", func() (proto.Message, error) { return &pb.LeaveResponse{}, c.Leave(ctx) }, &pb.LeaveRequest{}, nil},
		{"remove server", func() (proto.Message, error) { return &pb.RemoveServerResponse{}, c.RemoveServer(ctx, "n4") },
			&pb.RemoveServerRequest{Id: "n4"}, nil},
		{"transfer", func() (proto.Message, error) {
			return c.TransferLeadership(ctx, &pb.TransferLeadershipRequest{TargetId: "n2"})
		}, &pb.TransferLeadershipRequest{TargetId: "n2"},
			func(m proto.Message) bool { return m.(*pb.TransferLeadershipResponse).NewLeaderId == "n2" }},
		{"get global pacing", func() (proto.Message, error) {
			return c.GetPacing(ctx, &pb.GetPacingRequest{Consistency: client.Linearizable})
		}, &pb.GetPacingRequest{Tenant: client.GlobalPacing, Consistency: "linearizable"},
			func(m proto.Message) bool { return m.(*pb.GetPacingResponse).Pacing.Tenant == "_global" }},
		{"list pacing", func() (proto.Message, error) { return c.ListPacing(ctx, &pb.ListPacingRequest{}) }, &pb.ListPacingRequest{},
			func(m proto.Message) bool { return m.(*pb.ListPacingResponse).GlobalCaps == 300 }},
		{"set pacing", func() (proto.Message, error) {
			return c.SetPacing(ctx, &pb.SetPacingRequest{Tenant: "acme", Pacing: &pb.Pacing{Caps: 20, Retention: "1h"}})
		}, &pb.SetPacingRequest{Tenant: "acme", Pacing: &pb.Pacing{Caps: 20, Retention: "1h"}},
			func(m proto.Message) bool { return m.(*pb.SetPacingResponse).Pacing.Settings.Caps == 20 }},
		{"delete pacing", func() (proto.Message, error) { return c.DeletePacing(ctx, "acme") }, &pb.DeletePacingRequest{Tenant: "acme"},
			func(m proto.Message) bool { return m.(*pb.DeletePacingResponse).Index == 9 }},
		{"port usage", func() (proto.Message, error) { return c.GetPortUsage(ctx) }, &pb.GetUsageRequest{},
			func(m proto.Message) bool { return m.(*pb.Usage).Tenants[0].TotalPorts == 50 }},
		{"tenant port usage", func() (proto.Message, error) { return c.GetTenantPortUsage(ctx, "acme") }, &pb.GetTenantUsageRequest{Tenant: "acme"},
			func(m proto.Message) bool { return m.(*pb.TenantUsage).Tenant == "acme" }},
		{"port servers", func() (proto.Message, error) { return c.ListPortServers(ctx, "acme") }, &pb.ListServersRequest{Tenant: "acme"}, nil},
		{"port server", func() (proto.Message, error) { return c.GetPortServer(ctx, "ms-1") }, &pb.GetServerRequest{Id: "ms-1"},
			func(m proto.Message) bool { return m.(*pb.ServerUsage).Id == "ms-1" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := tc.call()
			if err != nil {
				t.Fatal(err)
			}
			if got := f.last(); !proto.Equal(got, tc.want) {
				t.Fatalf("server got %v, want %v", got, tc.want)
			}
			if tc.check != nil && !tc.check(out) {
				t.Fatalf("answer %v", out)
			}
		})
	}
}

// TestErrors: a non-2xx answer is an *Error with the HTTP status, the gRPC
// code and the message, whatever shape the body has.
func TestErrors(t *testing.T) {
	f := &fake{}
	gw := gateway(t, f)
	plain := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/readyz":
			http.Error(w, "no leader", http.StatusServiceUnavailable)
		case "/v1/cluster":
			w.WriteHeader(http.StatusBadGateway) // a proxy with an empty body
		default:
			_, _ = w.Write([]byte("not json")) // 200 with a body that does not decode
		}
	}))
	defer plain.Close()
	ctx := context.Background()
	c, err := client.New(gw.URL)
	if err != nil {
		t.Fatal(err)
	}
	p, err := client.New(plain.URL)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name     string
		err      error
		status   int
		code     codes.Code
		msgHas   string
		textHave string
	}{
		{"not found", func() error {
			_, err := c.GetRequest(ctx, &pb.GetRequestRequest{Tenant: "acme", Id: "missing"})
			return err
		}(),
			404, codes.NotFound, "request missing not found", "HTTP 404: request missing not found"},
		{"invalid", func() error {
			_, err := c.SetPacing(ctx, &pb.SetPacingRequest{Tenant: "acme", Pacing: &pb.Pacing{Caps: 200001}})
			return err
		}(), 400, codes.InvalidArgument, "pacing.caps", "HTTP 400: pacing.caps"},
		{"precondition", func() error { _, err := c.GetDialerStatus(ctx); return err }(),
			400, codes.FailedPrecondition, "dialer not running on this node (n1)", "dialer not running"},
		{"unimplemented", func() error { _, err := c.Join(ctx, &pb.JoinRequest{}); return err }(),
			501, codes.Unimplemented, "Join", "HTTP 501"},
		{"plain text", p.Ready(ctx), 503, codes.Unknown, "no leader", "HTTP 503: no leader"},
		{"empty body", func() error { _, err := p.GetClusterStatus(ctx); return err }(), 502, codes.Unknown, "Bad Gateway", "HTTP 502: Bad Gateway"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var e *client.Error
			if !errors.As(tc.err, &e) {
				t.Fatalf("%v (%T) is not an *Error", tc.err, tc.err)
			}
			if e.StatusCode != tc.status || e.Code != tc.code || !strings.Contains(e.Message, tc.msgHas) || !strings.Contains(e.Error(), tc.textHave) {
				t.Fatalf("got %+v (%q)", e, e.Error())
			}
			if client.StatusCode(fmt.Errorf("wrapped: %w", tc.err)) != tc.status || status.Code(tc.err) != tc.code {
				t.Fatalf("StatusCode %d, status.Code %v", client.StatusCode(tc.err), status.Code(tc.err))
			}
		})
	}
	// A 2xx answer that does not decode is an error, but not an *Error.
	if _, err := p.GetDialerStatus(ctx); err == nil || client.StatusCode(err) != 0 {
		t.Fatalf("undecodable answer: %v", err)
	}
	if client.StatusCode(errors.New("x")) != 0 {
		t.Fatal("StatusCode of a plain error")
	}
}

// TestAuthHeaders: basic auth, bearer (which wins over basic), or nothing.
func TestAuthHeaders(t *testing.T) {
	var mu sync.Mutex
	var got []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		got = append(got, r.Header.Get("Authorization"))
		mu.Unlock()
		_, _ = w.Write([]byte("{}"))
	}))
	defer srv.Close()
	for _, tc := range []struct {
		name string
		opts []client.Option
		want string
	}{
		{"none", nil, ""},
		{"basic", []client.Option{client.WithBasicAuth("ops", "s3cret")}, "Basic b3BzOnMzY3JldA=="},
		{"bearer", []client.Option{client.WithBearerToken("tok")}, "Bearer tok"},
		{"bearer wins", []client.Option{client.WithBasicAuth("ops", "s3cret"), client.WithBearerToken("tok")}, "Bearer tok"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := client.New(srv.URL, tc.opts...)
			if err != nil {
				t.Fatal(err)
			}
			mu.Lock()
			got = nil
			mu.Unlock()
			if _, err := c.GetClusterStatus(context.Background()); err != nil {
				t.Fatal(err)
			}
			// Another node through WithAddr keeps the credentials.
			other, err := c.WithAddr(strings.TrimPrefix(srv.URL, "http://"))
			if err != nil {
				t.Fatal(err)
			}
			if err := other.Ready(context.Background()); err != nil {
				t.Fatal(err)
			}
			mu.Lock()
			defer mu.Unlock()
			if len(got) != 2 || got[0] != tc.want || got[1] != tc.want {
				t.Fatalf("Authorization %q, want %q twice", got, tc.want)
			}
		})
	}
}

// TestTLSWithCAFile: an https node is trusted with its CA file, and not
// without it.
func TestTLSWithCAFile(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte(`{"node_id":"n1"}`))
	}))
	defer srv.Close()
	dir := t.TempDir()
	ca := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	c, err := client.New(srv.URL, client.WithCAFile(ca))
	if err != nil {
		t.Fatal(err)
	}
	if st, err := c.GetClusterStatus(ctx); err != nil || st.NodeId != "n1" {
		t.Fatalf("with the CA: %v, %v", st, err)
	}
	if c.Scheme() != "https" {
		t.Fatalf("scheme %s", c.Scheme())
	}
	untrusting, err := client.New(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := untrusting.GetClusterStatus(ctx); err == nil || client.StatusCode(err) != 0 {
		t.Fatalf("without the CA: %v", err)
	}
	junk := filepath.Join(dir, "junk.pem")
	if err := os.WriteFile(junk, []byte("no certificate here"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{junk, filepath.Join(dir, "absent.pem")} {
		if _, err := client.New(srv.URL, client.WithCAFile(bad)); err == nil || !strings.Contains(err.Error(), "CA file") {
			t.Fatalf("CA file %s: %v", bad, err)
		}
	}
	if _, err := client.New(srv.URL, client.WithCAFile(ca), client.WithHTTPClient(srv.Client())); err == nil {
		t.Fatal("WithCAFile and WithHTTPClient together accepted")
	}
	// An http.Client of one's own carries the TLS setup instead.
	own, err := client.New(srv.URL, client.WithHTTPClient(srv.Client()))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := own.GetClusterStatus(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestAddresses(t *testing.T) {
	for _, tc := range []struct {
		addr, want, errHas string
	}{
		{"127.0.0.1:8081", "http://127.0.0.1:8081", ""},
		{"http://127.0.0.1:8081/", "http://127.0.0.1:8081", ""},
		{"https://node1.example:8443", "https://node1.example:8443", ""},
		{" [::1]:8081 ", "http://[::1]:8081", ""},
		{"", "", "empty"},
		{"ftp://x:1", "", "scheme"},
		{"http://", "", "no host"},
		{"http://x:1/api", "", "host:port only"},
		{"http://x:1?q=1", "", "host:port only"},
		{"http://u:p@x:1", "", "host:port only"},
	} {
		c, err := client.New(tc.addr)
		switch {
		case tc.errHas != "":
			if err == nil || !strings.Contains(err.Error(), tc.errHas) {
				t.Errorf("%q: error %v, want one with %q", tc.addr, err, tc.errHas)
			}
		case err != nil:
			t.Errorf("%q: %v", tc.addr, err)
		case c.Addr() != tc.want:
			t.Errorf("%q: Addr %q, want %q", tc.addr, c.Addr(), tc.want)
		}
	}
	c, err := client.New("https://a:1")
	if err != nil {
		t.Fatal(err)
	}
	if o, err := c.WithAddr("b:2"); err != nil || o.Addr() != "https://b:2" {
		t.Fatalf("WithAddr keeps the scheme: %v, %v", o, err)
	}
}

// TestTimeout: WithTimeout bounds a call; the caller's context still
// does when the timeout is off.
func TestTimeout(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(release)
	c, err := client.New(srv.URL, client.WithTimeout(50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if _, err := c.GetClusterStatus(context.Background()); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("WithTimeout: %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("took %s", d)
	}
	c, err = client.New(srv.URL, client.WithTimeout(0))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := c.GetClusterStatus(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("context: %v", err)
	}
}
