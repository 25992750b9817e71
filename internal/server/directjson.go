package server

import (
	"bytes"
	"math"
	"math/bits"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/seed-7bfc04c2/dialtone/api/dialtonev1"
)

// A hand-written JSON encoder for exactly the two hot reads' answers
// (pb.Usage and pb.GetRequestResponse). It writes the bytes protojson
// writes with the gateway's options (UseProtoNames, no indent, zero values
// left out, declaration order): protojson walks each message by reflection
// and was ~14% of a follower's CPU on these reads. Whenever protojson would
// fail or do something this encoder does not know (invalid UTF-8, a
// timestamp or duration out of range, a nil list element), it reports !ok
// and the caller marshals with protojson instead, so the answer, error
// included, is the gateway's. TestDirectJSONMatchesProtojson and
// FuzzDirectJSON check it against protojson field by field, populating
// every field the descriptors declare (a field added to these messages
// fails them until the encoder writes it).

// commaSpace mirrors protojson's deliberately unstable output: in
// single-line mode it puts a space after every comma in some binaries and
// not in others (internal/detrand, fixed per binary). Asking protojson once
// keeps this encoder's bytes identical to the gateway's in the same binary.
var commaSpace = func() bool {
	b, err := protojson.Marshal(&pb.KeyValue{Key: "a", Value: "b"})
	return err == nil && bytes.Contains(b, []byte(", "))
}()

// jsonBufs recycles answer buffers (a GetRequest answer is ~1 kB).
var jsonBufs = sync.Pool{New: func() any { b := make([]byte, 0, 2048); return &b }}

// maxPooledJSON keeps an unusually large answer's buffer out of the pool.
const maxPooledJSON = 64 << 10

// jw appends one JSON document; ok turns false at the first value protojson
// would refuse or that this encoder does not handle.
type jw struct {
	b  []byte
	ok bool
	// first is true right after an opening brace or bracket: no comma.
	first bool
}

func (w *jw) sep() {
	if w.first {
		w.first = false
		return
	}
	w.b = append(w.b, ',')
	if commaSpace {
		w.b = append(w.b, ' ')
	}
}

func (w *jw) open(c byte) {
	w.b = append(w.b, c)
	w.first = true
}

func (w *jw) close(c byte) {
	w.b = append(w.b, c)
	w.first = false
}

// name writes the separator and a field name; names are plain ASCII.
func (w *jw) name(n string) {
	w.sep()
	w.b = append(w.b, '"')
	w.b = append(w.b, n...)
	w.b = append(w.b, '"', ':')
}

func (w *jw) str(n, v string) {
	if v == "" {
		return
	}
	w.name(n)
	w.b, w.ok = appendJSONString(w.b, v, w.ok)
}

func (w *jw) u32(n string, v uint32) {
	if v == 0 {
		return
	}
	w.name(n)
	w.b = strconv.AppendUint(w.b, uint64(v), 10)
}

func (w *jw) i32(n string, v int32) {
	if v == 0 {
		return
	}
	w.name(n)
	w.b = strconv.AppendInt(w.b, int64(v), 10)
}

// u64 and i64 are JSON strings in protojson.
func (w *jw) u64(n string, v uint64) {
	if v == 0 {
		return
	}
	w.name(n)
	w.b = append(w.b, '"')
	w.b = strconv.AppendUint(w.b, v, 10)
	w.b = append(w.b, '"')
}

func (w *jw) i64(n string, v int64) {
	if v == 0 {
		return
	}
	w.name(n)
	w.b = append(w.b, '"')
	w.b = strconv.AppendInt(w.b, v, 10)
	w.b = append(w.b, '"')
}

func (w *jw) boolean(n string, v bool) {
	if !v {
		return
	}
	w.name(n)
	w.b = append(w.b, "true"...)
}

// optBool is a proto3 optional bool: written whenever set, false included.
func (w *jw) optBool(n string, v *bool) {
	if v == nil {
		return
	}
	w.name(n)
	w.b = strconv.AppendBool(w.b, *v)
}

// f64 is a double with implicit presence: any value but +0 is written
// (-0 included, as protoreflect counts a field set by its bits).
func (w *jw) f64(n string, v float64) {
	if math.Float64bits(v) == 0 {
		return
	}
	w.name(n)
	w.b = appendJSONFloat(w.b, v)
}

// appendJSONString is protojson's string encoding (internal/encoding/json
// appendString): ", \ and control characters escaped, nothing else;
// invalid UTF-8 is an error there, so !ok here.
func appendJSONString(out []byte, in string, ok bool) ([]byte, bool) {
	out = append(out, '"')
	i := indexNeedEscape(in)
	in, out = in[i:], append(out, in[:i]...)
	for len(in) > 0 {
		switch r, n := utf8.DecodeRuneInString(in); {
		case r == utf8.RuneError && n == 1:
			return out, false
		case r < ' ' || r == '"' || r == '\\':
			out = append(out, '\\')
			switch r {
			case '"', '\\':
				out = append(out, byte(r))
			case '\b':
				out = append(out, 'b')
			case '\f':
				out = append(out, 'f')
			case '\n':
				out = append(out, 'n')
			case '\r':
				out = append(out, 'r')
			case '\t':
				out = append(out, 't')
			default:
				out = append(out, 'u')
				out = append(out, "0000"[1+(bits.Len32(uint32(r))-1)/4:]...)
				out = strconv.AppendUint(out, uint64(r), 16)
			}
			in = in[n:]
		default:
			i := indexNeedEscape(in[n:])
			in, out = in[n+i:], append(out, in[:n+i]...)
		}
	}
	return append(out, '"'), ok
}

func indexNeedEscape(s string) int {
	for i, r := range s {
		if r < ' ' || r == '\\' || r == '"' || r == utf8.RuneError {
			return i
		}
	}
	return len(s)
}

// appendJSONFloat is protojson's double encoding (appendFloat, bitSize 64).
func appendJSONFloat(out []byte, n float64) []byte {
	switch {
	case math.IsNaN(n):
		return append(out, `"NaN"`...)
	case math.IsInf(n, +1):
		return append(out, `"Infinity"`...)
	case math.IsInf(n, -1):
		return append(out, `"-Infinity"`...)
	}
	f := byte('f')
	if abs := math.Abs(n); abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		f = 'e'
	}
	out = strconv.AppendFloat(out, n, f, -1, 64)
	if f == 'e' {
		n := len(out)
		if n >= 4 && out[n-4] == 'e' && out[n-3] == '-' && out[n-2] == '0' {
			out[n-2] = out[n-1]
			out = out[:n-1]
		}
	}
	return out
}

// The well-known types' limits, as protojson checks them.
const (
	maxDurationSeconds  = 315576000000
	maxNanos            = 999999999
	minTimestampSeconds = -62135596800
	maxTimestampSeconds = 253402300799
)

// trimFraction drops protojson's unneeded fractional digits from the
// ".nnnnnnnnn" that ends b: 9, 6, 3 or no digits remain.
func trimFraction(b []byte) []byte {
	for range 2 {
		if bytes.HasSuffix(b, []byte("000")) {
			b = b[:len(b)-3]
		}
	}
	if bytes.HasSuffix(b, []byte(".000")) {
		b = b[:len(b)-4]
	}
	return b
}

func (w *jw) timestamp(n string, t *timestamppb.Timestamp) {
	if t == nil {
		return
	}
	secs, nanos := t.GetSeconds(), int64(t.GetNanos())
	if secs < minTimestampSeconds || secs > maxTimestampSeconds || nanos < 0 || nanos > maxNanos {
		w.ok = false
		return
	}
	w.name(n)
	w.b = append(w.b, '"')
	w.b = time.Unix(secs, nanos).UTC().AppendFormat(w.b, "2006-01-02T15:04:05.000000000")
	w.b = trimFraction(w.b)
	w.b = append(w.b, 'Z', '"')
}

func (w *jw) duration(n string, d *durationpb.Duration) {
	if d == nil {
		return
	}
	secs, nanos := d.GetSeconds(), int64(d.GetNanos())
	if secs < -maxDurationSeconds || secs > maxDurationSeconds || nanos < -maxNanos || nanos > maxNanos ||
		(secs > 0 && nanos < 0) || (secs < 0 && nanos > 0) {
		w.ok = false
		return
	}
	w.name(n)
	w.b = append(w.b, '"')
	if secs < 0 || nanos < 0 {
		w.b = append(w.b, '-')
		secs, nanos = -secs, -nanos
	}
	w.b = strconv.AppendInt(w.b, secs, 10)
	w.b = append(w.b, '.')
	var digits [9]byte
	for i := 8; i >= 0; i-- {
		digits[i] = byte('0' + nanos%10)
		nanos /= 10
	}
	w.b = append(w.b, digits[:]...)
	w.b = trimFraction(w.b)
	w.b = append(w.b, 's', '"')
}

func (w *jw) window(n string, s *pb.WindowStats) {
	if s == nil {
		return
	}
	w.name(n)
	w.open('{')
	w.u32("min_in_use", s.MinInUse)
	w.u32("max_in_use", s.MaxInUse)
	w.f64("avg_in_use", s.AvgInUse)
	w.i32("window_seconds", s.WindowSeconds)
	w.close('}')
}

// appendUsageJSON appends protojson's encoding of u (see jw).
func appendUsageJSON(b []byte, u *pb.Usage) ([]byte, bool) {
	if u == nil {
		return b, false // the gateway's business (a handler never answers nil)
	}
	w := jw{b: b, ok: true}
	w.open('{')
	w.str("node_id", u.NodeId)
	w.u32("total_ports", u.TotalPorts)
	w.u32("ports_in_use", u.PortsInUse)
	w.u32("available_ports", u.AvailablePorts)
	w.u32("entitled_ports", u.EntitledPorts)
	w.u32("servers", u.Servers)
	w.u32("stale_servers", u.StaleServers)
	w.window("window", u.Window)
	if len(u.Tenants) > 0 {
		w.name("tenants")
		w.open('[')
		for _, t := range u.Tenants {
			if t == nil {
				return w.b, false
			}
			w.sep()
			w.open('{')
			w.str("tenant", t.Tenant)
			w.u32("total_ports", t.TotalPorts)
			w.u32("ports_in_use", t.PortsInUse)
			w.u32("available_ports", t.AvailablePorts)
			w.u32("entitled_ports", t.EntitledPorts)
			w.u32("servers", t.Servers)
			w.u32("stale_servers", t.StaleServers)
			w.window("window", t.Window)
			w.close('}')
		}
		w.close(']')
	}
	w.close('}')
	return w.b, w.ok
}

// appendGetRequestJSON appends protojson's encoding of r (see jw).
func appendGetRequestJSON(b []byte, r *pb.GetRequestResponse) ([]byte, bool) {
	if r == nil {
		return b, false
	}
	w := jw{b: b, ok: true}
	w.open('{')
	if q := r.Request; q != nil {
		w.name("request")
		w.request(q)
	}
	if m := r.Meta; m != nil {
		w.name("meta")
		w.open('{')
		w.str("node_id", m.NodeId)
		w.u64("applied_index", m.AppliedIndex)
		w.boolean("leader", m.Leader)
		w.i64("last_contact_ms", m.LastContactMs)
		w.str("consistency", m.Consistency)
		w.close('}')
	}
	w.close('}')
	return w.b, w.ok
}

func (w *jw) request(q *pb.Request) {
	w.open('{')
	w.str("id", q.Id)
	w.str("tenant", q.Tenant)
	if s := q.Spec; s != nil {
		w.name("spec")
		w.spec(s)
	}
	w.str("state", q.State)
	w.str("result", q.Result)
	w.str("result_reason", q.ResultReason)
	w.str("status", q.Status)
	w.u32("attempts_made", q.AttemptsMade)
	w.duration("ttl_remaining", q.TtlRemaining)
	w.timestamp("created", q.Created)
	w.timestamp("next_retry", q.NextRetry)
	w.timestamp("expires", q.Expires)
	w.str("last_call_uuid", q.LastCallUuid)
	if len(q.Attempts) > 0 {
		w.name("attempts")
		w.open('[')
		for _, a := range q.Attempts {
			if a == nil {
				w.ok = false
				return
			}
			w.sep()
			w.open('{')
			w.u32("number", a.Number)
			w.str("call_uuid", a.CallUuid)
			w.timestamp("started", a.Started)
			w.timestamp("ended", a.Ended)
			w.str("outcome", a.Outcome)
			w.str("reason", a.Reason)
			w.close('}')
		}
		w.close(']')
	}
	w.str("notification", q.Notification)
	w.u64("create_index", q.CreateIndex)
	w.u64("modify_index", q.ModifyIndex)
	w.str("wait_reason", q.WaitReason)
	w.close('}')
}

func (w *jw) spec(s *pb.RequestSpec) {
	w.open('{')
	w.str("token", s.Token)
	w.str("ivr_profile", s.IvrProfile)
	w.str("telnum", s.Telnum)
	w.str("ani", s.Ani)
	w.str("notification_url", s.NotificationUrl)
	if len(s.CustomData) > 0 {
		w.name("custom_data")
		w.open('[')
		for _, kv := range s.CustomData {
			if kv == nil {
				w.ok = false
				return
			}
			w.sep()
			w.open('{')
			w.str("key", kv.Key)
			w.str("value", kv.Value)
			w.close('}')
		}
		w.close(']')
	}
	if c := s.Cpd; c != nil {
		w.name("cpd")
		w.open('{')
		w.optBool("record", c.Record)
		w.str("post_connect_timeout", c.PostConnectTimeout)
		w.str("rna_timeout", c.RnaTimeout)
		w.optBool("preconnect", c.Preconnect)
		w.str("detect", c.Detect)
		w.close('}')
	}
	w.u32("max_attempts", s.MaxAttempts)
	w.str("time_to_live", s.TimeToLive)
	w.str("idempotency_key", s.IdempotencyKey)
	w.str("time_zone", s.TimeZone)
	w.close('}')
}
