package client

import (
	"context"
	"net/http"

	pb "github.com/seed-7bfc04c2/dialtone/api/dialtonev1"
)

// Read consistencies of the read calls ("" is Local).
const (
	// Local reads serve this node's replica.
	Local = "local"
	// Linearizable reads reflect every write acknowledged before the read
	// started.
	Linearizable = "linearizable"
)

func requestsPath(tenant string) string { return "/v1/tenants/" + segment(tenant) + "/requests" }

// CreateRequests submits in.Requests for in.Tenant as one replicated entry
// (POST /v1/tenants/{tenant}/requests). A request refused on its own (e.g.
// over the record maximum) is a result with OK false, not an error.
func (c *Client) CreateRequests(ctx context.Context, in *pb.CreateRequestsRequest) (*pb.CreateRequestsResponse, error) {
	out := &pb.CreateRequestsResponse{}
	return out, c.call(ctx, http.MethodPost, requestsPath(in.GetTenant()), nil, in, out)
}

// GetRequest reads one request (GET /v1/tenants/{tenant}/requests/{id});
// a request that does not exist is an *Error with status 404.
func (c *Client) GetRequest(ctx context.Context, in *pb.GetRequestRequest) (*pb.GetRequestResponse, error) {
	out := &pb.GetRequestResponse{}
	path := requestsPath(in.GetTenant()) + "/" + segment(in.GetId())
	return out, c.call(ctx, http.MethodGet, path, queryOf(in, "tenant", "id"), nil, out)
}

// BatchGetRequests reads many requests (POST
// /v1/tenants/{tenant}/requests:batchGet); one not found is a result
// without a request.
func (c *Client) BatchGetRequests(ctx context.Context, in *pb.BatchGetRequestsRequest) (*pb.BatchGetRequestsResponse, error) {
	out := &pb.BatchGetRequestsResponse{}
	return out, c.call(ctx, http.MethodPost, requestsPath(in.GetTenant())+":batchGet", nil, in, out)
}

// ListRequests lists a tenant's requests, one page at a time (GET
// /v1/tenants/{tenant}/requests).
func (c *Client) ListRequests(ctx context.Context, in *pb.ListRequestsRequest) (*pb.ListRequestsResponse, error) {
	out := &pb.ListRequestsResponse{}
	return out, c.call(ctx, http.MethodGet, requestsPath(in.GetTenant()), queryOf(in, "tenant"), nil, out)
}

// CancelRequest cancels a request that has no attempt in progress (DELETE
// /v1/tenants/{tenant}/requests/{id}).
func (c *Client) CancelRequest(ctx context.Context, in *pb.CancelRequestRequest) (*pb.CancelRequestResponse, error) {
	out := &pb.CancelRequestResponse{}
	path := requestsPath(in.GetTenant()) + "/" + segment(in.GetId())
	return out, c.call(ctx, http.MethodDelete, path, nil, nil, out)
}

// BatchCancelRequests cancels many requests (POST
// /v1/tenants/{tenant}/requests:batchCancel); each has its own result.
func (c *Client) BatchCancelRequests(ctx context.Context, in *pb.BatchCancelRequestsRequest) (*pb.BatchCancelRequestsResponse, error) {
	out := &pb.BatchCancelRequestsResponse{}
	return out, c.call(ctx, http.MethodPost, requestsPath(in.GetTenant())+":batchCancel", nil, in, out)
}
