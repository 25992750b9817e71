package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sync"
	"time"

	"github.com/seed-7bfc04c2/dialtone/internal/config"
	"github.com/seed-7bfc04c2/dialtone/internal/node"
)

// localCluster is a three-node cluster running inside this process on
// loopback, with its data in a temporary directory.
type localCluster struct {
	dir   string
	nodes []*node.Node
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// freeGossipAddr returns a port free for both TCP and UDP, as memberlist
// needs.
func freeGossipAddr() (string, error) {
	for range 50 {
		a, err := freeAddr()
		if err != nil {
			return "", err
		}
		if u, err := net.ListenPacket("udp", a); err == nil {
			u.Close()
			return a, nil
		}
	}
	return "", errors.New("no free gossip port")
}

func startLocalCluster(ctx context.Context, n int, maxRecords uint64, log *slog.Logger) (_ *localCluster, err error) {
	dir, err := os.MkdirTemp("", "createbench-")
	if err != nil {
		return nil, err
	}
	lc := &localCluster{dir: dir}
	defer func() {
		if err != nil {
			lc.stop()
		}
	}()

	cfg := config.Default()
	cfg.Cluster.DataDir = dir
	cfg.Limits.MaxRecords = maxRecords
	cfg.Log.Level = "warn"
	for i := 1; i <= n; i++ {
		nb := config.Node{ID: fmt.Sprintf("n%d", i)}
		for _, p := range []*string{&nb.HTTP, &nb.GRPC, &nb.Raft} {
			if *p, err = freeAddr(); err != nil {
				return nil, err
			}
		}
		if nb.Gossip, err = freeGossipAddr(); err != nil {
			return nil, err
		}
		cfg.Nodes = append(cfg.Nodes, nb)
		cfg.Cluster.InitialVoters = append(cfg.Cluster.InitialVoters, nb.ID)
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	for _, nb := range cfg.Nodes {
		nd, err := node.Start(node.Options{Config: cfg, NodeID: nb.ID, Logger: log})
		if err != nil {
			return nil, fmt.Errorf("start %s: %w", nb.ID, err)
		}
		lc.nodes = append(lc.nodes, nd)
	}
	return lc, lc.waitFormed(ctx, n, 30*time.Second)
}

// waitFormed waits until every node sees a leader and n servers.
func (lc *localCluster) waitFormed(ctx context.Context, n int, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		var notYet error
		for _, nd := range lc.nodes {
			st := nd.Cluster().Status()
			if st.LeaderID == "" || len(st.Servers) != n {
				notYet = fmt.Errorf("%s sees leader %q and %d servers", st.NodeID, st.LeaderID, len(st.Servers))
				break
			}
		}
		if notYet == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("cluster not formed: %w (%w)", notYet, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func (lc *localCluster) grpcAddrs() []string {
	out := make([]string, len(lc.nodes))
	for i, nd := range lc.nodes {
		out[i] = nd.GRPCAddr()
	}
	return out
}

// leader returns the id of the node that currently leads, or "".
func (lc *localCluster) leader() string {
	for _, nd := range lc.nodes {
		if nd.Cluster().IsLeader() {
			return nd.Cluster().NodeID()
		}
	}
	return ""
}

// stop shuts every node down concurrently and removes the data directory.
func (lc *localCluster) stop() {
	var wg sync.WaitGroup
	for _, nd := range lc.nodes {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			if err := nd.Shutdown(ctx); err != nil {
				slog.Warn("node shutdown", "err", err)
			}
		})
	}
	wg.Wait()
	if err := os.RemoveAll(lc.dir); err != nil {
		slog.Warn("remove data dir", "dir", lc.dir, "err", err)
	}
}
