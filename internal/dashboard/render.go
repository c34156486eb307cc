package dashboard

// Rendering: one html/template set per page (the layout plus the page),
// parsed once from the embedded templates; the error page; helpers the
// templates call.

import (
	"bytes"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/hangar-dev/hangar/internal/types"
)

// pageTemplate is one page's parsed templates.
type pageTemplate struct{ t *template.Template }

// pageNames are the page templates under templates/ (besides layout.html).
var pageNames = []string{"login", "apps", "app", "machine", "diff", "logs", "error"}

var funcs = template.FuncMap{
	"ago":         ago,
	"shortTime":   shortTime,
	"short":       shortDigest,
	"join":        strings.Join,
	"dict":        dict,
	"actionsFor":  actionsFor,
	"eventDetail": eventDetail,
	"stateClass": func(s string) string {
		switch s {
		case "started", "passing", "complete", "deployed", "Ready", "created":
			return "ok"
		case "failed", "critical", "Failed", "destroyed":
			return "bad"
		case "stopped", "suspended", "replaced":
			return "off"
		}
		return "busy"
	},
}

func parsePages() map[string]*pageTemplate {
	out := map[string]*pageTemplate{}
	for _, name := range pageNames {
		t := template.Must(template.New("layout.html").Funcs(funcs).ParseFS(assets, "templates/layout.html", "templates/partials.html", "templates/"+name+".html"))
		out[name] = &pageTemplate{t: t}
	}
	return out
}

// dict makes a map of its key, value arguments, to pass several values
// to a template.
func dict(kv ...any) (map[string]any, error) {
	if len(kv)%2 != 0 {
		return nil, errors.New("dict: odd number of arguments")
	}
	m := make(map[string]any, len(kv)/2)
	for i := 0; i < len(kv); i += 2 {
		k, ok := kv[i].(string)
		if !ok {
			return nil, fmt.Errorf("dict: key %v is not a string", kv[i])
		}
		m[k] = kv[i+1]
	}
	return m, nil
}

// actionsFor are the machine actions that make sense in a state.
func actionsFor(state string) []string {
	switch state {
	case "started":
		return []string{"stop", "restart", "suspend"}
	case "stopped", "created", "suspended", "failed":
		return []string{"start"}
	}
	return nil
}

// eventDetail is what a machine event's request says worth showing: an
// exit's code, signal and OOM kill, an error.
func eventDetail(e types.MachineEvent) string {
	var parts []string
	if ex := exitEvent(e); ex != nil {
		parts = append(parts, fmt.Sprintf("exit code %v", ex["exit_code"]))
		if sig, _ := ex["signal"].(float64); sig != 0 {
			parts = append(parts, fmt.Sprintf("signal %v", sig))
		}
		if oom, _ := ex["oom_killed"].(bool); oom {
			parts = append(parts, "OOM killed")
		}
		if r, _ := ex["restarting"].(bool); r {
			parts = append(parts, "restarting")
		}
	}
	if msg, _ := e.Request["error"].(string); msg != "" {
		parts = append(parts, msg)
	}
	return strings.Join(parts, ", ")
}

// page is what every page template gets.
type page struct {
	Title string
	// CSRF is the session's token for the page's forms ("" signed out).
	CSRF     string
	SignedIn bool
	Flash    *flash
	Data     any
}

// render writes a page with status code.
func (d *Dashboard) render(w http.ResponseWriter, s *session, code int, name, title string, data any) {
	p := page{Title: title, Data: data}
	if s != nil {
		p.CSRF, p.SignedIn, p.Flash = s.csrf, true, s.takeFlash()
	}
	var buf bytes.Buffer
	if err := d.pages[name].t.Execute(&buf, p); err != nil {
		d.log.Error("render dashboard page", "page", name, "err", err)
		http.Error(w, "the dashboard could not render this page: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(code)
	_, _ = w.Write(buf.Bytes())
}

// renderError shows err as a page: an API error with its message and
// hint and the API's status, anything else as a 500. A 401 from the API
// means the session's token is gone: the session ends too.
func (d *Dashboard) renderError(w http.ResponseWriter, r *http.Request, s *session, err error) {
	var ae *apiError
	if !errors.As(err, &ae) {
		d.log.Error("dashboard request failed", "method", r.Method, "path", r.URL.Path, "err", err)
		ae = &apiError{Status: http.StatusInternalServerError, Message: err.Error(), Hint: "see the daemon's log"}
	}
	if ae.Status == http.StatusUnauthorized && s != nil {
		d.sessions.end(s)
		setCookie(w, r, sessionCookie, "", "/", -1)
		s = nil
	}
	d.render(w, s, ae.Status, "error", http.StatusText(ae.Status), ae)
}

// ago is how long ago an RFC 3339 time (or a time.Time, or unix
// milliseconds) was, in a short human form.
func ago(v any) string {
	var t time.Time
	switch x := v.(type) {
	case string:
		p, err := time.Parse(time.RFC3339Nano, x)
		if err != nil {
			return x
		}
		t = p
	case time.Time:
		t = x
	case *time.Time:
		if x == nil {
			return ""
		}
		t = *x
	case int64:
		t = time.UnixMilli(x)
	default:
		return fmt.Sprint(v)
	}
	if t.IsZero() {
		return ""
	}
	return humanDuration(time.Since(t)) + " ago"
}

func humanDuration(d time.Duration) string {
	switch {
	case d < 0:
		return "0s"
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh%02dm", int(d.Hours()), int(d.Minutes())%60)
	}
	return fmt.Sprintf("%dd", int(d.Hours()/24))
}

// shortTime is a time as "2006-01-02 15:04:05 UTC".
func shortTime(v any) string {
	switch x := v.(type) {
	case string:
		p, err := time.Parse(time.RFC3339Nano, x)
		if err != nil {
			return x
		}
		return p.UTC().Format("2006-01-02 15:04:05 UTC")
	case time.Time:
		if x.IsZero() {
			return ""
		}
		return x.UTC().Format("2006-01-02 15:04:05 UTC")
	case *time.Time:
		if x == nil {
			return ""
		}
		return x.UTC().Format("2006-01-02 15:04:05 UTC")
	case int64:
		return time.UnixMilli(x).UTC().Format("2006-01-02 15:04:05 UTC")
	}
	return fmt.Sprint(v)
}

// shortDigest is "sha256:0123456789ab" for a long digest.
func shortDigest(s string) string {
	algo, hex, ok := strings.Cut(s, ":")
	if ok && len(hex) > 12 {
		return algo + ":" + hex[:12]
	}
	if !ok && len(s) > 16 {
		return s[:16]
	}
	return s
}

// countsText is "2 started, 1 stopped" with the states sorted.
func countsText(counts map[string]int) string {
	if len(counts) == 0 {
		return "none"
	}
	keys := make([]string, 0, len(counts))
	for k := range counts {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%d %s", counts[k], k)
	}
	return strings.Join(parts, ", ")
}
