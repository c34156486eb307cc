package dashboard

// The read pages: apps, one app, one machine, a release diff, logs.

import (
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/hangar-dev/hangar/internal/types"
)

// nameRE is what an app, machine, volume or secret name in a dashboard
// path may be: the API's names never need more, and nothing else is
// passed on to it.
var nameRE = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}$`)

// pathName is the path value key of r, refused unless a plain name.
func pathName(r *http.Request, key string) (string, error) {
	v := r.PathValue(key)
	if !nameRE.MatchString(v) {
		return "", &apiError{Status: http.StatusBadRequest, Message: fmt.Sprintf("%s %q is not a valid name", key, v), Hint: "follow a link from the apps list"}
	}
	return v, nil
}

// appSummary is one row of the apps list.
type appSummary struct {
	Name     string
	Status   string
	Counts   string
	Regions  string
	Release  *types.Release // the latest release, nil before the first
	Current  int            // the latest complete release's version
	URL      string
	Machines int
}

type appsData struct {
	Query string
	Apps  []appSummary
	Total int
}

// appURL is the app's address on the proxy, as `hangar deploy` prints it.
func appURL(info types.Info, app string) string {
	if info.Domain == "" {
		return ""
	}
	host := app + "." + info.Domain
	if info.HTTPPort != "" && info.HTTPPort != "80" {
		host += ":" + info.HTTPPort
	}
	return "http://" + host
}

// appStatus is the app's status as a Fly user reads it: failed when its
// latest release failed, deploying while one runs, pending with no
// machine, suspended when none is running, else deployed.
func appStatus(ms []types.Machine, rels []types.Release) string {
	if len(rels) > 0 {
		switch rels[0].Status {
		case types.ReleaseFailed:
			return "failed"
		case types.ReleaseRunning:
			return "deploying"
		}
	}
	live := 0
	for _, m := range ms {
		switch m.State {
		case types.StateStarted, types.StateStarting, types.StateReplacing:
			return "deployed"
		case types.StateDestroyed, types.StateDestroying, types.StateReplaced:
		default:
			live++
		}
	}
	if live == 0 {
		return "pending"
	}
	return "suspended"
}

// latestFirst sorts releases newest first (the API's order is not part
// of its contract).
func latestFirst(rels []types.Release) {
	sort.Slice(rels, func(i, j int) bool { return rels[i].Version > rels[j].Version })
}

func currentVersion(rels []types.Release) int {
	for _, r := range rels {
		if r.Status == types.ReleaseComplete {
			return r.Version
		}
	}
	return 0
}

func (d *Dashboard) appsPage(w http.ResponseWriter, r *http.Request, s *session) error {
	c := d.client(r, s)
	var info types.Info
	if err := c.get("/v1/info", &info); err != nil {
		return err
	}
	var list struct {
		Apps []types.App `json:"apps"`
	}
	if err := c.get("/v1/apps", &list); err != nil {
		return err
	}
	q := strings.TrimSpace(r.URL.Query().Get("q"))
	data := appsData{Query: q, Total: len(list.Apps)}
	for _, a := range list.Apps {
		if q != "" && !strings.Contains(strings.ToLower(a.Name), strings.ToLower(q)) {
			continue
		}
		var ms []types.Machine
		if err := c.get(apiPath("apps", a.Name, "machines"), &ms); err != nil {
			return err
		}
		var rels []types.Release
		if err := c.get(apiPath("apps", a.Name, "releases"), &rels); err != nil {
			return err
		}
		latestFirst(rels)
		counts := map[string]int{}
		regions := map[string]bool{}
		for _, m := range ms {
			counts[m.State]++
			regions[m.Region] = true
		}
		sum := appSummary{Name: a.Name, Status: appStatus(ms, rels), Counts: countsText(counts), Regions: strings.Join(sortedKeys(regions), ", "),
			Current: currentVersion(rels), URL: appURL(info, a.Name), Machines: len(ms)}
		if len(rels) > 0 {
			sum.Release = &rels[0]
		}
		data.Apps = append(data.Apps, sum)
	}
	sort.Slice(data.Apps, func(i, j int) bool { return data.Apps[i].Name < data.Apps[j].Name })
	d.render(w, s, http.StatusOK, "apps", "Apps", data)
	return nil
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		if k != "" {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

// machineRow is a machine as the app page and machine page show it.
type machineRow struct {
	types.Machine
	Group    string
	Size     string
	Image    string
	Checks   []types.CheckStatus
	Passing  int
	Uptime   string
	LastExit string // "code 1 at …" of the latest exit event
	Restarts int
}

func sizeOf(cfg *types.MachineConfig) string {
	if cfg == nil {
		return ""
	}
	if g := cfg.Guest; g != nil {
		kind := g.CPUKind
		if kind == "" {
			kind = "shared"
		}
		return fmt.Sprintf("%s-cpu-%dx, %d MB", kind, g.CPUs, g.MemoryMB)
	}
	return cfg.Size
}

func rowOf(m types.Machine) machineRow {
	row := machineRow{Machine: m, Size: sizeOf(m.Config), Checks: m.Checks}
	if m.Config != nil {
		row.Group = m.Config.Metadata[types.MetaProcessGroup]
		row.Image = m.Config.Image
	}
	if row.Group == "" {
		row.Group = types.DefaultProcessGroup
	}
	if m.ImageRef.Repository != "" {
		row.Image = m.ImageRef.Repository
		if m.ImageRef.Tag != "" {
			row.Image += ":" + m.ImageRef.Tag
		}
	}
	for _, c := range m.Checks {
		if c.Status == types.CheckPassing {
			row.Passing++
		}
	}
	// Events are newest first; the latest start gives the uptime.
	var lastStart int64
	for _, e := range m.Events {
		switch e.Type {
		case "start", "launch":
			if e.Timestamp > lastStart {
				lastStart = e.Timestamp
			}
		case "exit":
			if row.LastExit == "" {
				row.LastExit = exitText(e)
			}
			if restarting, _ := exitEvent(e)["restarting"].(bool); restarting {
				row.Restarts++
			}
		}
	}
	if m.State == types.StateStarted && lastStart > 0 {
		row.Uptime = humanDuration(time.Since(time.UnixMilli(lastStart)))
	}
	return row
}

func exitEvent(e types.MachineEvent) map[string]any {
	ex, _ := e.Request["exit_event"].(map[string]any)
	return ex
}

// exitText is "exit code 1 (OOM killed), 3m ago" of an exit event.
func exitText(e types.MachineEvent) string {
	ex := exitEvent(e)
	if ex == nil {
		return ago(e.Timestamp)
	}
	s := fmt.Sprintf("exit code %v", ex["exit_code"])
	if oom, _ := ex["oom_killed"].(bool); oom {
		s += " (OOM killed)"
	}
	return s + ", " + ago(e.Timestamp)
}

// section is one part of the app page that an API call fills; when the
// call fails the part shows its error and the rest of the page stays.
type section struct {
	Err *apiError
}

func sectionErr(err error) section {
	if err == nil {
		return section{}
	}
	if ae, ok := err.(*apiError); ok {
		return section{Err: ae}
	}
	return section{Err: &apiError{Status: http.StatusInternalServerError, Message: err.Error()}}
}

type scaleRow struct {
	Group   string
	Region  string
	Size    string
	Count   int
	Running int
}

type volumeRow struct {
	types.Volume
	Snapshots []types.VolumeSnapshot
	SnapErr   *apiError
}

type appData struct {
	App      types.App
	URL      string
	Status   string
	Machines []machineRow

	Releases    []types.Release
	Current     int
	ReleasesSec section

	Scale  []scaleRow
	Groups []string

	Secrets    *types.SecretsList
	Staged     bool
	SecretsSec section

	Volumes    []volumeRow
	VolumesSec section

	Certs    []types.Certificate
	CertsSec section

	IPs    []types.IPAddress
	IPsSec section

	// Charts of the last hour (GET /v1/apps/{app}/metrics); MetricsSec
	// says why there are none (metrics off on the daemon).
	Charts     []chart
	Interval   int
	Window     string   // of the charts: one of Windows
	Windows    []string // types.MetricsWindows
	MetricsSec section
	// Hosts is set when the app's machines are on more than one host.
	Hosts bool

	Activity []activity
}

// activity is one entry of the app's recent history: a release or a
// machine event.
type activity struct {
	At      time.Time
	What    string
	Machine string // the machine of a machine event
	Outcome string
	Detail  string
}

// maxActivity is how many entries the app page shows.
const maxActivity = 40

// activityOf merges the app's releases and its machines' events, newest
// first.
func activityOf(rels []types.Release, ms []types.Machine) []activity {
	var out []activity
	for _, r := range rels {
		what := fmt.Sprintf("release v%d (%s)", r.Version, r.Strategy)
		if r.RollbackOf != 0 {
			what = fmt.Sprintf("release v%d: rollback to v%d", r.Version, r.RollbackOf)
		}
		detail := r.Description
		if r.User != "" {
			detail = strings.TrimSpace(detail + " by " + r.User)
		}
		if r.Reason != "" {
			detail += ": " + r.Reason
		}
		out = append(out, activity{At: r.CreatedAt, What: what, Outcome: r.Status, Detail: detail})
	}
	for _, m := range ms {
		for _, e := range m.Events {
			out = append(out, activity{At: time.UnixMilli(e.Timestamp), What: e.Type, Machine: m.ID, Outcome: e.Status, Detail: eventDetail(e)})
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].At.After(out[j].At) })
	if len(out) > maxActivity {
		out = out[:maxActivity]
	}
	return out
}

func (d *Dashboard) appPage(w http.ResponseWriter, r *http.Request, s *session) error {
	app, err := pathName(r, "app")
	if err != nil {
		return err
	}
	c := d.client(r, s)
	data := appData{}
	if err := c.get(apiPath("apps", app), &data.App); err != nil {
		return err
	}
	var info types.Info
	if err := c.get("/v1/info", &info); err != nil {
		return err
	}
	data.URL = appURL(info, app)
	var ms []types.Machine
	if err := c.get(apiPath("apps", app, "machines"), &ms); err != nil {
		return err
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].CreatedAt < ms[j].CreatedAt })
	scale := map[[3]string]*scaleRow{}
	groups := map[string]bool{}
	for _, m := range ms {
		row := rowOf(m)
		data.Machines = append(data.Machines, row)
		k := [3]string{row.Group, m.Region, row.Size}
		if scale[k] == nil {
			scale[k] = &scaleRow{Group: row.Group, Region: m.Region, Size: row.Size}
		}
		scale[k].Count++
		if m.State == types.StateStarted {
			scale[k].Running++
		}
		groups[row.Group] = true
	}
	for _, v := range scale {
		data.Scale = append(data.Scale, *v)
	}
	sort.Slice(data.Scale, func(i, j int) bool {
		a, b := data.Scale[i], data.Scale[j]
		return a.Group+"\x00"+a.Region+"\x00"+a.Size < b.Group+"\x00"+b.Region+"\x00"+b.Size
	})

	err = c.get(apiPath("apps", app, "releases"), &data.Releases)
	data.ReleasesSec = sectionErr(err)
	latestFirst(data.Releases)
	data.Current = currentVersion(data.Releases)
	data.Status = appStatus(ms, data.Releases)
	if len(data.Releases) > 0 {
		for g := range data.Releases[0].Machines {
			groups[g] = true
		}
	}
	if len(groups) == 0 {
		groups[types.DefaultProcessGroup] = true
	}
	data.Groups = sortedKeys(groups)

	var sl types.SecretsList
	if err := c.get(apiPath("apps", app, "secrets"), &sl); err != nil {
		data.SecretsSec = sectionErr(err)
	} else {
		data.Secrets = &sl
		data.Staged = sl.Version > sl.DeployedVersion
	}

	var vols []types.Volume
	if err := c.get(apiPath("apps", app, "volumes"), &vols); err != nil {
		data.VolumesSec = sectionErr(err)
	}
	for _, v := range vols {
		row := volumeRow{Volume: v}
		if err := c.get(apiPath("apps", app, "volumes", v.ID, "snapshots"), &row.Snapshots); err != nil {
			row.SnapErr = sectionErr(err).Err
		}
		data.Volumes = append(data.Volumes, row)
	}

	var cl types.CertsList
	err = c.get(apiPath("apps", app, "certificates"), &cl)
	data.CertsSec, data.Certs = sectionErr(err), cl.Certificates

	err = c.get(apiPath("apps", app, "ips"), &data.IPs)
	data.IPsSec = sectionErr(err)
	data.Windows, data.Window = types.MetricsWindows, "1h"
	if v := r.URL.Query().Get("window"); v != "" {
		if !slices.Contains(types.MetricsWindows, v) {
			return &apiError{Status: http.StatusBadRequest, Message: fmt.Sprintf("window=%q: one of %s", v, strings.Join(types.MetricsWindows, ", "))}
		}
		data.Window = v
	}
	var hist types.MetricsHistory
	if err := c.get(apiPath("apps", app, "metrics")+"?window="+data.Window, &hist); err != nil {
		data.MetricsSec = sectionErr(err)
	} else {
		data.Charts, data.Interval = chartsOf(hist), hist.IntervalSeconds
	}
	hostIDs := map[string]bool{}
	for _, m := range ms {
		if m.HostID != "" {
			hostIDs[m.HostID] = true
		}
	}
	data.Hosts = len(hostIDs) > 1
	data.Activity = activityOf(data.Releases, ms)

	d.render(w, s, http.StatusOK, "app", app, data)
	return nil
}

type machineData struct {
	App     string
	Machine machineRow
	Events  []types.MachineEvent
	Config  *types.MachineConfig
}

func (d *Dashboard) machinePage(w http.ResponseWriter, r *http.Request, s *session) error {
	app, err := pathName(r, "app")
	if err != nil {
		return err
	}
	id, err := pathName(r, "id")
	if err != nil {
		return err
	}
	c := d.client(r, s)
	var m types.Machine
	if err := c.get(apiPath("apps", app, "machines", id), &m); err != nil {
		return err
	}
	var events []types.MachineEvent
	if err := c.get(apiPath("apps", app, "machines", id, "events"), &events); err != nil {
		return err
	}
	if len(m.Events) == 0 {
		m.Events = events
	}
	d.render(w, s, http.StatusOK, "machine", id+" · "+app, machineData{App: app, Machine: rowOf(m), Events: events, Config: m.Config})
	return nil
}

// diffData compares two releases.
type diffData struct {
	App      string
	From, To types.Release
	Versions []int
	Lines    []diffLine
	Groups   []groupDiff
}

// groupDiff is one process group's image and size in both releases.
type groupDiff struct {
	Group              string
	FromImage, ToImage string
	FromSize, ToSize   string
}

func (d *Dashboard) diffPage(w http.ResponseWriter, r *http.Request, s *session) error {
	app, err := pathName(r, "app")
	if err != nil {
		return err
	}
	c := d.client(r, s)
	var rels []types.Release
	if err := c.get(apiPath("apps", app, "releases"), &rels); err != nil {
		return err
	}
	latestFirst(rels)
	if len(rels) == 0 {
		return &apiError{Status: http.StatusNotFound, Message: "app " + app + " has no releases yet", Hint: "deploy it first (`hangar deploy`)"}
	}
	version := func(key string, def int) (int, error) {
		v := r.URL.Query().Get(key)
		if v == "" {
			return def, nil
		}
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return 0, &apiError{Status: http.StatusBadRequest, Message: fmt.Sprintf("%s=%q is not a release number", key, v), Hint: "pick two releases on the app page"}
		}
		return n, nil
	}
	def := rels[0].Version
	defFrom := def
	if len(rels) > 1 {
		defFrom = rels[1].Version
	}
	from, err := version("from", defFrom)
	if err != nil {
		return err
	}
	to, err := version("to", def)
	if err != nil {
		return err
	}
	data := diffData{App: app}
	if err := c.get(apiPath("apps", app, "releases", strconv.Itoa(from)), &data.From); err != nil {
		return err
	}
	if err := c.get(apiPath("apps", app, "releases", strconv.Itoa(to)), &data.To); err != nil {
		return err
	}
	for _, rel := range rels {
		data.Versions = append(data.Versions, rel.Version)
	}
	data.Lines = diffLines(data.From.Config, data.To.Config)
	groups := map[string]bool{}
	for g := range data.From.Machines {
		groups[g] = true
	}
	for g := range data.To.Machines {
		groups[g] = true
	}
	for _, g := range sortedKeys(groups) {
		gd := groupDiff{Group: g}
		if mc := data.From.Machines[g]; mc != nil {
			gd.FromImage, gd.FromSize = mc.Image, sizeOf(mc)
		}
		if mc := data.To.Machines[g]; mc != nil {
			gd.ToImage, gd.ToSize = mc.Image, sizeOf(mc)
		}
		data.Groups = append(data.Groups, gd)
	}
	d.render(w, s, http.StatusOK, "diff", fmt.Sprintf("v%d → v%d · %s", from, to, app), data)
	return nil
}

type logsData struct {
	App          string
	Machine      string
	Lines        int
	Choices      []int
	Since        string // "" (the last Lines) or one of SinceChoices
	SinceChoices []string
	Machines     []string
	Log          []types.LogLine
}

// logSinceChoices are the windows of time the logs page offers (the API's
// since= forms): with one, the page shows the window's lines, at most
// Lines of them.
var logSinceChoices = []string{"15m", "1h", "6h", "24h", "7d"}

// logLineChoices are the history lengths the logs page offers.
var logLineChoices = []int{100, 200, 1000, 5000}

// logsPage shows the last lines (no script needed); app.js then follows
// the stream below it.
func (d *Dashboard) logsPage(w http.ResponseWriter, r *http.Request, s *session) error {
	app, err := pathName(r, "app")
	if err != nil {
		return err
	}
	data := logsData{App: app, Lines: 200, Choices: logLineChoices, SinceChoices: logSinceChoices}
	if v := r.URL.Query().Get("lines"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 5000 {
			return &apiError{Status: http.StatusBadRequest, Message: fmt.Sprintf("lines=%q: a number from 1 to 5000", v)}
		}
		data.Lines = n
	}
	if v := r.URL.Query().Get("since"); v != "" {
		if !slices.Contains(logSinceChoices, v) {
			return &apiError{Status: http.StatusBadRequest, Message: fmt.Sprintf("since=%q: one of %s", v, strings.Join(logSinceChoices, ", "))}
		}
		data.Since = v
	}
	if m := r.URL.Query().Get("machine"); m != "" {
		if !nameRE.MatchString(m) {
			return &apiError{Status: http.StatusBadRequest, Message: fmt.Sprintf("machine %q is not a machine id", m)}
		}
		data.Machine = m
	}
	c := d.client(r, s)
	var ms []types.Machine
	if err := c.get(apiPath("apps", app, "machines"), &ms); err != nil {
		return err
	}
	for _, m := range ms {
		data.Machines = append(data.Machines, m.ID)
	}
	path := apiPath("apps", app, "logs") + "?lines=" + strconv.Itoa(data.Lines)
	if data.Since != "" {
		path += "&since=" + data.Since
	}
	if data.Machine != "" {
		path += "&machine=" + data.Machine
	}
	code, body, err := c.call(http.MethodGet, path, nil)
	if err != nil {
		return err
	}
	if code != http.StatusOK {
		return errorOf(code, body)
	}
	data.Log = parseLogLines(body)
	d.render(w, s, http.StatusOK, "logs", "Logs · "+app, data)
	return nil
}

// logStream passes the API's log stream (NDJSON, follow=true) through to
// the browser as it is written; app.js reads it with fetch.
func (d *Dashboard) logStream(w http.ResponseWriter, r *http.Request, s *session) error {
	app, err := pathName(r, "app")
	if err != nil {
		return err
	}
	path := apiPath("apps", app, "logs") + "?follow=true&lines=0"
	if m := r.URL.Query().Get("machine"); m != "" {
		if !nameRE.MatchString(m) {
			return &apiError{Status: http.StatusBadRequest, Message: fmt.Sprintf("machine %q is not a machine id", m)}
		}
		path += "&machine=" + m
	}
	c := d.client(r, s)
	req, err := c.request(r.Context(), http.MethodGet, path, nil)
	if err != nil {
		return err
	}
	d.api.ServeHTTP(w, req)
	return nil
}

func parseLogLines(body []byte) []types.LogLine {
	var out []types.LogLine
	for _, l := range strings.Split(string(body), "\n") {
		if strings.TrimSpace(l) == "" {
			continue
		}
		var ll types.LogLine
		if err := json.Unmarshal([]byte(l), &ll); err == nil {
			out = append(out, ll)
		}
	}
	return out
}
