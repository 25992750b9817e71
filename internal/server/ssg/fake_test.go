package ssg

import (
	"context"
	"fmt"
	"sync"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/seed-7bfc04c2/dialtone/api/dialtonev1"
	"github.com/seed-7bfc04c2/dialtone/internal/fsm/fsmpb"
)

// fakeService is an in-memory Service that records how it was called.
type fakeService struct {
	mu         sync.Mutex
	recs       map[string]*fsmpb.Request
	order      []string
	index      uint64
	maxRecords int
	createErr  error
	cancelErr  error
	barrierErr error
	calls      []string // "create n", "cancel ids", "barrier consistency min"
}

func newFake() *fakeService { return &fakeService{recs: map[string]*fsmpb.Request{}} }

func (f *fakeService) Create(_ context.Context, tenant string, recs []*fsmpb.Request) ([]*pb.CreateResult, uint64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, fmt.Sprintf("create %d", len(recs)))
	if f.createErr != nil {
		return nil, 0, f.createErr
	}
	f.index++
	out := make([]*pb.CreateResult, len(recs))
	for i, r := range recs {
		if f.maxRecords > 0 && len(f.recs) >= f.maxRecords {
			out[i] = &pb.CreateResult{Token: r.Token, Code: "CAPACITY", Reason: fmt.Sprintf("maximum of %d stored records reached", f.maxRecords)}
			continue
		}
		r.Tenant = tenant
		r.Id = fmt.Sprintf("id-%d", len(f.order)+1)
		r.State = fsmpb.State_PENDING
		r.ExpiresUnixMs = fakeNow.Add(fakeTTL(r)).UnixMilli()
		f.recs[r.Id] = r
		f.order = append(f.order, r.Id)
		out[i] = &pb.CreateResult{Ok: true, Id: r.Id, Token: r.Token}
	}
	return out, f.index, nil
}

func (f *fakeService) Cancel(_ context.Context, tenant string, ids []string) ([]*pb.CancelResult, uint64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, fmt.Sprintf("cancel %v", ids))
	if f.cancelErr != nil {
		return nil, 0, f.cancelErr
	}
	f.index++
	out := make([]*pb.CancelResult, len(ids))
	for i, id := range ids {
		r, ok := f.recs[id]
		switch {
		case !ok || r.Tenant != tenant:
			out[i] = &pb.CancelResult{Id: id, Code: "NOT_FOUND"}
		case r.State == fsmpb.State_IN_PROGRESS:
			out[i] = &pb.CancelResult{Id: id, Code: "IN_PROGRESS"}
		case r.State == fsmpb.State_PROCESSED:
			// Like server.Requests reading a stale replica: FINISHED even when
			// the request was cancelled.
			out[i] = &pb.CancelResult{Id: id, Code: "FINISHED"}
		default:
			r.State, r.Result = fsmpb.State_PROCESSED, fsmpb.Result_CANCELLED
			out[i] = &pb.CancelResult{Id: id, Ok: true}
		}
	}
	return out, f.index, nil
}

func (f *fakeService) Lookup(tenant, id string) (*fsmpb.Request, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	r, ok := f.recs[id]
	if !ok || r.Tenant != tenant {
		return nil, false
	}
	return r, true
}

func (f *fakeService) ReadBarrier(_ context.Context, consistency string, minIndex uint64) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, fmt.Sprintf("barrier %s %d", consistency, minIndex))
	if f.barrierErr != nil {
		return "", f.barrierErr
	}
	return consistency, nil
}

var errNoLeader = status.Error(codes.Unavailable, "cluster unavailable: no cluster leader")
