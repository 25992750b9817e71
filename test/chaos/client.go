package chaos

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/seed-7bfc04c2/dialtone/api/dialtonev1"
	"github.com/seed-7bfc04c2/dialtone/client"
	"github.com/seed-7bfc04c2/dialtone/test/chaos/history"
)

// api is the runner's REST access to the nodes: a client.Client per node,
// all over one connection pool. Timeouts and retries are the callers'
// policy (per-operation contexts, another node on failure), so the clients
// have no timeout of their own.
type api struct {
	hc     *http.Client
	tenant string
	mu     sync.Mutex
	nodes  map[string]*client.Client // by base URL
}

func newAPI(tenant string) *api {
	return &api{hc: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 32}}, tenant: tenant, nodes: map[string]*client.Client{}}
}

// node is the client of the node at base.
func (a *api) node(base string) (*client.Client, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if c, ok := a.nodes[base]; ok {
		return c, nil
	}
	c, err := client.New(base, client.WithHTTPClient(a.hc), client.WithTimeout(0))
	if err != nil {
		return nil, err
	}
	a.nodes[base] = c
	return c, nil
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}

// create answers the request's id, or an error.
func (a *api) create(ctx context.Context, base string, s *pb.RequestSpec) (string, error) {
	c, err := a.node(base)
	if err != nil {
		return "", err
	}
	out, err := c.CreateRequests(ctx, &pb.CreateRequestsRequest{Tenant: a.tenant, Requests: []*pb.RequestSpec{s}})
	if err != nil {
		return "", err
	}
	if len(out.Results) != 1 || !out.Results[0].Ok {
		return "", fmt.Errorf("create refused: %v", out.Results)
	}
	return out.Results[0].Id, nil
}

// get reads one request with consistency=linearizable; found is false on
// 404.
func (a *api) get(ctx context.Context, base, id string) (r *pb.Request, found bool, err error) {
	c, err := a.node(base)
	if err != nil {
		return nil, false, err
	}
	out, err := c.GetRequest(ctx, &pb.GetRequestRequest{Tenant: a.tenant, Id: id, Consistency: client.Linearizable})
	if client.StatusCode(err) == http.StatusNotFound {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	return out.Request, true, nil
}

// cancel answers the cancel's outcome (history.OK, InProgress, Finished,
// NotFound) or an error.
func (a *api) cancel(ctx context.Context, base, id string) (string, error) {
	c, err := a.node(base)
	if err != nil {
		return "", err
	}
	out, err := c.BatchCancelRequests(ctx, &pb.BatchCancelRequestsRequest{Tenant: a.tenant, Ids: []string{id}})
	if err != nil {
		return "", err
	}
	if len(out.Results) != 1 {
		return "", fmt.Errorf("cancel: %d results", len(out.Results))
	}
	switch r := out.Results[0]; {
	case r.Ok:
		return history.OK, nil
	case r.Code == "IN_PROGRESS":
		return history.InProgress, nil
	case r.Code == "FINISHED":
		return history.Finished, nil
	case r.Code == "NOT_FOUND":
		return history.NotFound, nil
	default:
		return "", fmt.Errorf("cancel: %s %s", r.Code, r.Reason)
	}
}

// batchGet reads many requests linearizably.
func (a *api) batchGet(ctx context.Context, base string, ids []string) (map[string]*pb.Request, error) {
	c, err := a.node(base)
	if err != nil {
		return nil, err
	}
	out, err := c.BatchGetRequests(ctx, &pb.BatchGetRequestsRequest{Tenant: a.tenant, Ids: ids, Consistency: client.Linearizable})
	if err != nil {
		return nil, err
	}
	m := map[string]*pb.Request{}
	for _, r := range out.Results {
		if r.Request != nil {
			m[r.Id] = r.Request
		}
	}
	return m, nil
}

func (a *api) status(ctx context.Context, base string) (*pb.ClusterStatus, error) {
	c, err := a.node(base)
	if err != nil {
		return nil, err
	}
	return c.GetClusterStatus(ctx)
}

func (a *api) setPacing(ctx context.Context, base string, p *pb.Pacing) error {
	c, err := a.node(base)
	if err != nil {
		return err
	}
	_, err = c.SetPacing(ctx, &pb.SetPacingRequest{Tenant: a.tenant, Pacing: p})
	return err
}

func (a *api) leave(ctx context.Context, base string) error {
	c, err := a.node(base)
	if err != nil {
		return err
	}
	return c.Leave(ctx)
}

func (a *api) portUsage(ctx context.Context, base string) (*pb.Usage, error) {
	c, err := a.node(base)
	if err != nil {
		return nil, err
	}
	return c.GetPortUsage(ctx)
}

// simJSON decodes the JSON answer of a GET to the simulators (the media
// platform and the notification sink), which are not Dialtone's API.
func (a *api) simJSON(ctx context.Context, url string, out any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := a.hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("GET %s: HTTP %d: %s", url, resp.StatusCode, truncate(string(b), 200))
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("decode %s: %w", url, err)
	}
	return nil
}

// asTime is t, or the zero time when t is unset (AsTime would say 1970).
func asTime(t *timestamppb.Timestamp) time.Time {
	if t == nil {
		return time.Time{}
	}
	return t.AsTime()
}
