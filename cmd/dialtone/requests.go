package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/encoding/protojson"

	pb "github.com/seed-7bfc04c2/dialtone/api/dialtonev1"
)

func submitCmd(r *remote) *cobra.Command {
	var (
		tenant, file string
		s            pb.RequestSpec
		ttl          time.Duration
		data         []string
	)
	cmd := &cobra.Command{
		Use:   "submit --tenant T (--telnum N --profile P --notify URL ... | --file FILE)",
		Short: "Submit one request from flags, or many from a JSON file",
		Long: `submit creates outbound-call requests. With --file, the file holds
{"requests": [RequestSpec, ...]} or a bare JSON array of RequestSpec objects
(fields as in the REST API: token, ivr_profile, telnum, notification_url,
max_attempts, time_to_live "3600s", ...). Use --file - for standard input.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			req := &pb.CreateRequestsRequest{Tenant: tenant}
			if file != "" {
				specs, err := readSpecs(file)
				if err != nil {
					return err
				}
				req.Requests = specs
			} else {
				s.TimeToLive = ttl.String()
				for _, kv := range data {
					k, v, ok := strings.Cut(kv, "=")
					if !ok {
						return fmt.Errorf("--data %q: want key=value", kv)
					}
					s.CustomData = append(s.CustomData, &pb.KeyValue{Key: k, Value: v})
				}
				req.Requests = []*pb.RequestSpec{&s}
			}
			c, err := r.client()
			if err != nil {
				return err
			}
			resp, err := c.CreateRequests(cmd.Context(), req)
			if err != nil {
				return err
			}
			return printJSON(cmd.OutOrStdout(), resp)
		},
	}
	f := cmd.Flags()
	f.StringVar(&tenant, "tenant", "", "tenant name (required)")
	f.StringVar(&file, "file", "", "JSON file of requests (- for stdin)")
	f.StringVar(&s.Token, "token", "cli", "token identifying the submitter's request")
	f.StringVar(&s.IvrProfile, "profile", "", "IVR profile")
	f.StringVar(&s.Telnum, "telnum", "", "number to dial")
	f.StringVar(&s.Ani, "ani", "", "calling number")
	f.StringVar(&s.NotificationUrl, "notify", "", "notification URL")
	f.Uint32Var(&s.MaxAttempts, "max-attempts", 3, "maximum call attempts")
	f.DurationVar(&ttl, "ttl", time.Hour, "time to live")
	f.StringVar(&s.IdempotencyKey, "idempotency-key", "", "key that makes a retry return the original request")
	f.StringSliceVar(&data, "data", nil, "custom data key=value (repeatable)")
	_ = cmd.MarkFlagRequired("tenant")
	return cmd
}

func readSpecs(path string) ([]*pb.RequestSpec, error) {
	var (
		b   []byte
		err error
	)
	if path == "-" {
		b, err = io.ReadAll(os.Stdin)
	} else {
		b, err = os.ReadFile(path)
	}
	if err != nil {
		return nil, err
	}
	trimmed := bytes.TrimSpace(b)
	if len(trimmed) > 0 && trimmed[0] == '[' {
		var raw []json.RawMessage
		if err := json.Unmarshal(trimmed, &raw); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		specs := make([]*pb.RequestSpec, len(raw))
		for i, r := range raw {
			specs[i] = &pb.RequestSpec{}
			if err := protojson.Unmarshal(r, specs[i]); err != nil {
				return nil, fmt.Errorf("%s: request %d: %w", path, i, err)
			}
		}
		return specs, nil
	}
	var req pb.CreateRequestsRequest
	if err := protojson.Unmarshal(trimmed, &req); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return req.Requests, nil
}

func getCmd(r *remote) *cobra.Command {
	var tenant, consistency string
	cmd := &cobra.Command{
		Use:   "get --tenant T ID",
		Short: "Show one request",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := r.client()
			if err != nil {
				return err
			}
			resp, err := c.GetRequest(cmd.Context(), &pb.GetRequestRequest{Tenant: tenant, Id: args[0], Consistency: consistency})
			if err != nil {
				return err
			}
			return printJSON(cmd.OutOrStdout(), resp)
		},
	}
	cmd.Flags().StringVar(&tenant, "tenant", "", "tenant name (required)")
	cmd.Flags().StringVar(&consistency, "consistency", "", "local (default) or linearizable")
	_ = cmd.MarkFlagRequired("tenant")
	return cmd
}

func listCmd(r *remote) *cobra.Command {
	var tenant, state, profile, token string
	var size int
	cmd := &cobra.Command{
		Use:   "list --tenant T",
		Short: "List a tenant's requests",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := r.client()
			if err != nil {
				return err
			}
			resp, err := c.ListRequests(cmd.Context(), &pb.ListRequestsRequest{
				Tenant: tenant, State: state, IvrProfile: profile, PageToken: token, PageSize: int32(max(size, 0)),
			})
			if err != nil {
				return err
			}
			return printJSON(cmd.OutOrStdout(), resp)
		},
	}
	f := cmd.Flags()
	f.StringVar(&tenant, "tenant", "", "tenant name (required)")
	f.StringVar(&state, "state", "", "PENDING, INITIATED, IN_PROGRESS or PROCESSED")
	f.StringVar(&profile, "profile", "", "IVR profile")
	f.StringVar(&token, "page-token", "", "next_page_token of the previous page")
	f.IntVar(&size, "page-size", 0, "requests per page (1-1000, default 100)")
	_ = cmd.MarkFlagRequired("tenant")
	return cmd
}

func cancelCmd(r *remote) *cobra.Command {
	var tenant string
	cmd := &cobra.Command{
		Use:   "cancel --tenant T ID",
		Short: "Cancel a request that has no attempt in progress",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := r.client()
			if err != nil {
				return err
			}
			resp, err := c.CancelRequest(cmd.Context(), &pb.CancelRequestRequest{Tenant: tenant, Id: args[0]})
			if err != nil {
				return err
			}
			return printJSON(cmd.OutOrStdout(), resp)
		},
	}
	cmd.Flags().StringVar(&tenant, "tenant", "", "tenant name (required)")
	_ = cmd.MarkFlagRequired("tenant")
	return cmd
}
