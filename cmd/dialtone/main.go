// Command dialtone runs a Dialtone node (serve), a local three-node cluster
// (dev), and the operator and client verbs that talk to any node over REST.
package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"
)

func main() {
	if err := newRoot().Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "dialtone:", err)
		os.Exit(1)
	}
}

func newRoot() *cobra.Command {
	root := &cobra.Command{
		Use:           "dialtone",
		Short:         "Dialtone: a clustered, high-availability outbound dialer",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	var cl remote
	root.PersistentFlags().StringVar(&cl.addr, "addr", envOr("DIALTONE_ADDR", "http://127.0.0.1:8081"), "HTTP address of any node (env DIALTONE_ADDR)")
	root.PersistentFlags().StringVar(&cl.user, "user", os.Getenv("DIALTONE_USER"), "basic-auth user (env DIALTONE_USER; password from env DIALTONE_PASSWORD)")
	root.PersistentFlags().StringVar(&cl.token, "bearer", os.Getenv("DIALTONE_TOKEN"), "bearer token (env DIALTONE_TOKEN)")
	root.PersistentFlags().StringVar(&cl.caFile, "ca-file", os.Getenv("DIALTONE_CA_FILE"), "CA certificate for https addresses (env DIALTONE_CA_FILE)")
	cl.password = os.Getenv("DIALTONE_PASSWORD")
	root.AddCommand(newServe(), newDev(), newHashPassword())
	root.AddCommand(clientCommands(&cl)...)
	return root
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}
