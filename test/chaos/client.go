package chaos

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/seed-7bfc04c2/dialtone/test/chaos/history"
)

// api talks REST to the nodes.
type api struct {
	hc     *http.Client
	tenant string
}

// errUnknown marks an answer that does not say what happened.
type httpError struct {
	status int
	body   string
}

func (e *httpError) Error() string { return fmt.Sprintf("HTTP %d: %s", e.status, e.body) }

func (a *api) do(ctx context.Context, method, url string, body, out any) (int, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		return 0, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := a.hc.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return resp.StatusCode, err
	}
	if resp.StatusCode/100 != 2 {
		return resp.StatusCode, &httpError{resp.StatusCode, truncate(string(b), 200)}
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			return resp.StatusCode, fmt.Errorf("decode %s: %w", url, err)
		}
	}
	return resp.StatusCode, nil
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}

// spec is a request as created.
type spec struct {
	Token           string `json:"token"`
	IVRProfile      string `json:"ivr_profile"`
	Telnum          string `json:"telnum"`
	MaxAttempts     uint32 `json:"max_attempts"`
	TimeToLive      string `json:"time_to_live"`
	NotificationURL string `json:"notification_url"`
	IdempotencyKey  string `json:"idempotency_key,omitempty"`
}

type createResp struct {
	Results []struct {
		OK        bool   `json:"ok"`
		ID        string `json:"id"`
		Duplicate bool   `json:"duplicate"`
		Code      string `json:"code"`
		Reason    string `json:"reason"`
	} `json:"results"`
}

// create answers the request's id, or an error.
func (a *api) create(ctx context.Context, base string, s spec) (string, error) {
	var out createResp
	if _, err := a.do(ctx, http.MethodPost, base+"/v1/tenants/"+a.tenant+"/requests", map[string]any{"requests": []spec{s}}, &out); err != nil {
		return "", err
	}
	if len(out.Results) != 1 || !out.Results[0].OK {
		return "", fmt.Errorf("create refused: %+v", out.Results)
	}
	return out.Results[0].ID, nil
}

// wireRequest is the JSON of a dialtone.v1.Request.
type wireRequest struct {
	ID   string `json:"id"`
	Spec struct {
		Token       string `json:"token"`
		Telnum      string `json:"telnum"`
		MaxAttempts uint32 `json:"max_attempts"`
	} `json:"spec"`
	State        string    `json:"state"`
	Result       string    `json:"result"`
	ResultReason string    `json:"result_reason"`
	AttemptsMade uint32    `json:"attempts_made"`
	Created      time.Time `json:"created"`
	Expires      time.Time `json:"expires"`
	Notification string    `json:"notification"`
	Attempts     []struct {
		Number   uint32    `json:"number"`
		CallUUID string    `json:"call_uuid"`
		Started  time.Time `json:"started"`
		Ended    time.Time `json:"ended"`
		Outcome  string    `json:"outcome"`
		Reason   string    `json:"reason"`
	} `json:"attempts"`
}

// get reads one request with consistency=linearizable; found is false on
// 404.
func (a *api) get(ctx context.Context, base, id string) (r wireRequest, found bool, err error) {
	var out struct {
		Request wireRequest `json:"request"`
	}
	code, err := a.do(ctx, http.MethodGet, base+"/v1/tenants/"+a.tenant+"/requests/"+id+"?consistency=linearizable", nil, &out)
	if code == http.StatusNotFound {
		return r, false, nil
	}
	if err != nil {
		return r, false, err
	}
	return out.Request, true, nil
}

// cancel answers the cancel's outcome (history.OK, InProgress, Finished,
// NotFound) or an error.
func (a *api) cancel(ctx context.Context, base, id string) (string, error) {
	var out struct {
		Results []struct {
			OK     bool   `json:"ok"`
			Code   string `json:"code"`
			Reason string `json:"reason"`
		} `json:"results"`
	}
	if _, err := a.do(ctx, http.MethodPost, base+"/v1/tenants/"+a.tenant+"/requests:batchCancel", map[string]any{"ids": []string{id}}, &out); err != nil {
		return "", err
	}
	if len(out.Results) != 1 {
		return "", fmt.Errorf("cancel: %d results", len(out.Results))
	}
	switch r := out.Results[0]; {
	case r.OK:
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
func (a *api) batchGet(ctx context.Context, base string, ids []string) (map[string]wireRequest, error) {
	var out struct {
		Results []struct {
			ID      string       `json:"id"`
			Request *wireRequest `json:"request"`
		} `json:"results"`
	}
	if _, err := a.do(ctx, http.MethodPost, base+"/v1/tenants/"+a.tenant+"/requests:batchGet", map[string]any{"ids": ids, "consistency": "linearizable"}, &out); err != nil {
		return nil, err
	}
	m := map[string]wireRequest{}
	for _, r := range out.Results {
		if r.Request != nil {
			m[r.ID] = *r.Request
		}
	}
	return m, nil
}

// clusterStatus is the part of GET /v1/cluster the runner reads.
type clusterStatus struct {
	NodeID   string `json:"node_id"`
	State    string `json:"state"`
	LeaderID string `json:"leader_id"`
	Term     uint64 `json:"term,string"`
	Servers  []struct {
		ID       string `json:"id"`
		Suffrage string `json:"suffrage"`
	} `json:"servers"`
}

func (a *api) status(ctx context.Context, base string) (clusterStatus, error) {
	var st clusterStatus
	_, err := a.do(ctx, http.MethodGet, base+"/v1/cluster", nil, &st)
	return st, err
}
