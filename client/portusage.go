package client

import (
	"context"
	"net/http"
	"net/url"

	pb "github.com/seed-7bfc04c2/dialtone/api/dialtonev1"
)

// GetPortUsage is the deployment's port usage, in total and per tenant
// (GET /v1/port-usage).
func (c *Client) GetPortUsage(ctx context.Context) (*pb.Usage, error) {
	out := &pb.Usage{}
	return out, c.call(ctx, http.MethodGet, "/v1/port-usage", nil, nil, out)
}

// GetTenantPortUsage is one tenant's port usage (GET
// /v1/port-usage/tenants/{tenant}).
func (c *Client) GetTenantPortUsage(ctx context.Context, tenant string) (*pb.TenantUsage, error) {
	out := &pb.TenantUsage{}
	return out, c.call(ctx, http.MethodGet, "/v1/port-usage/tenants/"+segment(tenant), nil, nil, out)
}

// ListPortServers lists the media servers that publish port usage, only
// tenant's when it is not empty (GET /v1/port-usage/servers).
func (c *Client) ListPortServers(ctx context.Context, tenant string) (*pb.ListServersResponse, error) {
	out := &pb.ListServersResponse{}
	var q url.Values
	if tenant != "" {
		q = url.Values{"tenant": {tenant}}
	}
	return out, c.call(ctx, http.MethodGet, "/v1/port-usage/servers", q, nil, out)
}

// GetPortServer is one media server's port usage (GET
// /v1/port-usage/servers/{id}).
func (c *Client) GetPortServer(ctx context.Context, id string) (*pb.ServerUsage, error) {
	out := &pb.ServerUsage{}
	return out, c.call(ctx, http.MethodGet, "/v1/port-usage/servers/"+segment(id), nil, nil, out)
}
