package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/seed-7bfc04c2/dialtone/internal/config"
	"github.com/seed-7bfc04c2/dialtone/internal/node"
	"github.com/seed-7bfc04c2/dialtone/internal/telephony"
)

// InProcessOptions are Options plus what only in-process nodes take.
type InProcessOptions struct {
	Options
	// Logger is every node's logger; warnings to stderr when nil (debug
	// with DIALTONE_TEST_LOG set).
	Logger *slog.Logger
	// Backend, when set, builds the call backend every node shares (as
	// nodes share one media platform) from the final configuration.
	Backend func(config.Config) telephony.Backend
	// NodeBackend, when set, wraps the shared backend for node id (for
	// example to record which node placed each call); it may return b.
	NodeBackend func(id string, b telephony.Backend) telephony.Backend
}

// InProcess is a cluster of internal/node nodes in this process.
type InProcess struct {
	members
	log     *slog.Logger
	backend telephony.Backend
	perNode func(id string, b telephony.Backend) telephony.Backend
	remove  sync.Once
	dir     func()

	nodesMu sync.Mutex
	nodes   map[string]*node.Node
}

var _ Cluster = (*InProcess)(nil)

// StartInProcess starts the nodes and returns once every one sees a leader
// and all of them as Raft servers (ctx bounds the wait).
func StartInProcess(ctx context.Context, o InProcessOptions) (_ *InProcess, err error) {
	dir, remove, err := dataDir(o.Options, "dialtone-cluster-")
	if err != nil {
		return nil, err
	}
	cfg, err := o.Config(dir)
	if err != nil {
		remove()
		return nil, err
	}
	c := &InProcess{members: newMembers(o.Options, cfg), log: o.Logger, dir: remove, nodes: map[string]*node.Node{}, perNode: o.NodeBackend}
	c.status = c.view
	c.running = c.Running
	if c.log == nil {
		c.log = defaultLogger()
	}
	if o.Backend != nil {
		c.backend = o.Backend(cfg)
	}
	defer func() {
		if err != nil {
			_ = c.Close()
		}
	}()
	for _, nb := range cfg.Nodes {
		if _, err := c.start(nb.ID); err != nil {
			return nil, err
		}
	}
	if err := c.WaitServers(ctx, len(cfg.Nodes)); err != nil {
		return nil, err
	}
	return c, nil
}

func defaultLogger() *slog.Logger {
	level := slog.LevelWarn
	if os.Getenv("DIALTONE_TEST_LOG") != "" {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
}

func (c *InProcess) view(_ context.Context, id string) (nodeView, error) {
	n := c.Node(id)
	if n == nil {
		return nodeView{}, fmt.Errorf("cluster: node %s is not running", id)
	}
	st := n.Cluster().Status()
	return nodeView{leader: st.LeaderID, servers: len(st.Servers)}, nil
}

func (c *InProcess) start(id string) (*node.Node, error) {
	backend := c.backend
	if c.perNode != nil {
		backend = c.perNode(id, backend)
	}
	n, err := node.Start(node.Options{Config: c.Config(), NodeID: id, Logger: c.log, Backend: backend})
	if err != nil {
		return nil, fmt.Errorf("cluster: start %s: %w", id, err)
	}
	c.nodesMu.Lock()
	c.nodes[id] = n
	c.nodesMu.Unlock()
	return n, nil
}

// Node is running node id, or nil.
func (c *InProcess) Node(id string) *node.Node {
	c.nodesMu.Lock()
	defer c.nodesMu.Unlock()
	return c.nodes[id]
}

// Running are the ids of the running nodes, in configuration order. A node
// that stopped by itself (after a Leave) no longer counts.
func (c *InProcess) Running() []string {
	var out []string
	for _, id := range c.IDs() {
		if n := c.Node(id); n != nil {
			select {
			case <-n.Done():
			default:
				out = append(out, id)
			}
		}
	}
	return out
}

// take removes node id from the running set and returns it.
func (c *InProcess) take(id string) (*node.Node, error) {
	c.nodesMu.Lock()
	defer c.nodesMu.Unlock()
	n := c.nodes[id]
	if n == nil {
		return nil, fmt.Errorf("cluster: node %s is not running", id)
	}
	delete(c.nodes, id)
	return n, nil
}

// Stop shuts node id down in order (node.Shutdown).
func (c *InProcess) Stop(ctx context.Context, id string) error {
	n, err := c.take(id)
	if err != nil {
		return err
	}
	return n.Shutdown(ctx)
}

// Kill stops node id abruptly (node.Close): no leadership transfer, no
// gossip leave.
func (c *InProcess) Kill(id string) error {
	n, err := c.take(id)
	if err != nil {
		return err
	}
	n.Close()
	return nil
}

// Restart starts node id again (stopping it first if it runs).
func (c *InProcess) Restart(ctx context.Context, id string) error {
	if c.Node(id) != nil {
		if err := c.Stop(ctx, id); err != nil {
			return err
		}
	}
	_, err := c.start(id)
	return err
}

// AddNode adds a node on free ports to the configuration and starts it;
// edit, when set, changes its block (e.g. Join). It joins by gossip.
func (c *InProcess) AddNode(id string, edit func(*config.Node)) (*node.Node, error) {
	nb, err := NodeBlock(id)
	if err != nil {
		return nil, err
	}
	if edit != nil {
		edit(&nb)
	}
	c.mu.Lock()
	c.cfg.Nodes = append(c.cfg.Nodes, nb)
	c.mu.Unlock()
	return c.start(id)
}

// StopAll shuts every running node down concurrently and waits; the
// cluster can be restarted node by node (Restart) on the same data.
func (c *InProcess) StopAll() error {
	c.nodesMu.Lock()
	nodes := c.nodes
	c.nodes = map[string]*node.Node{}
	c.nodesMu.Unlock()
	var wg sync.WaitGroup
	var mu sync.Mutex
	var errs []error
	for id, n := range nodes {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			if err := n.Shutdown(ctx); err != nil {
				mu.Lock()
				errs = append(errs, fmt.Errorf("cluster: stop %s: %w", id, err))
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// Close stops every node, closes the connections and removes a temporary
// directory. Idempotent.
func (c *InProcess) Close() error {
	c.closeConns()
	err := c.StopAll()
	c.remove.Do(c.dir)
	return err
}
