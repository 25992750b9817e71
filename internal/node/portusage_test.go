package node_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/seed-7bfc04c2/dialtone/api/dialtonev1"
	"github.com/seed-7bfc04c2/dialtone/internal/config"
)

func (tc *testCluster) portUsage(id string) pb.PortUsageServiceClient {
	return pb.NewPortUsageServiceClient(tc.conn(id))
}

// publish sends reports on one stream and waits for their acks.
func publish(ctx context.Context, t *testing.T, cl pb.PortUsageServiceClient, reps ...*pb.PortReport) ([]*pb.PublishAck, error) {
	t.Helper()
	st, err := cl.Publish(ctx)
	if err != nil {
		return nil, err
	}
	var acks []*pb.PublishAck
	for _, r := range reps {
		if err := st.Send(r); err != nil && err != io.EOF {
			return acks, err
		}
		ack, err := st.Recv()
		if err != nil {
			return acks, err
		}
		acks = append(acks, ack)
	}
	if err := st.CloseSend(); err != nil {
		return acks, err
	}
	if _, err := st.Recv(); err != io.EOF {
		return acks, err
	}
	return acks, nil
}

func report(id, tenant string, total, inUse uint32, seq uint64) *pb.PortReport {
	return &pb.PortReport{ServerId: id, Address: "10.0.0." + id[len(id)-1:], Tenant: tenant, TotalPorts: total, PortsInUse: inUse, Seq: seq, TimeUnixMs: time.Now().UnixMilli()}
}

func TestPortUsageReachesEveryNodeAndGoesStale(t *testing.T) {
	tc := newTestCluster(t, 3, func(c *config.Config) {
		c.PortUsage.StaleAfter = config.Duration{Duration: time.Second}
	})
	to := tc.follower()
	acks, err := publish(ctxT(t, 10*time.Second), t, tc.portUsage(to),
		report("vxml1", "acme", 100, 40, 1), report("vxml2", "acme", 50, 5, 1), report("vxml3", "globex", 20, 20, 1))
	if err != nil || len(acks) != 3 || acks[0].NodeId != to || acks[2].Seq != 1 {
		t.Fatalf("publish: %v %v", acks, err)
	}
	sent := time.Now()
	for _, id := range tc.ids() {
		eventually(t, time.Second-time.Since(sent), "usage on "+id, func() error {
			u, err := tc.portUsage(id).GetUsage(ctxT(t, time.Second), &pb.GetUsageRequest{})
			if err != nil {
				return err
			}
			if u.TotalPorts != 170 || u.PortsInUse != 65 || u.AvailablePorts != 105 || u.Servers != 3 || len(u.Tenants) != 2 {
				return fmt.Errorf("%v", u)
			}
			return nil
		})
	}
	for _, id := range tc.ids() {
		s, err := tc.portUsage(id).GetServer(ctxT(t, time.Second), &pb.GetServerRequest{Id: "vxml1"})
		if err != nil || s.ReceivedBy != to || s.PortsInUse != 40 || len(s.Series) == 0 || s.Stale {
			t.Fatalf("server on %s: %v %v", id, s, err)
		}
		tu, err := tc.portUsage(id).GetTenantUsage(ctxT(t, time.Second), &pb.GetTenantUsageRequest{Tenant: "acme"})
		if err != nil || tu.TotalPorts != 150 || tu.Servers != 2 {
			t.Fatalf("tenant on %s: %v %v", id, tu, err)
		}
		if total, inUse, ok := tc.Node(id).PortUsage().Tenant("globex"); !ok || total != 20 || inUse != 20 {
			t.Fatalf("cache on %s: %d %d %v", id, total, inUse, ok)
		}
	}
	// REST through the gateway.
	resp, err := http.Get("http://" + tc.Node(to).HTTPAddr() + "/v1/port-usage/servers?tenant=globex")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"id":"vxml3"`) || !strings.Contains(string(body), `"ports_in_use":20`) {
		t.Fatalf("REST list: %d %s", resp.StatusCode, body)
	}

	// Silence: every server goes stale everywhere and counts as no capacity.
	for _, id := range tc.ids() {
		eventually(t, 5*time.Second, "stale on "+id, func() error {
			u, err := tc.portUsage(id).GetUsage(ctxT(t, time.Second), &pb.GetUsageRequest{})
			if err != nil {
				return err
			}
			if u.TotalPorts != 0 || u.Servers != 0 || u.StaleServers != 3 {
				return fmt.Errorf("%v", u)
			}
			if _, _, ok := tc.Node(id).PortUsage().Deployment(); ok {
				return fmt.Errorf("deployment still ok")
			}
			return nil
		})
	}
}

func TestPublishValidation(t *testing.T) {
	tc := newTestCluster(t, 1, nil)
	for _, tc2 := range []struct {
		r     *pb.PortReport
		field string
	}{
		{report("vxml1", "acme", 10, 11, 1), "ports_in_use"},
		{&pb.PortReport{Tenant: "acme", TotalPorts: 1}, "server_id"},
		{report("vxml1", "bad tenant!", 10, 1, 1), "tenant"},
		{report("vxml1", "acme", 2_000_000, 1, 1), "total_ports"},
		{&pb.PortReport{ServerId: strings.Repeat("x", 200), Tenant: "acme"}, "server_id"},
	} {
		_, err := publish(ctxT(t, 5*time.Second), t, tc.portUsage("n1"), tc2.r)
		if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), tc2.field) {
			t.Fatalf("%v: %v, want InvalidArgument naming %s", tc2.r, err, tc2.field)
		}
	}
	_, err := tc.portUsage("n1").GetServer(ctxT(t, time.Second), &pb.GetServerRequest{Id: "nope"})
	if status.Code(err) != codes.NotFound {
		t.Fatalf("unknown server: %v", err)
	}
}

func TestPortUsageAuth(t *testing.T) {
	hash := func(pw string) string {
		h, err := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.MinCost)
		if err != nil {
			t.Fatal(err)
		}
		return string(h)
	}
	tc := newTestCluster(t, 3, func(c *config.Config) {
		c.Cluster.Secret = "0123456789abcdef-cluster"
		c.Auth.Mode = "basic"
		c.Auth.Users = []config.AuthUser{
			{Name: "vxml", PasswordHash: hash("pub-pw"), Tenants: []string{"acme"}, Roles: []string{"publish"}},
			{Name: "viewer", PasswordHash: hash("view-pw"), Tenants: []string{"acme"}, Roles: []string{"read"}},
			{Name: "ops", PasswordHash: hash("ops-pw"), Tenants: []string{"*"}, Roles: []string{"admin", "read", "publish"}},
		}
	})
	to := tc.follower()
	cl := tc.portUsage(to)
	r := report("vxml1", "acme", 100, 10, 1)

	if _, err := publish(ctxT(t, 5*time.Second), t, cl, r); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("no credentials: %v", err)
	}
	if _, err := publish(withAuth(t, basic("viewer", "view-pw")), t, cl, r); status.Code(err) != codes.PermissionDenied || !strings.Contains(err.Error(), "publish") {
		t.Fatalf("reader publishing: %v", err)
	}
	if _, err := publish(withAuth(t, basic("vxml", "pub-pw")), t, cl, report("g1", "globex", 10, 1, 1)); status.Code(err) != codes.PermissionDenied || !strings.Contains(err.Error(), "globex") {
		t.Fatalf("wrong tenant: %v", err)
	}
	if _, err := publish(withAuth(t, basic("vxml", "pub-pw")), t, cl, r); err != nil {
		t.Fatalf("publisher: %v", err)
	}
	if _, err := publish(withAuth(t, basic("ops", "ops-pw")), t, cl, report("g1", "globex", 10, 1, 1)); err != nil {
		t.Fatalf("ops publishing globex: %v", err)
	}
	// The relay reaches the other nodes with auth on.
	for _, id := range tc.ids() {
		eventually(t, 2*time.Second, "relay to "+id, func() error {
			if _, _, ok := tc.Node(id).PortUsage().Tenant("globex"); !ok {
				return fmt.Errorf("no globex")
			}
			return nil
		})
	}
	// Reads: the acme viewer sees acme only.
	v := withAuth(t, basic("viewer", "view-pw"))
	u, err := cl.GetUsage(v, &pb.GetUsageRequest{})
	if err != nil || len(u.Tenants) != 1 || u.Tenants[0].Tenant != "acme" || u.TotalPorts != 100 {
		t.Fatalf("viewer usage: %v %v", u, err)
	}
	if _, err := cl.GetServer(v, &pb.GetServerRequest{Id: "g1"}); status.Code(err) != codes.NotFound {
		t.Fatalf("viewer reading globex server: %v", err)
	}
	if _, err := cl.GetServer(v, &pb.GetServerRequest{Id: "vxml1"}); err != nil {
		t.Fatalf("viewer reading acme server: %v", err)
	}
	if _, err := cl.GetTenantUsage(v, &pb.GetTenantUsageRequest{Tenant: "globex"}); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("viewer reading globex usage: %v", err)
	}
	if _, err := cl.ListServers(v, &pb.ListServersRequest{}); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("viewer listing every tenant: %v", err)
	}
	ls, err := cl.ListServers(withAuth(t, basic("ops", "ops-pw")), &pb.ListServersRequest{})
	if err != nil || len(ls.Servers) != 2 {
		t.Fatalf("ops list: %v %v", ls, err)
	}
	if _, err := cl.GetUsage(withAuth(t, basic("vxml", "pub-pw")), &pb.GetUsageRequest{}); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("publisher reading: %v", err)
	}
	// Cisco endpoint: read role; another tenant's servers are not shown.
	req, _ := http.NewRequest(http.MethodGet, "http://"+tc.Node(to).HTTPAddr()+"/cache-service/api/v1/licenseUsage", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("licenseUsage without credentials: %d", resp.StatusCode)
	}
	req.Header.Set("Authorization", basic("viewer", "view-pw"))
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"serverId":"vxml1"`) || strings.Contains(string(body), "g1") {
		t.Fatalf("viewer licenseUsage: %d %s", resp.StatusCode, body)
	}
}
