package main

import (
	"fmt"
	"text/tabwriter"

	"github.com/spf13/cobra"

	pb "github.com/seed-7bfc04c2/dialtone/api/dialtonev1"
)

func statusCmd(r *remote) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show the node's view of the cluster: leader, term, indexes, servers",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := r.client()
			if err != nil {
				return err
			}
			st, err := c.GetClusterStatus(cmd.Context())
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(cmd.OutOrStdout(), st)
			}
			w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintf(w, "node\t%s (%s)\n", st.NodeId, st.State)
			fmt.Fprintf(w, "leader\t%s  http://%s\n", st.LeaderId, st.LeaderHttpAddress)
			fmt.Fprintf(w, "term\t%d\n", st.Term)
			fmt.Fprintf(w, "commit/applied/last index\t%d / %d / %d\n", st.CommitIndex, st.AppliedIndex, st.LastLogIndex)
			fmt.Fprintf(w, "last contact\t%d ms\n", st.LastContactMs)
			fmt.Fprintf(w, "records\t%d\n", st.Records)
			fmt.Fprintln(w, "\nSERVER\tRAFT ADDRESS\tSUFFRAGE\tLEADER")
			for _, s := range st.Servers {
				fmt.Fprintf(w, "%s\t%s\t%s\t%v\n", s.Id, s.RaftAddress, s.Suffrage, s.Leader)
			}
			if err := w.Flush(); err != nil {
				return err
			}
			// The leader's dialer figures (the same as `dialtone dialer`);
			// without a leader there are none to show.
			ds, err := c.GetDialerStatus(cmd.Context())
			if err != nil {
				fmt.Fprintf(cmd.OutOrStdout(), "\ndialer: %v\n", err)
				return nil
			}
			fmt.Fprintln(cmd.OutOrStdout())
			return printDialerStatus(cmd.OutOrStdout(), ds)
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func membersCmd(r *remote) *cobra.Command {
	return &cobra.Command{
		Use:   "members",
		Short: "List gossip members and their addresses",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := r.client()
			if err != nil {
				return err
			}
			m, err := c.ListMembers(cmd.Context())
			if err != nil {
				return err
			}
			w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "ID\tSTATUS\tGOSSIP\tHTTP\tGRPC\tRAFT")
			for _, x := range m.Members {
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\n", x.Id, x.Status, x.GossipAddress, x.HttpAddress, x.GrpcAddress, x.RaftAddress)
			}
			return w.Flush()
		},
	}
}

func leaveCmd(r *remote) *cobra.Command {
	return &cobra.Command{
		Use:   "leave",
		Short: "Make the node at --addr leave the cluster for good and stop",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := r.client()
			if err != nil {
				return err
			}
			if err := c.Leave(cmd.Context()); err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), "left the cluster; the node is stopping")
			return nil
		},
	}
}

func transferCmd(r *remote) *cobra.Command {
	var to string
	cmd := &cobra.Command{
		Use:   "transfer-leadership [--to ID]",
		Short: "Hand leadership to another voter (found through any node)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := r.client()
			if err != nil {
				return err
			}
			st, err := c.GetClusterStatus(cmd.Context())
			if err != nil {
				return err
			}
			if st.LeaderHttpAddress == "" {
				return fmt.Errorf("no leader known to %s", r.addr)
			}
			// Only the leader transfers; it is reached with the same scheme.
			leader, err := c.WithAddr(st.LeaderHttpAddress)
			if err != nil {
				return err
			}
			resp, err := leader.TransferLeadership(cmd.Context(), &pb.TransferLeadershipRequest{TargetId: to})
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "leadership moved from %s to %s\n", st.LeaderId, resp.NewLeaderId)
			return nil
		},
	}
	cmd.Flags().StringVar(&to, "to", "", "id of the new leader (any up-to-date voter if empty)")
	return cmd
}
