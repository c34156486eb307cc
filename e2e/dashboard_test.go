package e2e

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/hangar-dev/hangar/internal/harness"
	"github.com/hangar-dev/hangar/internal/types"
)

// chromiumPath is the Chromium to drive, or "" when there is none.
func chromiumPath() string {
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// TestDashboardInBrowser drives the web dashboard in headless Chromium
// against a real daemon with the example app deployed: sign in, see the
// app and its machine with its check, stop and start the machine from
// the page and see its state change, read a log line the app writes while
// the logs page is open, scale from 1 to 2 and see the new machine's
// check pass, roll back, and sign out. Each page's screenshot is saved in
// the test's artifact directory (go test -artifacts keeps them).
func TestDashboardInBrowser(t *testing.T) {
	harness.RequireRoot(t)
	chromium := chromiumPath()
	if chromium == "" {
		t.Skip("no Chromium on this machine (apt-get install chromium): the browser test needs it")
	}
	bin := harness.BuildBinary(t)
	d := harness.StartDaemon(t, bin)
	if out, err := d.Hangar("deploy", "-c", "examples/hello/fly.toml"); err != nil {
		t.Fatalf("deploy: %v\n%s", err, out)
	}
	m := d.Machines("hello")[0]
	base := d.API // "http://host:port"

	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(chromium),
		chromedp.NoSandbox, // root in CI
		chromedp.DisableGPU, chromedp.WindowSize(1280, 1000))
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelAlloc()
	ctx, cancelCtx := chromedp.NewContext(actx)
	defer cancelCtx()
	ctx, cancelTimeout := context.WithTimeout(ctx, 3*time.Minute)
	defer cancelTimeout()

	// Confirmations are accepted; console errors and uncaught exceptions
	// are collected (a CSP violation is one).
	var (
		mu       sync.Mutex
		problems []string
	)
	console := chromedp.Console(ctx)
	go func() {
		for m, err := range console {
			if err != nil {
				return
			}
			if m.Type == chromedp.ConsoleError || m.IsException() {
				mu.Lock()
				problems = append(problems, m.String())
				mu.Unlock()
			}
		}
	}()
	dialogs := chromedp.Events(ctx, page.JavascriptDialogOpening)
	go func() {
		for _, err := range dialogs {
			if err != nil {
				return
			}
			_, _ = chromedp.Call(ctx, page.HandleJavaScriptDialog, page.HandleJavaScriptDialogParams{Accept: true})
		}
	}()

	shots := t.ArtifactDir()
	shot := func(name string) {
		t.Helper()
		buf, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatalf("screenshot %s: %v", name, err)
		}
		p := filepath.Join(shots, name+".png")
		if err := os.WriteFile(p, buf, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("screenshot %s", p)
	}
	fail := func(what string, err error) {
		t.Helper()
		html, _ := chromedp.Run(ctx, chromedp.OuterHTML(chromedp.CSS("main")))
		if len(html) > 4000 {
			html = html[:4000] + "…"
		}
		t.Fatalf("%s: %v\npage:\n%s", what, err, html)
	}
	do := func(what string, steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(ctx, steps...); err != nil {
			fail(what, err)
		}
	}
	text := func(sel string) string {
		t.Helper()
		s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
		if err != nil {
			fail("read "+sel, err)
		}
		return s
	}
	location := func() string {
		t.Helper()
		u, err := chromedp.Run(ctx, chromedp.Location())
		if err != nil {
			fail("read the location", err)
		}
		return u
	}
	login := chromedp.CSS("#token")

	// Not signed in: the dashboard sends the browser to the login.
	do("open the dashboard", chromedp.Navigate(base+"/"), chromedp.WaitVisible(login))
	shot("login")
	if u := location(); !strings.HasSuffix(u, "/login") {
		t.Fatalf("not signed in, / went to %s; want /login", u)
	}
	do("sign in", chromedp.SendKeys(login, d.Token), chromedp.Submit(login), chromedp.WaitVisible(chromedp.CSS(`a[href="/apps/hello"]`)))
	shot("apps")
	html, err := chromedp.Run(ctx, chromedp.OuterHTML(chromedp.CSS("html")))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(html, d.Token) {
		t.Fatal("the apps page holds the token")
	}
	if !strings.Contains(html, "1 started") {
		t.Errorf("apps list does not count the started machine:\n%s", html)
	}

	state := chromedp.CSS(fmt.Sprintf(`#m-%s [data-state]`, m.ID))
	do("open the app", chromedp.Click(chromedp.CSS(`a[href="/apps/hello"]`)), chromedp.WaitVisible(state))
	// The check passes within its interval; reload until the page says so.
	harness.Poll(t, "the app page shows the machine's check passing", 30*time.Second, func() (bool, string) {
		do("reload the app page", chromedp.Navigate(base+"/apps/hello"), chromedp.WaitVisible(state))
		got := text(fmt.Sprintf("#m-%s td:nth-of-type(4)", m.ID))
		return strings.Contains(got, "1/1 passing"), got
	})
	shot("app")
	if a, err := chromedp.Run(ctx, chromedp.AttributeValue(state, "data-state")); err != nil || a.Value != types.StateStarted {
		t.Fatalf("machine state on the page: %q (%v), want started", a.Value, err)
	}

	// On a phone-width screen the page does not scroll sideways (wide
	// tables scroll in their own box).
	do("phone width", chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile), chromedp.Navigate(base+"/apps/hello"), chromedp.WaitVisible(state))
	if fits, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`document.documentElement.scrollWidth <= 390`)); err != nil || !fits {
		t.Errorf("the app page is wider than a 390 px screen (%v)", err)
	}
	shot("app-phone")
	do("desktop width", chromedp.EmulateViewport(1280, 1000), chromedp.Navigate(base+"/apps/hello"), chromedp.WaitVisible(state))

	// Stop and start from the machine page.
	do("open the machine", chromedp.Click(chromedp.CSS(fmt.Sprintf(`a[href="/apps/hello/machines/%s"]`, m.ID))), chromedp.WaitVisible(chromedp.CSS("#machine-state")))
	shot("machine")
	do("stop the machine", chromedp.Click(chromedp.CSS(`form[action$="/stop"] button`)), chromedp.WaitVisible(chromedp.CSS(`#machine-state[data-state="stopped"]`)))
	shot("machine-stopped")
	if ms := d.Machines("hello"); ms[0].State != types.StateStopped {
		t.Fatalf("after the stop from the page the API says %s", ms[0].State)
	}
	if got := text(".flash"); !strings.Contains(got, "stop done, it is now stopped") {
		t.Errorf("the page after the stop says %q", got)
	}
	do("start the machine", chromedp.Click(chromedp.CSS(`form[action$="/start"] button`)), chromedp.WaitVisible(chromedp.CSS(`#machine-state[data-state="started"]`)))
	shot("machine-started")
	if ms := d.Machines("hello"); ms[0].State != types.StateStarted {
		t.Fatalf("after the start from the page the API says %s", ms[0].State)
	}

	// The logs page follows the stream: a restart through the API makes
	// the app write its start line again, and it appears without a reload.
	countListening := func() int {
		t.Helper()
		n, err := chromedp.Run(ctx, chromedp.Evaluate[int](`Array.from(document.querySelectorAll("#log-lines tr")).filter(function (tr) { return tr.textContent.indexOf("hello listening") >= 0 }).length`))
		if err != nil {
			fail("count the start lines", err)
		}
		return n
	}
	do("open the logs", chromedp.Navigate(base+"/apps/hello/logs"), chromedp.WaitVisible(chromedp.CSS("#log-status")))
	harness.Poll(t, "the live tail connects", 10*time.Second, func() (bool, string) {
		got := text("#log-status")
		return got == "Live", got
	})
	before := countListening()
	if code, body := d.Call("POST", "/v1/apps/hello/machines/"+m.ID+"/restart", nil); code != http.StatusOK {
		t.Fatalf("restart through the API: %d %s", code, body)
	}
	harness.Poll(t, "the restart's log line streams into the open logs page", 20*time.Second, func() (bool, string) {
		n := countListening()
		return n > before, fmt.Sprintf("%d start lines (had %d)", n, before)
	})
	shot("logs")

	// Scale from 1 to 2 on the app page (the script shows the steps as
	// they happen, then the page with the outcome): the new machine shows
	// up with its check passing.
	do("open the app page", chromedp.Navigate(base+"/apps/hello"), chromedp.WaitVisible(chromedp.CSS("#scale-count")))
	// Note (in the tab's sessionStorage, which outlives the navigation
	// that follows) whether the script showed the steps.
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`new MutationObserver(function () {
		if (document.querySelector(".progress")) sessionStorage.setItem("sawProgress", "1");
	}).observe(document.body, { childList: true, subtree: true }) || true`)); err != nil {
		fail("watch for the progress", err)
	}
	do("scale to 2", chromedp.SendKeys(chromedp.CSS("#scale-count"), "2"), chromedp.Click(chromedp.CSS(`form[action$="/scale"] button`)),
		chromedp.WaitVisible(chromedp.CSS(".flash-ok")))
	if saw, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`sessionStorage.getItem("sawProgress") === "1"`)); err != nil || !saw {
		t.Errorf("the scale's steps were not shown while it ran (%v)", err)
	}
	if got := text(".flash-ok"); !strings.Contains(got, "Scaled app to 2") {
		t.Fatalf("the page after the scale says %q", got)
	}
	harness.Poll(t, "the app page shows 2 started machines, both checks passing", 30*time.Second, func() (bool, string) {
		do("reload the app page", chromedp.Navigate(base+"/apps/hello"), chromedp.WaitVisible(chromedp.CSS("#machines")))
		n, err := chromedp.Run(ctx, chromedp.Evaluate[int](`Array.from(document.querySelectorAll("#machines tbody tr")).filter(function (tr) { return tr.querySelector('[data-state="started"]') && tr.textContent.indexOf("1/1 passing") >= 0 }).length`))
		if err != nil {
			fail("count the healthy machines", err)
		}
		return n == 2, fmt.Sprintf("%d healthy machines on the page", n)
	})
	shot("app-scaled")
	if ms := d.Machines("hello"); len(ms) != 2 {
		t.Fatalf("after the scale the API lists %d machines, want 2", len(ms))
	}

	// Roll back to v1 (one machine) from the releases table.
	do("roll back to v1", chromedp.Click(chromedp.CSS(`form[action="/apps/hello/releases/1/rollback"] button`)), chromedp.WaitVisible(chromedp.CSS(".flash-ok")))
	if got := text(".flash-ok"); !strings.Contains(got, "Rolled back to v1") {
		t.Fatalf("the page after the rollback says %q", got)
	}
	shot("app-rolled-back")
	var rels []types.Release
	if err := d.Get("/v1/apps/hello/releases", &rels); err != nil {
		t.Fatal(err)
	}
	latest := rels[0]
	for _, r := range rels {
		if r.Version > latest.Version {
			latest = r
		}
	}
	if latest.RollbackOf != 1 || latest.Status != types.ReleaseComplete {
		t.Fatalf("latest release after the rollback: v%d rollback_of %d status %s", latest.Version, latest.RollbackOf, latest.Status)
	}

	// The diff of two releases, picked in the releases table's form.
	do("compare v1 with the rollback", chromedp.Navigate(base+"/apps/hello"), chromedp.WaitVisible(chromedp.CSS("#diff-from")),
		chromedp.SetValue(chromedp.CSS("#diff-from"), "1"), chromedp.SetValue(chromedp.CSS("#diff-to"), fmt.Sprint(latest.Version)),
		chromedp.Click(chromedp.CSS(`form[action="/apps/hello/releases/diff"] button`)), chromedp.WaitVisible(chromedp.CSS("pre.diff")))
	if got := text("h1"); got != fmt.Sprintf("v1 → v%d", latest.Version) {
		t.Errorf("diff page heading %q", got)
	}
	shot("diff")

	// Sign out: the session is gone.
	do("sign out", chromedp.Navigate(base+"/"), chromedp.WaitVisible(chromedp.CSS(".logout button")), chromedp.Click(chromedp.CSS(".logout button")), chromedp.WaitVisible(login))
	do("open the app signed out", chromedp.Navigate(base+"/apps/hello"), chromedp.WaitVisible(login))
	if u := location(); !strings.HasSuffix(u, "/login") {
		t.Fatalf("after sign-out /apps/hello went to %s; want /login", u)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(problems) > 0 {
		t.Errorf("the browser reported errors:\n%s", strings.Join(problems, "\n"))
	}
}
