package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/google/uuid"
	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	"go.etcd.io/bbolt"

	pb "github.com/seed-7bfc04c2/dialtone/api/dialtonev1"
	"github.com/seed-7bfc04c2/dialtone/bench/load"
	"github.com/seed-7bfc04c2/dialtone/internal/fsm"
	"github.com/seed-7bfc04c2/dialtone/internal/fsm/fsmpb"
	"github.com/seed-7bfc04c2/dialtone/internal/server"
)

// runRawRaft measures the Raft limit the bulk creates are compared with:
// three hashicorp/raft nodes in this process on loopback TCP, each on its
// own raft-boltdb file (fsync on) with the cluster package's settings
// (bolt NoFreelistSync, a 1,024-entry log cache, MaxAppendEntries 1,024,
// BatchApplyCh, the run's Raft timeouts), and a state machine that does
// nothing. The entries are the bytes the bulk-create path proposes: a
// create command of ingest.bulk_size validated records, encoded as the
// leader encodes it. As many writers as the ingest scenario's bulk writers
// propose on the leader, closed loop.
func (h *harness) runRawRaft(ctx context.Context) error {
	c := h.cfg.Ingest
	entry, err := bulkEntry(c.BulkSize)
	if err != nil {
		return err
	}
	dir := filepath.Join(h.tmp, "rawraft")
	nodes, err := startRawRaft(dir, h.cfg.Heartbeat.Duration, h.cfg.Election.Duration, h.cfg.Lease.Duration)
	if err != nil {
		return err
	}
	defer func() {
		for _, n := range nodes {
			n.close()
		}
	}()
	var leader *raft.Raft
	if !waitFor(ctx, 30*time.Second, func() bool {
		for _, n := range nodes {
			if n.r.State() == raft.Leader {
				leader = n.r
				return true
			}
		}
		return false
	}) {
		return fmt.Errorf("rawraft: no leader within 30s")
	}
	first := leader.LastIndex()
	r := load.Run(ctx, load.Options{Workers: c.BulkWriters, Warmup: c.Warmup.Duration, Duration: c.Duration.Duration},
		func(ctx context.Context, w *load.Worker) (int, error) {
			if err := leader.Apply(entry, 10*time.Second).Error(); err != nil {
				return 0, err
			}
			return c.BulkSize, nil
		})
	entries := leader.LastIndex() - first
	res := &RawRaftResult{Writers: c.BulkWriters, RecordsPerEntry: c.BulkSize, EntryBytes: len(entry), Seconds: r.Seconds,
		EntriesPerSec: r.CallsPerSec(), RecordsPerSec: r.RecordsPerSec(), P50ms: ms(r.Quantile(0.5)), P99ms: ms(r.Quantile(0.99)),
		Entries: entries, Errors: r.Errors}
	h.repMu.Lock()
	h.rep.RawRaft = res
	h.repMu.Unlock()
	h.logf("rawraft: %d-record entries (%d bytes), %d writers: %.0f entries/s, %.0f records/s, p50 %.1f ms, p99 %.1f ms, errors %s",
		res.RecordsPerEntry, res.EntryBytes, res.Writers, res.EntriesPerSec, res.RecordsPerSec, res.P50ms, res.P99ms, load.Counts(res.Errors))
	h.check("rawraft", "entries committed", r.Calls > 0 && len(r.Errors) == 0, "%d entries, errors %s", r.Calls, load.Counts(r.Errors))
	return nil
}

// bulkEntry is the log entry the leader proposes for one bulk create of n
// records (server.Requests.Create: validated, ids and fingerprints set,
// encoded with the leader's time stamp).
func bulkEntry(n int) ([]byte, error) {
	recs := make([]*fsmpb.Request, 0, n)
	for i := range n {
		seq := int64(i)
		r, errs := server.ValidateSpec("requests["+strconv.Itoa(i)+"]", &pb.RequestSpec{
			Token: "w0-" + strconv.Itoa(i), IvrProfile: "Application", Telnum: load.Telnum(0, seq),
			NotificationUrl: "http://127.0.0.1:9/r", MaxAttempts: 3, TimeToLive: "3600s",
		})
		if len(errs) > 0 {
			return nil, fmt.Errorf("rawraft: spec: %v", errs)
		}
		r.Tenant = "ingest-grpc-bulk"
		r.Id = uuid.Must(uuid.NewV7()).String()
		r.Fingerprint = fsm.Fingerprint(r)
		recs = append(recs, r)
	}
	return fsm.EncodeAt(fsm.CreateCommand(recs, 20_000_000), time.Now().UnixMilli())
}

type rawNode struct {
	r     *raft.Raft
	store *raftboltdb.BoltStore
	trans *raft.NetworkTransport
}

func (n *rawNode) close() {
	_ = n.r.Shutdown().Error()
	_ = n.trans.Close()
	_ = n.store.Close()
}

// startRawRaft starts and bootstraps three nodes.
func startRawRaft(dir string, heartbeat, election, lease time.Duration) ([]*rawNode, error) {
	var nodes []*rawNode
	var servers []raft.Server
	fail := func(err error) ([]*rawNode, error) {
		for _, n := range nodes {
			n.close()
		}
		return nil, fmt.Errorf("rawraft: %w", err)
	}
	hl := hclog.New(&hclog.LoggerOptions{Output: io.Discard, Level: hclog.Off})
	for i := range 3 {
		id := "r" + strconv.Itoa(i+1)
		d := filepath.Join(dir, id)
		if err := os.MkdirAll(d, 0o755); err != nil {
			return fail(err)
		}
		store, err := raftboltdb.New(raftboltdb.Options{Path: filepath.Join(d, "raft.db"),
			BoltOptions: &bbolt.Options{NoFreelistSync: true, Timeout: 5 * time.Second}})
		if err != nil {
			return fail(err)
		}
		logs, err := raft.NewLogCache(1024, store)
		if err != nil {
			_ = store.Close()
			return fail(err)
		}
		snaps, err := raft.NewFileSnapshotStoreWithLogger(d, 2, hl)
		if err != nil {
			_ = store.Close()
			return fail(err)
		}
		addr, err := net.ResolveTCPAddr("tcp", "127.0.0.1:0")
		if err != nil {
			_ = store.Close()
			return fail(err)
		}
		trans, err := raft.NewTCPTransportWithLogger(addr.String(), nil, 3, 10*time.Second, hl)
		if err != nil {
			_ = store.Close()
			return fail(err)
		}
		rc := raft.DefaultConfig()
		rc.LocalID = raft.ServerID(id)
		rc.Logger = hl
		rc.HeartbeatTimeout, rc.ElectionTimeout, rc.LeaderLeaseTimeout = heartbeat, election, lease
		rc.SnapshotThreshold = 8192
		rc.TrailingLogs = 10240
		rc.MaxAppendEntries = 1024
		rc.BatchApplyCh = true
		r, err := raft.NewRaft(rc, nopFSM{}, logs, store, snaps, trans)
		if err != nil {
			_ = trans.Close()
			_ = store.Close()
			return fail(err)
		}
		nodes = append(nodes, &rawNode{r: r, store: store, trans: trans})
		servers = append(servers, raft.Server{ID: rc.LocalID, Address: trans.LocalAddr()})
	}
	if err := nodes[0].r.BootstrapCluster(raft.Configuration{Servers: servers}).Error(); err != nil {
		return fail(err)
	}
	return nodes, nil
}

// nopFSM applies nothing: the baseline is Raft and its log store alone.
type nopFSM struct{}

func (nopFSM) Apply(*raft.Log) any                 { return nil }
func (nopFSM) Snapshot() (raft.FSMSnapshot, error) { return nopSnapshot{}, nil }
func (nopFSM) Restore(rc io.ReadCloser) error      { return rc.Close() }

type nopSnapshot struct{}

func (nopSnapshot) Persist(sink raft.SnapshotSink) error { return sink.Close() }
func (nopSnapshot) Release()                             {}
