package fsm

import (
	"bytes"
	"encoding/binary"
	"strconv"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/seed-7bfc04c2/dialtone/internal/fsm/fsmpb"
)

func setEnt(tenant string, ports uint32) *fsmpb.Command {
	return SetEntitlementCommand(&fsmpb.Entitlement{Tenant: tenant, LicensedPorts: ports}, 0)
}

func delEnt(tenant string) *fsmpb.Command {
	return DeleteEntitlementCommand(tenant)
}

func setTh(th *fsmpb.Threshold) *fsmpb.Command {
	return SetThresholdCommand(th, 0)
}

func delTh(id string) *fsmpb.Command {
	return DeleteThresholdCommand(id)
}

func th(id, tenant string, value float64) *fsmpb.Threshold {
	return &fsmpb.Threshold{Id: id, Tenant: tenant, Metric: "in_use_percent_of_entitlement", Direction: "above", Value: value, ClearValue: value - 5, WebhookUrl: "https://hooks.example/a"}
}

func entTenants(es []*fsmpb.Entitlement) string {
	var out []string
	for _, e := range es {
		out = append(out, e.Tenant)
	}
	return strings.Join(out, ",")
}

func thIDs(ts []*fsmpb.Threshold) string {
	var out []string
	for _, t := range ts {
		out = append(out, t.Id)
	}
	return strings.Join(out, ",")
}

func TestEntitlementCommands(t *testing.T) {
	h := newHarness(t)
	for _, tenant := range []string{"globex", "acme", "initech"} {
		h.mustOK(t0, setEnt(tenant, 100))
	}
	h.mustOK(t0, setEnt("acme", 250)) // replace
	if n, ok := h.f.Entitlement("acme"); !ok || n != 250 {
		t.Fatalf("acme = %d %v", n, ok)
	}
	if _, ok := h.f.Entitlement("nobody"); ok {
		t.Fatal("unknown tenant has an entitlement")
	}
	if got := entTenants(h.f.Entitlements()); got != "acme,globex,initech" {
		t.Fatalf("Entitlements = %s", got)
	}
	// The returned slice is the caller's.
	es := h.f.Entitlements()
	es[0] = nil
	if h.f.Entitlements()[0] == nil {
		t.Fatal("Entitlements shares its slice")
	}

	h.mustOK(t0, delEnt("globex"))
	if it := h.one(t0, delEnt("globex")); it.Code != fsmpb.Code_CODE_NOT_FOUND {
		t.Fatalf("delete missing = %v", it)
	}
	if it := h.one(t0, setEnt("", 5)); it.Code != fsmpb.Code_CODE_INVALID_STATE {
		t.Fatalf("empty tenant = %v", it)
	}
	if got := entTenants(h.f.Entitlements()); got != "acme,initech" {
		t.Fatalf("after delete = %s", got)
	}

	// Capacity: a new tenant beyond the maximum fails; replacing works.
	capped := func(tenant string) *fsmpb.Command {
		c := setEnt(tenant, 1)
		c.GetSetEntitlement().MaxEntitlements = 2
		return c
	}
	if it := h.one(t0, capped("zeta")); it.Code != fsmpb.Code_CODE_CAPACITY {
		t.Fatalf("over capacity = %v", it)
	}
	if it := h.one(t0, capped("acme")); it.Code != fsmpb.Code_CODE_OK {
		t.Fatalf("replace at capacity = %v", it)
	}
}

func TestThresholdCommands(t *testing.T) {
	h := newHarness(t)
	h.mustOK(t0, setTh(th("b", "acme", 90)))
	h.mustOK(t0, setTh(th("a", "", 80)))
	h.mustOK(t0, setTh(th("c", "globex", 70)))
	h.mustOK(t0, setTh(th("b", "acme", 95)))
	if got := thIDs(h.f.Thresholds()); got != "a,b,c" {
		t.Fatalf("Thresholds = %s", got)
	}
	if b, ok := h.f.Threshold("b"); !ok || b.Value != 95 || !proto.Equal(b, th("b", "acme", 95)) {
		t.Fatalf("b = %v", b)
	}
	h.mustOK(t0, delTh("a"))
	if it := h.one(t0, delTh("a")); it.Code != fsmpb.Code_CODE_NOT_FOUND {
		t.Fatalf("delete missing = %v", it)
	}
	if it := h.one(t0, setTh(&fsmpb.Threshold{Tenant: "acme"})); it.Code != fsmpb.Code_CODE_INVALID_STATE {
		t.Fatalf("no id = %v", it)
	}
	c := setTh(th("d", "", 1))
	c.GetSetThreshold().MaxThresholds = 2
	if it := h.one(t0, c); it.Code != fsmpb.Code_CODE_CAPACITY {
		t.Fatalf("over capacity = %v", it)
	}
	if got := thIDs(h.f.Thresholds()); got != "b,c" {
		t.Fatalf("after delete = %s", got)
	}
}

// Readers keep the settings they got; later changes do not show through.
func TestSettingsReadIsolation(t *testing.T) {
	h := newHarness(t)
	h.mustOK(t0, setEnt("acme", 10))
	h.mustOK(t0, setTh(th("a", "acme", 90)))
	ents, ths := h.f.Entitlements(), h.f.Thresholds()
	h.mustOK(t0, setEnt("acme", 20))
	h.mustOK(t0, setTh(th("a", "acme", 50)))
	h.mustOK(t0, setEnt("beta", 1))
	if ents[0].LicensedPorts != 10 || ths[0].Value != 90 || len(ents) != 1 {
		t.Fatal("earlier read changed by later applies")
	}
}

func settingsState(t *testing.T) *harness {
	h := newHarness(t)
	h.mustOK(t0, create(newReq("r1", "acme", "p1", 1, 1000)))
	h.mustOK(t0, setEnt("acme", 120))
	h.mustOK(t0, setEnt("globex", 30))
	h.mustOK(t0, setTh(th("hi", "acme", 90)))
	h.mustOK(t0, setTh(&fsmpb.Threshold{Id: "floor", Metric: "available_ports", Direction: "below", Value: 10, ClearValue: 11}))
	return h
}

func TestSnapshotRoundTripEntitlements(t *testing.T) {
	h := newHarness(t)
	h.mustOK(t0, setEnt("acme", 120))
	h.mustOK(t0, setEnt("globex", 30))
	data := snapshotBytes(t, h.f)
	g := New()
	if err := g.Restore(readCloser(data)); err != nil {
		t.Fatal(err)
	}
	if got := entTenants(g.Entitlements()); got != "acme,globex" {
		t.Fatalf("restored %s", got)
	}
	if n, ok := g.Entitlement("globex"); !ok || n != 30 {
		t.Fatalf("globex = %d %v", n, ok)
	}
	if len(g.Thresholds()) != 0 || g.Count() != 0 {
		t.Fatal("restored extra state")
	}
	if !bytes.Equal(snapshotBytes(t, g), data) {
		t.Fatal("re-snapshot differs")
	}
}

func TestSnapshotRoundTripThresholds(t *testing.T) {
	h := newHarness(t)
	h.mustOK(t0, setTh(th("hi", "acme", 90)))
	h.mustOK(t0, setTh(&fsmpb.Threshold{Id: "floor", Metric: "available_ports", Direction: "below", Value: 10, ClearValue: 11}))
	data := snapshotBytes(t, h.f)
	g := New()
	if err := g.Restore(readCloser(data)); err != nil {
		t.Fatal(err)
	}
	want, got := h.f.Thresholds(), g.Thresholds()
	if len(got) != 2 || !proto.Equal(got[0], want[0]) || !proto.Equal(got[1], want[1]) {
		t.Fatalf("restored %v, want %v", got, want)
	}
	if len(g.Entitlements()) != 0 {
		t.Fatal("restored extra entitlements")
	}
	if !bytes.Equal(snapshotBytes(t, g), data) {
		t.Fatal("re-snapshot differs")
	}
}

// A version-1 snapshot (records only, written before settings existed)
// restores, with no settings; and a restore replaces earlier settings.
func TestRestoreVersion1Snapshot(t *testing.T) {
	h := settingsState(t)
	v1 := snapshotOf(t, &fsmpb.Request{Id: "a", Tenant: "t1", IvrProfile: "p", State: fsmpb.State_PENDING})
	if binary.BigEndian.Uint32(v1[8:]) != 1 {
		t.Fatal("test helper does not write version 1")
	}
	if err := h.f.Restore(readCloser(v1)); err != nil {
		t.Fatal(err)
	}
	if h.f.Count() != 1 || len(h.f.Entitlements()) != 0 || len(h.f.Thresholds()) != 0 {
		t.Fatalf("count %d entitlements %v thresholds %v", h.f.Count(), h.f.Entitlements(), h.f.Thresholds())
	}
	// The next snapshot is written in the current version.
	if v := binary.BigEndian.Uint32(snapshotBytes(t, h.f)[8:]); v != snapshotVersion {
		t.Fatalf("wrote version %d", v)
	}
}

func TestRestoreCorruptSettings(t *testing.T) {
	h := settingsState(t)
	good := snapshotBytes(t, h.f)
	target := newHarness(t)
	target.mustOK(t0, setEnt("keep", 1))
	keep := snapshotBytes(t, target.f)

	corrupt := map[string][]byte{}
	for i := len(good) - 60; i < len(good); i++ {
		corrupt["truncated at "+strconv.Itoa(i)] = good[:i]
	}
	{
		// Two copies of one entitlement: duplicate key.
		b := []byte(snapshotMagic)
		b = binary.BigEndian.AppendUint32(b, snapshotVersion)
		b = binary.BigEndian.AppendUint64(b, 1)
		b = binary.BigEndian.AppendUint64(b, 0)
		b = binary.BigEndian.AppendUint64(b, 2)
		m, _ := proto.Marshal(&fsmpb.Entitlement{Tenant: "a", LicensedPorts: 1})
		for range 2 {
			b = append(binary.AppendUvarint(b, uint64(len(m))), m...)
		}
		corrupt["duplicate entitlement"] = append(b, make([]byte, 8)...)
	}
	{
		b := []byte(snapshotMagic)
		b = binary.BigEndian.AppendUint32(b, snapshotVersion)
		b = binary.BigEndian.AppendUint64(b, 1)
		b = binary.BigEndian.AppendUint64(b, 0)
		b = binary.BigEndian.AppendUint64(b, 0)
		b = binary.BigEndian.AppendUint64(b, 1)
		m, _ := proto.Marshal(&fsmpb.Threshold{Tenant: "a"})
		corrupt["threshold without id"] = append(binary.AppendUvarint(b, uint64(len(m))), m...)
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

// checkSettingsInvariants: sorted, unique, non-empty keys, and the lookups
// agree with the lists.
func checkSettingsInvariants(t testing.TB, f *FSM) {
	t.Helper()
	ents := f.Entitlements()
	for i, e := range ents {
		if e.Tenant == "" || (i > 0 && ents[i-1].Tenant >= e.Tenant) {
			t.Fatalf("entitlements not sorted/unique: %s", entTenants(ents))
		}
		if n, ok := f.Entitlement(e.Tenant); !ok || n != e.LicensedPorts {
			t.Fatalf("Entitlement(%s) = %d %v", e.Tenant, n, ok)
		}
	}
	ths := f.Thresholds()
	for i, th := range ths {
		if th.Id == "" || (i > 0 && ths[i-1].Id >= th.Id) {
			t.Fatalf("thresholds not sorted/unique: %s", thIDs(ths))
		}
		if got, ok := f.Threshold(th.Id); !ok || got != th {
			t.Fatalf("Threshold(%s) disagrees", th.Id)
		}
	}
	pac := f.Pacings()
	for i, p := range pac {
		if i > 0 && pac[i-1].Tenant >= p.Tenant {
			t.Fatalf("pacing not sorted/unique: %s", pacTenants(pac))
		}
		if got, ok := f.Pacing(p.Tenant); !ok || got != p {
			t.Fatalf("Pacing(%q) disagrees", p.Tenant)
		}
	}
}

// The replay generator reaches settings states.
func TestGeneratorCoversSettings(t *testing.T) {
	_, _, ref := genLog(t, 1, 3000)
	if len(ref.Entitlements()) == 0 || len(ref.Thresholds()) == 0 || len(ref.Pacings()) == 0 {
		t.Fatalf("generator left %d entitlements, %d thresholds and %d pacing entries", len(ref.Entitlements()), len(ref.Thresholds()), len(ref.Pacings()))
	}
}
