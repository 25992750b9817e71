package chaos

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"time"
)

// Deployment drives one docker-compose project of deploy/compose: its own
// project name, subnets and cluster TOML, so runs do not collide.
type Deployment struct {
	Project     string
	ComposeFile string
	// Overrides are further compose files layered on ComposeFile (the
	// SIP variant's sip.yml).
	Overrides []string
	// Image, when set, is the nodes' image (DT_IMAGE).
	Image string
	// Config is the cluster TOML the nodes mount.
	Config string
	// ClusterNet and ClientNet are the first three octets of the /24s.
	ClusterNet, ClientNet string
	// MediasimArgs are extra mediasim flags.
	MediasimArgs string
	Log          func(format string, args ...any)

	mu  sync.Mutex
	ids map[string]string // container ids by service (stable across kill, start, pause)
}

func (d *Deployment) env() []string {
	return append(os.Environ(),
		"DT_CONFIG="+d.Config,
		"DT_CLUSTER_NET="+d.ClusterNet,
		"DT_CLIENT_NET="+d.ClientNet,
		// The runner restarts what it kills, when it chooses.
		"DT_RESTART=no",
		"DT_MEDIASIM_ARGS="+d.MediasimArgs,
		"DT_IMAGE="+d.image(),
	)
}

func (d *Deployment) image() string {
	if d.Image != "" {
		return d.Image
	}
	if v := os.Getenv("DT_IMAGE"); v != "" {
		return v
	}
	return "dialtone:dev"
}

// run runs a command, answering its combined output.
func (d *Deployment) run(ctx context.Context, name string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = d.env()
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if err != nil {
		return out.String(), fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(out.String()))
	}
	return out.String(), nil
}

func (d *Deployment) compose(ctx context.Context, args ...string) (string, error) {
	pre := []string{"-p", d.Project, "-f", d.ComposeFile}
	for _, f := range d.Overrides {
		pre = append(pre, "-f", f)
	}
	return d.run(ctx, "docker-compose", append(pre, args...)...)
}

// Up starts services (all default ones when none are named).
func (d *Deployment) Up(ctx context.Context, services ...string) error {
	args := []string{"up", "-d", "--no-build"}
	if hasFive(services) {
		args = append([]string{"--profile", "five"}, args...)
	}
	_, err := d.compose(ctx, append(args, services...)...)
	return err
}

func hasFive(services []string) bool {
	for _, s := range services {
		if s == "n4" || s == "n5" {
			return true
		}
	}
	return false
}

// Down removes the project's containers, networks and volumes. It uses its
// own context so it runs after the run's context ended.
func (d *Deployment) Down() error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	_, err := d.compose(ctx, "--profile", "five", "down", "-v", "--remove-orphans", "-t", "2")
	return err
}

// Logs saves every container's log to path.
func (d *Deployment) Logs(path string) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := d.compose(ctx, "--profile", "five", "logs", "--no-color", "-t")
	if werr := os.WriteFile(path, []byte(out), 0o644); werr != nil && err == nil {
		err = werr
	}
	return err
}

// Container is the container id of service (docker-compose is slow to
// ask: a fault starts when the runner says, not a second later).
func (d *Deployment) Container(ctx context.Context, service string) (string, error) {
	d.mu.Lock()
	id, ok := d.ids[service]
	d.mu.Unlock()
	if ok {
		return id, nil
	}
	out, err := d.compose(ctx, "--profile", "five", "ps", "-q", service)
	if err != nil {
		return "", err
	}
	id = strings.TrimSpace(out)
	if id == "" {
		return "", fmt.Errorf("no container for %s", service)
	}
	d.mu.Lock()
	if d.ids == nil {
		d.ids = map[string]string{}
	}
	d.ids[service] = id
	d.mu.Unlock()
	return id, nil
}

// docker runs a docker verb on service's container.
func (d *Deployment) docker(ctx context.Context, service string, verb ...string) error {
	id, err := d.Container(ctx, service)
	if err != nil {
		return err
	}
	_, err = d.run(ctx, "docker", append(verb, id)...)
	return err
}

// Kill sends SIGKILL to the service's process.
func (d *Deployment) Kill(ctx context.Context, service string) error {
	return d.docker(ctx, service, "kill", "-s", "KILL")
}

// Start starts a stopped service container (its volume keeps its data).
func (d *Deployment) Start(ctx context.Context, service string) error {
	return d.docker(ctx, service, "start")
}

// Pause freezes every process of the service; Unpause resumes them.
func (d *Deployment) Pause(ctx context.Context, service string) error {
	return d.docker(ctx, service, "pause")
}

func (d *Deployment) Unpause(ctx context.Context, service string) error {
	return d.docker(ctx, service, "unpause")
}

func (d *Deployment) clusterNetwork() string { return d.Project + "_cluster" }

// Disconnect cuts the service off the cluster network (Raft, gossip,
// forwarding); it keeps the client network (clients, media platform,
// notifications).
func (d *Deployment) Disconnect(ctx context.Context, service string) error {
	id, err := d.Container(ctx, service)
	if err != nil {
		return err
	}
	_, err = d.run(ctx, "docker", "network", "disconnect", "--force", d.clusterNetwork(), id)
	return err
}

// Connect puts the service back on the cluster network at its address.
func (d *Deployment) Connect(ctx context.Context, service string, ip string) error {
	id, err := d.Container(ctx, service)
	if err != nil {
		return err
	}
	_, err = d.run(ctx, "docker", "network", "connect", "--ip", ip, d.clusterNetwork(), id)
	return err
}
