package fsm

import (
	"testing"

	"github.com/hashicorp/raft"
	"google.golang.org/protobuf/proto"

	"github.com/seed-7bfc04c2/dialtone/internal/fsm/fsmpb"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// TestSpecFields checks decodeSpec's field numbers against fsm.proto, and
// that it reads every spec field newRecord keeps.
func TestSpecFields(t *testing.T) {
	want := map[protowire.Number]struct {
		name string
		kind protoreflect.Kind
		list bool
	}{
		specID: {"id", protoreflect.StringKind, false}, specTenant: {"tenant", protoreflect.StringKind, false},
		specToken: {"token", protoreflect.StringKind, false}, specProfile: {"ivr_profile", protoreflect.StringKind, false},
		specTelnum: {"telnum", protoreflect.StringKind, false}, specAni: {"ani", protoreflect.StringKind, false},
		specNotificationURL: {"notification_url", protoreflect.StringKind, false},
		specCustomData:      {"custom_data", protoreflect.MessageKind, true}, specCpd: {"cpd", protoreflect.MessageKind, false},
		specMaxAttempts: {"max_attempts", protoreflect.Uint32Kind, false}, specTTL: {"ttl_ms", protoreflect.Int64Kind, false},
		specKey: {"idempotency_key", protoreflect.StringKind, false}, specFingerprint: {"fingerprint", protoreflect.BytesKind, false},
		specTimeZone: {"time_zone", protoreflect.StringKind, false},
	}
	for num, w := range want {
		fd := requestDesc.Fields().ByNumber(num)
		if fd == nil || string(fd.Name()) != w.name || fd.Kind() != w.kind || fd.IsList() != w.list {
			t.Errorf("Request field %d: %v, want %s (%s, list %v)", num, fd, w.name, w.kind, w.list)
		}
	}
	// A record with every spec field set reads back as newRecord stores it.
	spec := newReq("id-1", "t", "p", 3, 1000)
	spec.TimeZone, spec.IdempotencyKey = "Europe/Berlin", "k"
	spec.CustomData = []*fsmpb.KeyValue{{Key: "a", Value: "1"}, {Key: "b", Value: "2"}}
	rec, post := true, int64(9000)
	spec.Cpd = &fsmpb.Cpd{Record: &rec, PostConnectTimeoutMs: &post, Detect: "machine"}
	spec.State, spec.AttemptsMade = fsmpb.State_IN_PROGRESS, 2 // dropped
	raw, err := proto.Marshal(spec)
	if err != nil {
		t.Fatal(err)
	}
	got, err := decodeSpec(raw)
	if err != nil {
		t.Fatal(err)
	}
	setNew(got, t0, 7)
	if want := newRecord(spec, t0, 7); !proto.Equal(got, want) {
		t.Fatalf("decodeSpec + setNew:\n%v\nnewRecord:\n%v", got, want)
	}
}

// TestFreshMergedRequest: a request encoded as two concatenated messages
// is read in place, and stored as a decode merges it.
func TestFreshMergedRequest(t *testing.T) {
	a := newReq("id-1", "t1", "p", 3, 60_000)
	a.CustomData = []*fsmpb.KeyValue{{Key: "a", Value: "1"}}
	yes := true
	a.Cpd = &fsmpb.Cpd{Preconnect: &yes}
	b := &fsmpb.Request{Tenant: "t2", TtlMs: 5, CustomData: []*fsmpb.KeyValue{{Key: "b"}}, Cpd: &fsmpb.Cpd{Detect: "human"}}
	one, _ := proto.Marshal(a)
	two, _ := proto.Marshal(b)
	body := protowire.AppendTag(nil, createRequestsField, protowire.BytesType)
	body = protowire.AppendBytes(body, append(one, two...))
	entry := protowire.AppendTag(nil, versionField, protowire.VarintType)
	entry = protowire.AppendVarint(entry, CommandVersion)
	entry = protowire.AppendTag(entry, nowField, protowire.VarintType)
	entry = protowire.AppendVarint(entry, uint64(t0))
	entry = protowire.AppendTag(entry, createBodyField, protowire.BytesType)
	entry = protowire.AppendBytes(entry, body)
	if _, ok := viewCreate(&raft.Log{Data: entry}); !ok {
		t.Fatal("not read in place")
	}
	f := New()
	if res := f.Apply(&raft.Log{Index: 1, Type: raft.LogCommand, Data: entry}).(*fsmpb.ApplyResult); res.Items[0].Code != fsmpb.Code_CODE_OK {
		t.Fatal(res)
	}
	got, ok := f.Get("id-1")
	if !ok {
		t.Fatal("not stored")
	}
	merged := proto.Clone(a).(*fsmpb.Request)
	proto.Merge(merged, b)
	if want := newRecord(merged, t0, 1); !proto.Equal(got, want) {
		t.Fatalf("stored\n%v\nwant\n%v", got, want)
	}
	if got.Tenant != "t2" || got.TtlMs != 5 || len(got.CustomData) != 2 || !got.Cpd.GetPreconnect() || got.Cpd.GetDetect() != "human" {
		t.Fatalf("not merged: %v", got)
	}
	if n := f.Count(); n != 1 {
		t.Fatalf("%d records", n)
	}
}
