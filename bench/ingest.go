package main

import (
	"bytes"
	"context"
	"fmt"
	"html"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	pb "github.com/seed-7bfc04c2/dialtone/api/dialtonev1"
	"github.com/seed-7bfc04c2/dialtone/bench/load"
)

// runIngest measures creates per second through gRPC, REST and SSG XML,
// one request per call and bulk, on a cluster with no media platform (so
// nothing is dialled), then checks every acknowledged create was stored.
func (h *harness) runIngest(ctx context.Context) error {
	c := h.cfg.Ingest
	e, err := h.startEnv(ctx, "ingest", "live", nil)
	if err != nil {
		return err
	}
	defer e.stop()
	var acked int64
	for _, proto := range strings.Split(c.Protocols, ",") {
		for _, shape := range []struct {
			name           string
			writers, batch int
		}{{"single", c.SingleWriters, 1}, {"bulk", c.BulkWriters, c.BulkSize}} {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			tenant := "ingest-" + proto + "-" + shape.name
			var op load.Op
			switch proto {
			case "grpc":
				op = load.CreateOp(e.pool, tenant, shape.batch, "http://127.0.0.1:9/r")
			case "rest":
				op = e.restCreateOp(tenant, shape.batch)
			case "ssg":
				op = e.ssgCreateOp(tenant, shape.batch)
			}
			var before *pb.ClusterStatus
			if proto == "grpc" && shape.name == "bulk" {
				before = e.leaderStatus(ctx)
			}
			r := load.Run(ctx, load.Options{Workers: shape.writers, Warmup: c.Warmup.Duration, Duration: c.Duration.Duration}, op)
			if before != nil {
				// Records per Raft entry reaching the state machine: the
				// ingest runs alone on its cluster, so nearly every entry
				// of the window is a create (a few are barriers or
				// configuration entries).
				if after := e.leaderStatus(ctx); after != nil && after.GetLastLogIndex() > before.GetLastLogIndex() && after.GetNodeId() == before.GetNodeId() {
					per := float64(after.GetRecords()-before.GetRecords()) / float64(after.GetLastLogIndex()-before.GetLastLogIndex())
					h.repMu.Lock()
					h.rep.RecordsPerEntry = per
					h.repMu.Unlock()
					h.logf("ingest grpc bulk: %.1f records per Raft entry (%d records in %d entries)", per,
						after.GetRecords()-before.GetRecords(), after.GetLastLogIndex()-before.GetLastLogIndex())
				}
			}
			acked += r.Acked
			res := IngestResult{Protocol: proto, Shape: shape.name, Writers: shape.writers, Batch: shape.batch, Seconds: r.Seconds,
				CallsPerSec: r.CallsPerSec(), RecordsPerSec: r.RecordsPerSec(), P50ms: ms(r.Quantile(0.5)), P99ms: ms(r.Quantile(0.99)),
				Acked: r.Acked, Errors: r.Errors, ItemFailures: r.ItemFailures}
			h.repMu.Lock()
			h.rep.Ingest = append(h.rep.Ingest, res)
			h.repMu.Unlock()
			h.logf("ingest %s %s: %.0f calls/s, %.0f records/s, p50 %.1f ms, p99 %.1f ms, failed calls %s",
				proto, shape.name, res.CallsPerSec, res.RecordsPerSec, res.P50ms, res.P99ms, load.Counts(res.Errors))
		}
	}
	// The cluster is fresh: every stored record is an acknowledged create
	// of this scenario, or one whose answer was lost.
	stored := map[string]uint64{}
	ok := waitFor(ctx, 60*time.Second, func() bool {
		all := true
		for _, id := range e.c.IDs() {
			conn, err := e.c.Conn(id)
			if err != nil {
				all = false
				continue
			}
			cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			st, err := pb.NewClusterServiceClient(conn).GetStatus(cctx, &pb.GetStatusRequest{})
			cancel()
			if err != nil {
				all = false
				continue
			}
			stored[id] = st.GetRecords()
			all = all && int64(st.GetRecords()) >= acked
		}
		return all
	})
	h.check("ingest", "every acknowledged create stored on every node", ok, "acknowledged %d, stored %v", acked, stored)
	return nil
}

// leaderStatus is the leader's GetStatus, or nil.
func (e *environment) leaderStatus(ctx context.Context) *pb.ClusterStatus {
	leader, err := e.c.Leader(ctx)
	if err != nil {
		return nil
	}
	conn, err := e.c.Conn(leader)
	if err != nil {
		return nil
	}
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	st, err := pb.NewClusterServiceClient(conn).GetStatus(cctx, &pb.GetStatusRequest{})
	if err != nil {
		return nil
	}
	return st
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// post sends body to url (the SSG endpoint, which is not part of the REST
// API client/ covers) and returns the answer's body, failing on a non-2xx
// status.
func (e *environment) post(ctx context.Context, url, contentType string, body []byte) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", contentType)
	resp, err := e.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode/100 != 2 {
		return nil, &load.HTTPError{Code: resp.StatusCode}
	}
	return b, nil
}

// restCreateOp creates batch requests per call with POST
// /v1/tenants/{tenant}/requests, rotating over the nodes.
func (e *environment) restCreateOp(tenant string, batch int) load.Op {
	ids := e.c.IDs()
	return func(ctx context.Context, w *load.Worker) (int, error) {
		req := &pb.CreateRequestsRequest{Tenant: tenant}
		for i := range batch {
			seq := w.Seq*int64(batch) + int64(i)
			req.Requests = append(req.Requests, &pb.RequestSpec{Token: "r" + strconv.Itoa(w.ID) + "-" + strconv.FormatInt(seq, 10),
				IvrProfile: "Application", Telnum: load.Telnum(w.ID, seq), NotificationUrl: "http://127.0.0.1:9/r", MaxAttempts: 3, TimeToLive: "3600s"})
		}
		c, err := e.rest(ids[(w.ID+int(w.Seq))%len(ids)])
		if err != nil {
			return 0, err
		}
		resp, err := c.CreateRequests(ctx, req)
		if err != nil {
			return 0, err
		}
		ok := 0
		for _, r := range resp.Results {
			if r.Ok {
				ok++
			} else {
				w.Fail(r.Code)
			}
		}
		return ok, nil
	}
}

// ssgCreateOp creates batch requests per call with an SSG XML POST
// /SSG?TenantName=..., rotating over the nodes.
func (e *environment) ssgCreateOp(tenant string, batch int) load.Op {
	ids := e.c.IDs()
	return func(ctx context.Context, w *load.Worker) (int, error) {
		var b strings.Builder
		b.WriteString(`<?xml version="1.0" encoding="UTF-8"?>` + "\n<SSGRequest>\n")
		for i := range batch {
			seq := w.Seq*int64(batch) + int64(i)
			fmt.Fprintf(&b, `<CreateRequest Token="s%d-%d" MaxAttempts="3" TimeToLive="3600s" IVRProfileName="Application" Telnum="%s" NotificationURL="%s"/>`+"\n",
				w.ID, seq, load.Telnum(w.ID, seq), html.EscapeString("http://127.0.0.1:9/r?src=ssg&x=1"))
		}
		b.WriteString("</SSGRequest>\n")
		node := ids[(w.ID+int(w.Seq))%len(ids)]
		out, err := e.post(ctx, "http://"+e.c.HTTPAddr(node)+"/SSG?TenantName="+tenant, "text/xml", []byte(b.String()))
		if err != nil {
			return 0, err
		}
		ok := strings.Count(string(out), `ResponseType="SUCCESS"`)
		for range strings.Count(string(out), `ResponseType="FAILURE"`) {
			w.Fail("SSG FAILURE")
		}
		return ok, nil
	}
}
