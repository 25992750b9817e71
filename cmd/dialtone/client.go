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
	"slices"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	pb "github.com/seed-7bfc04c2/dialtone/api/dialtonev1"
	"github.com/seed-7bfc04c2/dialtone/internal/tlsconf"
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
		pacingCmd(c), dialerCmd(c),
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
			if err := w.Flush(); err != nil {
				return err
			}
			// The leader's dialer figures (the same as `dialtone dialer`);
			// without a leader there are none to show.
			var ds pb.DialerStatus
			if err := c.call(cmd.Context(), http.MethodGet, "/v1/dialer", nil, &ds); err != nil {
				fmt.Fprintf(cmd.OutOrStdout(), "\ndialer: %v\n", err)
				return nil
			}
			fmt.Fprintln(cmd.OutOrStdout())
			return printDialerStatus(cmd.OutOrStdout(), &ds)
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

// pacingPath is the REST path of a tenant's pacing entry; no tenant is the
// global entry.
func pacingPath(tenant string) string {
	if tenant == "" {
		tenant = "_global"
	}
	return "/v1/pacing/" + url.PathEscape(tenant)
}

func pacingCmd(c *client) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "pacing",
		Short: "Show and change the dialer's pacing settings (per tenant and global)",
		Long: `pacing reads and changes the dialer's runtime settings, replicated through
Raft: one entry per tenant and a global entry (no --tenant). A field left at
zero in an entry inherits: a tenant's from the global entry, the global
entry's from the built-in default. See docs/dialer-settings.md.`,
	}
	cmd.AddCommand(pacingGetCmd(c), pacingListCmd(c), pacingSetCmd(c), pacingResetCmd(c))
	return cmd
}

func pacingGetCmd(c *client) *cobra.Command {
	var tenant string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "get [--tenant T]",
		Short: "Show a tenant's (or the global) stored entry and the effective settings",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var resp pb.GetPacingResponse
			if err := c.call(cmd.Context(), http.MethodGet, pacingPath(tenant), nil, &resp); err != nil {
				return err
			}
			if asJSON {
				return printJSON(cmd.OutOrStdout(), &resp)
			}
			return printPacingEntry(cmd.OutOrStdout(), resp.GetPacing())
		},
	}
	cmd.Flags().StringVar(&tenant, "tenant", "", "tenant name (the global entry when omitted)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func pacingListCmd(c *client) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the stored pacing entries and the global CAPS limit",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var resp pb.ListPacingResponse
			if err := c.call(cmd.Context(), http.MethodGet, "/v1/pacing", nil, &resp); err != nil {
				return err
			}
			if asJSON {
				return printJSON(cmd.OutOrStdout(), &resp)
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

func pacingSetCmd(c *client) *cobra.Command {
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
			var cur pb.GetPacingResponse
			if err := c.call(cmd.Context(), http.MethodGet, pacingPath(tenant)+"?consistency=linearizable", nil, &cur); err != nil {
				return err
			}
			s := cur.GetPacing().GetSettings()
			if s == nil {
				s = &pb.Pacing{}
			}
			mergePacingFlags(s, v, f.Changed)
			var resp pb.SetPacingResponse
			if err := c.call(cmd.Context(), http.MethodPut, pacingPath(tenant), s, &resp); err != nil {
				return err
			}
			if asJSON {
				return printJSON(cmd.OutOrStdout(), &resp)
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

func pacingResetCmd(c *client) *cobra.Command {
	var tenant string
	cmd := &cobra.Command{
		Use:   "reset [--tenant T]",
		Short: "Delete a tenant's (or the global) entry: every field inherits again",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var resp pb.DeletePacingResponse
			if err := c.call(cmd.Context(), http.MethodDelete, pacingPath(tenant), nil, &resp); err != nil {
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

func dialerCmd(c *client) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "dialer",
		Short: "Show the leader's dialer engine: queues, calls, ports, CAPS, outcomes, notifications",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var st pb.DialerStatus
			if err := c.call(cmd.Context(), http.MethodGet, "/v1/dialer", nil, &st); err != nil {
				return err
			}
			if asJSON {
				return printJSON(cmd.OutOrStdout(), &st)
			}
			return printDialerStatus(cmd.OutOrStdout(), &st)
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
	fmt.Fprintln(w, "TENANT\tQUEUED\tIN PROGRESS/BUDGET\tPORTS IN USE/TOTAL\tCAPS TARGET\tCAPS ACHIEVED\tOUTCOMES\tNOTIFY PENDING")
	for _, t := range st.Tenants {
		fmt.Fprintf(w, "%s\t%d\t%d/%d\t%d/%d\t%g\t%.1f\t%s\t%d\n", t.Tenant, t.Queued, t.InProgress, t.PortBudget,
			t.PortsInUse, t.PortsTotal, t.Caps, t.AttemptsPerSec, outcomesText(t.Outcomes), t.NotifyPending)
	}
	if len(st.Tenants) == 0 {
		fmt.Fprintln(w, "(no tenant has work)")
	}
	return w.Flush()
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
