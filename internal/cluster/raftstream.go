package cluster

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// raftStream is the Raft transport's stream layer: plain TCP, optionally
// wrapped in TLS, and, when the cluster has a secret, a mutual
// challenge-response on every connection before Raft sees a byte of it.
//
// Without it anyone who reaches a Raft port can send AppendEntries or
// InstallSnapshot and rewrite the replicated state. The handshake proves
// to each side that the other holds the key (an HMAC-SHA256 over both
// sides' fresh nonces, each side's MAC bound to its role), so a replayed
// handshake is useless; it does not encrypt: that is TLS's job.
//
// The server side runs the handshake on the connection's first Read or
// Write, in the goroutine Raft gives that connection, so a slow or hostile
// client can never stall Accept for everyone else.
type raftStream struct {
	ln        net.Listener
	advertise net.Addr
	key       []byte      // nil: no handshake
	serverTLS *tls.Config // nil: no TLS
	clientTLS *tls.Config

	// isolated cuts this node's Raft traffic (Cluster.Isolate, tests):
	// new connections are refused and open ones closed.
	mu       sync.Mutex
	isolated bool
	open     map[*trackedConn]struct{}
}

// errIsolated is the error of Raft traffic while the node is isolated.
var errIsolated = errors.New("cluster: raft traffic cut (isolated)")

// trackedConn is a Raft connection the stream can close when isolated.
type trackedConn struct {
	net.Conn
	s *raftStream
}

func (c *trackedConn) Close() error {
	c.s.mu.Lock()
	delete(c.s.open, c)
	c.s.mu.Unlock()
	return c.Conn.Close()
}

// track registers conn, or closes it when the node is isolated.
func (s *raftStream) track(conn net.Conn) (net.Conn, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.isolated {
		_ = conn.Close()
		return nil, errIsolated
	}
	if s.open == nil {
		s.open = map[*trackedConn]struct{}{}
	}
	tc := &trackedConn{Conn: conn, s: s}
	s.open[tc] = struct{}{}
	return tc, nil
}

// isolate cuts (on) or restores this node's Raft traffic.
func (s *raftStream) isolate(on bool) {
	s.mu.Lock()
	s.isolated = on
	var conns []net.Conn
	if on {
		for c := range s.open {
			conns = append(conns, c.Conn)
		}
		clear(s.open)
	}
	s.mu.Unlock()
	for _, c := range conns {
		_ = c.Close()
	}
}

// errRaftAuth is the handshake's failure: wrong key, or not a Dialtone peer.
var errRaftAuth = errors.New("cluster: raft peer failed authentication")

const (
	raftNonceLen     = 32
	raftHandshakeTTL = 5 * time.Second
	raftMagic        = "dialtone-raft-1\n"
)

func newRaftStream(ln net.Listener, advertise net.Addr, key []byte, serverTLS, clientTLS *tls.Config) *raftStream {
	return &raftStream{ln: ln, advertise: advertise, key: key, serverTLS: serverTLS, clientTLS: clientTLS}
}

// Dial connects to a peer and completes the handshake before returning.
func (s *raftStream) Dial(address raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	d := net.Dialer{Timeout: timeout}
	conn, err := d.Dial("tcp", string(address))
	if err != nil {
		return nil, err
	}
	if conn, err = s.track(conn); err != nil {
		return nil, err
	}
	if s.clientTLS != nil {
		cfg := s.clientTLS.Clone()
		if cfg.ServerName == "" {
			host, _, _ := net.SplitHostPort(string(address))
			cfg.ServerName = host
		}
		tc := tls.Client(conn, cfg)
		conn = tc
	}
	if s.key != nil {
		if err := clientHandshake(conn, s.key, timeout); err != nil {
			_ = conn.Close()
			return nil, fmt.Errorf("raft dial %s: %w", address, err)
		}
	}
	return conn, nil
}

// Accept hands Raft the next connection; its handshake runs lazily.
func (s *raftStream) Accept() (net.Conn, error) {
	var conn net.Conn
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return nil, err
		}
		if conn, err = s.track(c); err == nil {
			break
		}
	}
	if s.serverTLS != nil {
		conn = tls.Server(conn, s.serverTLS)
	}
	if s.key == nil {
		return conn, nil
	}
	return &authConn{Conn: conn, key: s.key}, nil
}

func (s *raftStream) Close() error { return s.ln.Close() }

func (s *raftStream) Addr() net.Addr {
	if s.advertise != nil {
		return s.advertise
	}
	return s.ln.Addr()
}

// authConn is an accepted connection whose server handshake has not run yet.
type authConn struct {
	net.Conn
	key  []byte
	once sync.Once
	err  error
}

func (c *authConn) handshake() error {
	c.once.Do(func() { c.err = serverHandshake(c.Conn, c.key, raftHandshakeTTL) })
	return c.err
}

func (c *authConn) Read(p []byte) (int, error) {
	if err := c.handshake(); err != nil {
		return 0, err
	}
	return c.Conn.Read(p)
}

func (c *authConn) Write(p []byte) (int, error) {
	if err := c.handshake(); err != nil {
		return 0, err
	}
	return c.Conn.Write(p)
}

// raftMAC binds a MAC to the role that sends it and to both nonces.
func raftMAC(key []byte, role string, serverNonce, clientNonce []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(raftMagic))
	m.Write([]byte(role))
	m.Write(serverNonce)
	m.Write(clientNonce)
	return m.Sum(nil)
}

// serverHandshake: S→C magic‖nonceS; C→S nonceC‖MAC("client");
// S→C MAC("server").
func serverHandshake(conn net.Conn, key []byte, ttl time.Duration) error {
	_ = conn.SetDeadline(time.Now().Add(ttl))
	defer conn.SetDeadline(time.Time{})
	nonceS := make([]byte, raftNonceLen)
	if _, err := rand.Read(nonceS); err != nil {
		return err
	}
	if _, err := conn.Write(append([]byte(raftMagic), nonceS...)); err != nil {
		return fmt.Errorf("%w: %w", errRaftAuth, err)
	}
	in := make([]byte, raftNonceLen+sha256.Size)
	if _, err := io.ReadFull(conn, in); err != nil {
		return fmt.Errorf("%w: %w", errRaftAuth, err)
	}
	nonceC, mac := in[:raftNonceLen], in[raftNonceLen:]
	if !hmac.Equal(mac, raftMAC(key, "client", nonceS, nonceC)) {
		return errRaftAuth
	}
	if _, err := conn.Write(raftMAC(key, "server", nonceS, nonceC)); err != nil {
		return fmt.Errorf("%w: %w", errRaftAuth, err)
	}
	return nil
}

func clientHandshake(conn net.Conn, key []byte, ttl time.Duration) error {
	if ttl <= 0 || ttl > raftHandshakeTTL {
		ttl = raftHandshakeTTL
	}
	_ = conn.SetDeadline(time.Now().Add(ttl))
	defer conn.SetDeadline(time.Time{})
	hello := make([]byte, len(raftMagic)+raftNonceLen)
	if _, err := io.ReadFull(conn, hello); err != nil {
		return fmt.Errorf("%w: %w", errRaftAuth, err)
	}
	if string(hello[:len(raftMagic)]) != raftMagic {
		return fmt.Errorf("%w: not a Dialtone raft listener", errRaftAuth)
	}
	nonceS := hello[len(raftMagic):]
	nonceC := make([]byte, raftNonceLen)
	if _, err := rand.Read(nonceC); err != nil {
		return err
	}
	if _, err := conn.Write(append(nonceC, raftMAC(key, "client", nonceS, nonceC)...)); err != nil {
		return fmt.Errorf("%w: %w", errRaftAuth, err)
	}
	mac := make([]byte, sha256.Size)
	if _, err := io.ReadFull(conn, mac); err != nil {
		return fmt.Errorf("%w: %w", errRaftAuth, err)
	}
	if !hmac.Equal(mac, raftMAC(key, "server", nonceS, nonceC)) {
		return errRaftAuth
	}
	return nil
}
