package fsm

import (
	"sort"

	"github.com/seed-7bfc04c2/dialtone/internal/fsm/fsmpb"
)

// settings is the replicated configuration: the port-usage entitlements
// sorted by tenant and thresholds sorted by id, and the dialer's pacing
// entries sorted by tenant (the global entry, tenant "", first). A
// settings value is immutable once published: Apply builds a new one
// (copying the small slice it changes, sharing the others) and swaps the
// writer's pointer, so state.clone shares it at no cost and the request
// path (create, claim, ...) never touches it. Settings change rarely and
// number at most a few thousand, so O(n) per change is cheaper than
// maintaining more trees.
type settings struct {
	entitlements []*fsmpb.Entitlement   // sorted by tenant, unique
	thresholds   []*fsmpb.Threshold     // sorted by id, unique
	pacing       []*fsmpb.Pacing        // sorted by tenant, unique; "" is the global entry
	windows      []*fsmpb.CallingWindow // sorted by windowKey, unique
	// Suppression lists by tenant (copy-on-write; dnclist.go).
	dnc map[string]*dncList
	// Per-contact frequency caps, sorted by tenant, unique (freq.go).
	caps []*fsmpb.FreqCap
}

var emptySettings = &settings{}

// shallow returns a copy of s that shares every section; the caller
// replaces the section it changes.
func (s *settings) shallow() *settings {
	n := *s
	return &n
}

func (s *settings) entitlementIndex(tenant string) (int, bool) {
	i := sort.Search(len(s.entitlements), func(i int) bool { return s.entitlements[i].Tenant >= tenant })
	return i, i < len(s.entitlements) && s.entitlements[i].Tenant == tenant
}

func (s *settings) thresholdIndex(id string) (int, bool) {
	i := sort.Search(len(s.thresholds), func(i int) bool { return s.thresholds[i].Id >= id })
	return i, i < len(s.thresholds) && s.thresholds[i].Id == id
}

func (s *settings) pacingIndex(tenant string) (int, bool) {
	i := sort.Search(len(s.pacing), func(i int) bool { return s.pacing[i].Tenant >= tenant })
	return i, i < len(s.pacing) && s.pacing[i].Tenant == tenant
}

// withEntitlement returns a copy of s with e stored (inserted or replacing).
func (s *settings) withEntitlement(e *fsmpb.Entitlement) *settings {
	i, found := s.entitlementIndex(e.Tenant)
	n := s.shallow()
	if found {
		n.entitlements = append([]*fsmpb.Entitlement(nil), s.entitlements...)
		n.entitlements[i] = e
		return n
	}
	n.entitlements = make([]*fsmpb.Entitlement, 0, len(s.entitlements)+1)
	n.entitlements = append(n.entitlements, s.entitlements[:i]...)
	n.entitlements = append(n.entitlements, e)
	n.entitlements = append(n.entitlements, s.entitlements[i:]...)
	return n
}

// withoutEntitlement returns a copy of s without the entitlement at i.
func (s *settings) withoutEntitlement(i int) *settings {
	n := s.shallow()
	n.entitlements = make([]*fsmpb.Entitlement, 0, len(s.entitlements)-1)
	n.entitlements = append(n.entitlements, s.entitlements[:i]...)
	n.entitlements = append(n.entitlements, s.entitlements[i+1:]...)
	return n
}

func (s *settings) withThreshold(t *fsmpb.Threshold) *settings {
	i, found := s.thresholdIndex(t.Id)
	n := s.shallow()
	if found {
		n.thresholds = append([]*fsmpb.Threshold(nil), s.thresholds...)
		n.thresholds[i] = t
		return n
	}
	n.thresholds = make([]*fsmpb.Threshold, 0, len(s.thresholds)+1)
	n.thresholds = append(n.thresholds, s.thresholds[:i]...)
	n.thresholds = append(n.thresholds, t)
	n.thresholds = append(n.thresholds, s.thresholds[i:]...)
	return n
}

func (s *settings) withoutThreshold(i int) *settings {
	n := s.shallow()
	n.thresholds = make([]*fsmpb.Threshold, 0, len(s.thresholds)-1)
	n.thresholds = append(n.thresholds, s.thresholds[:i]...)
	n.thresholds = append(n.thresholds, s.thresholds[i+1:]...)
	return n
}

// withPacing returns a copy of s with p stored (inserted or replacing).
func (s *settings) withPacing(p *fsmpb.Pacing) *settings {
	i, found := s.pacingIndex(p.Tenant)
	n := s.shallow()
	if found {
		n.pacing = append([]*fsmpb.Pacing(nil), s.pacing...)
		n.pacing[i] = p
		return n
	}
	n.pacing = make([]*fsmpb.Pacing, 0, len(s.pacing)+1)
	n.pacing = append(n.pacing, s.pacing[:i]...)
	n.pacing = append(n.pacing, p)
	n.pacing = append(n.pacing, s.pacing[i:]...)
	return n
}

// withoutPacing returns a copy of s without the pacing entry at i.
func (s *settings) withoutPacing(i int) *settings {
	n := s.shallow()
	n.pacing = make([]*fsmpb.Pacing, 0, len(s.pacing)-1)
	n.pacing = append(n.pacing, s.pacing[:i]...)
	n.pacing = append(n.pacing, s.pacing[i+1:]...)
	return n
}

// Entitlement returns the licensed ports of tenant, if an entitlement is set.
func (f *FSM) Entitlement(tenant string) (uint32, bool) {
	s := f.view().settings
	i, ok := s.entitlementIndex(tenant)
	if !ok {
		return 0, false
	}
	return s.entitlements[i].LicensedPorts, true
}

// Entitlements returns every entitlement sorted by tenant. The slice is the
// caller's; the records are shared and must not be modified.
func (f *FSM) Entitlements() []*fsmpb.Entitlement {
	return append([]*fsmpb.Entitlement(nil), f.view().settings.entitlements...)
}

// Threshold returns the threshold with the given id. It is shared and must
// not be modified.
func (f *FSM) Threshold(id string) (*fsmpb.Threshold, bool) {
	s := f.view().settings
	i, ok := s.thresholdIndex(id)
	if !ok {
		return nil, false
	}
	return s.thresholds[i], true
}

// Thresholds returns every threshold sorted by id. The slice is the
// caller's; the records are shared and must not be modified.
func (f *FSM) Thresholds() []*fsmpb.Threshold {
	return append([]*fsmpb.Threshold(nil), f.view().settings.thresholds...)
}

// Pacing returns the dialer pacing entry of tenant ("" for the global
// entry), if one is stored. It is shared and must not be modified.
func (f *FSM) Pacing(tenant string) (*fsmpb.Pacing, bool) {
	s := f.view().settings
	i, ok := s.pacingIndex(tenant)
	if !ok {
		return nil, false
	}
	return s.pacing[i], true
}

// Pacings returns every pacing entry sorted by tenant, the global entry
// (tenant "") first. The slice is the caller's; the entries are shared and
// must not be modified.
func (f *FSM) Pacings() []*fsmpb.Pacing {
	return append([]*fsmpb.Pacing(nil), f.view().settings.pacing...)
}

// Apply side.

func settingResult(id string) *fsmpb.ApplyResult {
	return &fsmpb.ApplyResult{Items: []*fsmpb.ItemResult{ok(id)}}
}

func settingFail(item *fsmpb.ItemResult) *fsmpb.ApplyResult {
	return &fsmpb.ApplyResult{Items: []*fsmpb.ItemResult{item}}
}

func (a *applier) setEntitlement(c *fsmpb.SetEntitlement) *fsmpb.ApplyResult {
	e := c.GetEntitlement()
	tenant := e.GetTenant()
	if tenant == "" {
		return settingFail(fail("", fsmpb.Code_CODE_INVALID_STATE, "tenant is required"))
	}
	s := a.st.settings
	if _, found := s.entitlementIndex(tenant); !found && c.GetMaxEntitlements() > 0 && len(s.entitlements) >= int(c.GetMaxEntitlements()) {
		return settingFail(fail(tenant, fsmpb.Code_CODE_CAPACITY, "maximum of %d entitlements reached", c.GetMaxEntitlements()))
	}
	// A fresh record: unknown fields of the proposer are not stored.
	a.st.settings = s.withEntitlement(&fsmpb.Entitlement{Tenant: tenant, LicensedPorts: e.GetLicensedPorts()})
	return settingResult(tenant)
}

func (a *applier) deleteEntitlement(c *fsmpb.DeleteEntitlement) *fsmpb.ApplyResult {
	s := a.st.settings
	i, found := s.entitlementIndex(c.GetTenant())
	if !found {
		return settingFail(&fsmpb.ItemResult{Id: c.GetTenant(), Code: fsmpb.Code_CODE_NOT_FOUND, Reason: "entitlement not found"})
	}
	a.st.settings = s.withoutEntitlement(i)
	return settingResult(c.GetTenant())
}

func (a *applier) setThreshold(c *fsmpb.SetThreshold) *fsmpb.ApplyResult {
	t := c.GetThreshold()
	if t.GetId() == "" {
		return settingFail(fail("", fsmpb.Code_CODE_INVALID_STATE, "threshold id is required"))
	}
	s := a.st.settings
	if _, found := s.thresholdIndex(t.GetId()); !found && c.GetMaxThresholds() > 0 && len(s.thresholds) >= int(c.GetMaxThresholds()) {
		return settingFail(fail(t.GetId(), fsmpb.Code_CODE_CAPACITY, "maximum of %d thresholds reached", c.GetMaxThresholds()))
	}
	a.st.settings = s.withThreshold(&fsmpb.Threshold{
		Id:         t.GetId(),
		Tenant:     t.GetTenant(),
		Metric:     t.GetMetric(),
		Direction:  t.GetDirection(),
		Value:      t.GetValue(),
		ClearValue: t.GetClearValue(),
		WebhookUrl: t.GetWebhookUrl(),
	})
	return settingResult(t.GetId())
}

func (a *applier) deleteThreshold(c *fsmpb.DeleteThreshold) *fsmpb.ApplyResult {
	s := a.st.settings
	i, found := s.thresholdIndex(c.GetId())
	if !found {
		return settingFail(&fsmpb.ItemResult{Id: c.GetId(), Code: fsmpb.Code_CODE_NOT_FOUND, Reason: "threshold not found"})
	}
	a.st.settings = s.withoutThreshold(i)
	return settingResult(c.GetId())
}

// setPacing creates or replaces the pacing entry of pacing.tenant (""
// is the global entry). The API validates the values; the state machine
// only needs an entry to store.
func (a *applier) setPacing(c *fsmpb.SetPacing) *fsmpb.ApplyResult {
	p := c.GetPacing()
	if p == nil {
		return settingFail(fail("", fsmpb.Code_CODE_INVALID_STATE, "pacing is required"))
	}
	// A fresh record: unknown fields of the proposer are not stored.
	a.st.settings = a.st.settings.withPacing(&fsmpb.Pacing{
		Tenant:                 p.GetTenant(),
		Caps:                   p.GetCaps(),
		PortLoadFactor:         p.GetPortLoadFactor(),
		BatchSizeMode:          p.GetBatchSizeMode(),
		BatchSize:              p.GetBatchSize(),
		QueueLowWatermark:      p.GetQueueLowWatermark(),
		SlotCalculation:        p.GetSlotCalculation(),
		EqualPriorityNewAndOld: p.GetEqualPriorityNewAndOld(),
		NextRetryIntervalMs:    p.GetNextRetryIntervalMs(),
		CleanIntervalMs:        p.GetCleanIntervalMs(),
		RetentionMs:            p.GetRetentionMs(),
	})
	return settingResult(p.GetTenant())
}

func (a *applier) deletePacing(c *fsmpb.DeletePacing) *fsmpb.ApplyResult {
	s := a.st.settings
	i, found := s.pacingIndex(c.GetTenant())
	if !found {
		return settingFail(&fsmpb.ItemResult{Id: c.GetTenant(), Code: fsmpb.Code_CODE_NOT_FOUND, Reason: "pacing not found"})
	}
	a.st.settings = s.withoutPacing(i)
	return settingResult(c.GetTenant())
}
