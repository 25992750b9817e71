package node_test

import (
	"context"
	"encoding/base64"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	pb "github.com/seed-7bfc04c2/dialtone/api/dialtonev1"
	"github.com/seed-7bfc04c2/dialtone/internal/cluster/clusterpb"
	"github.com/seed-7bfc04c2/dialtone/internal/config"
	"github.com/seed-7bfc04c2/dialtone/internal/fsm/fsmpb"
	"github.com/seed-7bfc04c2/dialtone/internal/node"
)

func basicAuthCluster(t *testing.T, n int) *testCluster {
	hash := func(pw string) string {
		h, err := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.MinCost)
		if err != nil {
			t.Fatal(err)
		}
		return string(h)
	}
	return newTestCluster(t, n, func(c *config.Config) {
		c.Cluster.Secret = "0123456789abcdef-cluster"
		c.Auth.Mode = "basic"
		c.Auth.ProtectMetrics = true
		c.Auth.Users = []config.AuthUser{
			{Name: "crm", PasswordHash: hash("crm-pw"), Tenants: []string{"acme"}, Roles: []string{"submit", "read"}},
			{Name: "viewer", PasswordHash: hash("view-pw"), Tenants: []string{"acme"}, Roles: []string{"read"}},
			{Name: "ops", PasswordHash: hash("ops-pw"), Tenants: []string{"*"}, Roles: []string{"admin", "read"}},
		}
	})
}

func basic(user, pw string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pw))
}

func withAuth(t *testing.T, header string) context.Context {
	return metadata.AppendToOutgoingContext(ctxT(t, 10*time.Second), "authorization", header)
}

func TestBasicAuthRolesAndTenants(t *testing.T) {
	tc := basicAuthCluster(t, 3)
	cl := tc.requests(tc.follower())
	create := &pb.CreateRequestsRequest{Tenant: "acme", Requests: []*pb.RequestSpec{spec("T1")}}

	_, err := cl.CreateRequests(ctxT(t, 5*time.Second), create)
	if status.Code(err) != codes.Unauthenticated {
		t.Fatalf("no credentials: %v", err)
	}
	_, err = cl.CreateRequests(withAuth(t, basic("crm", "wrong")), create)
	if status.Code(err) != codes.Unauthenticated {
		t.Fatalf("wrong password: %v", err)
	}
	_, err = cl.CreateRequests(withAuth(t, basic("viewer", "view-pw")), create)
	if status.Code(err) != codes.PermissionDenied || !strings.Contains(err.Error(), "submit") {
		t.Fatalf("read-only user creating: %v", err)
	}
	_, err = cl.CreateRequests(withAuth(t, basic("crm", "crm-pw")), &pb.CreateRequestsRequest{Tenant: "globex", Requests: create.Requests})
	if status.Code(err) != codes.PermissionDenied || !strings.Contains(err.Error(), "globex") {
		t.Fatalf("other tenant: %v", err)
	}
	// Forwarding from the follower carries the cluster secret.
	resp, err := cl.CreateRequests(withAuth(t, basic("crm", "crm-pw")), create)
	if err != nil || !resp.Results[0].Ok {
		t.Fatalf("create: %v %v", resp, err)
	}
	id := resp.Results[0].Id
	if _, err := cl.GetRequest(withAuth(t, basic("viewer", "view-pw")), &pb.GetRequestRequest{Tenant: "acme", Id: id, MinIndex: resp.Index}); err != nil {
		t.Fatalf("viewer read: %v", err)
	}
	// Cluster operations need admin.
	cc := tc.clusterClient(tc.leader())
	if _, err := cc.TransferLeadership(withAuth(t, basic("crm", "crm-pw")), &pb.TransferLeadershipRequest{}); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("crm transfer: %v", err)
	}
	if _, err := cc.TransferLeadership(withAuth(t, basic("ops", "ops-pw")), &pb.TransferLeadershipRequest{}); err != nil {
		t.Fatalf("ops transfer: %v", err)
	}
	if _, err := cc.GetStatus(withAuth(t, basic("viewer", "view-pw")), &pb.GetStatusRequest{}); err != nil {
		t.Fatalf("status: %v", err)
	}

	// REST: the gateway forwards the Authorization header.
	base := "http://" + tc.Node(tc.follower()).HTTPAddr()
	code, body := httpDo(t, "GET", base+"/v1/tenants/acme/requests/"+id, "", nil)
	if code != 401 {
		t.Fatalf("REST without credentials: %d %s", code, body)
	}
	code, body = httpGetAuth(t, base+"/v1/tenants/acme/requests/"+id+"?consistency=linearizable", basic("viewer", "view-pw"))
	if code != 200 || !strings.Contains(body, id) {
		t.Fatalf("REST viewer: %d %s", code, body)
	}
	code, _ = httpGetAuth(t, base+"/v1/tenants/globex/requests/"+id, basic("viewer", "view-pw"))
	if code != 403 {
		t.Fatalf("REST other tenant: %d", code)
	}
	// Metrics are protected (admin); health stays open.
	if code, _ := httpDo(t, "GET", base+"/metrics", "", nil); code != 401 {
		t.Fatalf("metrics without credentials: %d", code)
	}
	if code, _ := httpGetAuth(t, base+"/metrics", basic("crm", "crm-pw")); code != 403 {
		t.Fatalf("metrics as crm: %d", code)
	}
	if code, _ := httpGetAuth(t, base+"/metrics", basic("ops", "ops-pw")); code != 200 {
		t.Fatalf("metrics as ops: %d", code)
	}
	if code, _ := httpDo(t, "GET", base+"/healthz", "", nil); code != 200 {
		t.Fatalf("healthz: %d", code)
	}
}

func httpGetAuth(t *testing.T, url, header string) (int, string) {
	t.Helper()
	return httpDoHeaders(t, "GET", url, map[string]string{"Authorization": header}, nil)
}

// TestInternalServiceNeedsClusterSecret calls the leader's internal Apply
// directly: without the secret it is refused, so client credentials cannot
// be bypassed through the forwarding path.
func TestInternalServiceNeedsClusterSecret(t *testing.T) {
	tc := basicAuthCluster(t, 1)
	conn, err := grpc.NewClient(tc.Node("n1").GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	cmd := &fsmpb.Command{Body: &fsmpb.Command_Create{Create: &fsmpb.CreateRequests{Requests: []*fsmpb.Request{{Id: "x", Tenant: "acme"}}}}}
	for name, ctx := range map[string]context.Context{
		"no secret":    ctxT(t, 5*time.Second),
		"wrong secret": metadata.AppendToOutgoingContext(ctxT(t, 5*time.Second), "x-dialtone-cluster-secret", "guess-guess-guess"),
		"client creds": withAuth(t, basic("ops", "ops-pw")),
	} {
		_, err := clusterpb.NewInternalClient(conn).Apply(ctx, &clusterpb.ApplyRequest{Command: cmd})
		if status.Code(err) != codes.Unauthenticated {
			t.Fatalf("%s: %v", name, err)
		}
	}
	if n := tc.Node("n1").FSM().Count(); n != 0 {
		t.Fatalf("%d records stored", n)
	}
}

// A process without the cluster secret cannot join: gossip is encrypted
// and authenticated with a key derived from the secret, so the leader
// never sees it as a member and never makes it a voter. A node with the
// secret, started after it, joins (the control).
func TestNodeWithoutTheSecretCannotJoin(t *testing.T) {
	tc := basicAuthCluster(t, 3)
	rogueCfg := tc.Config()
	rogueCfg.Nodes = append(rogueCfg.Nodes, nodeBlock(t, "rogue"))
	rogueCfg.Nodes[len(rogueCfg.Nodes)-1].Join = []string{rogueCfg.Nodes[0].Gossip, rogueCfg.Nodes[1].Gossip}
	rogueCfg.Cluster.Secret = "not-the-cluster-secret-at-all"
	rogueCfg.Auth = config.Default().Auth
	rogue, err := node.Start(node.Options{Config: rogueCfg, NodeID: "rogue", Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(rogue.Close)

	tc.addNode("n4", tc.Config().Nodes[0].Gossip)
	tc.waitVoters(4)

	leader := tc.Node(tc.leader())
	for _, s := range leader.Cluster().Status().Servers {
		if s.ID == "rogue" {
			t.Fatalf("the node without the secret became a Raft server: %+v", s)
		}
	}
	for _, m := range leader.Cluster().Members() {
		if m.ID == "rogue" {
			t.Fatalf("the node without the secret is a gossip member: %+v", m)
		}
	}
}
