package cli

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/hangar-dev/hangar/internal/types"
)

// `hangar logs`: read an app's logs (a window of time, filters, follow),
// ship them to an HTTP sink, and set how long they are kept.

func newLogsCmd() *cobra.Command {
	var app, config, machine, region, group, since, until, grep string
	var follow, noTail, asJSON bool
	var lines int
	cmd := &cobra.Command{
		Use: "logs", Short: "Show an app's logs", Args: cobra.NoArgs,
		Long: `Show an app's logs: the last lines (-n), or with --since every line from
then (to --until), of all its machines merged by time; -f keeps streaming.
--since and --until take a duration back from now (30m, 1h, 2d, 1w) or a
time (2026-03-01T12:00:00Z).`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if noTail && follow {
				return &HintError{Err: fmt.Errorf("--no-tail and --follow contradict each other"), Hint: "drop one: --no-tail prints and exits, -f keeps streaming"}
			}
			if follow && until != "" {
				return &HintError{Err: fmt.Errorf("--follow and --until contradict each other"), Hint: "new lines come after any --until; drop one"}
			}
			name, c, err := appAndClient(app, config)
			if err != nil {
				return err
			}
			q := url.Values{}
			if since == "" || cmd.Flags().Changed("lines") {
				q.Set("lines", strconv.Itoa(lines))
			}
			for k, v := range map[string]string{"machine": machine, "region": region, "process_group": group, "since": since, "until": until, "grep": grep} {
				if v != "" {
					q.Set(k, v)
				}
			}
			if follow {
				q.Set("follow", "true")
			}
			resp, err := c.send(cmd.Context(), "GET", "/v1/apps/"+url.PathEscape(name)+"/logs?"+q.Encode(), nil, "")
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			out := bufio.NewWriterSize(cmd.OutOrStdout(), 64<<10)
			defer out.Flush()
			sc := bufio.NewScanner(resp.Body)
			sc.Buffer(make([]byte, 1<<20), 1<<20)
			for sc.Scan() {
				if asJSON {
					out.Write(sc.Bytes())
					out.WriteByte('\n')
				} else {
					var l types.LogLine
					if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
						continue
					}
					level := "info"
					switch l.Stream {
					case "stderr":
						level = "error"
					case "hangar":
						level = "hangar"
					}
					fmt.Fprintf(out, "%s app[%s] %s [%s] %s\n", l.Timestamp, l.MachineID, l.Region, level, l.Message)
				}
				if follow {
					out.Flush() // followed lines show as they come
				}
			}
			return sc.Err()
		},
	}
	appFlags(cmd, &app, &config)
	f := cmd.Flags()
	f.BoolVarP(&follow, "follow", "f", false, "keep streaming new lines")
	f.BoolVar(&noTail, "no-tail", false, "print the lines and exit, without streaming new ones (the default; flyctl's flag)")
	f.StringVarP(&machine, "machine", "i", "", "only this machine (instance)")
	f.StringVarP(&region, "region", "r", "", "only machines of this region")
	f.StringVar(&group, "process-group", "", "only machines of this process group")
	f.IntVarP(&lines, "lines", "n", 100, "how many past lines to show (with --since: at most this many, when given)")
	f.StringVar(&since, "since", "", "every line from this time: a duration back (1h, 2d) or an RFC 3339 time")
	f.StringVar(&until, "until", "", "only lines up to this time (same forms as --since)")
	f.StringVar(&grep, "grep", "", "only lines whose message matches this regular expression (RE2)")
	f.BoolVar(&asJSON, "json", false, "print one JSON object a line (timestamp, app, region, instance, process_group, stream, message)")
	cmd.AddCommand(newLogsShipCmd(), newLogsRetentionCmd())
	return cmd
}

func newLogsShipCmd() *cobra.Command {
	var app, to string
	cmd := &cobra.Command{
		Use: "ship --to URL", Short: "Ship logs to an HTTP NDJSON sink (kept by the daemon)", Args: cobra.NoArgs,
		Long: `Ship logs, from now on, to an HTTP endpoint that takes NDJSON (Vector's
http_server source, most log services): the daemon POSTs batches of lines,
retrying with backoff, and keeps a cursor, so no line is skipped across its
restarts. Each batch carries Hangar-Batch: N (1, 2, 3… per sink): a batch
sent again after a crash has the same number and lines. Without -a, every
app's logs.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if to == "" {
				return &HintError{Err: fmt.Errorf("no sink"), Hint: "give its URL: hangar logs ship --to https://logs.example.com/ingest"}
			}
			c, err := newClient()
			if err != nil {
				return err
			}
			var sink types.LogSink
			if err := c.do(cmd.Context(), "POST", "/v1/log-sinks", types.CreateLogSinkRequest{URL: to, App: app}, &sink); err != nil {
				return err
			}
			what := "every app's logs"
			if app != "" {
				what = "the logs of app " + app
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Shipping %s to %s (sink %s); `hangar logs ship list` shows its progress\n", what, sink.URL, sink.ID)
			return nil
		},
	}
	cmd.Flags().StringVarP(&app, "app", "a", "", "only this app's logs")
	cmd.Flags().StringVar(&to, "to", "", "the sink's http(s) URL")
	var asJSON bool
	list := &cobra.Command{
		Use: "list", Short: "List the log sinks", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := newClient()
			if err != nil {
				return err
			}
			var sinks []types.LogSink
			if err := c.do(cmd.Context(), "GET", "/v1/log-sinks", nil, &sinks); err != nil {
				return err
			}
			if asJSON {
				return printJSON(cmd.OutOrStdout(), sinks)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tAPP\tURL\tLINES\tBATCHES\tLAST ERROR")
			for _, s := range sinks {
				a := s.App
				if a == "" {
					a = "(all)"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%s\n", s.ID, a, s.URL, s.Lines, s.Batches, s.LastError)
			}
			return tw.Flush()
		},
	}
	list.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	remove := &cobra.Command{
		Use: "remove ID", Short: "Stop shipping to a sink", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := newClient()
			if err != nil {
				return err
			}
			if err := c.do(cmd.Context(), "DELETE", "/v1/log-sinks/"+url.PathEscape(args[0]), nil, nil); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Removed log sink %s\n", args[0])
			return nil
		},
	}
	cmd.AddCommand(list, remove)
	return cmd
}

func newLogsRetentionCmd() *cobra.Command {
	var app, config, maxAge string
	var maxSize sizeFlag
	var reset, asJSON bool
	cmd := &cobra.Command{
		Use: "retention", Short: "Show or set how long an app's logs are kept and how much space they take", Args: cobra.NoArgs,
		Long: `Show an app's own log limits, or set them with --max-age and --max-size
(0 or --reset: back to the daemon's --log-retention and --log-max-app-size).
A log file goes once its last line is older than the age; when the app's
logs take more than the size, the oldest files go first.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			name, c, err := appAndClient(app, config)
			if err != nil {
				return err
			}
			path := "/v1/apps/" + url.PathEscape(name) + "/logs/retention"
			var r types.LogRetention
			if reset || maxAge != "" || cmd.Flags().Changed("max-size") {
				if err := c.do(cmd.Context(), "GET", path, nil, &r); err != nil {
					return err
				}
				if reset {
					r = types.LogRetention{}
				}
				if maxAge != "" {
					d, err := parseAge(maxAge)
					if err != nil {
						return err
					}
					r.MaxAgeSeconds = int64(d / time.Second)
				}
				if cmd.Flags().Changed("max-size") {
					r.MaxBytes = int64(maxSize)
				}
				if err := c.do(cmd.Context(), "PUT", path, r, &r); err != nil {
					return err
				}
			} else if err := c.do(cmd.Context(), "GET", path, nil, &r); err != nil {
				return err
			}
			if asJSON {
				return printJSON(cmd.OutOrStdout(), r)
			}
			age, size := "the daemon's (--log-retention)", "the daemon's (--log-max-app-size)"
			if r.MaxAgeSeconds > 0 {
				age = (time.Duration(r.MaxAgeSeconds) * time.Second).String()
			}
			if r.MaxBytes > 0 {
				size = (*byteSize)(&r.MaxBytes).String()
			}
			fmt.Fprintf(cmd.OutOrStdout(), "App %s keeps its logs: max age %s, max size %s\n", name, age, size)
			return nil
		},
	}
	appFlags(cmd, &app, &config)
	cmd.Flags().StringVar(&maxAge, "max-age", "", "remove a log file once its last line is this old (e.g. 7d, 72h; 0: the daemon's)")
	cmd.Flags().Var(&maxSize, "max-size", "the most the app's logs may take, oldest files removed first (e.g. 500MiB; 0: the daemon's)")
	cmd.Flags().BoolVar(&reset, "reset", false, "go back to the daemon's limits")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

// parseAge reads a Go duration, or a whole number of days ("7d").
func parseAge(s string) (time.Duration, error) {
	if days, ok := strings.CutSuffix(s, "d"); ok {
		if n, err := strconv.ParseUint(days, 10, 16); err == nil {
			return time.Duration(n) * 24 * time.Hour, nil
		}
	} else if d, err := time.ParseDuration(s); err == nil && d >= 0 {
		return d, nil
	}
	return 0, &HintError{Err: fmt.Errorf("--max-age %q is not a duration", s), Hint: "use days or a Go duration: 7d, 36h, 90m (0: the daemon's)"}
}
