package node_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/seed-7bfc04c2/dialtone/internal/fsm/fsmpb"
)

type restRequest struct {
	ID   string `json:"id"`
	Spec struct {
		Token      string `json:"token"`
		TimeToLive string `json:"time_to_live"`
		CustomData []struct {
			Key, Value string
		} `json:"custom_data"`
		Cpd struct {
			RnaTimeout string `json:"rna_timeout"`
		} `json:"cpd"`
	} `json:"spec"`
	State        string `json:"state"`
	Result       string `json:"result"`
	Status       string `json:"status"`
	AttemptsMade int    `json:"attempts_made"`
	TTLRemaining string `json:"ttl_remaining"`
}

func decode[T any](t *testing.T, body string) T {
	t.Helper()
	var v T
	if err := json.Unmarshal([]byte(body), &v); err != nil {
		t.Fatalf("decode %s: %v", body, err)
	}
	return v
}

func TestRESTLifecycle(t *testing.T) {
	tc := newTestCluster(t, 3, nil)
	base := "http://" + tc.Node(tc.follower()).HTTPAddr() + "/v1/tenants/acme/requests"

	var specs []string
	for i := range 5 {
		specs = append(specs, fmt.Sprintf(`{"token":"T%d","ivr_profile":"P%d","telnum":"+4930%d","notification_url":"https://ta.example/n?x=1","max_attempts":3,"time_to_live":"6000ms","custom_data":[{"key":"k","value":"v%d"}],"cpd":{"record":false,"rna_timeout":"60s","preconnect":true,"detect":"all"}}`, i, i%2, i, i))
	}
	code, body := httpDo(t, "POST", base, "application/json", []byte(`{"requests":[`+strings.Join(specs, ",")+`]}`))
	if code != 200 {
		t.Fatalf("create: %d %s", code, body)
	}
	created := decode[struct {
		Results []struct {
			OK    bool   `json:"ok"`
			ID    string `json:"id"`
			Token string `json:"token"`
		} `json:"results"`
		Index string `json:"index"`
	}](t, body)
	if len(created.Results) != 5 || created.Index == "" {
		t.Fatalf("create: %s", body)
	}
	for i, r := range created.Results {
		if !r.OK || r.Token != fmt.Sprintf("T%d", i) {
			t.Fatalf("result %d: %+v", i, r)
		}
	}
	id0 := created.Results[0].ID

	code, body = httpDo(t, "GET", base+"/"+id0+"?min_index="+created.Index, "", nil)
	got := decode[struct{ Request restRequest }](t, body)
	r := got.Request
	if code != 200 || r.Spec.Token != "T0" || r.Spec.TimeToLive != "6s" || r.Spec.Cpd.RnaTimeout != "60s" ||
		len(r.Spec.CustomData) != 1 || r.State != "PENDING" || r.Status != "Waiting to be processed" || r.TTLRemaining == "" {
		t.Fatalf("get: %d %s", code, body)
	}

	// Paging: two pages of 3 and 2 in creation order, then a filter.
	code, body = httpDo(t, "GET", base+"?page_size=3&min_index="+created.Index, "", nil)
	page1 := decode[struct {
		Requests []restRequest `json:"requests"`
		Next     string        `json:"next_page_token"`
	}](t, body)
	if code != 200 || len(page1.Requests) != 3 || page1.Next == "" || page1.Requests[0].ID != id0 {
		t.Fatalf("page 1: %d %s", code, body)
	}
	_, body = httpDo(t, "GET", base+"?page_size=3&page_token="+page1.Next, "", nil)
	page2 := decode[struct {
		Requests []restRequest `json:"requests"`
		Next     string        `json:"next_page_token"`
	}](t, body)
	if len(page2.Requests) != 2 || page2.Next != "" || page2.Requests[1].ID != created.Results[4].ID {
		t.Fatalf("page 2: %s", body)
	}
	_, body = httpDo(t, "GET", base+"?ivr_profile=P1", "", nil)
	if n := len(decode[struct{ Requests []restRequest }](t, body).Requests); n != 2 {
		t.Fatalf("P1 filter: %d requests: %s", n, body)
	}

	// Batch get with one unknown id.
	unknown := "01a206c4-46ef-7bf7-a1d6-863aee3f713a"
	_, body = httpDo(t, "POST", base+":batchGet", "application/json", []byte(`{"ids":["`+id0+`","`+unknown+`"]}`))
	bg := decode[struct {
		Results []struct {
			ID      string       `json:"id"`
			Request *restRequest `json:"request"`
			Code    string       `json:"code"`
		} `json:"results"`
	}](t, body)
	if len(bg.Results) != 2 || bg.Results[0].Request == nil || bg.Results[1].Code != "NOT_FOUND" {
		t.Fatalf("batch get: %s", body)
	}

	// Put request 1 in progress the way the dialer will: claim, then start
	// an attempt. Cancel must then refuse it, as the SSG does.
	leader := tc.Node(tc.leader())
	id1 := created.Results[1].ID
	for _, cmd := range []*fsmpb.Command{
		{Body: &fsmpb.Command_Claim{Claim: &fsmpb.ClaimRequests{Ids: []string{id1}}}},
		{Body: &fsmpb.Command_StartAttempts{StartAttempts: &fsmpb.StartAttempts{Starts: []*fsmpb.AttemptStart{{Id: id1, CallUuid: "call-1"}}}}},
	} {
		res, _, err := leader.Cluster().Apply(ctxT(t, 5*time.Second), cmd)
		if err != nil || res.Items[0].Code != fsmpb.Code_CODE_OK {
			t.Fatalf("apply %v: %v %v", cmd, res, err)
		}
	}
	code, body = httpDo(t, "DELETE", base+"/"+id1, "", nil)
	if code != 400 || !strings.Contains(body, "in progress") {
		t.Fatalf("cancel in progress: %d %s", code, body)
	}
	code, body = httpDo(t, "GET", base+"/"+id1+"?consistency=linearizable", "", nil)
	if r := decode[struct{ Request restRequest }](t, body).Request; code != 200 || r.State != "IN_PROGRESS" || r.AttemptsMade != 1 || r.Status != "Call in progress" {
		t.Fatalf("in progress: %s", body)
	}

	// Batch cancel: one cancellable, one in progress, one unknown.
	_, body = httpDo(t, "POST", base+":batchCancel", "application/json", []byte(`{"ids":["`+id0+`","`+id1+`","`+unknown+`"]}`))
	bc := decode[struct {
		Results []struct {
			ID   string `json:"id"`
			OK   bool   `json:"ok"`
			Code string `json:"code"`
		} `json:"results"`
	}](t, body)
	if len(bc.Results) != 3 || !bc.Results[0].OK || bc.Results[1].Code != "IN_PROGRESS" || bc.Results[2].Code != "NOT_FOUND" {
		t.Fatalf("batch cancel: %s", body)
	}
	// Cancelling again is idempotent.
	code, body = httpDo(t, "DELETE", base+"/"+id0, "", nil)
	if code != 200 {
		t.Fatalf("second cancel: %d %s", code, body)
	}
	_, body = httpDo(t, "GET", base+"/"+id0+"?consistency=linearizable", "", nil)
	if r := decode[struct{ Request restRequest }](t, body).Request; r.State != "PROCESSED" || r.Result != "CANCELLED" || r.Status != "Cancelled" {
		t.Fatalf("cancelled: %s", body)
	}
	// Another tenant can neither read nor cancel.
	other := strings.Replace(base, "/acme/", "/globex/", 1)
	for _, m := range []string{"GET", "DELETE"} {
		if code, body := httpDo(t, m, other+"/"+created.Results[2].ID, "", nil); code != 404 {
			t.Fatalf("%s as another tenant: %d %s", m, code, body)
		}
	}
}
