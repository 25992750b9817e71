package main

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	pb "github.com/seed-7bfc04c2/dialtone/api/dialtonev1"
)

// Contact rules: calling windows and suppression lists
// (docs/compliance.md).

func callingWindowCmd(r *remote) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "calling-window",
		Short: "Show and change a tenant's calling window (when requests may be dialled, in the callee's local time)",
	}
	var tenant, profile string
	var asJSON bool
	get := &cobra.Command{
		Use: "get --tenant T [--profile P]", Short: "Show the stored window and the one in force", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := r.client()
			if err != nil {
				return err
			}
			resp, err := c.GetCallingWindow(cmd.Context(), tenant, profile)
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(cmd.OutOrStdout(), resp)
			}
			if resp.EffectiveFrom == "" {
				fmt.Fprintln(cmd.OutOrStdout(), "no calling window: requests are dialled at any time")
				return nil
			}
			fmt.Fprintf(cmd.OutOrStdout(), "in force: the %s's window\n", resp.EffectiveFrom)
			return printWindow(cmd.OutOrStdout(), resp.Effective)
		},
	}
	get.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	var preset, unknown, defZone string
	var spans, closed []string
	set := &cobra.Command{
		Use:   "set --tenant T [--profile P] (--preset us-tcpa | --span DAYS=HH:MM-HH:MM ...) [--closed YYYY-MM-DD ...]",
		Short: "Replace the window",
		Example: `  dialtone calling-window set --tenant acme --preset us-tcpa --closed 2026-12-25
  dialtone calling-window set --tenant acme --span weekdays=09:00-20:00 --span sat=10:00-14:00 --unknown-zone default_zone --default-zone America/Chicago`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			w := &pb.CallingWindow{Preset: preset, UnknownZone: unknown, DefaultZone: defZone}
			for _, s := range spans {
				days, times, ok := strings.Cut(s, "=")
				open, close, ok2 := strings.Cut(times, "-")
				if !ok || !ok2 {
					return fmt.Errorf("--span %q: want DAYS=HH:MM-HH:MM, e.g. weekdays=09:00-20:00", s)
				}
				w.Weekly = append(w.Weekly, &pb.CallingSpan{Days: days, Open: open, Close: close})
			}
			for _, d := range closed {
				w.Exceptions = append(w.Exceptions, &pb.CallingException{Date: d})
			}
			c, err := r.client()
			if err != nil {
				return err
			}
			resp, err := c.SetCallingWindow(cmd.Context(), tenant, profile, w)
			if err != nil {
				return err
			}
			return printWindow(cmd.OutOrStdout(), resp.Window)
		},
	}
	set.Flags().StringVar(&preset, "preset", "", "us-tcpa: 08:00-21:00 every day")
	set.Flags().StringArrayVar(&spans, "span", nil, "DAYS=HH:MM-HH:MM (DAYS: mon..sun, weekdays, weekends, daily); repeatable")
	set.Flags().StringArrayVar(&closed, "closed", nil, "a date closed all day (YYYY-MM-DD); repeatable")
	set.Flags().StringVar(&unknown, "unknown-zone", "", "skip (default) or default_zone")
	set.Flags().StringVar(&defZone, "default-zone", "", "IANA zone for --unknown-zone default_zone")
	del := &cobra.Command{
		Use: "delete --tenant T [--profile P]", Short: "Remove the window", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := r.client()
			if err != nil {
				return err
			}
			_, err = c.DeleteCallingWindow(cmd.Context(), tenant, profile)
			return err
		},
	}
	for _, sc := range []*cobra.Command{get, set, del} {
		sc.Flags().StringVar(&tenant, "tenant", "", "tenant (required)")
		sc.Flags().StringVar(&profile, "profile", "", "IVR profile (its window replaces the tenant's)")
		_ = sc.MarkFlagRequired("tenant")
		cmd.AddCommand(sc)
	}
	return cmd
}

func printWindow(out io.Writer, w *pb.CallingWindow) error {
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	if w.GetPreset() != "" {
		fmt.Fprintf(tw, "preset\t%s\n", w.GetPreset())
	}
	for _, s := range w.GetWeekly() {
		fmt.Fprintf(tw, "%s\t%s-%s\n", s.Days, s.Open, s.Close)
	}
	for _, e := range w.GetExceptions() {
		if e.Open == "" {
			fmt.Fprintf(tw, "%s\tclosed\n", e.Date)
		} else {
			fmt.Fprintf(tw, "%s\t%s-%s\n", e.Date, e.Open, e.Close)
		}
	}
	z := w.GetUnknownZone()
	if w.GetDefaultZone() != "" {
		z += " (" + w.GetDefaultZone() + ")"
	}
	fmt.Fprintf(tw, "unknown zone\t%s\n", z)
	return tw.Flush()
}

func suppressCmd(r *remote) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "suppress",
		Short: "Manage a tenant's suppression (do-not-call) list",
	}
	var tenant, expires string
	add := &cobra.Command{
		Use: "add --tenant T NUMBER...", Short: "Add numbers (E.164)", Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := r.client()
			if err != nil {
				return err
			}
			resp, err := c.AddSuppressions(cmd.Context(), tenant, args, expires)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%d added\n", resp.Count)
			return nil
		},
	}
	add.Flags().StringVar(&expires, "expires-in", "", "entries expire after this long, e.g. 720h")
	rm := &cobra.Command{
		Use: "remove --tenant T NUMBER...", Short: "Remove numbers", Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := r.client()
			if err != nil {
				return err
			}
			resp, err := c.RemoveSuppressions(cmd.Context(), tenant, args)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%d removed\n", resp.Count)
			return nil
		},
	}
	check := &cobra.Command{
		Use: "check --tenant T NUMBER", Short: "Whether a number is listed", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := r.client()
			if err != nil {
				return err
			}
			resp, err := c.CheckSuppression(cmd.Context(), tenant, args[0])
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "suppressed %v (list of %d numbers)\n", resp.Suppressed, resp.Size)
			return nil
		},
	}
	var chunkMB int
	load := &cobra.Command{
		Use: "load --tenant T FILE|-", Short: "Bulk-load a file: one number per line (CSV: the first field)", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var in io.Reader = cmd.InOrStdin()
			if args[0] != "-" {
				f, err := os.Open(args[0])
				if err != nil {
					return err
				}
				defer f.Close()
				in = f
			}
			c, err := r.client()
			if err != nil {
				return err
			}
			// Uploads of whole lines, each within the server's body limit.
			data, err := io.ReadAll(in)
			if err != nil {
				return err
			}
			var total uint64
			limit := max(chunkMB, 1) << 20
			for len(data) > 0 {
				n := min(len(data), limit)
				if n < len(data) {
					if i := bytes.LastIndexByte(data[:n], '\n'); i >= 0 {
						n = i + 1
					}
				}
				resp, err := c.UploadSuppressions(cmd.Context(), tenant, data[:n], expires)
				if err != nil {
					return fmt.Errorf("after %d numbers: %w", total, err)
				}
				total += resp.Count
				data = data[n:]
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%d loaded\n", total)
			return nil
		},
	}
	load.Flags().StringVar(&expires, "expires-in", "", "entries expire after this long, e.g. 720h")
	load.Flags().IntVar(&chunkMB, "upload-mb", 4, "bytes per upload, in MiB (stay under the server's max_body_bytes)")
	for _, sc := range []*cobra.Command{add, rm, check, load} {
		sc.Flags().StringVar(&tenant, "tenant", "", "tenant (required)")
		_ = sc.MarkFlagRequired("tenant")
		cmd.AddCommand(sc)
	}
	return cmd
}
