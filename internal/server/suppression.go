package server

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"time"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"

	pb "github.com/seed-7bfc04c2/dialtone/api/dialtonev1"
	"github.com/seed-7bfc04c2/dialtone/internal/auth"
	"github.com/seed-7bfc04c2/dialtone/internal/fsm"
	"github.com/seed-7bfc04c2/dialtone/internal/fsm/fsmpb"
)

// Suppression (do-not-call) lists: per tenant, replicated through Raft in
// entries of up to suppressionEntry numbers. See docs/compliance.md.

// suppressionEntry bounds the numbers of one Raft entry (about 16 bytes
// each on the wire).
const suppressionEntry = 50_000

// maxSuppressionLine bounds one line of an uploaded file.
const maxSuppressionLine = 1024

// SuppressionStore is the replicated suppression lists (the FSM).
type SuppressionStore interface {
	Suppressed(tenant, number string, nowUnixMs int64) (bool, int64)
	SuppressionSize(tenant string) int
}

func (s *Dialer) suppressions() (SuppressionStore, error) {
	st, ok := s.store.(SuppressionStore)
	if !ok {
		return nil, status.Error(codes.Unimplemented, "suppression lists are not served by this node")
	}
	return st, nil
}

// expiryOf turns an expires_in duration into the absolute expiry (0: none).
func expiryOf(field, in string, now time.Time) (int64, error) {
	if in == "" {
		return 0, nil
	}
	d, err := ParseDuration(in)
	if err != nil || d <= 0 {
		return 0, FieldErrorStatus(field, fmt.Sprintf("%q is not a positive duration such as \"720h\"", truncate(in, 40)))
	}
	return now.Add(d).UnixMilli(), nil
}

// AddSuppressions adds numbers to the tenant's list.
func (s *Dialer) AddSuppressions(ctx context.Context, req *pb.AddSuppressionsRequest) (*pb.SuppressionsResponse, error) {
	if err := windowTarget(ctx, req.GetTenant(), "", auth.RoleAdmin); err != nil {
		return nil, err
	}
	exp, err := expiryOf("expires_in", req.GetExpiresIn(), time.Now())
	if err != nil {
		return nil, err
	}
	nums, err := parseNumbers("numbers", req.GetNumbers())
	if err != nil {
		return nil, err
	}
	idx, err := s.addChunks(ctx, req.GetTenant(), nums, exp)
	if err != nil {
		return nil, err
	}
	return &pb.SuppressionsResponse{NodeId: s.repl.NodeID(), Count: uint64(len(nums)), Index: idx}, nil
}

// RemoveSuppressions removes numbers from the tenant's list.
func (s *Dialer) RemoveSuppressions(ctx context.Context, req *pb.RemoveSuppressionsRequest) (*pb.SuppressionsResponse, error) {
	if err := windowTarget(ctx, req.GetTenant(), "", auth.RoleAdmin); err != nil {
		return nil, err
	}
	nums, err := parseNumbers("numbers", req.GetNumbers())
	if err != nil {
		return nil, err
	}
	var idx uint64
	for start := 0; start < len(nums); start += suppressionEntry {
		idx, err = applySetting(ctx, s.repl, s.opts.WriteTimeout, fsm.RemoveSuppressionsCommand(req.GetTenant(), nums[start:min(len(nums), start+suppressionEntry)]), true)
		if err != nil {
			if status.Code(err) == codes.NotFound {
				return nil, status.Errorf(codes.NotFound, "tenant %s has no suppression list", quote(req.GetTenant()))
			}
			return nil, err
		}
	}
	_ = s.waitApplied(ctx, idx)
	return &pb.SuppressionsResponse{NodeId: s.repl.NodeID(), Count: uint64(len(nums)), Index: idx}, nil
}

// CheckSuppression answers whether a number is listed (this node's
// replica).
func (s *Dialer) CheckSuppression(ctx context.Context, req *pb.CheckSuppressionRequest) (*pb.CheckSuppressionResponse, error) {
	if err := windowTarget(ctx, req.GetTenant(), "", auth.RoleRead); err != nil {
		return nil, err
	}
	if _, ok := fsm.SuppressionNumber(req.GetNumber()); !ok {
		return nil, FieldErrorStatus("number", fmt.Sprintf("%q is not an E.164 number (digits with an optional leading '+')", truncate(req.GetNumber(), 40)))
	}
	st, err := s.suppressions()
	if err != nil {
		return nil, err
	}
	hit, exp := st.Suppressed(req.GetTenant(), req.GetNumber(), time.Now().UnixMilli())
	return &pb.CheckSuppressionResponse{Suppressed: hit, ExpiresUnixMs: exp, Size: uint64(st.SuppressionSize(req.GetTenant()))}, nil
}

// LoadSuppressions bulk-loads a newline- or comma-separated file streamed
// in chunks, committing an entry every suppressionEntry numbers. A bad
// line stops the load with InvalidArgument naming it; the entries before
// it stay committed.
func (s *Dialer) LoadSuppressions(stream grpc.ClientStreamingServer[pb.LoadSuppressionsChunk, pb.SuppressionsResponse]) error {
	ctx := stream.Context()
	first, err := stream.Recv()
	if err != nil {
		if errors.Is(err, io.EOF) {
			return FieldErrorStatus("tenant", "is required in the first chunk")
		}
		return err
	}
	tenant := first.GetTenant()
	if err := windowTarget(ctx, tenant, "", auth.RoleAdmin); err != nil {
		return err
	}
	exp, err := expiryOf("expires_in", first.GetExpiresIn(), time.Now())
	if err != nil {
		return err
	}
	p := &numberParser{}
	var total, idx uint64
	flush := func(force bool) error {
		for len(p.nums) >= suppressionEntry || (force && len(p.nums) > 0) {
			n := min(len(p.nums), suppressionEntry)
			i, err := s.addChunks(ctx, tenant, p.nums[:n], exp)
			if err != nil {
				return err
			}
			idx, total = i, total+uint64(n)
			p.nums = append(p.nums[:0], p.nums[n:]...)
		}
		return nil
	}
	for c := first; ; {
		if t := c.GetTenant(); t != "" && t != tenant {
			return FieldErrorStatus("tenant", fmt.Sprintf("%q differs from the first chunk's %q", truncate(t, 70), tenant))
		}
		if err := p.write(c.GetData()); err != nil {
			return err
		}
		if err := flush(false); err != nil {
			return err
		}
		c, err = stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
	}
	if err := p.end(); err != nil {
		return err
	}
	if err := flush(true); err != nil {
		return err
	}
	return stream.SendAndClose(&pb.SuppressionsResponse{NodeId: s.repl.NodeID(), Count: total, Index: idx})
}

func (s *Dialer) addChunks(ctx context.Context, tenant string, nums []uint64, exp int64) (uint64, error) {
	var idx uint64
	for start := 0; start < len(nums); start += suppressionEntry {
		part := nums[start:min(len(nums), start+suppressionEntry)]
		c := &fsmpb.SuppressionChunk{Tenant: tenant, Numbers: part}
		if exp != 0 {
			c.ExpiresUnixMs = make([]int64, len(part))
			for i := range c.ExpiresUnixMs {
				c.ExpiresUnixMs[i] = exp
			}
		}
		var err error
		if idx, err = applySetting(ctx, s.repl, s.opts.WriteTimeout, fsm.AddSuppressionsCommand(c), false); err != nil {
			return 0, err
		}
	}
	if idx > 0 {
		_ = s.waitApplied(ctx, idx)
	}
	return idx, nil
}

func parseNumbers(field string, in []string) ([]uint64, error) {
	if len(in) == 0 {
		return nil, FieldErrorStatus(field, "at least one number is required")
	}
	if len(in) > math.MaxInt32 {
		return nil, FieldErrorStatus(field, "too many numbers")
	}
	out := make([]uint64, 0, len(in))
	for i, s := range in {
		n, ok := fsm.SuppressionNumber(s)
		if !ok {
			return nil, FieldErrorStatus(fmt.Sprintf("%s[%d]", field, i), fmt.Sprintf("%q is not an E.164 number (digits with an optional leading '+')", truncate(s, 40)))
		}
		out = append(out, n)
	}
	return out, nil
}

// numberParser parses a newline- or comma-separated list of numbers fed
// in arbitrary pieces: empty lines and lines starting with '#' are
// skipped; of a CSV line only the first field is read; a header line
// whose first field has no digit ("number", "phone") is skipped.
type numberParser struct {
	line    []byte
	lineNo  int
	nums    []uint64
	skipCSV bool // in the rest of a CSV line after its first field
}

// ParseSuppressionFile parses a whole file (for tests and the CLI).
func ParseSuppressionFile(data []byte) ([]uint64, error) {
	p := &numberParser{}
	if err := p.write(data); err != nil {
		return nil, err
	}
	if err := p.end(); err != nil {
		return nil, err
	}
	return p.nums, nil
}

func (p *numberParser) write(b []byte) error {
	for len(b) > 0 {
		i := bytes.IndexAny(b, "\n,")
		if i < 0 {
			if !p.skipCSV {
				p.line = append(p.line, b...)
				if len(p.line) > maxSuppressionLine {
					return FieldErrorStatus("data", fmt.Sprintf("line %d is longer than %d bytes", p.lineNo+1, maxSuppressionLine))
				}
			}
			return nil
		}
		if !p.skipCSV {
			p.line = append(p.line, b[:i]...)
			if err := p.field(); err != nil {
				return err
			}
		}
		p.skipCSV = b[i] == ','
		if b[i] == '\n' {
			p.skipCSV = false
		}
		b = b[i+1:]
	}
	return nil
}

func (p *numberParser) end() error {
	if len(p.line) > 0 && !p.skipCSV {
		return p.field()
	}
	return nil
}

// field ends the first field of a line.
func (p *numberParser) field() error {
	p.lineNo++
	f := bytes.TrimSpace(bytes.Trim(bytes.TrimSpace(p.line), `"`))
	p.line = p.line[:0]
	if len(f) == 0 || f[0] == '#' || (p.lineNo == 1 && !bytes.ContainsAny(f, "0123456789")) {
		return nil
	}
	n, ok := fsm.SuppressionNumber(string(f))
	if !ok {
		return FieldErrorStatus("data", fmt.Sprintf("line %d: %q is not an E.164 number", p.lineNo, truncate(string(f), 40)))
	}
	p.nums = append(p.nums, n)
	return nil
}

// suppressionUploadPath is the REST bulk load: the body is the file
// (text/plain or text/csv), ?expires_in= optional.
const suppressionUploadPath = "/v1/suppressions/{tenant}/upload"

// uploadSuppressions streams a REST upload into LoadSuppressions over the
// node's own gRPC connection, so authentication and authorisation apply
// as for every REST call.
func uploadSuppressions(gw *runtime.ServeMux, client pb.DialerServiceClient) runtime.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request, params map[string]string) {
		ctx, err := runtime.AnnotateContext(r.Context(), gw, r, pb.DialerService_LoadSuppressions_FullMethodName, runtime.WithHTTPPathPattern(suppressionUploadPath))
		if err != nil {
			runtime.HTTPError(r.Context(), gw, &runtime.JSONPb{}, w, r, err)
			return
		}
		fail := func(err error) {
			runtime.HTTPError(ctx, gw, &runtime.JSONPb{MarshalOptions: protojson.MarshalOptions{UseProtoNames: true}}, w, r, err)
		}
		stream, err := client.LoadSuppressions(ctx)
		if err != nil {
			fail(err)
			return
		}
		first := &pb.LoadSuppressionsChunk{Tenant: params["tenant"], ExpiresIn: r.URL.Query().Get("expires_in")}
		buf := make([]byte, 64<<10)
		for {
			n, rerr := r.Body.Read(buf)
			if n > 0 || first != nil {
				c := first
				if c == nil {
					c = &pb.LoadSuppressionsChunk{}
				}
				first = nil
				c.Data = append([]byte(nil), buf[:n]...)
				if err := stream.Send(c); err != nil {
					break // the server's answer says why
				}
			}
			if rerr != nil {
				if !errors.Is(rerr, io.EOF) {
					fail(status.Errorf(codes.InvalidArgument, "reading the upload: %v", rerr))
					return
				}
				break
			}
		}
		resp, err := stream.CloseAndRecv()
		if err != nil {
			fail(err)
			return
		}
		b, _ := protojson.MarshalOptions{UseProtoNames: true}.Marshal(resp)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(b)
	}
}
