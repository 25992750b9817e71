package main

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	pb "github.com/seed-7bfc04c2/dialtone/api/dialtonev1"
	"github.com/seed-7bfc04c2/dialtone/client"
)

func pacingCmd(r *remote) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "pacing",
		Short: "Show and change the dialer's pacing settings (per tenant and global)",
		Long: `pacing reads and changes the dialer's runtime settings, replicated through
Raft: one entry per tenant and a global entry (no --tenant). A field left at
zero in an entry inherits: a tenant's from the global entry, the global
entry's from the built-in default. See docs/dialer-settings.md.`,
	}
	cmd.AddCommand(pacingGetCmd(r), pacingListCmd(r), pacingSetCmd(r), pacingResetCmd(r))
	return cmd
}

func pacingGetCmd(r *remote) *cobra.Command {
	var tenant string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "get [--tenant T]",
		Short: "Show a tenant's (or the global) stored entry and the effective settings",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := r.client()
			if err != nil {
				return err
			}
			resp, err := c.GetPacing(cmd.Context(), &pb.GetPacingRequest{Tenant: tenant})
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(cmd.OutOrStdout(), resp)
			}
			return printPacingEntry(cmd.OutOrStdout(), resp.GetPacing())
		},
	}
	cmd.Flags().StringVar(&tenant, "tenant", "", "tenant name (the global entry when omitted)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func pacingListCmd(r *remote) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the stored pacing entries and the global CAPS limit",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := r.client()
			if err != nil {
				return err
			}
			resp, err := c.ListPacing(cmd.Context(), &pb.ListPacingRequest{})
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(cmd.OutOrStdout(), resp)
			}
			w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			limit := "none"
			if resp.GlobalCaps > 0 {
				limit = fmt.Sprintf("%g attempts/s", resp.GlobalCaps)
			}
			fmt.Fprintf(w, "global CAPS limit\t%s\n\n", limit)
			fmt.Fprintln(w, "TENANT\tCAPS\tLOAD %\tBATCH\tLOW %\tSLOTS\tEQUAL NEW/OLD\tRETRY\tCLEAN\tRETENTION")
			for _, e := range resp.Entries {
				s := e.GetSettings()
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", e.Tenant,
					orInherit(s.GetCaps()), orInherit(s.GetPortLoadFactor()), batchText(s), orInherit(s.GetQueueLowWatermark()),
					orInherit(s.GetSlotCalculation()), orInherit(s.GetEqualPriorityNewAndOld()),
					orInherit(s.GetNextRetryInterval()), orInherit(s.GetCleanInterval()), orInherit(s.GetRetention()))
			}
			fmt.Fprintln(w, "\n(- inherits; dialtone pacing get --tenant T shows the effective values)")
			return w.Flush()
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

// pacingFlags are the settings flags of pacing set.
type pacingFlags struct {
	caps                               float64
	loadFactor, batchSize, lowWater    uint32
	batchMode, slots                   string
	equalNewOld                        bool
	nextRetry, cleanInterval, retained time.Duration
}

func pacingSetCmd(r *remote) *cobra.Command {
	var (
		tenant string
		asJSON bool
		v      pacingFlags
	)
	cmd := &cobra.Command{
		Use:   "set [--tenant T] [--caps N] [--port-load-factor P] ...",
		Short: "Change settings of a tenant's (or the global) entry; other stored fields are kept",
		Long: `set changes the settings named by the flags given and keeps the entry's
other stored fields: it reads the stored entry (linearizably), merges the flags
into it and replaces the entry. A flag set to zero ("--caps 0", "--retention 0s")
makes that field inherit again. Switching --batch-mode away from Fixed clears the
stored batch size.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			f := cmd.Flags()
			if !slices.ContainsFunc(pacingSettingFlags, f.Changed) {
				return fmt.Errorf("no setting given: use one or more of --%s", strings.Join(pacingSettingFlags, ", --"))
			}
			c, err := r.client()
			if err != nil {
				return err
			}
			cur, err := c.GetPacing(cmd.Context(), &pb.GetPacingRequest{Tenant: tenant, Consistency: client.Linearizable})
			if err != nil {
				return err
			}
			s := cur.GetPacing().GetSettings()
			if s == nil {
				s = &pb.Pacing{}
			}
			mergePacingFlags(s, v, f.Changed)
			resp, err := c.SetPacing(cmd.Context(), &pb.SetPacingRequest{Tenant: tenant, Pacing: s})
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(cmd.OutOrStdout(), resp)
			}
			return printPacingEntry(cmd.OutOrStdout(), resp.GetPacing())
		},
	}
	f := cmd.Flags()
	f.StringVar(&tenant, "tenant", "", "tenant name (the global entry when omitted)")
	f.BoolVar(&asJSON, "json", false, "print JSON")
	f.Float64Var(&v.caps, "caps", 0, "call attempts per second, 0.1-100000 (the global entry's is also the limit across tenants)")
	f.Uint32Var(&v.loadFactor, "port-load-factor", 0, "percent of the ports the dialer may fill, 1-1000")
	f.StringVar(&v.batchMode, "batch-mode", "", "TotalPorts, AvailablePorts or Fixed")
	f.Uint32Var(&v.batchSize, "batch-size", 0, "requests per fetch with --batch-mode Fixed, 1-1000000")
	f.Uint32Var(&v.lowWater, "low-watermark", 0, "percent of the batch size below which the next fetch starts, 1-100")
	f.StringVar(&v.slots, "slots", "", "PROPORTIONATE or EQUAL")
	f.BoolVar(&v.equalNewOld, "equal-new-old", false, "give new requests and retries equal priority")
	f.DurationVar(&v.nextRetry, "next-retry-interval", 0, "retry delay after an internal failure, 100ms-24h")
	f.DurationVar(&v.cleanInterval, "clean-interval", 0, "how often cleanup runs, 1s-24h")
	f.DurationVar(&v.retained, "retention", 0, "how long finished, notified records are kept, 0s-720h")
	return cmd
}

// pacingSettingFlags are the flags of pacing set that name a setting.
var pacingSettingFlags = []string{"caps", "port-load-factor", "batch-mode", "batch-size", "low-watermark", "slots",
	"equal-new-old", "next-retry-interval", "clean-interval", "retention"}

// mergePacingFlags sets in s the settings whose flags were given.
func mergePacingFlags(s *pb.Pacing, v pacingFlags, changed func(string) bool) {
	dur := func(d time.Duration) string {
		if d == 0 {
			return ""
		}
		return d.String()
	}
	if changed("caps") {
		s.Caps = v.caps
	}
	if changed("port-load-factor") {
		s.PortLoadFactor = v.loadFactor
	}
	if changed("batch-mode") {
		s.BatchSizeMode = v.batchMode
		if v.batchMode != "Fixed" && !changed("batch-size") {
			s.BatchSize = 0 // only Fixed has a batch size
		}
	}
	if changed("batch-size") {
		s.BatchSize = v.batchSize
	}
	if changed("low-watermark") {
		s.QueueLowWatermark = v.lowWater
	}
	if changed("slots") {
		s.SlotCalculation = v.slots
	}
	if changed("equal-new-old") {
		s.EqualPriorityNewAndOld = v.equalNewOld
	}
	if changed("next-retry-interval") {
		s.NextRetryInterval = dur(v.nextRetry)
	}
	if changed("clean-interval") {
		s.CleanInterval = dur(v.cleanInterval)
	}
	if changed("retention") {
		s.Retention = dur(v.retained)
	}
}

func pacingResetCmd(r *remote) *cobra.Command {
	var tenant string
	cmd := &cobra.Command{
		Use:   "reset [--tenant T]",
		Short: "Delete a tenant's (or the global) entry: every field inherits again",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := r.client()
			if err != nil {
				return err
			}
			resp, err := c.DeletePacing(cmd.Context(), tenant)
			if err != nil {
				return err
			}
			name := tenant
			if name == "" {
				name = "the global entry"
			}
			fmt.Fprintf(cmd.OutOrStdout(), "pacing of %s reset (index %d)\n", name, resp.Index)
			return nil
		},
	}
	cmd.Flags().StringVar(&tenant, "tenant", "", "tenant name (the global entry when omitted)")
	return cmd
}

// printPacingEntry prints an entry's stored and effective values.
func printPacingEntry(out io.Writer, e *pb.PacingEntry) error {
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	stored := "no entry stored: every field inherits"
	if e.GetStored() {
		stored = "entry stored"
	}
	fmt.Fprintf(w, "tenant\t%s (%s)\n\n", e.GetTenant(), stored)
	fmt.Fprintln(w, "SETTING\tSTORED\tEFFECTIVE")
	s, eff := e.GetSettings(), e.GetEffective()
	rows := []struct {
		name              string
		stored, effective string
	}{
		{"caps", orInherit(s.GetCaps()), fmt.Sprint(eff.GetCaps())},
		{"port_load_factor", orInherit(s.GetPortLoadFactor()), fmt.Sprint(eff.GetPortLoadFactor())},
		{"batch_size_mode", orInherit(s.GetBatchSizeMode()), eff.GetBatchSizeMode()},
		{"batch_size", orInherit(s.GetBatchSize()), orInherit(eff.GetBatchSize())},
		{"queue_low_watermark", orInherit(s.GetQueueLowWatermark()), fmt.Sprint(eff.GetQueueLowWatermark())},
		{"slot_calculation", orInherit(s.GetSlotCalculation()), eff.GetSlotCalculation()},
		{"equal_priority_new_and_old", orInherit(s.GetEqualPriorityNewAndOld()), fmt.Sprint(eff.GetEqualPriorityNewAndOld())},
		{"next_retry_interval", orInherit(s.GetNextRetryInterval()), eff.GetNextRetryInterval()},
		{"clean_interval", orInherit(s.GetCleanInterval()), eff.GetCleanInterval()},
		{"retention", orInherit(s.GetRetention()), eff.GetRetention()},
	}
	for _, r := range rows {
		fmt.Fprintf(w, "%s\t%s\t%s\n", r.name, r.stored, r.effective)
	}
	return w.Flush()
}

// orInherit prints a stored value, "-" for zero (inherited).
func orInherit[T comparable](v T) string {
	var zero T
	if v == zero {
		return "-"
	}
	return fmt.Sprint(v)
}

func batchText(s *pb.Pacing) string {
	switch {
	case s.GetBatchSizeMode() == "":
		return "-"
	case s.GetBatchSize() > 0:
		return fmt.Sprintf("%s %d", s.GetBatchSizeMode(), s.GetBatchSize())
	}
	return s.GetBatchSizeMode()
}
