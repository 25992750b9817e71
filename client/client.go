package client

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// DefaultTimeout bounds each call unless [WithTimeout] says otherwise.
const DefaultTimeout = 30 * time.Second

// maxAnswer bounds the body read from an answer.
const maxAnswer = 64 << 20

// Client calls one node's REST API. It is safe for concurrent use.
type Client struct {
	base     *url.URL
	hc       *http.Client
	timeout  time.Duration
	user     string
	password string
	token    string
}

// options collects what the Options set before New builds the Client.
type options struct {
	user, password, token, caFile string
	timeout                       time.Duration
	hc                            *http.Client
}

// Option configures a Client.
type Option func(*options)

// WithBasicAuth sends user and password as HTTP basic authentication.
func WithBasicAuth(user, password string) Option {
	return func(o *options) { o.user, o.password = user, password }
}

// WithBearerToken sends token as an "Authorization: Bearer" header. It wins
// over WithBasicAuth when both are given.
func WithBearerToken(token string) Option {
	return func(o *options) { o.token = token }
}

// WithCAFile trusts the PEM certificates in path (instead of the system
// roots) for https addresses. It cannot be combined with WithHTTPClient.
func WithCAFile(path string) Option {
	return func(o *options) { o.caFile = path }
}

// WithTimeout bounds each call to d (DefaultTimeout when not given); d <= 0
// leaves only the caller's context to bound a call.
func WithTimeout(d time.Duration) Option {
	return func(o *options) { o.timeout = d }
}

// WithHTTPClient sends the calls through hc, e.g. to tune its connection
// pool or TLS; hc's own Timeout applies too.
func WithHTTPClient(hc *http.Client) Option {
	return func(o *options) { o.hc = hc }
}

// New returns a client of the node at addr: "http://host:port",
// "https://host:port", or "host:port" for http.
func New(addr string, opts ...Option) (*Client, error) {
	o := options{timeout: DefaultTimeout}
	for _, opt := range opts {
		opt(&o)
	}
	base, err := parseAddr(addr)
	if err != nil {
		return nil, err
	}
	hc := o.hc
	switch {
	case hc != nil && o.caFile != "":
		return nil, errors.New("client: WithCAFile and WithHTTPClient exclude each other: configure TLS on the http.Client")
	case hc == nil && o.caFile != "":
		cfg, err := caConfig(o.caFile)
		if err != nil {
			return nil, err
		}
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.TLSClientConfig = cfg
		hc = &http.Client{Transport: tr}
	case hc == nil:
		hc = http.DefaultClient
	}
	return &Client{base: base, hc: hc, timeout: o.timeout, user: o.user, password: o.password, token: o.token}, nil
}

func parseAddr(addr string) (*url.URL, error) {
	a := strings.TrimSpace(addr)
	if a == "" {
		return nil, errors.New("client: address: empty")
	}
	if !strings.Contains(a, "://") {
		a = "http://" + a
	}
	u, err := url.Parse(a)
	if err != nil {
		return nil, fmt.Errorf("client: address %q: %w", addr, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("client: address %q: scheme %q, want http or https", addr, u.Scheme)
	}
	if u.Host == "" {
		return nil, fmt.Errorf("client: address %q: no host", addr)
	}
	if (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return nil, fmt.Errorf("client: address %q: want scheme://host:port only", addr)
	}
	u.Path = ""
	return u, nil
}

// caConfig trusts the PEM certificates in path.
func caConfig(path string) (*tls.Config, error) {
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("client: CA file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("client: CA file %s: no PEM certificate", path)
	}
	return &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}, nil
}

// Addr is the node's base URL, e.g. "http://127.0.0.1:8081".
func (c *Client) Addr() string { return c.base.String() }

// Scheme is "http" or "https".
func (c *Client) Scheme() string { return c.base.Scheme }

// WithAddr returns a client of another node with c's credentials, timeout
// and HTTP client. addr without a scheme takes c's scheme.
func (c *Client) WithAddr(addr string) (*Client, error) {
	if !strings.Contains(addr, "://") {
		addr = c.base.Scheme + "://" + addr
	}
	base, err := parseAddr(addr)
	if err != nil {
		return nil, err
	}
	n := *c
	n.base = base
	return &n, nil
}

// Error is a non-2xx answer.
type Error struct {
	// StatusCode is the HTTP status, e.g. 404.
	StatusCode int
	// Code is the gRPC code the gateway reported (codes.Unknown when the
	// answer did not carry one).
	Code codes.Code
	// Message is the server's message (the body's text when it was not the
	// gateway's JSON error).
	Message string
}

func (e *Error) Error() string { return fmt.Sprintf("HTTP %d: %s", e.StatusCode, e.Message) }

// GRPCStatus lets status.Code and status.FromError read the gRPC code.
func (e *Error) GRPCStatus() *status.Status { return status.New(e.Code, e.Message) }

// StatusCode is the HTTP status of err when it is (or wraps) an *Error,
// else 0.
func StatusCode(err error) int {
	var e *Error
	if errors.As(err, &e) {
		return e.StatusCode
	}
	return 0
}

// decodeError reads the gateway's error shape {"code":N,"message":"..."}.
func decodeError(status int, body []byte) *Error {
	e := &Error{StatusCode: status, Code: codes.Unknown}
	var g struct {
		Code    *int32 `json:"code"`
		Message string `json:"message"`
	}
	if json.Unmarshal(body, &g) == nil && g.Message != "" {
		e.Message = g.Message
		if g.Code != nil {
			e.Code = codes.Code(*g.Code)
		}
		return e
	}
	msg := strings.TrimSpace(string(body))
	if len(msg) > 4096 {
		msg = msg[:4096] + "..."
	}
	if msg == "" {
		msg = http.StatusText(status)
	}
	e.Message = msg
	return e
}

var (
	marshal   = protojson.MarshalOptions{UseProtoNames: true}
	unmarshal = protojson.UnmarshalOptions{DiscardUnknown: true}
)

// call sends in as the JSON body (none when nil) to path with query, and
// decodes a 2xx answer into out (ignored when nil).
func (c *Client) call(ctx context.Context, method, path string, query url.Values, in, out proto.Message) error {
	var body []byte
	if in != nil {
		b, err := marshal.Marshal(in)
		if err != nil {
			return fmt.Errorf("client: encode %s: %w", in.ProtoReflect().Descriptor().FullName(), err)
		}
		body = b
	}
	data, err := c.do(ctx, method, path, query, body)
	if err != nil {
		return err
	}
	if out == nil {
		return nil
	}
	if err := unmarshal.Unmarshal(data, out); err != nil {
		return fmt.Errorf("client: %s %s: decode answer: %w", method, path, err)
	}
	return nil
}

// do sends one request and returns a 2xx answer's body.
func (c *Client) do(ctx context.Context, method, path string, query url.Values, body []byte) ([]byte, error) {
	if c.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.timeout)
		defer cancel()
	}
	// path is already escaped segment by segment.
	u := c.base.String() + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	switch {
	case c.token != "":
		req.Header.Set("Authorization", "Bearer "+c.token)
	case c.user != "":
		req.SetBasicAuth(c.user, c.password)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	if err != nil {
		return nil, fmt.Errorf("client: %s %s: read answer: %w", method, path, err)
	}
	if resp.StatusCode/100 != 2 {
		return nil, decodeError(resp.StatusCode, data)
	}
	return data, nil
}

// segment escapes one path segment.
func segment(s string) string { return url.PathEscape(s) }

// queryOf is the URL query of a GET: m's populated scalar fields by proto
// name, except the ones the path carries.
func queryOf(m proto.Message, inPath ...string) url.Values {
	q := url.Values{}
	m.ProtoReflect().Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		name := string(fd.Name())
		if fd.IsList() || fd.IsMap() || fd.Kind() == protoreflect.MessageKind || fd.Kind() == protoreflect.GroupKind {
			return true
		}
		for _, p := range inPath {
			if p == name {
				return true
			}
		}
		q.Set(name, v.String())
		return true
	})
	return q
}

// Ready asks GET /readyz whether the node can serve (a member of a cluster
// with a known leader); an *Error with status 503 says why not.
func (c *Client) Ready(ctx context.Context) error {
	_, err := c.do(ctx, http.MethodGet, "/readyz", nil, nil)
	return err
}
