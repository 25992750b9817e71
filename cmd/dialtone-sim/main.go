// Command dialtone-sim runs Dialtone's development simulators: the
// simulated media platform with its notification receiver (mediasim) and
// media servers that only publish port usage (portsim). It is its own
// binary so that the server (cmd/dialtone) links none of it; `dialtone dev`
// starts it next to the three nodes.
package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"
)

func main() {
	if err := newRoot().Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "dialtone-sim:", err)
		os.Exit(1)
	}
}

// creds are the credentials a simulated media server publishes with.
type creds struct {
	user     string
	password string
	token    string
	caFile   string
}

func newRoot() *cobra.Command {
	root := &cobra.Command{
		Use:           "dialtone-sim",
		Short:         "Dialtone's simulated media platform and port-usage publishers (development and tests)",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	var cl creds
	root.PersistentFlags().StringVar(&cl.user, "user", os.Getenv("DIALTONE_USER"), "basic-auth user to publish as (env DIALTONE_USER; password from env DIALTONE_PASSWORD)")
	root.PersistentFlags().StringVar(&cl.token, "bearer", os.Getenv("DIALTONE_TOKEN"), "bearer token (env DIALTONE_TOKEN)")
	root.PersistentFlags().StringVar(&cl.caFile, "ca-file", os.Getenv("DIALTONE_CA_FILE"), "CA certificate for TLS to the nodes (env DIALTONE_CA_FILE)")
	cl.password = os.Getenv("DIALTONE_PASSWORD")
	root.AddCommand(newPortsim(&cl), newMediasim(&cl))
	return root
}
