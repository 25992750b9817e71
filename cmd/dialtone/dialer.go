package main

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	pb "github.com/seed-7bfc04c2/dialtone/api/dialtonev1"
)

func dialerCmd(r *remote) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "dialer",
		Short: "Show the leader's dialer engine: queues, calls, ports, CAPS, outcomes, notifications",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := r.client()
			if err != nil {
				return err
			}
			st, err := c.GetDialerStatus(cmd.Context())
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(cmd.OutOrStdout(), st)
			}
			return printDialerStatus(cmd.OutOrStdout(), st)
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func printDialerStatus(out io.Writer, st *pb.DialerStatus) error {
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	running := "engine running"
	if !st.Running {
		running = "engine not running"
	}
	fmt.Fprintf(w, "leader\t%s (%s)\n", st.NodeId, running)
	limit := "none"
	if st.GlobalCaps > 0 {
		limit = fmt.Sprintf("%g attempts/s", st.GlobalCaps)
	}
	fmt.Fprintf(w, "global CAPS limit\t%s\n\n", limit)
	fmt.Fprintln(w, "TENANT\tQUEUED\tWAITING (BY REASON)\tIN PROGRESS/BUDGET\tPORTS IN USE/TOTAL\tCAPS TARGET\tCAPS ACHIEVED\tLIMITED BY\tOUTCOMES\tNOTIFY PENDING")
	for _, t := range st.Tenants {
		limited := t.LimitedBy
		if limited == "" {
			limited = "-"
		}
		fmt.Fprintf(w, "%s\t%d\t%s\t%d/%d\t%d/%d\t%g\t%.1f\t%s\t%s\t%d\n", t.Tenant, t.Queued, waitingText(t.Waiting), t.InProgress, t.PortBudget,
			t.PortsInUse, t.PortsTotal, t.Caps, t.AttemptsPerSec, limited, outcomesText(t.Outcomes), t.NotifyPending)
	}
	if len(st.Tenants) == 0 {
		fmt.Fprintln(w, "(no tenant has work)")
	}
	return w.Flush()
}

// waitingText prints the waiting requests' total and counts by reason,
// most first, e.g. "41 (no_ports=41)"; "0" when none wait.
func waitingText(m map[string]uint32) string {
	if len(m) == 0 {
		return "0"
	}
	keys := make([]string, 0, len(m))
	var total uint64
	for k, v := range m {
		keys = append(keys, k)
		total += uint64(v)
	}
	sort.Slice(keys, func(i, j int) bool {
		if m[keys[i]] != m[keys[j]] {
			return m[keys[i]] > m[keys[j]]
		}
		return keys[i] < keys[j]
	})
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s=%d", k, m[k])
	}
	return fmt.Sprintf("%d (%s)", total, strings.Join(parts, " "))
}

// outcomesText prints outcome counts by class, e.g. "SUCCESS=3 BUSY=1".
func outcomesText(m map[string]uint64) string {
	if len(m) == 0 {
		return "-"
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s=%d", strings.TrimPrefix(k, "OUTCOME_"), m[k])
	}
	return strings.Join(parts, " ")
}
