package main

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/seed-7bfc04c2/dialtone/client"
)

// remote is the node the operator and client verbs talk to, from the
// global flags; its client is built on first use, after flag parsing.
type remote struct {
	addr, user, password, token, caFile string
	c                                   *client.Client
}

func (r *remote) client() (*client.Client, error) {
	if r.c != nil {
		return r.c, nil
	}
	var opts []client.Option
	if r.token != "" {
		opts = append(opts, client.WithBearerToken(r.token))
	}
	if r.user != "" {
		opts = append(opts, client.WithBasicAuth(r.user, r.password))
	}
	if r.caFile != "" {
		opts = append(opts, client.WithCAFile(r.caFile))
	}
	c, err := client.New(r.addr, opts...)
	if err != nil {
		return nil, err
	}
	r.c = c
	return c, nil
}

func printJSON(w io.Writer, m proto.Message) error {
	b, err := protojson.MarshalOptions{Multiline: true, Indent: "  ", UseProtoNames: true}.Marshal(m)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(w, string(b))
	return err
}

func clientCommands(r *remote) []*cobra.Command {
	return []*cobra.Command{
		statusCmd(r), membersCmd(r), submitCmd(r), getCmd(r), listCmd(r), cancelCmd(r), leaveCmd(r), transferCmd(r),
		pacingCmd(r), dialerCmd(r), callingWindowCmd(r), suppressCmd(r), frequencyCapCmd(r),
	}
}
