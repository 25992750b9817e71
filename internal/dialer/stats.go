package dialer

// Stats is a point-in-time view of the engine, for `dialtone status`, the
// admin API and tests. Only the leader's engine runs; elsewhere Running is
// false and Tenants is empty.
type Stats struct {
	Running bool
	// Global CAPS limit in force (0: none).
	GlobalCAPS float64
	Tenants    []TenantStats // sorted by tenant
}

// TenantStats is one tenant's part of Stats.
type TenantStats struct {
	Tenant string
	// Requests in the in-memory queues (INITIATED), in total and per IVR
	// profile.
	Queued        int
	QueuedProfile map[string]int
	// Calls this engine has in progress, and the most it may have now
	// (floor(ports × PortLoadFactor/100) per the batch-size mode).
	InProgress int
	PortBudget int
	// The port figures the budget is computed from (fresh servers only).
	PortsTotal uint32
	PortsInUse uint32
	// Effective CAPS and the attempts started over the last 10 seconds, per
	// second.
	CAPS           float64
	AttemptsPerSec float64
	// Attempts ended, by outcome class name (fsmpb.OutcomeClass).
	Outcomes map[string]uint64
	// Notifications waiting to be delivered, and retries so far.
	NotifyPending int
	NotifyRetries uint64
}
