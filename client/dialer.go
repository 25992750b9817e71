package client

import (
	"context"
	"net/http"

	pb "github.com/seed-7bfc04c2/dialtone/api/dialtonev1"
)

// GlobalPacing names the global pacing entry; the pacing calls take an
// empty tenant to mean it too.
const GlobalPacing = "_global"

func pacingPath(tenant string) string {
	if tenant == "" {
		tenant = GlobalPacing
	}
	return "/v1/pacing/" + segment(tenant)
}

// GetPacing reads a tenant's (or the global) stored entry and the settings
// in force (GET /v1/pacing/{tenant}).
func (c *Client) GetPacing(ctx context.Context, in *pb.GetPacingRequest) (*pb.GetPacingResponse, error) {
	out := &pb.GetPacingResponse{}
	return out, c.call(ctx, http.MethodGet, pacingPath(in.GetTenant()), queryOf(in, "tenant"), nil, out)
}

// ListPacing lists the stored entries and the global CAPS limit (GET
// /v1/pacing).
func (c *Client) ListPacing(ctx context.Context, in *pb.ListPacingRequest) (*pb.ListPacingResponse, error) {
	out := &pb.ListPacingResponse{}
	return out, c.call(ctx, http.MethodGet, "/v1/pacing", queryOf(in), nil, out)
}

// SetPacing replaces a tenant's (or the global) entry with in.Pacing:
// fields left zero inherit (PUT /v1/pacing/{tenant}).
func (c *Client) SetPacing(ctx context.Context, in *pb.SetPacingRequest) (*pb.SetPacingResponse, error) {
	out := &pb.SetPacingResponse{}
	body := in.GetPacing()
	if body == nil {
		body = &pb.Pacing{}
	}
	return out, c.call(ctx, http.MethodPut, pacingPath(in.GetTenant()), nil, body, out)
}

// DeletePacing removes a tenant's (or the global) entry: every field
// inherits again (DELETE /v1/pacing/{tenant}). No entry is a 404 *Error.
func (c *Client) DeletePacing(ctx context.Context, tenant string) (*pb.DeletePacingResponse, error) {
	out := &pb.DeletePacingResponse{}
	return out, c.call(ctx, http.MethodDelete, pacingPath(tenant), nil, nil, out)
}

// GetDialerStatus is the leader's dialer engine statistics (GET
// /v1/dialer; a follower forwards the call).
func (c *Client) GetDialerStatus(ctx context.Context) (*pb.DialerStatus, error) {
	out := &pb.DialerStatus{}
	return out, c.call(ctx, http.MethodGet, "/v1/dialer", nil, nil, out)
}
