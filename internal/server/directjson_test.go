package server

import (
	"bytes"
	"encoding/binary"
	"math"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/seed-7bfc04c2/dialtone/api/dialtonev1"
)

// gatewayMarshaler is the REST gateway's marshaler, as NewHTTPHandler
// builds it.
var gatewayMarshaler = strictJSONPb{&runtime.JSONPb{MarshalOptions: protojson.MarshalOptions{UseProtoNames: true}}}

// checkDirectJSON compares the hand-written encoding of m with the
// gateway's: the same bytes when protojson succeeds, a refusal (so the
// caller falls back to protojson) when it fails.
func checkDirectJSON(t *testing.T, m proto.Message) {
	t.Helper()
	want, werr := gatewayMarshaler.Marshal(m)
	var got []byte
	var ok bool
	switch m := m.(type) {
	case *pb.Usage:
		got, ok = appendUsageJSON([]byte("junk"), m)
		got = bytes.TrimPrefix(got, []byte("junk"))
	case *pb.GetRequestResponse:
		got, ok = appendGetRequestJSON(nil, m)
	default:
		t.Fatalf("no encoder for %T", m)
	}
	switch {
	case werr != nil && ok:
		t.Fatalf("protojson refuses (%v) but the encoder wrote %s\nmessage: %v", werr, got, m)
	case werr == nil && !ok:
		t.Fatalf("the encoder refused what protojson writes as %s\nmessage: %v", want, m)
	case werr == nil && !bytes.Equal(got, want):
		t.Fatalf("bytes differ:\n encoder   %s\n protojson %s", got, want)
	}
}

var (
	fuzzStrings = []string{"", "a", "acme", "héllo wörld", "日本語", "😀", `"quoted"`, `back\slash`,
		"ctl\x00\x01\x08\x0c\n\r\t\x1f\x7f", "<html>&amp;</html>", "\u2028\u2029", "\xff", "ok\xc3", "\uFFFD", "a\"b\\c/d"}
	fuzzFloats = []float64{0, math.Copysign(0, -1), 1, -1, 0.5, 1.0 / 3, 2.5e-7, 1e-6, 9.99e-7, 1e20, 1e21, 1.5e300, 5e-324,
		math.MaxFloat64, math.NaN(), math.Inf(1), math.Inf(-1), 123456.789}
	fuzzSeconds = []int64{0, 1, -1, 1_700_000_000, 86_399, minTimestampSeconds, maxTimestampSeconds, minTimestampSeconds - 1,
		maxTimestampSeconds + 1, maxDurationSeconds, -maxDurationSeconds, maxDurationSeconds + 1, math.MinInt64}
	fuzzNanos = []int32{0, 1, 10, 1000, 100_000, 1_000_000, 120_000_000, 123_456_789, 999_999_999, 1_000_000_000, -1, -1000, -999_999_999, -1_000_000_000}
)

func pick[T any](r *rand.Rand, s []T) T { return s[r.IntN(len(s))] }

// populate sets a random subset of every field m's descriptor declares
// (so a field added to these messages is exercised without touching this
// test), with values chosen around the encodings' edges.
func populate(r *rand.Rand, m protoreflect.Message) {
	switch m.Descriptor().FullName() {
	case "google.protobuf.Timestamp", "google.protobuf.Duration":
		fs := m.Descriptor().Fields()
		if r.IntN(4) == 0 {
			m.Set(fs.ByName("seconds"), protoreflect.ValueOfInt64(r.Int64N(2*maxTimestampSeconds)-maxTimestampSeconds))
		} else {
			m.Set(fs.ByName("seconds"), protoreflect.ValueOfInt64(pick(r, fuzzSeconds)))
		}
		m.Set(fs.ByName("nanos"), protoreflect.ValueOfInt32(pick(r, fuzzNanos)))
		return
	}
	fields := m.Descriptor().Fields()
	for i := range fields.Len() {
		fd := fields.Get(i)
		if r.IntN(3) == 0 {
			continue
		}
		switch {
		case fd.IsList():
			l := m.Mutable(fd).List()
			for n := r.IntN(4); n > 0; n-- {
				if fd.Kind() == protoreflect.MessageKind {
					e := l.NewElement()
					populate(r, e.Message())
					l.Append(e)
				} else {
					l.Append(scalar(r, fd))
				}
			}
		case fd.IsMap():
			panic("no maps in these messages; extend populate")
		case fd.Kind() == protoreflect.MessageKind:
			populate(r, m.Mutable(fd).Message())
		default:
			m.Set(fd, scalar(r, fd))
		}
	}
}

func scalar(r *rand.Rand, fd protoreflect.FieldDescriptor) protoreflect.Value {
	small := r.IntN(2) == 0
	switch fd.Kind() {
	case protoreflect.StringKind:
		if r.IntN(4) == 0 {
			return protoreflect.ValueOfString(pick(r, fuzzStrings) + pick(r, fuzzStrings) + pick(r, fuzzStrings))
		}
		return protoreflect.ValueOfString(pick(r, fuzzStrings))
	case protoreflect.BoolKind:
		return protoreflect.ValueOfBool(r.IntN(2) == 0)
	case protoreflect.Uint32Kind:
		if small {
			return protoreflect.ValueOfUint32(uint32(r.IntN(3)))
		}
		return protoreflect.ValueOfUint32(r.Uint32())
	case protoreflect.Int32Kind:
		if small {
			return protoreflect.ValueOfInt32(int32(r.IntN(5) - 2))
		}
		return protoreflect.ValueOfInt32(int32(r.Uint32()))
	case protoreflect.Uint64Kind:
		if small {
			return protoreflect.ValueOfUint64(uint64(r.IntN(3)))
		}
		return protoreflect.ValueOfUint64(r.Uint64())
	case protoreflect.Int64Kind:
		if small {
			return protoreflect.ValueOfInt64(int64(r.IntN(5) - 2))
		}
		return protoreflect.ValueOfInt64(int64(r.Uint64()))
	case protoreflect.DoubleKind:
		if small {
			return protoreflect.ValueOfFloat64(pick(r, fuzzFloats))
		}
		return protoreflect.ValueOfFloat64(math.Float64frombits(r.Uint64()))
	}
	panic("populate: unhandled kind " + fd.Kind().String() + " of " + string(fd.FullName()) + "; extend the encoder and this test")
}

func randomAnswers(r *rand.Rand) []proto.Message {
	u, g := &pb.Usage{}, &pb.GetRequestResponse{}
	populate(r, u.ProtoReflect())
	populate(r, g.ProtoReflect())
	return []proto.Message{u, g}
}

// TestDirectJSONMatchesProtojson checks the encoder of the two hot reads'
// answers against the gateway's marshaler: fixed cases (empty, typical,
// every edge of strings, numbers and the well-known types), then random
// field combinations.
func TestDirectJSONMatchesProtojson(t *testing.T) {
	tru, fal := true, false
	typical := &pb.GetRequestResponse{
		Request: &pb.Request{
			Id: "0190f1e2-7b1c-7cc0-8a61-2f6f0d3c4b5a", Tenant: "acme",
			Spec: &pb.RequestSpec{Token: "T1", IvrProfile: "survey", Telnum: "+15551234567", Ani: "+15550000000",
				NotificationUrl: "http://crm.example/notify?id=1&x=<y>", CustomData: []*pb.KeyValue{{Key: "k", Value: "v"}, {Key: "empty"}},
				Cpd: &pb.Cpd{Record: &fal, Preconnect: &tru, Detect: "all"}, MaxAttempts: 3, TimeToLive: "3600s", TimeZone: "America/Chicago"},
			State: "PENDING", Status: "Waiting to be processed", AttemptsMade: 1,
			TtlRemaining: durationpb.New(3599_999_000_000), Created: &timestamppb.Timestamp{Seconds: 1_765_000_000, Nanos: 120_000_000},
			NextRetry: &timestamppb.Timestamp{}, Expires: &timestamppb.Timestamp{Seconds: 1_765_003_600},
			Attempts:     []*pb.Attempt{{Number: 1, CallUuid: "c1", Started: &timestamppb.Timestamp{Seconds: 1}, Outcome: "NO_ANSWER"}},
			Notification: "NONE", CreateIndex: 12, ModifyIndex: 1 << 62, WaitReason: "outside_window",
		},
		Meta: &pb.ReadMeta{NodeId: "n2", AppliedIndex: 99, LastContactMs: 7, Consistency: "local"},
	}
	usage := &pb.Usage{NodeId: "n1", TotalPorts: 100, PortsInUse: 40, AvailablePorts: 60, Servers: 2,
		Window:  &pb.WindowStats{MinInUse: 1, MaxInUse: 50, AvgInUse: 33.333333333333336, WindowSeconds: 60},
		Tenants: []*pb.TenantUsage{{Tenant: "acme", TotalPorts: 100, Window: &pb.WindowStats{}}, {}, {StaleServers: 1}}}
	cases := []proto.Message{
		&pb.Usage{}, &pb.GetRequestResponse{}, usage, typical,
		&pb.GetRequestResponse{Request: &pb.Request{}}, &pb.GetRequestResponse{Meta: &pb.ReadMeta{Leader: true, LastContactMs: -3}},
		&pb.GetRequestResponse{Request: &pb.Request{Spec: &pb.RequestSpec{Cpd: &pb.Cpd{}}}},
		&pb.Usage{Window: &pb.WindowStats{AvgInUse: math.Copysign(0, -1)}},
	}
	for _, s := range fuzzStrings {
		cases = append(cases, &pb.Usage{NodeId: s, Tenants: []*pb.TenantUsage{{Tenant: s}}},
			&pb.GetRequestResponse{Request: &pb.Request{Id: s, Spec: &pb.RequestSpec{CustomData: []*pb.KeyValue{{Key: s, Value: s}}}}})
	}
	for _, f := range fuzzFloats {
		cases = append(cases, &pb.Usage{Window: &pb.WindowStats{AvgInUse: f}})
	}
	for _, s := range fuzzSeconds {
		for _, n := range fuzzNanos {
			cases = append(cases, &pb.GetRequestResponse{Request: &pb.Request{
				TtlRemaining: &durationpb.Duration{Seconds: s, Nanos: n}, Created: &timestamppb.Timestamp{Seconds: s, Nanos: n}}})
		}
	}
	for _, m := range cases {
		checkDirectJSON(t, m)
	}
	r := rand.New(rand.NewPCG(18, 3))
	for range 3000 {
		for _, m := range randomAnswers(r) {
			checkDirectJSON(t, m)
		}
	}
}

// TestDirectJSONRefusesNilElements: protojson's handling of a nil message
// or list element is left to protojson (the encoder declines).
func TestDirectJSONRefusesNilElements(t *testing.T) {
	if _, ok := appendUsageJSON(nil, nil); ok {
		t.Error("nil usage: encoded")
	}
	if _, ok := appendGetRequestJSON(nil, nil); ok {
		t.Error("nil answer: encoded")
	}
	if _, ok := appendUsageJSON(nil, &pb.Usage{Tenants: []*pb.TenantUsage{nil}}); ok {
		t.Error("usage with a nil tenant: encoded")
	}
	if _, ok := appendGetRequestJSON(nil, &pb.GetRequestResponse{Request: &pb.Request{Attempts: []*pb.Attempt{nil}}}); ok {
		t.Error("request with a nil attempt: encoded")
	}
	if _, ok := appendGetRequestJSON(nil, &pb.GetRequestResponse{Request: &pb.Request{Spec: &pb.RequestSpec{CustomData: []*pb.KeyValue{nil}}}}); ok {
		t.Error("request with a nil custom_data entry: encoded")
	}
}

// FuzzDirectJSON: random field combinations of both answers, seeded by the
// fuzzer's bytes.
//
//	go test -run '^$' -fuzz FuzzDirectJSON -fuzztime 20000x ./internal/server/
func FuzzDirectJSON(f *testing.F) {
	f.Add([]byte{0})
	f.Add([]byte("dialtone issue 18"))
	f.Fuzz(func(t *testing.T, seed []byte) {
		var s [16]byte
		copy(s[:], seed)
		r := rand.New(rand.NewPCG(binary.LittleEndian.Uint64(s[:8]), binary.LittleEndian.Uint64(s[8:])))
		for _, m := range randomAnswers(r) {
			checkDirectJSON(t, m)
		}
	})
}

// TestPlainRead: only the plain form of a hot read takes the fast path;
// every form whose handling is the gateway's (query, escapes, trailers,
// timeouts) goes through its mux.
func TestPlainRead(t *testing.T) {
	for _, c := range []struct {
		target string
		hdr    map[string]string
		want   bool
	}{
		{"/v1/port-usage", nil, true},
		{"/v1/tenants/acme/requests/0190f1e2-7b1c-7cc0-8a61-2f6f0d3c4b5a", map[string]string{"Authorization": "Basic eDp5", "Accept": "application/json"}, true},
		{"/v1/port-usage?", nil, true},
		{"/v1/port-usage?x=1", nil, false},
		{"/v1/tenants/%61cme/requests/x", nil, false},
		{"/v1/tenants/a%2Fb/requests/x", nil, false},
		{"/v1/port-usage", map[string]string{"TE": "trailers"}, false},
		{"/v1/port-usage", map[string]string{"Grpc-Timeout": "1S"}, false},
	} {
		r := httptest.NewRequest(http.MethodGet, c.target, nil)
		for k, v := range c.hdr {
			r.Header.Set(k, v)
		}
		if got := plainRead(r); got != c.want {
			t.Errorf("plainRead(%s %v) = %v, want %v", c.target, c.hdr, got, c.want)
		}
	}
}
