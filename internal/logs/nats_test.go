package logs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
)

// TestNATSAppTokenSeesOnlyItsApp: a real NATS client logged in with an
// app's token and subscribed to logs.> receives that app's lines, in
// order, in Fly's message shape on logs.<app>.<region>.<instance>, and
// none of another app's; an org token's client receives both; a wrong
// org, a bad token and a client's publish are refused by the server.
func TestNATSAppTokenSeesOnlyItsApp(t *testing.T) {
	dir := t.TempDir()
	tokens := map[string]string{"tok-a": "a", "tok-b": "b", "tok-org": ""}
	n, err := StartNATS(NATSOptions{Listen: "127.0.0.1:0", Org: "acme", Verify: func(_ context.Context, tok string) (string, error) {
		app, ok := tokens[tok]
		if !ok {
			return "", errors.New("unknown token")
		}
		return app, nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	var sources []Source
	for _, app := range []string{"a", "b"} {
		src := Source{App: app, MachineID: "m" + app, Region: "ams", ProcessGroup: "web", Path: filepath.Join(dir, app, "m"+app+".log")}
		if err := os.MkdirAll(filepath.Dir(src.Path), 0o755); err != nil {
			t.Fatal(err)
		}
		sources = append(sources, src)
	}
	pub := &Publisher{NATS: n, Host: "h1", Sources: func(context.Context) ([]Source, error) { return sources, nil }}
	pub.cursor = Cursor{Since: time.Now().Add(-time.Minute)}

	url := "nats://" + n.Addr()
	connect := func(user, pass string) (*nats.Conn, error) {
		return nats.Connect(url, nats.UserInfo(user, pass), nats.Timeout(5*time.Second))
	}
	for _, bad := range [][2]string{{"other-org", "tok-a"}, {"acme", "tok-nope"}, {"acme", ""}} {
		if c, err := connect(bad[0], bad[1]); err == nil {
			c.Close()
			t.Fatalf("user %q with password %q was let in", bad[0], bad[1])
		}
	}
	subscribe := func(tok string) (*nats.Conn, chan *nats.Msg) {
		c, err := connect("acme", tok)
		if err != nil {
			t.Fatal(err)
		}
		ch := make(chan *nats.Msg, 1000)
		if _, err := c.ChanSubscribe("logs.>", ch); err != nil {
			t.Fatal(err)
		}
		if err := c.Flush(); err != nil {
			t.Fatal(err)
		}
		return c, ch
	}
	ca, msgsA := subscribe("tok-a")
	defer ca.Close()
	co, msgsOrg := subscribe("tok-org")
	defer co.Close()

	// An app client may not publish: the org's subscriber sees nothing.
	perm := make(chan error, 1)
	ca.SetErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { perm <- err })
	_ = ca.Publish("logs.b.ams.mb", []byte(`{"message":"forged"}`))
	select {
	case err := <-perm:
		if err == nil {
			t.Fatal("no permission error for a client's publish")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a client's publish was not refused")
	}

	const lines = 200
	for _, src := range sources {
		var b []byte
		for i := range lines {
			b = fmt.Appendf(b, "%s stdout %s %d\n", time.Now().UTC().Format(TimeFormat), src.App, i)
		}
		writeFile(t, src.Path, string(b))
	}
	for range 10 {
		if more, err := pub.Step(context.Background()); err != nil {
			t.Fatal(err)
		} else if !more {
			break
		}
	}
	recv := func(ch chan *nats.Msg, want int) []FlyLogMessage {
		var out []FlyLogMessage
		for len(out) < want {
			select {
			case m := <-ch:
				var fm FlyLogMessage
				if err := json.Unmarshal(m.Data, &fm); err != nil {
					t.Fatalf("%s: %v", m.Subject, err)
				}
				if m.Subject != "logs."+fm.Fly.App.Name+".ams.m"+fm.Fly.App.Name {
					t.Fatalf("subject %s for a line of app %s", m.Subject, fm.Fly.App.Name)
				}
				out = append(out, fm)
			case <-time.After(10 * time.Second):
				t.Fatalf("%d messages of %d within 10 s", len(out), want)
			}
		}
		return out
	}
	got := recv(msgsA, lines)
	for i, m := range got {
		if m.Fly.App.Name != "a" || m.Message != fmt.Sprintf("a %d", i) {
			t.Fatalf("app a's client, message %d: app %s, %q", i, m.Fly.App.Name, m.Message)
		}
		if m.Event.Provider != "app" || m.Fly.Region != "ams" || m.Fly.App.Instance != "ma" || m.Host != "h1" || m.Log.Level != "info" || m.Timestamp == "" || m.Hangar.ProcessGroup != "web" {
			t.Fatalf("message not in Fly's shape: %+v", m)
		}
	}
	byApp := map[string]int{}
	for _, m := range recv(msgsOrg, 2*lines) {
		byApp[m.Fly.App.Name]++
		if m.Message == "forged" {
			t.Fatal("a client's publish reached the org's subscriber")
		}
	}
	if byApp["a"] != lines || byApp["b"] != lines {
		t.Fatalf("org client: %v", byApp)
	}
	// Nothing more for app a's client: none of b's lines.
	if err := ca.Flush(); err != nil {
		t.Fatal(err)
	}
	select {
	case m := <-msgsA:
		t.Fatalf("app a's client received %s: %s", m.Subject, m.Data)
	case <-time.After(200 * time.Millisecond):
	}
}
