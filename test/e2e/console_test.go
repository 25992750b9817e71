//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
	"golang.org/x/crypto/bcrypt"

	pb "github.com/seed-7bfc04c2/dialtone/api/dialtonev1"
	"github.com/seed-7bfc04c2/dialtone/client"
	"github.com/seed-7bfc04c2/dialtone/internal/config"
	"github.com/seed-7bfc04c2/dialtone/portpub"
	"github.com/seed-7bfc04c2/dialtone/test/cluster"
)

// consoleUsers are the basic-auth users of the console cluster: password =
// name. alice and reader see tenant acme, bob globex, ops every tenant.
var consoleUsers = []struct {
	name           string
	tenants, roles []string
}{
	{"alice", []string{"acme"}, []string{"submit", "read"}},
	{"reader", []string{"acme"}, []string{"read"}},
	{"bob", []string{"globex"}, []string{"submit", "read"}},
	{"ops", []string{"*"}, []string{"admin", "read", "submit"}},
	{"pub", []string{"*"}, []string{"publish"}},
}

// consoleCluster is three `dialtone serve` processes with basic auth on
// free ports (test/cluster), placing calls on a dialtone-sim media platform
// serving tenants acme and globex.
type consoleCluster struct {
	*cluster.Processes
	http map[string]string
}

func startConsoleCluster(t *testing.T) *consoleCluster {
	t.Helper()
	simAddr, err := cluster.FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	var users []config.AuthUser
	for _, u := range consoleUsers {
		h, err := bcrypt.GenerateFromPassword([]byte(u.name), bcrypt.MinCost)
		if err != nil {
			t.Fatal(err)
		}
		users = append(users, config.AuthUser{Name: u.name, PasswordHash: string(h), Tenants: u.tenants, Roles: u.roles})
	}
	pc := startCluster(t, func(cfg *config.Config) {
		cfg.Cluster.Secret = "console-e2e-cluster-secret"
		cfg.Cluster.HeartbeatTimeout = config.Duration{Duration: 500 * time.Millisecond}
		cfg.Cluster.ElectionTimeout = config.Duration{Duration: 500 * time.Millisecond}
		cfg.Cluster.LeaderLeaseTimeout = config.Duration{Duration: 250 * time.Millisecond}
		cfg.Telephony = config.Telephony{Backend: "sim", SimAddr: simAddr}
		cfg.Auth.Mode = "basic"
		cfg.Auth.Users = users
	}, portpub.BasicAuth("ops", "ops"))
	c := &consoleCluster{Processes: pc, http: httpAddrs(pc)}
	var grpcAddrs []string
	for _, id := range pc.IDs() {
		grpcAddrs = append(grpcAddrs, pc.GRPCAddr(id))
	}
	startMediasim(t, []string{"DIALTONE_USER=pub", "DIALTONE_PASSWORD=pub"}, "--listen", simAddr, "--http", "",
		"--tenant", "acme,globex", "--servers", "2", "--ports", "50", "--ring", "200ms-1s", "--talk", "1s-4s",
		"--endpoints", strings.Join(grpcAddrs, ","), "--seed", "7")
	return c
}

// restAs is the REST client of the node at addr as user (password = name).
func restAs(t *testing.T, user, addr string) *client.Client {
	t.Helper()
	c, err := client.New(addr, client.WithBasicAuth(user, user), client.WithTimeout(15*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func (c *consoleCluster) leader(t *testing.T, via string) string {
	t.Helper()
	var id string
	eventually(t, 30*time.Second, "a leader seen by "+via, func() error {
		st, err := restAs(t, "ops", c.http[via]).GetClusterStatus(t.Context())
		if err != nil {
			return err
		}
		if st.LeaderId == "" {
			return fmt.Errorf("no leader")
		}
		id = st.LeaderId
		return nil
	})
	return id
}

func (c *consoleCluster) submit(t *testing.T, user, via, tenant, prefix string, n int) []string {
	t.Helper()
	reqs := specs(n, prefix)
	for _, r := range reqs {
		r.Telnum = "15550100" + fmt.Sprint(len(prefix))
		r.TimeToLive = "120s"
	}
	cr, err := restAs(t, user, c.http[via]).CreateRequests(t.Context(), &pb.CreateRequestsRequest{Tenant: tenant, Requests: reqs})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, r := range cr.Results {
		if !r.Ok {
			t.Fatalf("create: %+v", cr)
		}
		ids = append(ids, r.Id)
	}
	return ids
}

// setCAPS sets tenant's CAPS as the admin.
func (c *consoleCluster) setCAPS(t *testing.T, via, tenant string, caps float64) error {
	_, err := restAs(t, "ops", c.http[via]).SetPacing(t.Context(), &pb.SetPacingRequest{Tenant: tenant, Pacing: &pb.Pacing{Caps: caps}})
	return err
}

// requireChromium finds the browser, or skips (fails when
// DIALTONE_REQUIRE_SIPP=1, as CI sets it, since CI installs it).
func requireChromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("DIALTONE_REQUIRE_SIPP") == "1" {
		t.Fatal("chromium is not installed (apt-get install chromium) and DIALTONE_REQUIRE_SIPP=1 requires the browser tests")
	}
	t.Skip("chromium is not installed (apt-get install chromium): skipping the console browser tests")
	return ""
}

// browser is one headless Chromium; tab opens a tab with its own session
// storage.
type browser struct {
	t         *testing.T
	ctx       context.Context
	artifacts string
}

func newBrowser(t *testing.T) *browser {
	t.Helper()
	path := requireChromium(t)
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path), chromedp.NoSandbox, chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("disable-gpu", true), chromedp.WindowSize(1400, 1100))
	actx, cancel := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancel)
	bctx, bcancel := chromedp.NewContext(actx)
	t.Cleanup(bcancel)
	if err := chromedp.Do(bctx); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	dir := os.Getenv("DIALTONE_ARTIFACTS")
	if dir == "" {
		dir = t.TempDir()
	}
	dir = filepath.Join(dir, "console-screenshots")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Logf("console screenshots in %s", dir)
	return &browser{t: t, ctx: bctx, artifacts: dir}
}

type tab struct {
	b   *browser
	ctx context.Context
}

func (b *browser) tab() *tab {
	ctx, cancel := chromedp.NewContext(b.ctx)
	b.t.Cleanup(cancel)
	// The first run opens the tab, which lives as long as that run's
	// context: no timeout on it.
	if err := chromedp.Do(ctx); err != nil {
		b.t.Fatalf("open a tab: %v", err)
	}
	return &tab{b: b, ctx: ctx}
}

func (tb *tab) run(t *testing.T, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		t.Fatalf("browser: %v", err)
	}
}

// eval evaluates a JavaScript expression in the tab.
func eval[T any](tb *tab, js string, opts ...chromedp.EvaluateOption) (T, error) {
	ctx, cancel := context.WithTimeout(tb.ctx, 5*time.Second)
	defer cancel()
	return chromedp.Run(ctx, chromedp.Evaluate[T](js, opts...))
}

// waitJS polls a boolean expression until it holds.
func (tb *tab) waitJS(t *testing.T, timeout time.Duration, what, js string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, err := eval[bool](tb, js)
		if err == nil && ok {
			return
		}
		if time.Now().After(deadline) {
			body, _ := eval[string](tb, `document.body.innerText`)
			tb.screenshot("failed-" + strings.ReplaceAll(what, " ", "-"))
			t.Fatalf("%s: not within %s (%v); page:\n%s", what, timeout, err, body)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (tb *tab) screenshot(name string) {
	ctx, cancel := context.WithTimeout(tb.ctx, 10*time.Second)
	defer cancel()
	front := chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		_, err := cdp.Call(ctx, tg, page.BringToFront, cdp.Empty{})
		return err
	})
	if err := chromedp.Do(ctx, front); err != nil {
		tb.b.t.Logf("screenshot %s: bring to front: %v", name, err)
	}
	buf, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		tb.b.t.Logf("screenshot %s: %v", name, err)
		return
	}
	if err := os.WriteFile(filepath.Join(tb.b.artifacts, name+".png"), buf, 0o644); err != nil {
		tb.b.t.Logf("screenshot %s: %v", name, err)
	}
}

// login opens the console at url and signs in as user.
func (tb *tab) login(t *testing.T, url, user string) {
	t.Helper()
	tb.run(t, chromedp.Navigate(url), chromedp.WaitVisible(chromedp.CSS("#login-user")),
		chromedp.SendKeys(chromedp.CSS("#login-user"), user), chromedp.SendKeys(chromedp.CSS("#login-password"), user),
		chromedp.Click(chromedp.CSS("#login-submit")))
	tb.waitJS(t, 10*time.Second, "signed in as "+user, `(document.getElementById('who-name')||{}).textContent?.startsWith(`+jsString(user)+`)`)
}

func (tb *tab) show(t *testing.T, hash string) {
	t.Helper()
	if _, err := eval[string](tb, `location.hash = `+jsString(hash)); err != nil {
		t.Fatalf("show %s: %v", hash, err)
	}
}

func jsString(s string) string { return fmt.Sprintf("%q", s) }

// TestConsoleInBrowser drives the console in headless Chromium against a
// three-process cluster with the simulated media platform.
func TestConsoleInBrowser(t *testing.T) {
	b := newBrowser(t)
	c := startConsoleCluster(t)
	leader := c.leader(t, "n1")
	var follower, other string
	for _, id := range []string{"n1", "n2", "n3"} {
		if id == leader {
			continue
		}
		if follower == "" {
			follower = id
		} else {
			other = id
		}
	}
	// Slow acme down so that its queue lasts through the test.
	eventually(t, 60*time.Second, "acme paced at 20 CAPS", func() error {
		return c.setCAPS(t, other, "acme", 20)
	})
	c.submit(t, "bob", other, "globex", "G", 5)
	ui := "http://" + c.http[follower] + "/ui/"

	ops := b.tab()
	ops.login(t, ui+"#cluster", "ops")
	t.Run("cluster view lists 3 nodes and the leader", func(t *testing.T) {
		ops.waitJS(t, 10*time.Second, "3 nodes and the leader",
			`document.querySelectorAll('#nodes tr.node-row').length === 3 && document.getElementById('cluster-leader')?.textContent === `+jsString(leader))
		ops.screenshot("cluster")
	})

	acme := b.tab()
	acme.login(t, ui+"#dialer", "alice")
	t.Run("200 requests move the dialer counters and CAPS chart within 2 s", func(t *testing.T) {
		acme.waitJS(t, 10*time.Second, "the dialer view", `document.querySelector('#view[data-view="dialer"] h2') !== null`)
		c.submit(t, "alice", other, "acme", "A", 200)
		submitted := time.Now()
		acme.waitJS(t, 2*time.Second, "counters and chart moved",
			`(() => { const c = document.querySelector('.tenant[data-tenant="acme"]'); if (!c) return false;
			  const n = (s) => Number(c.querySelector(s + ' .v').textContent);
			  const last = Number(c.querySelector('polyline[data-series="achieved CAPS"]').dataset.last);
			  return n('.f-queued') + n('.f-in-progress') > 0 && last > 0; })()`)
		t.Logf("dialer view moved %s after the submit", time.Since(submitted).Round(10*time.Millisecond))
	})

	t.Run("a tenant-A user sees nothing of tenant B", func(t *testing.T) {
		// The operator sees globex, so the check below is not vacuous.
		ops.show(t, "#ports")
		ops.waitJS(t, 10*time.Second, "globex in the operator's port view", `document.body.innerText.includes('globex')`)
		ops.screenshot("ports")
		for _, view := range []string{"cluster", "dialer", "ports", "settings", "requests"} {
			acme.show(t, "#"+view)
			acme.waitJS(t, 10*time.Second, view+" rendered for alice", `document.querySelector('#view[data-view="`+view+`"] h2') !== null && !document.getElementById('loading')`)
			time.Sleep(1200 * time.Millisecond) // at least one more update
			text, err := eval[string](acme, `document.body.innerText + document.body.innerHTML`)
			if err != nil {
				t.Fatal(err)
			}
			if strings.Contains(text, "globex") {
				t.Fatalf("alice's %s view shows tenant globex", view)
			}
			acme.screenshot("alice-" + view)
		}
		// Naming the other tenant outright is refused by the API.
		acme.show(t, "#requests/globex/")
		acme.waitJS(t, 10*time.Second, "refused", `document.body.innerText.includes('PermissionDenied')`)
	})

	acme.show(t, "#dialer")
	acme.waitJS(t, 10*time.Second, "acme's dialer figures", `document.querySelector('.tenant[data-tenant="acme"]') !== null`)
	acme.screenshot("dialer")

	t.Run("cancel from a request page; a read-only user cannot", func(t *testing.T) {
		// At 0.1 CAPS the last of five new requests waits for about 40 s:
		// long enough to be cancelled before it is dialled.
		eventually(t, 60*time.Second, "acme paced at 0.1 CAPS", func() error {
			return c.setCAPS(t, other, "acme", 0.1)
		})
		waiting := c.submit(t, "alice", other, "acme", "W", 5)
		target, other := waiting[4], waiting[3]
		reader := b.tab()
		reader.login(t, ui+"#request/acme/"+other, "reader")
		reader.waitJS(t, 10*time.Second, "the request page for reader", `document.querySelector('dd[data-k="state"]') !== null`)
		present, err := eval[bool](reader, `document.getElementById('cancel') !== null || document.getElementById('cancel-denied') === null`)
		if err != nil || present {
			t.Fatalf("the read-only user is offered cancel (%v)", err)
		}
		code, err := eval[int](reader, `fetch('api/cancel?tenant=acme&id=`+other+`', {method: 'POST', headers: {'X-Dialtone-Console': '1', Authorization: sessionStorage.getItem('dialtone.cred')}}).then(r => r.status)`, chromedp.EvalAwaitPromise)
		if err != nil || code != 403 {
			t.Fatalf("read-only cancel through the console API: %v %v", code, err)
		}
		reader.screenshot("request-read-only")

		acme.show(t, "#requests/acme/W-4")
		acme.waitJS(t, 10*time.Second, "found by token", `document.querySelector('tr[data-request="`+target+`"]') !== null`)
		acme.screenshot("requests")
		acme.show(t, "#request/acme/"+target)
		acme.waitJS(t, 10*time.Second, "the cancel button", `document.getElementById('cancel') !== null`)
		acme.run(t, chromedp.Click(chromedp.CSS("#cancel")))
		acme.waitJS(t, 10*time.Second, "cancelled", `document.querySelector('dd[data-k="result"]')?.textContent === 'CANCELLED'`)
		acme.screenshot("request-cancelled")
		got, err := restAs(t, "alice", c.http[leader]).GetRequest(t.Context(), &pb.GetRequestRequest{Tenant: "acme", Id: target, Consistency: client.Linearizable})
		if r := got.GetRequest(); err != nil || r.GetResult() != "CANCELLED" {
			t.Fatalf("after cancel: %+v %v", r, err)
		}
	})

	t.Run("settings", func(t *testing.T) {
		ops.show(t, "#settings")
		ops.waitJS(t, 10*time.Second, "pacing table", `document.querySelector('#pacing-table tr[data-tenant="acme"]') !== null && document.getElementById('pacing-form') !== null`)
		ops.screenshot("settings")
	})

	t.Run("SIGKILL of the leader: a follower's console shows the new leader within 3 s", func(t *testing.T) {
		// Leadership may have moved on this busy machine: open a console on
		// a follower of the leader as it is now.
		leader := c.leader(t, other)
		var on string
		for _, id := range []string{"n1", "n2", "n3"} {
			if id != leader {
				on = id
			}
		}
		ops := b.tab()
		ops.login(t, "http://"+c.http[on]+"/ui/#cluster", "ops")
		ops.waitJS(t, 10*time.Second, "the leader", `document.getElementById('cluster-leader')?.textContent === `+jsString(leader))
		if err := c.Kill(leader); err != nil {
			t.Fatal(err)
		}
		killed := time.Now()
		ops.waitJS(t, 3*time.Second, "a new leader", `(() => { const l = document.getElementById('cluster-leader')?.textContent; return !!l && l !== 'none' && l !== `+jsString(leader)+`; })()`)
		t.Logf("new leader shown %s after the kill", time.Since(killed).Round(10*time.Millisecond))
		before, _ := eval[string](ops, `document.getElementById('fresh').textContent`)
		ops.waitJS(t, 3*time.Second, "the console keeps updating", `document.getElementById('fresh').textContent !== `+jsString(before))
		ops.screenshot("cluster-after-failover")
	})
}

// startMediasim runs dialtone-sim's simulated media platform with args
// (after "mediasim") and env added to the test's environment, until the
// test ends; its output is logged when the test fails.
func startMediasim(t *testing.T, env []string, args ...string) {
	t.Helper()
	sim := exec.Command(filepath.Join(filepath.Dir(binary), "dialtone-sim"), append([]string{"mediasim"}, args...)...)
	sim.Env = append(os.Environ(), env...)
	simOut := &syncBuffer{}
	sim.Stdout, sim.Stderr = simOut, simOut
	if err := sim.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = sim.Process.Kill()
		_ = sim.Wait()
		if t.Failed() {
			t.Logf("mediasim output:\n%s", lastLines(simOut.String(), 40))
		}
	})
}
