package node

import (
	"net/http"

	"google.golang.org/grpc"

	"github.com/seed-7bfc04c2/dialtone/internal/auth"
	"github.com/seed-7bfc04c2/dialtone/internal/cluster"
	"github.com/seed-7bfc04c2/dialtone/internal/console"
)

// newConsole builds the operator's console. It reads and writes through
// the node's own gRPC server over conn (the REST gateway's connection),
// with each viewer's credential, so the API's authentication and tenant
// scoping apply. Its leader sampler (Run) is one of the node's goroutines;
// its streams end when the HTTP server shuts down.
func newConsole(conn *grpc.ClientConn, authn *auth.Authenticator, cl *cluster.Cluster) *console.Handler {
	return console.New(console.Options{
		API:  console.NewGRPCAPI(conn),
		Auth: authn,
		Leader: func() (string, uint64) {
			st := cl.Status()
			return st.LeaderID, st.Term
		},
	})
}

// consoleHandlers mounts the console at /ui/.
func consoleHandlers(c *console.Handler) map[string]http.Handler {
	return map[string]http.Handler{console.Prefix: c}
}
