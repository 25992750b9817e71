package fsm

import (
	"bytes"
	"encoding/binary"
	"strconv"
	"strings"
	"testing"

	"github.com/hashicorp/raft"
	"google.golang.org/protobuf/proto"

	"github.com/seed-7bfc04c2/dialtone/internal/fsm/fsmpb"
)

func setPac(p *fsmpb.Pacing) *fsmpb.Command {
	return SetPacingCommand(p)
}

func delPac(tenant string) *fsmpb.Command {
	return DeletePacingCommand(tenant)
}

// pac is a pacing entry with every field set.
func pac(tenant string, caps float64) *fsmpb.Pacing {
	return &fsmpb.Pacing{
		Tenant: tenant, Caps: caps, PortLoadFactor: 90, BatchSizeMode: "Fixed", BatchSize: 40,
		QueueLowWatermark: 30, SlotCalculation: "EQUAL", EqualPriorityNewAndOld: true,
		NextRetryIntervalMs: 5000, CleanIntervalMs: 60_000, RetentionMs: 3_600_000,
	}
}

// pacTenants lists the tenants of entries, the global one as "_".
func pacTenants(ps []*fsmpb.Pacing) string {
	var out []string
	for _, p := range ps {
		if p.Tenant == "" {
			out = append(out, "_")
		} else {
			out = append(out, p.Tenant)
		}
	}
	return strings.Join(out, ",")
}

func TestPacingCommands(t *testing.T) {
	h := newHarness(t)
	h.mustOK(t0, setPac(pac("globex", 10)))
	h.mustOK(t0, setPac(pac("acme", 20)))
	h.mustOK(t0, setPac(&fsmpb.Pacing{Caps: 200})) // the global entry
	if got := pacTenants(h.f.Pacings()); got != "_,acme,globex" {
		t.Fatalf("Pacings = %s", got)
	}
	if g, ok := h.f.Pacing(""); !ok || g.Caps != 200 || g.PortLoadFactor != 0 {
		t.Fatalf("global = %v %v", g, ok)
	}
	if a, ok := h.f.Pacing("acme"); !ok || !proto.Equal(a, pac("acme", 20)) {
		t.Fatalf("acme = %v %v", a, ok)
	}
	if _, ok := h.f.Pacing("nobody"); ok {
		t.Fatal("unknown tenant has a pacing entry")
	}

	// Set replaces the whole entry: fields not given are gone.
	h.mustOK(t0, setPac(&fsmpb.Pacing{Tenant: "acme", Caps: 7}))
	if a, _ := h.f.Pacing("acme"); !proto.Equal(a, &fsmpb.Pacing{Tenant: "acme", Caps: 7}) {
		t.Fatalf("replaced acme = %v", a)
	}
	// The returned slice is the caller's.
	ps := h.f.Pacings()
	ps[0] = nil
	if h.f.Pacings()[0] == nil {
		t.Fatal("Pacings shares its slice")
	}

	// Delete, including the global entry; a missing entry is not found.
	h.mustOK(t0, delPac("globex"))
	if it := h.one(t0, delPac("globex")); it.Code != fsmpb.Code_CODE_NOT_FOUND || it.Id != "globex" {
		t.Fatalf("delete missing = %v", it)
	}
	h.mustOK(t0, delPac(""))
	if it := h.one(t0, delPac("")); it.Code != fsmpb.Code_CODE_NOT_FOUND {
		t.Fatalf("delete missing global = %v", it)
	}
	if it := h.one(t0, &fsmpb.Command{Body: &fsmpb.Command_SetPacing{SetPacing: &fsmpb.SetPacing{}}}); it.Code != fsmpb.Code_CODE_INVALID_STATE {
		t.Fatalf("no entry = %v", it)
	}
	if got := pacTenants(h.f.Pacings()); got != "acme" {
		t.Fatalf("after delete = %s", got)
	}
	// Pacing does not touch the other settings or the records.
	if len(h.f.Entitlements()) != 0 || len(h.f.Thresholds()) != 0 || h.f.Count() != 0 {
		t.Fatal("pacing commands changed other state")
	}
	checkSettingsInvariants(t, h.f)
}

// Every settings section survives changes to the others (each change
// replaces the settings value wholesale).
func TestPacingKeepsOtherSettings(t *testing.T) {
	h := newHarness(t)
	h.mustOK(t0, setEnt("acme", 10))
	h.mustOK(t0, setTh(th("a", "acme", 90)))
	h.mustOK(t0, setPac(pac("acme", 5)))
	h.mustOK(t0, setEnt("beta", 1))
	h.mustOK(t0, delTh("a"))
	if got := pacTenants(h.f.Pacings()); got != "acme" {
		t.Fatalf("pacing lost by entitlement/threshold changes: %s", got)
	}
	h.mustOK(t0, setPac(pac("", 5)))
	h.mustOK(t0, delPac("acme"))
	if got := entTenants(h.f.Entitlements()); got != "acme,beta" {
		t.Fatalf("entitlements lost by pacing changes: %s", got)
	}
}

// Readers and snapshots keep the entries they got.
func TestPacingReadIsolation(t *testing.T) {
	h := newHarness(t)
	h.mustOK(t0, setPac(pac("acme", 10)))
	before, _ := h.f.Pacing("acme")
	list := h.f.Pacings()
	snap, err := h.f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	want := snapshotBytes(t, h.f)
	h.mustOK(t0, setPac(pac("acme", 99)))
	h.mustOK(t0, setPac(pac("", 1)))
	if before.Caps != 10 || len(list) != 1 || list[0].Caps != 10 {
		t.Fatal("earlier read changed by later applies")
	}
	s := &sink{}
	if err := snap.Persist(s); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(s.Bytes(), want) {
		t.Fatal("snapshot includes pacing applied after Snapshot()")
	}
}

// The same pacing commands give the same state one by one, in a batch, and
// after a snapshot taken half-way and restored.
func TestPacingReplayDeterminism(t *testing.T) {
	cmds := []*fsmpb.Command{
		setPac(pac("acme", 10)), setPac(&fsmpb.Pacing{Caps: 300}), create(newReq("r1", "acme", "p1", 1, 1000)),
		setPac(pac("globex", 3)), delPac("acme"), delPac("acme"), setEnt("acme", 5),
		setPac(&fsmpb.Pacing{Tenant: "acme", SlotCalculation: "EQUAL"}), setPac(pac("", 250)), delPac("zeta"),
	}
	var logs []*raft.Log
	for i, c := range cmds {
		logs = append(logs, cmdLog(t, uint64(i+1), t0+int64(i), c))
	}
	one := New()
	var results []*fsmpb.ApplyResult
	for _, l := range logs {
		results = append(results, one.Apply(l).(*fsmpb.ApplyResult))
	}
	want := snapshotBytes(t, one)
	if got := pacTenants(one.Pacings()); got != "_,acme,globex" {
		t.Fatalf("Pacings = %s", got)
	}
	if results[5].Items[0].Code != fsmpb.Code_CODE_NOT_FOUND || results[9].Items[0].Code != fsmpb.Code_CODE_NOT_FOUND {
		t.Fatalf("deletes of missing entries: %v %v", results[5], results[9])
	}

	batched := New()
	for i, res := range batched.ApplyBatch(logs) {
		if !proto.Equal(res.(*fsmpb.ApplyResult), results[i]) {
			t.Fatalf("entry %d: batched result differs", i+1)
		}
	}
	if !bytes.Equal(snapshotBytes(t, batched), want) {
		t.Fatal("ApplyBatch gives a different snapshot")
	}

	mid := New()
	mid.ApplyBatch(logs[:4])
	restored := New()
	if err := restored.Restore(readCloser(snapshotBytes(t, mid))); err != nil {
		t.Fatal(err)
	}
	restored.ApplyBatch(logs[4:])
	if !bytes.Equal(snapshotBytes(t, restored), want) {
		t.Fatal("snapshot+replay gives a different snapshot")
	}
}

func TestSnapshotRoundTripPacing(t *testing.T) {
	h := settingsState(t)
	h.mustOK(t0, setPac(pac("globex", 30)))
	h.mustOK(t0, setPac(&fsmpb.Pacing{Caps: 500, RetentionMs: 1000}))
	h.mustOK(t0, setPac(pac("acme", 12.5)))
	data := snapshotBytes(t, h.f)
	if v := binary.BigEndian.Uint32(data[8:]); v != snapshotVersion {
		t.Fatalf("wrote version %d, want %d", v, snapshotVersion)
	}
	g := New()
	g.ApplyBatch([]*raft.Log{cmdLog(t, 1, t0, setPac(pac("stale", 1)))})
	if err := g.Restore(readCloser(data)); err != nil {
		t.Fatal(err)
	}
	want, got := h.f.Pacings(), g.Pacings()
	if pacTenants(got) != "_,acme,globex" || len(got) != len(want) {
		t.Fatalf("restored %s", pacTenants(got))
	}
	for i := range want {
		if !proto.Equal(got[i], want[i]) {
			t.Fatalf("entry %d: restored %v, want %v", i, got[i], want[i])
		}
	}
	// The other sections and the records came back too.
	if entTenants(g.Entitlements()) != "acme,globex" || thIDs(g.Thresholds()) != "floor,hi" || g.Count() != 1 {
		t.Fatalf("restored entitlements %s thresholds %s records %d", entTenants(g.Entitlements()), thIDs(g.Thresholds()), g.Count())
	}
	checkSettingsInvariants(t, g)
	if !bytes.Equal(snapshotBytes(t, g), data) {
		t.Fatal("re-snapshot differs")
	}
}

// v2Snapshot writes h's state as a version-2 snapshot: a version-6 one
// without pacing, calling windows, suppression lists or frequency caps
// ends with five zero counts, which version 2 lacks.
func v2Snapshot(t *testing.T, f *FSM) []byte {
	t.Helper()
	if len(f.Pacings()) != 0 {
		t.Fatal("v2Snapshot: the state has pacing entries")
	}
	b := snapshotBytes(t, f)
	if !bytes.Equal(b[len(b)-40:], make([]byte, 40)) {
		t.Fatal("v2Snapshot: no empty pacing, window, suppression and frequency sections at the end")
	}
	b = b[:len(b)-40]
	binary.BigEndian.PutUint32(b[8:], snapshotV2)
	return b
}

// A version-2 snapshot (settings without pacing, written before pacing
// existed) restores with no pacing entries, replacing the ones there were.
func TestRestoreVersion2Snapshot(t *testing.T) {
	src := settingsState(t)
	v2 := v2Snapshot(t, src.f)

	h := newHarness(t)
	h.mustOK(t0, setPac(pac("", 100)))
	h.mustOK(t0, setPac(pac("acme", 10)))
	if err := h.f.Restore(readCloser(v2)); err != nil {
		t.Fatal(err)
	}
	if len(h.f.Pacings()) != 0 {
		t.Fatalf("pacing survived the restore: %s", pacTenants(h.f.Pacings()))
	}
	if _, ok := h.f.Pacing(""); ok {
		t.Fatal("global pacing survived the restore")
	}
	if entTenants(h.f.Entitlements()) != "acme,globex" || thIDs(h.f.Thresholds()) != "floor,hi" || h.f.Count() != 1 || h.f.AppliedIndex() != src.f.AppliedIndex() {
		t.Fatalf("restored entitlements %s thresholds %s records %d index %d",
			entTenants(h.f.Entitlements()), thIDs(h.f.Thresholds()), h.f.Count(), h.f.AppliedIndex())
	}
	// It keeps working, and the next snapshot is written as version 3.
	hh := &harness{t: t, f: h.f, index: h.f.AppliedIndex()}
	hh.mustOK(t0, setPac(pac("acme", 4)))
	if v := binary.BigEndian.Uint32(snapshotBytes(t, h.f)[8:]); v != snapshotVersion {
		t.Fatalf("wrote version %d", v)
	}
	// A version-2 stream followed by a pacing section is trailing data.
	if err := New().Restore(readCloser(append(append([]byte(nil), v2...), make([]byte, 8)...))); err == nil {
		t.Fatal("version 2 with a pacing section restored")
	}
}

func TestRestoreCorruptPacing(t *testing.T) {
	h := newHarness(t)
	h.mustOK(t0, setPac(pac("", 100)))
	h.mustOK(t0, setPac(pac("acme", 10)))
	good := snapshotBytes(t, h.f)
	target := newHarness(t)
	target.mustOK(t0, setPac(pac("keep", 1)))
	keep := snapshotBytes(t, target.f)

	// A v3 stream with no records, entitlements or thresholds and the given
	// pacing entries.
	pacingOnly := func(ps ...*fsmpb.Pacing) []byte {
		b := []byte(snapshotMagic)
		b = binary.BigEndian.AppendUint32(b, snapshotV3)
		b = binary.BigEndian.AppendUint64(b, 1)
		b = binary.BigEndian.AppendUint64(b, 0)
		b = binary.BigEndian.AppendUint64(b, 0)
		b = binary.BigEndian.AppendUint64(b, 0)
		b = binary.BigEndian.AppendUint64(b, uint64(len(ps)))
		for _, p := range ps {
			m, _ := proto.Marshal(p)
			b = append(binary.AppendUvarint(b, uint64(len(m))), m...)
		}
		return b
	}
	if err := New().Restore(readCloser(pacingOnly(pac("", 1), pac("a", 1)))); err != nil {
		t.Fatalf("hand-built stream: %v", err)
	}
	corrupt := map[string][]byte{
		"duplicate global": pacingOnly(pac("", 1), pac("", 2)),
		"global not first": pacingOnly(pac("a", 1), pac("", 2)),
		"duplicate tenant": pacingOnly(pac("a", 1), pac("a", 2)),
		"out of order":     pacingOnly(pac("b", 1), pac("a", 2)),
	}
	for i := len(good) - 40; i < len(good); i++ {
		corrupt["truncated at "+strconv.Itoa(i)] = good[:i]
	}
	for name, data := range corrupt {
		if err := target.f.Restore(readCloser(data)); err == nil {
			t.Errorf("%s: Restore succeeded", name)
		}
	}
	if !bytes.Equal(snapshotBytes(t, target.f), keep) {
		t.Fatal("failed Restore changed the state")
	}
}
