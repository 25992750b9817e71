package main

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"

	pb "github.com/seed-7bfc04c2/dialtone/api/dialtonev1"
)

// frequencyCapCmd shows and changes a tenant's per-contact frequency cap
// (docs/compliance.md).
func frequencyCapCmd(r *remote) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "frequency-cap",
		Short: "Show and change a tenant's per-contact frequency cap (attempts to one number across all requests)",
	}
	var tenant string
	var asJSON bool
	get := &cobra.Command{
		Use: "get --tenant T", Short: "Show the tenant's cap", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := r.client()
			if err != nil {
				return err
			}
			resp, err := c.GetFrequencyCap(cmd.Context(), tenant)
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(cmd.OutOrStdout(), resp)
			}
			if !resp.Stored {
				fmt.Fprintln(cmd.OutOrStdout(), "no frequency cap")
				return nil
			}
			printFreqCap(cmd.OutOrStdout(), resp.Cap)
			return nil
		},
	}
	get.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	var max uint32
	var period, gap string
	set := &cobra.Command{
		Use:     "set --tenant T [--max N --period D] [--min-gap D]",
		Short:   "Replace the cap",
		Example: `  dialtone frequency-cap set --tenant acme --max 3 --period 24h --min-gap 1h`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := r.client()
			if err != nil {
				return err
			}
			resp, err := c.SetFrequencyCap(cmd.Context(), tenant, &pb.FrequencyCap{MaxAttempts: max, Period: period, MinGap: gap})
			if err != nil {
				return err
			}
			printFreqCap(cmd.OutOrStdout(), resp.Cap)
			return nil
		},
	}
	set.Flags().Uint32Var(&max, "max", 0, "at most this many attempts to one number per --period")
	set.Flags().StringVar(&period, "period", "", "the rolling period, e.g. 24h (1m..720h)")
	set.Flags().StringVar(&gap, "min-gap", "", "at least this long between two attempts to one number, e.g. 1h")
	del := &cobra.Command{
		Use: "delete --tenant T", Short: "Remove the cap", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := r.client()
			if err != nil {
				return err
			}
			_, err = c.DeleteFrequencyCap(cmd.Context(), tenant)
			return err
		},
	}
	for _, sc := range []*cobra.Command{get, set, del} {
		sc.Flags().StringVar(&tenant, "tenant", "", "tenant (required)")
		_ = sc.MarkFlagRequired("tenant")
		cmd.AddCommand(sc)
	}
	return cmd
}

func printFreqCap(out io.Writer, c *pb.FrequencyCap) {
	if c.GetMaxAttempts() > 0 {
		fmt.Fprintf(out, "at most %d attempts per number per %s\n", c.GetMaxAttempts(), c.GetPeriod())
	}
	if c.GetMinGap() != "" {
		fmt.Fprintf(out, "at least %s between attempts to a number\n", c.GetMinGap())
	}
}
