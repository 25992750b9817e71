package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	pb "github.com/seed-7bfc04c2/dialtone/api/dialtonev1"
	"github.com/seed-7bfc04c2/dialtone/tlsconf"
)

// client calls a node's REST API.
type client struct {
	addr     string
	timeout  time.Duration
	user     string
	password string
	token    string
	caFile   string
	http     *http.Client
}

// httpClient trusts --ca-file for https addresses.
func (c *client) httpClient() (*http.Client, error) {
	if c.http != nil {
		return c.http, nil
	}
	c.http = http.DefaultClient
	if c.caFile != "" {
		cfg, err := tlsconf.Client(c.caFile)
		if err != nil {
			return nil, err
		}
		c.http = &http.Client{Transport: &http.Transport{TLSClientConfig: cfg}}
	}
	return c.http, nil
}

// scheme is the scheme of --addr ("http" unless given).
func (c *client) scheme() string {
	if s, _, ok := strings.Cut(c.addr, "://"); ok {
		return s
	}
	return "http"
}

// apiError is a non-2xx answer, with the server's message.
type apiError struct {
	Status  int
	Message string
}

func (e *apiError) Error() string { return fmt.Sprintf("HTTP %d: %s", e.Status, e.Message) }

func (c *client) base() string {
	a := strings.TrimRight(c.addr, "/")
	if !strings.Contains(a, "://") {
		a = "http://" + a
	}
	return a
}

// call sends in (JSON, may be nil) and decodes the answer into out.
func (c *client) call(ctx context.Context, method, path string, in proto.Message, out proto.Message) error {
	var body io.Reader
	if in != nil {
		b, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	timeout := c.timeout
	if timeout == 0 {
		timeout = 30 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, c.base()+path, body)
	if err != nil {
		return err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	switch {
	case c.token != "":
		req.Header.Set("Authorization", "Bearer "+c.token)
	case c.user != "":
		req.SetBasicAuth(c.user, c.password)
	}
	hc, err := c.httpClient()
	if err != nil {
		return err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 {
		var e struct {
			Message string `json:"message"`
		}
		if json.Unmarshal(data, &e) != nil || e.Message == "" {
			e.Message = strings.TrimSpace(string(data))
		}
		return &apiError{Status: resp.StatusCode, Message: e.Message}
	}
	if out == nil {
		return nil
	}
	return protojson.UnmarshalOptions{DiscardUnknown: true}.Unmarshal(data, out)
}

func printJSON(w io.Writer, m proto.Message) error {
	b, err := protojson.MarshalOptions{Multiline: true, Indent: "  ", UseProtoNames: true}.Marshal(m)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(w, string(b))
	return err
}

func clientCommands(c *client) []*cobra.Command {
	return []*cobra.Command{
		statusCmd(c), membersCmd(c), submitCmd(c), getCmd(c), listCmd(c), cancelCmd(c), leaveCmd(c), transferCmd(c),
	}
}

func statusCmd(c *client) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show the node's view of the cluster: leader, term, indexes, servers",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var st pb.ClusterStatus
			if err := c.call(cmd.Context(), http.MethodGet, "/v1/cluster", nil, &st); err != nil {
				return err
			}
			if asJSON {
				return printJSON(cmd.OutOrStdout(), &st)
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
			return w.Flush()
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func membersCmd(c *client) *cobra.Command {
	return &cobra.Command{
		Use:   "members",
		Short: "List gossip members and their addresses",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var m pb.ListMembersResponse
			if err := c.call(cmd.Context(), http.MethodGet, "/v1/cluster/members", nil, &m); err != nil {
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

func submitCmd(c *client) *cobra.Command {
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
			var resp pb.CreateRequestsResponse
			if err := c.call(cmd.Context(), http.MethodPost, "/v1/tenants/"+url.PathEscape(tenant)+"/requests", req, &resp); err != nil {
				return err
			}
			return printJSON(cmd.OutOrStdout(), &resp)
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

func getCmd(c *client) *cobra.Command {
	var tenant, consistency string
	cmd := &cobra.Command{
		Use:   "get --tenant T ID",
		Short: "Show one request",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			q := url.Values{}
			if consistency != "" {
				q.Set("consistency", consistency)
			}
			var resp pb.GetRequestResponse
			path := "/v1/tenants/" + url.PathEscape(tenant) + "/requests/" + url.PathEscape(args[0]) + "?" + q.Encode()
			if err := c.call(cmd.Context(), http.MethodGet, path, nil, &resp); err != nil {
				return err
			}
			return printJSON(cmd.OutOrStdout(), &resp)
		},
	}
	cmd.Flags().StringVar(&tenant, "tenant", "", "tenant name (required)")
	cmd.Flags().StringVar(&consistency, "consistency", "", "local (default) or linearizable")
	_ = cmd.MarkFlagRequired("tenant")
	return cmd
}

func listCmd(c *client) *cobra.Command {
	var tenant, state, profile, token string
	var size int
	cmd := &cobra.Command{
		Use:   "list --tenant T",
		Short: "List a tenant's requests",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			q := url.Values{}
			for k, v := range map[string]string{"state": state, "ivr_profile": profile, "page_token": token} {
				if v != "" {
					q.Set(k, v)
				}
			}
			if size > 0 {
				q.Set("page_size", fmt.Sprint(size))
			}
			var resp pb.ListRequestsResponse
			if err := c.call(cmd.Context(), http.MethodGet, "/v1/tenants/"+url.PathEscape(tenant)+"/requests?"+q.Encode(), nil, &resp); err != nil {
				return err
			}
			return printJSON(cmd.OutOrStdout(), &resp)
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

func cancelCmd(c *client) *cobra.Command {
	var tenant string
	cmd := &cobra.Command{
		Use:   "cancel --tenant T ID",
		Short: "Cancel a request that has no attempt in progress",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var resp pb.CancelRequestResponse
			if err := c.call(cmd.Context(), http.MethodDelete, "/v1/tenants/"+url.PathEscape(tenant)+"/requests/"+url.PathEscape(args[0]), nil, &resp); err != nil {
				return err
			}
			return printJSON(cmd.OutOrStdout(), &resp)
		},
	}
	cmd.Flags().StringVar(&tenant, "tenant", "", "tenant name (required)")
	_ = cmd.MarkFlagRequired("tenant")
	return cmd
}

func leaveCmd(c *client) *cobra.Command {
	return &cobra.Command{
		Use:   "leave",
		Short: "Make the node at --addr leave the cluster for good and stop",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := c.call(cmd.Context(), http.MethodPost, "/v1/cluster/leave", &pb.LeaveRequest{}, nil); err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), "left the cluster; the node is stopping")
			return nil
		},
	}
}

func transferCmd(c *client) *cobra.Command {
	var to string
	cmd := &cobra.Command{
		Use:   "transfer-leadership [--to ID]",
		Short: "Hand leadership to another voter (found through any node)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var st pb.ClusterStatus
			if err := c.call(cmd.Context(), http.MethodGet, "/v1/cluster", nil, &st); err != nil {
				return err
			}
			if st.LeaderHttpAddress == "" {
				return fmt.Errorf("no leader known to %s", c.addr)
			}
			leader := *c
			leader.addr = c.scheme() + "://" + st.LeaderHttpAddress
			var resp pb.TransferLeadershipResponse
			if err := leader.call(cmd.Context(), http.MethodPost, "/v1/cluster/leadership:transfer", &pb.TransferLeadershipRequest{TargetId: to}, &resp); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "leadership moved from %s to %s\n", st.LeaderId, resp.NewLeaderId)
			return nil
		},
	}
	cmd.Flags().StringVar(&to, "to", "", "id of the new leader (any up-to-date voter if empty)")
	return cmd
}
