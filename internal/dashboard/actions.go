package dashboard

// The actions: each a POST form (CSRF-checked by serve) that calls the
// API endpoint the CLI uses, then shows its outcome (and a release's
// progress steps) on the page it redirects to.

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/hangar-dev/hangar/internal/types"
)

// ndjson is the type of streamed progress.
const ndjson = "application/x-ndjson"

// wantsLive reports whether the browser's script asked to see a release
// action's progress as it happens (app.js sends Accept: application/x-ndjson).
func wantsLive(r *http.Request) bool { return r.Header.Get("Accept") == ndjson }

// startLive begins the NDJSON answer of a live action, once.
func startLive(w http.ResponseWriter) {
	if w.Header().Get("Content-Type") == ndjson {
		return
	}
	w.Header().Set("Content-Type", ndjson)
	w.WriteHeader(http.StatusOK)
}

func flush(w http.ResponseWriter) {
	if f, ok := w.(http.Flusher); ok {
		f.Flush()
	}
}

// liveDone is the last line of a live action: where the script goes next
// (the page that shows the outcome).
type liveDone struct {
	Done struct {
		Next    string `json:"next"`
		OK      bool   `json:"ok"`
		Message string `json:"message"`
	} `json:"done"`
}

// done records an action's outcome in the session and sends the browser
// to back (POST, redirect, GET: a reload does not repeat the action); a
// live action's script is told where to go in the stream's last line.
func (d *Dashboard) done(w http.ResponseWriter, r *http.Request, s *session, back string, err error, ok string, events []string) error {
	f := &flash{OK: err == nil, Message: ok, Events: events}
	if err != nil {
		ae, isAPI := err.(*apiError)
		if !isAPI {
			if !wantsLive(r) {
				return err
			}
			d.log.Error("dashboard action failed", "path", r.URL.Path, "err", err)
			ae = &apiError{Status: http.StatusInternalServerError, Message: err.Error(), Hint: "see the daemon's log"}
		}
		if !wantsLive(r) && (ae.Status == http.StatusUnauthorized || ae.Status == http.StatusForbidden) {
			// Shown as the answer itself: the session ends (401), or
			// the token may not act on this app (403).
			return ae
		}
		if ae.Status == http.StatusUnauthorized {
			d.sessions.end(s)
			back = "/login"
		}
		f.Message, f.Hint = ae.Message, ae.Hint
	}
	s.setFlash(f)
	if wantsLive(r) {
		var l liveDone
		l.Done.Next, l.Done.OK, l.Done.Message = back, f.OK, f.Message
		startLive(w)
		_ = json.NewEncoder(w).Encode(l)
		flush(w)
		return nil
	}
	http.Redirect(w, r, back, http.StatusSeeOther)
	return nil
}

func appBack(app string) string { return "/apps/" + app }

// machineActions are the machine operations the dashboard offers, each
// the API's POST .../machines/{id}/{action}.
var machineActions = map[string]string{"start": "started", "stop": "stopped", "restart": "restarted", "suspend": "suspended"}

func (d *Dashboard) machineAction(w http.ResponseWriter, r *http.Request, s *session) error {
	app, err := pathName(r, "app")
	if err != nil {
		return err
	}
	id, err := pathName(r, "id")
	if err != nil {
		return err
	}
	action := r.PathValue("action")
	did, ok := machineActions[action]
	if !ok {
		return &apiError{Status: http.StatusNotFound, Message: fmt.Sprintf("no machine action %q", action), Hint: "the dashboard can start, stop, restart and suspend a machine"}
	}
	back := appBack(app)
	if r.PostFormValue("back") == "machine" {
		back += "/machines/" + id
	}
	c := d.client(r, s)
	err = c.do(http.MethodPost, apiPath("apps", app, "machines", id, action), nil, nil)
	msg := fmt.Sprintf("Machine %s %s.", id, did)
	if err == nil {
		var m types.Machine
		if c.get(apiPath("apps", app, "machines", id), &m) == nil {
			msg = fmt.Sprintf("Machine %s: %s done, it is now %s.", id, action, m.State)
		}
	}
	return d.done(w, r, s, back, err, msg, nil)
}

func (d *Dashboard) scale(w http.ResponseWriter, r *http.Request, s *session) error {
	app, err := pathName(r, "app")
	if err != nil {
		return err
	}
	n, err := strconv.Atoi(strings.TrimSpace(r.PostFormValue("count")))
	if err != nil || n < 0 {
		return d.done(w, r, s, appBack(app), &apiError{Status: http.StatusBadRequest, Message: fmt.Sprintf("count %q is not a number of machines", r.PostFormValue("count")), Hint: "enter 0 or more"}, "", nil)
	}
	req := types.ScaleRequest{ProcessGroup: r.PostFormValue("group"), Count: &n}
	rel, events, err := d.liveClient(w, r, s).release(apiPath("apps", app, "scale"), req)
	group := req.ProcessGroup
	if group == "" {
		group = types.DefaultProcessGroup
	}
	msg := fmt.Sprintf("Scaled %s to %d machine(s)", group, n)
	if rel != nil {
		msg += fmt.Sprintf(" (release v%d)", rel.Version)
	}
	return d.done(w, r, s, appBack(app), err, msg+".", events)
}

func (d *Dashboard) rollback(w http.ResponseWriter, r *http.Request, s *session) error {
	app, err := pathName(r, "app")
	if err != nil {
		return err
	}
	v, err := strconv.Atoi(r.PathValue("version"))
	if err != nil || v < 1 {
		return &apiError{Status: http.StatusBadRequest, Message: fmt.Sprintf("release %q is not a release number", r.PathValue("version"))}
	}
	rel, events, err := d.liveClient(w, r, s).release(apiPath("apps", app, "releases", strconv.Itoa(v), "rollback"), nil)
	msg := fmt.Sprintf("Rolled back to v%d", v)
	if rel != nil {
		msg += fmt.Sprintf(" as release v%d", rel.Version)
	}
	return d.done(w, r, s, appBack(app), err, msg+".", events)
}

// secretsDeploy rolls the latest secrets out to the app's machines, as
// `hangar secrets set` does without --stage.
func (d *Dashboard) secretsDeploy(w http.ResponseWriter, r *http.Request, s *session, app string) ([]string, error) {
	_, events, err := d.liveClient(w, r, s).release(apiPath("apps", app, "secrets_deploy"), nil)
	return events, err
}

func (d *Dashboard) setSecret(w http.ResponseWriter, r *http.Request, s *session) error {
	app, err := pathName(r, "app")
	if err != nil {
		return err
	}
	name := strings.TrimSpace(r.PostFormValue("name"))
	value := r.PostFormValue("value")
	if name == "" {
		return d.done(w, r, s, appBack(app), &apiError{Status: http.StatusBadRequest, Message: "a secret needs a name", Hint: "enter a name like DATABASE_URL"}, "", nil)
	}
	body := map[string]map[string]*string{"values": {name: &value}}
	if err := d.client(r, s).do(http.MethodPost, apiPath("apps", app, "secrets"), body, nil); err != nil {
		return d.done(w, r, s, appBack(app), err, "", nil)
	}
	if r.PostFormValue("stage") != "" {
		return d.done(w, r, s, appBack(app), nil, fmt.Sprintf("Secret %s staged: deploy the secrets to give it to the machines.", name), nil)
	}
	events, err := d.secretsDeploy(w, r, s, app)
	return d.done(w, r, s, appBack(app), err, fmt.Sprintf("Secret %s set and deployed.", name), events)
}

func (d *Dashboard) unsetSecret(w http.ResponseWriter, r *http.Request, s *session) error {
	app, err := pathName(r, "app")
	if err != nil {
		return err
	}
	name, err := pathName(r, "name")
	if err != nil {
		return err
	}
	if err := d.client(r, s).do(http.MethodDelete, apiPath("apps", app, "secrets", name), nil, nil); err != nil {
		return d.done(w, r, s, appBack(app), err, "", nil)
	}
	if r.PostFormValue("stage") != "" {
		return d.done(w, r, s, appBack(app), nil, fmt.Sprintf("Secret %s unset (staged): deploy the secrets to take it from the machines.", name), nil)
	}
	events, err := d.secretsDeploy(w, r, s, app)
	return d.done(w, r, s, appBack(app), err, fmt.Sprintf("Secret %s unset and deployed.", name), events)
}

func (d *Dashboard) deploySecrets(w http.ResponseWriter, r *http.Request, s *session) error {
	app, err := pathName(r, "app")
	if err != nil {
		return err
	}
	events, err := d.secretsDeploy(w, r, s, app)
	return d.done(w, r, s, appBack(app), err, "Secrets deployed.", events)
}

func (d *Dashboard) snapshotVolume(w http.ResponseWriter, r *http.Request, s *session) error {
	app, err := pathName(r, "app")
	if err != nil {
		return err
	}
	vol, err := pathName(r, "volume")
	if err != nil {
		return err
	}
	var snap types.VolumeSnapshot
	err = d.client(r, s).do(http.MethodPost, apiPath("apps", app, "volumes", vol, "snapshots"), nil, &snap)
	return d.done(w, r, s, appBack(app), err, fmt.Sprintf("Snapshot %s of volume %s taken.", snap.ID, vol), nil)
}

// deleteApp destroys the app, its machines and its records once the form
// repeats the app's name.
func (d *Dashboard) deleteApp(w http.ResponseWriter, r *http.Request, s *session) error {
	app, err := pathName(r, "app")
	if err != nil {
		return err
	}
	if strings.TrimSpace(r.PostFormValue("confirm")) != app {
		return d.done(w, r, s, appBack(app), &apiError{Status: http.StatusBadRequest, Message: fmt.Sprintf("app %s was not deleted: the name typed does not match", app),
			Hint: "type the app's name exactly to confirm"}, "", nil)
	}
	if err := d.client(r, s).do(http.MethodDelete, apiPath("apps", app), nil, nil); err != nil {
		return d.done(w, r, s, appBack(app), err, "", nil)
	}
	return d.done(w, r, s, "/", nil, fmt.Sprintf("App %s deleted, with its machines.", app), nil)
}
