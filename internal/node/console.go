package node

import (
	"net/http"

	"github.com/seed-7bfc04c2/dialtone/internal/auth"
	"github.com/seed-7bfc04c2/dialtone/internal/console"
)

// consoleHandlers mounts the operator's console at /ui/. It reads and
// writes through the node's own gRPC server over the gateway connection
// (n.gwConn must exist), with each viewer's credential, so the API's
// authentication and tenant scoping apply. Its leader sampler runs until
// the node stops; its streams end when the HTTP server shuts down.
func (n *Node) consoleHandlers(authn *auth.Authenticator) map[string]http.Handler {
	c := console.New(console.Options{
		API:  console.NewGRPCAPI(n.gwConn),
		Auth: authn,
		Leader: func() (string, uint64) {
			st := n.cluster.Status()
			return st.LeaderID, st.Term
		},
	})
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		c.Run(n.ctx)
	}()
	return map[string]http.Handler{console.Prefix: c}
}
