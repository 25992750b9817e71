package client

import (
	"context"
	"fmt"
	"net/http"
	"net/url"

	pb "github.com/seed-7bfc04c2/dialtone/api/dialtonev1"
)

// Contact rules: calling windows and suppression lists (docs/compliance.md).

func windowPath(tenant string) string { return "/v1/calling-windows/" + segment(tenant) }

func profileQuery(profile string) url.Values {
	if profile == "" {
		return nil
	}
	return url.Values{"ivr_profile": {profile}}
}

// GetCallingWindow reads a tenant's (or IVR profile's) calling window and
// the one in force (GET /v1/calling-windows/{tenant}).
func (c *Client) GetCallingWindow(ctx context.Context, tenant, profile string) (*pb.GetCallingWindowResponse, error) {
	out := &pb.GetCallingWindowResponse{}
	return out, c.call(ctx, http.MethodGet, windowPath(tenant), profileQuery(profile), nil, out)
}

// SetCallingWindow replaces a tenant's (or profile's) calling window (PUT
// /v1/calling-windows/{tenant}).
func (c *Client) SetCallingWindow(ctx context.Context, tenant, profile string, w *pb.CallingWindow) (*pb.SetCallingWindowResponse, error) {
	out := &pb.SetCallingWindowResponse{}
	if w == nil {
		w = &pb.CallingWindow{}
	}
	return out, c.call(ctx, http.MethodPut, windowPath(tenant), profileQuery(profile), w, out)
}

// DeleteCallingWindow removes a tenant's (or profile's) calling window; no
// window is a 404 *Error.
func (c *Client) DeleteCallingWindow(ctx context.Context, tenant, profile string) (*pb.DeleteCallingWindowResponse, error) {
	out := &pb.DeleteCallingWindowResponse{}
	return out, c.call(ctx, http.MethodDelete, windowPath(tenant), profileQuery(profile), nil, out)
}

// AddSuppressions adds numbers to a tenant's suppression list (POST
// /v1/suppressions/{tenant}); expiresIn ("720h") is optional.
func (c *Client) AddSuppressions(ctx context.Context, tenant string, numbers []string, expiresIn string) (*pb.SuppressionsResponse, error) {
	out := &pb.SuppressionsResponse{}
	return out, c.call(ctx, http.MethodPost, "/v1/suppressions/"+segment(tenant), nil, &pb.AddSuppressionsRequest{Numbers: numbers, ExpiresIn: expiresIn}, out)
}

// RemoveSuppressions removes numbers from a tenant's suppression list.
func (c *Client) RemoveSuppressions(ctx context.Context, tenant string, numbers []string) (*pb.SuppressionsResponse, error) {
	out := &pb.SuppressionsResponse{}
	return out, c.call(ctx, http.MethodPost, "/v1/suppressions/"+segment(tenant)+":remove", nil, &pb.RemoveSuppressionsRequest{Numbers: numbers}, out)
}

// CheckSuppression says whether a number is on a tenant's list.
func (c *Client) CheckSuppression(ctx context.Context, tenant, number string) (*pb.CheckSuppressionResponse, error) {
	out := &pb.CheckSuppressionResponse{}
	return out, c.call(ctx, http.MethodGet, "/v1/suppressions/"+segment(tenant)+"/"+segment(number), nil, nil, out)
}

// UploadSuppressions bulk-loads a file of numbers, one per line (CSV: the
// first field), into a tenant's list (POST
// /v1/suppressions/{tenant}/upload). The body is bounded by the server's
// maximum request size; larger lists go in several uploads.
func (c *Client) UploadSuppressions(ctx context.Context, tenant string, file []byte, expiresIn string) (*pb.SuppressionsResponse, error) {
	var q url.Values
	if expiresIn != "" {
		q = url.Values{"expires_in": {expiresIn}}
	}
	data, err := c.do(ctx, http.MethodPost, "/v1/suppressions/"+segment(tenant)+"/upload", q, file)
	if err != nil {
		return nil, err
	}
	out := &pb.SuppressionsResponse{}
	if err := unmarshal.Unmarshal(data, out); err != nil {
		return nil, fmt.Errorf("client: upload: decode answer: %w", err)
	}
	return out, nil
}

func freqCapPath(tenant string) string { return "/v1/frequency-caps/" + segment(tenant) }

// GetFrequencyCap reads a tenant's per-contact frequency cap (GET
// /v1/frequency-caps/{tenant}).
func (c *Client) GetFrequencyCap(ctx context.Context, tenant string) (*pb.GetFrequencyCapResponse, error) {
	out := &pb.GetFrequencyCapResponse{}
	return out, c.call(ctx, http.MethodGet, freqCapPath(tenant), nil, nil, out)
}

// SetFrequencyCap replaces a tenant's frequency cap (PUT
// /v1/frequency-caps/{tenant}).
func (c *Client) SetFrequencyCap(ctx context.Context, tenant string, fc *pb.FrequencyCap) (*pb.SetFrequencyCapResponse, error) {
	out := &pb.SetFrequencyCapResponse{}
	if fc == nil {
		fc = &pb.FrequencyCap{}
	}
	return out, c.call(ctx, http.MethodPut, freqCapPath(tenant), nil, fc, out)
}

// DeleteFrequencyCap removes a tenant's frequency cap; none is a 404
// *Error.
func (c *Client) DeleteFrequencyCap(ctx context.Context, tenant string) (*pb.DeleteFrequencyCapResponse, error) {
	out := &pb.DeleteFrequencyCapResponse{}
	return out, c.call(ctx, http.MethodDelete, freqCapPath(tenant), nil, nil, out)
}
