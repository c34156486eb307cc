package supervisor

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/hangar-dev/hangar/internal/types"
)

// check is one health check of a machine, resolved to an address.
type check struct {
	name     string
	kind     string // "http" or "tcp"
	port     int
	interval time.Duration
	timeout  time.Duration
	grace    time.Duration
	method   string
	path     string
	headers  []types.MachineHTTPHeader
	https    bool
	skipTLS  bool
	service  int // index in the config's services; -1 for a top-level check
}

// machineChecks lists the checks of a config: each service's checks (named
// like Fly's servicecheck-NN-kind-port) and the top-level checks by name.
func machineChecks(cfg *types.MachineConfig) []check {
	if cfg == nil {
		return nil
	}
	var out []check
	for i, svc := range cfg.Services {
		for _, mc := range svc.Checks {
			c := toCheck(mc, svc.InternalPort)
			c.service = i
			c.name = fmt.Sprintf("servicecheck-%02d-%s-%d", len(out), c.kind, c.port)
			out = append(out, c)
		}
	}
	names := make([]string, 0, len(cfg.Checks))
	for n := range cfg.Checks {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		// A top-level check without a port checks the HTTP service's.
		port := 0
		if svc := cfg.HTTPService(); svc != nil {
			port = svc.InternalPort
		}
		c := toCheck(cfg.Checks[n], port)
		c.name = n
		c.service = -1
		out = append(out, c)
	}
	return out
}

// gates reports whether the check named gates the machine's traffic
// (routing, and a deploy's wait for health): every check but a top-level
// one of kind "informational", which is only reported.
func gates(cfg *types.MachineConfig, name string) bool {
	if cfg == nil {
		return true
	}
	c, ok := cfg.Checks[name]
	return !ok || c.Kind != "informational"
}

func toCheck(mc types.MachineCheck, defPort int) check {
	c := check{kind: strings.ToLower(mc.Type), port: defPort, interval: 15 * time.Second, timeout: 2 * time.Second,
		method: strings.ToUpper(mc.Method), path: mc.Path, headers: mc.Headers}
	if c.kind == "" {
		c.kind = "tcp"
		if mc.Path != "" {
			c.kind = "http"
		}
	}
	if mc.Port != nil && *mc.Port > 0 {
		c.port = *mc.Port
	}
	if mc.Interval != nil && mc.Interval.Duration > 0 {
		c.interval = mc.Interval.Duration
	}
	if mc.Timeout != nil && mc.Timeout.Duration > 0 {
		c.timeout = mc.Timeout.Duration
	}
	if mc.GracePeriod != nil {
		c.grace = mc.GracePeriod.Duration
	}
	if c.method == "" {
		c.method = http.MethodGet
	}
	if c.path == "" {
		c.path = "/"
	}
	c.https = strings.EqualFold(mc.Protocol, "https")
	c.skipTLS = mc.TLSSkipVerify != nil && *mc.TLSSkipVerify
	return c
}

// firstCheckOutput marks a check that has not run yet.
const firstCheckOutput = "waiting for the first check"

func initialChecks(cfg *types.MachineConfig) map[string]types.CheckStatus {
	out := map[string]types.CheckStatus{}
	for _, c := range machineChecks(cfg) {
		out[c.name] = types.CheckStatus{Name: c.name, Status: types.CheckCritical, Output: firstCheckOutput, UpdatedAt: now()}
	}
	return out
}

// recoverCheckWait bounds how long Recover waits for the first check round
// of the machines it re-adopted.
const recoverCheckWait = 5 * time.Second

// awaitFirstChecks waits (at most max) until every check of the given
// machines has run once. Recover uses it so that a restarted or reloaded
// daemon serves only once it knows which re-adopted machines are healthy:
// otherwise its proxy would answer 503 for the few milliseconds before the
// first checks pass.
func (s *Supervisor) awaitFirstChecks(ctx context.Context, lives []*live, max time.Duration) {
	deadline := time.Now().Add(max)
	for _, l := range lives {
		for {
			l.stateMu.Lock()
			pending := false
			for _, c := range l.checks {
				if c.Status != types.CheckPassing && c.Output == firstCheckOutput {
					pending = true
				}
			}
			l.stateMu.Unlock()
			if !pending || time.Now().After(deadline) || ctx.Err() != nil {
				break
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
}

// runChecks runs every check of a started machine until ctx ends. Until a
// check first passes it is retried quickly (after 5 ms, doubling up to
// every 100 ms: an app usually listens within milliseconds of its start),
// so a new machine takes traffic as soon as it is ready; after that it runs
// at its interval.
func (s *Supervisor) runChecks(ctx context.Context, l *live, r *Record) {
	for _, c := range machineChecks(r.Config) {
		go func(c check) {
			passedOnce := false
			retry := firstRetry
			for {
				status, output := c.run(ctx, r.IPv4)
				if ctx.Err() != nil {
					return
				}
				l.stateMu.Lock()
				prev := l.checks[c.name]
				l.checks[c.name] = types.CheckStatus{Name: c.name, Status: status, Output: output, UpdatedAt: now()}
				l.stateMu.Unlock()
				if prev.Status != status {
					s.log.Info("check changed", "app", r.App, "machine", r.ID, "check", c.name, "status", status, "output", output)
					s.routeUpdate(l, r)
					s.notify()
				}
				wait := c.interval
				if status == types.CheckPassing {
					passedOnce = true
				} else if !passedOnce {
					wait = retry
					retry = min(2*retry, maxRetry)
				}
				select {
				case <-ctx.Done():
					return
				case <-time.After(wait):
				}
			}
		}(c)
	}
}

// firstRetry and maxRetry bound the waits between the tries of a check
// that has not passed yet.
const (
	firstRetry = 5 * time.Millisecond
	maxRetry   = 100 * time.Millisecond
)

// run performs the check once against the machine's address.
func (c check) run(ctx context.Context, ip string) (string, string) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	addr := net.JoinHostPort(ip, strconv.Itoa(c.port))
	if c.kind == "tcp" {
		conn, err := (&net.Dialer{}).DialContext(ctx, "tcp", addr)
		if err != nil {
			return types.CheckCritical, err.Error()
		}
		conn.Close()
		return types.CheckPassing, "Success"
	}
	scheme := "http"
	if c.https {
		scheme = "https"
	}
	req, err := http.NewRequestWithContext(ctx, c.method, scheme+"://"+addr+c.path, nil)
	if err != nil {
		return types.CheckCritical, err.Error()
	}
	for _, h := range c.headers {
		for _, v := range h.Values {
			req.Header.Add(h.Name, v)
		}
	}
	resp, err := checkClient.Do(req)
	if err != nil {
		return types.CheckCritical, err.Error()
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	resp.Body.Close()
	out := fmt.Sprintf("[%d] %s", resp.StatusCode, strings.TrimSpace(string(body)))
	if resp.StatusCode >= 200 && resp.StatusCode < 400 {
		return types.CheckPassing, out
	}
	return types.CheckCritical, out
}

var checkClient = &http.Client{
	Transport: &http.Transport{DisableKeepAlives: true, Proxy: nil},
	CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	},
}
