package importer

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/google/shlex"
)

// parseExecCheck reads an exec health check — compose's test, ECS's
// healthCheck.command, copilot's healthcheck.command — and finds the local
// HTTP URL it probes. A plain curl or wget gives an exact probe (how == "");
// a URL found in some other command gives an approximate one, with how
// saying why. env resolves $PORT-style references; self lists other names
// of the machine itself (a compose service probing its own service name).
func parseExecCheck(cmd []string, env map[string]string, self ...string) (p probe, how string, err error) {
	if len(cmd) == 0 {
		return p, "", errors.New("empty command")
	}
	var words []string
	switch strings.ToUpper(cmd[0]) {
	case "NONE":
		return p, "", errors.New("health check disabled")
	case "CMD-SHELL":
		words, err = shellWords(strings.Join(cmd[1:], " "))
	case "CMD":
		words = cmd[1:]
	default:
		if len(cmd) == 1 {
			words, err = shellWords(cmd[0])
		} else {
			words = cmd
		}
	}
	if err != nil {
		return p, "", fmt.Errorf("cannot split command: %w", err)
	}
	words, piped := firstCommand(words)
	// sh -c "curl ..."
	for len(words) >= 3 && isShell(words[0]) && words[1] == "-c" {
		inner, err := shellWords(words[2])
		if err != nil {
			return p, "", fmt.Errorf("cannot split command: %w", err)
		}
		words, piped = firstCommand(inner)
	}
	// Leading VAR=value assignments: `http_proxy='' wget ...`.
	for len(words) > 0 && assignRE.MatchString(words[0]) {
		words = words[1:]
	}
	if len(words) == 0 {
		return p, "", errors.New("empty command")
	}
	prog := path.Base(words[0])
	switch prog {
	case "curl", "wget":
		raw, method, perr := probeArgs(prog, words[1:])
		if perr != nil {
			return p, "", perr
		}
		p, err = localProbe(raw, env, self)
		p.Method = method
		if err == nil && piped {
			return p, fmt.Sprintf("the %s output was piped into another command (e.g. grep for a body); only the HTTP status is checked now", prog), nil
		}
		return p, "", err
	}
	// Some other command: look for a local URL anywhere in it.
	all := strings.Join(cmd, " ")
	for _, m := range urlRE.FindAllString(all, -1) {
		m = strings.TrimRight(m, `'"),;|&`)
		if q, err := localProbe(m, env, self); err == nil {
			return q, fmt.Sprintf("health check command %q became an HTTP GET of %s; the command's own logic (status codes, body checks) is not kept", prog, m), nil
		}
	}
	return p, "", fmt.Errorf("%s is not an HTTP probe", prog)
}

var assignRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*=`)

func shellWords(s string) ([]string, error) {
	// shlex treats # as a comment only at word start; good enough here.
	return shlex.Split(s)
}

func isShell(w string) bool {
	switch path.Base(w) {
	case "sh", "bash", "ash", "dash", "zsh":
		return true
	}
	return false
}

// firstCommand cuts words at the first shell operator: `curl ... || exit 1`.
// piped is true when the output went into a pipe.
func firstCommand(words []string) (cmd []string, piped bool) {
	for i, w := range words {
		switch w {
		case "||", "&&", ";", ">", ">>", "2>&1", "&", ">/dev/null", "2>/dev/null":
			return words[:i], false
		case "|":
			return words[:i], true
		}
		if strings.HasSuffix(w, ";") {
			out := append([]string{}, words[:i]...)
			if t := strings.TrimSuffix(w, ";"); t != "" {
				out = append(out, t)
			}
			return out, false
		}
	}
	return words, false
}

// Flags of curl and wget that take a separate value.
var probeValueFlags = map[string]bool{
	"-X": true, "--request": true, "-H": true, "--header": true, "-o": true, "--output": true,
	"-m": true, "--max-time": true, "--connect-timeout": true, "-u": true, "--user": true,
	"-w": true, "--write-out": true, "--retry": true, "-A": true, "--user-agent": true,
	"-d": true, "--data": true, "-e": true, "--referer": true, "--resolve": true, "--cacert": true,
	"-O": true, "-T": true, "-t": true, "--tries": true, "-U": true, "--timeout": true,
	"--retry-delay": true, "--retry-max-time": true, "--unix-socket": true, "-b": true, "--cookie": true,
	"--output-document": true, "--post-data": true, "--method": true,
	"--noproxy": true, "--proxy": true, "-x": true, "--interface": true, "--cert": true, "-E": true,
	"--key": true, "--data-raw": true, "--data-binary": true, "-F": true, "--form": true, "-c": true,
	"--cookie-jar": true, "-K": true, "--config": true, "--limit-rate": true, "-y": true, "-Y": true,
	"--speed-time": true, "--speed-limit": true, "--max-redirs": true, "--dns-servers": true,
	"--waitretry": true, "--wait": true, "--bind-address": true, "--ca-certificate": true,
	"--certificate": true, "--private-key": true, "--http-user": true, "--http-password": true,
}

func probeArgs(prog string, args []string) (rawURL, method string, err error) {
	method = "GET"
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "-X" || a == "--request" || a == "--method":
			if i+1 < len(args) {
				method = strings.ToUpper(args[i+1])
			}
			i++
		case strings.HasPrefix(a, "-X") && len(a) > 2:
			method = strings.ToUpper(a[2:])
		case a == "-I" || a == "--head":
			method = "HEAD"
		case a == "--unix-socket":
			return "", "", errors.New("probes a unix socket, which the platform cannot reach")
		case probeValueFlags[a]:
			i++
		case strings.HasPrefix(a, "-"):
			// -f, -s, -q, --spider, -qO-, --fail, --method=GET ...
			if v, ok := strings.CutPrefix(a, "--method="); ok {
				method = strings.ToUpper(v)
			}
		case rawURL == "" || (!looksURL(rawURL) && looksURL(a)):
			rawURL = a
		}
	}
	if rawURL == "" {
		return "", "", fmt.Errorf("%s names no URL", prog)
	}
	return rawURL, method, nil
}

// looksURL says whether a curl/wget argument names the probed URL.
func looksURL(a string) bool {
	if strings.Contains(a, "://") {
		return true
	}
	for _, h := range []string{"localhost", "127.0.0.1", "0.0.0.0", "[::1]"} {
		if strings.HasPrefix(a, h) {
			return true
		}
	}
	return false
}

var envRefRE = regexp.MustCompile(`\$\{?([A-Za-z_][A-Za-z0-9_]*)(:-([^}]*))?\}?`)

// localProbe parses a probed URL, which must point at the machine itself.
func localProbe(raw string, env map[string]string, self []string) (probe, error) {
	var p probe
	expanded := envRefRE.ReplaceAllStringFunc(raw, func(m string) string {
		sub := envRefRE.FindStringSubmatch(m)
		if v, ok := env[sub[1]]; ok && v != "" {
			return v
		}
		if sub[3] != "" {
			return sub[3]
		}
		return m
	})
	if strings.Contains(expanded, "$") {
		return p, fmt.Errorf("URL %s uses a variable that is not set in the source", raw)
	}
	if !strings.Contains(expanded, "://") {
		expanded = "http://" + expanded
	}
	u, err := url.Parse(expanded)
	if err != nil {
		return p, fmt.Errorf("bad URL %q: %w", raw, err)
	}
	host := u.Hostname()
	switch host {
	case "localhost", "127.0.0.1", "0.0.0.0", "::1", "::":
	default:
		if slices.Contains(self, host) {
			break
		}
		if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
			return p, fmt.Errorf("URL %s probes host %q, not the machine itself", raw, host)
		}
	}
	p.Scheme = u.Scheme
	if p.Scheme != "http" && p.Scheme != "https" {
		return p, fmt.Errorf("URL %s is not http or https", raw)
	}
	if ps := u.Port(); ps != "" {
		n, err := strconv.Atoi(ps)
		if err != nil || n < 1 || n > 65535 {
			return p, fmt.Errorf("URL %s has a bad port", raw)
		}
		p.Port = n
	} else if p.Scheme == "https" {
		p.Port = 443
	} else {
		p.Port = 80
	}
	p.Path = u.EscapedPath()
	if p.Path == "" {
		p.Path = "/"
	}
	if u.RawQuery != "" {
		p.Path += "?" + u.RawQuery
	}
	return p, nil
}
