package sipcall

import (
	"context"
	"fmt"
	"net"
	"os/exec"
	"strings"
	"time"

	"github.com/seed-7bfc04c2/dialtone/internal/floataddr"
)

// The service address (telephony.sip.service_addr) follows leadership:
// the leader binds it for its term and releases it when the term ends, so
// the far ends' in-dialog requests and retransmitted responses reach
// whichever node leads. See docs/sip.md, "Failover".

// Lead binds the service address for one term of leadership, retrying
// while another process still holds it (a deposed leader releasing it),
// until ctx ends. The returned release unbinds it; with handover it is
// also released the moment ctx ends (the calls are left to the next
// leader, which needs the address at once), otherwise only by release,
// after this node's calls were hung up from it. Without a service address
// Lead does nothing.
func (b *Backend) Lead(ctx context.Context) (release func(), err error) {
	if b.svcAddr == "" {
		return func() {}, nil
	}
	b.hook(ctx, b.cfg.ServiceAddrUp)
	b.float(true)
	var conn *net.UDPConn
	for start, warned := time.Now(), false; ; {
		addr, err := net.ResolveUDPAddr("udp4", b.svcAddr)
		if err != nil {
			return nil, fmt.Errorf("sipcall: service address %s: %w", b.svcAddr, err)
		}
		if conn, err = net.ListenUDP("udp4", addr); err == nil {
			break
		}
		if !warned && time.Since(start) > 2*time.Second {
			warned = true
			b.log.Warn("service address still held; retrying", "addr", b.svcAddr, "err", err)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
	_ = conn.SetReadBuffer(socketBuffer)
	_ = conn.SetWriteBuffer(socketBuffer)
	b.svcMu.Lock()
	b.svcConn = conn
	b.svcServe.Go(func() { _ = b.srv.ServeUDP(conn) })
	b.svcMu.Unlock()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
		if c, _ := b.ua.TransportLayer().GetConnection("udp", b.svcAddr); c != nil {
			break
		}
		if time.Now().After(deadline) {
			b.release()
			return nil, fmt.Errorf("sipcall: service address %s not serving", b.svcAddr)
		}
	}
	b.term.Store(&ctx)
	b.leadSince.Store(time.Now().UnixMilli())
	b.log.Info("service address bound", "addr", b.svcAddr)
	stop := func() bool { return false }
	if b.handover {
		stop = context.AfterFunc(ctx, b.release)
	}
	return func() { stop(); b.release() }, nil
}

// release unbinds the service address, if bound.
func (b *Backend) release() {
	b.svcMu.Lock()
	defer b.svcMu.Unlock()
	if b.svcConn == nil {
		return
	}
	b.leadSince.Store(0)
	_ = b.svcConn.Close()
	b.svcServe.Wait()
	b.svcConn = nil
	b.log.Info("service address released", "addr", b.svcAddr)
	b.float(false)
	b.hook(context.Background(), b.cfg.ServiceAddrDown)
}

// float adds (up) or removes the floating service address when
// service_addr_dev is set; a failure is logged (binding is what decides).
func (b *Backend) float(up bool) {
	if b.cfg.ServiceAddrDev == "" {
		return
	}
	host, _, _ := net.SplitHostPort(b.svcAddr)
	a := floataddr.Addr{IP: net.ParseIP(host), Dev: b.cfg.ServiceAddrDev}
	op, err := "add", error(nil)
	if up {
		err = a.Add()
	} else {
		op, err = "remove", a.Del()
	}
	if err != nil {
		b.log.Warn("floating service address", "op", op, "addr", host, "err", err)
		return
	}
	b.log.Info("floating service address", "op", op, "addr", host, "dev", b.cfg.ServiceAddrDev)
}

// hook runs a service_addr_up/down command, {addr} being the service
// address's host; a failure is logged (binding is what decides).
func (b *Backend) hook(ctx context.Context, argv []string) {
	if len(argv) == 0 {
		return
	}
	host, _, _ := net.SplitHostPort(b.svcAddr)
	args := make([]string, len(argv))
	for i, a := range argv {
		args[i] = strings.ReplaceAll(a, "{addr}", host)
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if out, err := exec.CommandContext(ctx, args[0], args[1:]...).CombinedOutput(); err != nil {
		b.log.Warn("service address hook failed", "cmd", args, "err", err, "output", string(out))
	}
}

// handsOver reports whether a call whose context ended is left up for
// the next leader (see Options.Handover).
func (b *Backend) handsOver() bool { return b.handover }

// forget drops a dialog without ending it on the wire (handed over): from
// then on its ACK and BYE send nothing.
func (l *leg) forget() {
	l.mu.Lock()
	l.handed = true
	l.mu.Unlock()
	if l.ended != nil {
		l.end(false)
	}
}

func (l *leg) isHanded() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.handed
}
