package logs

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/hangar-dev/hangar/internal/types"
)

// The NATS log stream, as Fly serves it to fly-log-shipper: an embedded
// NATS server on which every machine log line is published on
// logs.<app>.<region>.<instance>, a JSON object in Fly's shape
// (FlyLogMessage). Clients log in with the org's slug as user and an API
// token as password.
//
// An app-scoped token sees only its app, enforced by the server, not by
// trusting the client: the daemon publishes into the org's NATS account,
// which exports logs.>; each app has an account of its own that imports
// only logs.<app>.>, and a client with an app token is put in its app's
// account. There, a subscription to logs.> gets that app's lines and no
// other's. Clients may not publish.

// NATSOptions configure the NATS log stream.
type NATSOptions struct {
	// Listen is host:port (Fly's is port 4223).
	Listen string
	// Org is the org slug clients give as user.
	Org string
	// Verify checks a token a client gives as password: app is the
	// app it is scoped to, "" for an org token.
	Verify func(ctx context.Context, token string) (app string, err error)
	Log    *slog.Logger
}

// NATS is the embedded NATS server of the log stream.
type NATS struct {
	srv    *server.Server
	orgAcc *server.Account
	conn   *nats.Conn // the daemon's publisher
	o      NATSOptions
	secret string // the publisher's password

	mu   sync.Mutex // guards apps
	apps map[string]*server.Account
}

const (
	orgAccount    = "HANGAR_ORG"
	publisherUser = "hangar-publisher"
)

// StartNATS starts the NATS server and the daemon's publisher on it.
func StartNATS(o NATSOptions) (*NATS, error) {
	host, portStr, err := net.SplitHostPort(o.Listen)
	if err != nil {
		return nil, fmt.Errorf("--nats-listen %q: %w (use host:port, e.g. 127.0.0.1:4223)", o.Listen, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return nil, fmt.Errorf("--nats-listen %q: port %q is not a number", o.Listen, portStr)
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
	var b [24]byte
	_, _ = rand.Read(b[:])
	n := &NATS{o: o, secret: hex.EncodeToString(b[:]), apps: map[string]*server.Account{}}
	opts := &server.Options{
		ServerName: "hangar-logs", Host: host, Port: port,
		NoSigs: true, NoLog: true, MaxPayload: 1 << 20,
		CustomClientAuthentication: n,
	}
	if port == 0 {
		opts.Port = server.RANDOM_PORT
	}
	srv, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("NATS log stream: %w", err)
	}
	n.srv = srv
	if n.orgAcc, err = srv.RegisterAccount(orgAccount); err != nil {
		return nil, fmt.Errorf("NATS log stream: account: %w", err)
	}
	if err := n.orgAcc.AddStreamExport("logs.>", server.IsPublicExport); err != nil {
		return nil, fmt.Errorf("NATS log stream: export: %w", err)
	}
	go srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		srv.Shutdown()
		return nil, fmt.Errorf("NATS log stream: not listening on %s after 10 s (is the port taken? pick another with --nats-listen)", o.Listen)
	}
	n.conn, err = nats.Connect("", nats.InProcessServer(srv), nats.UserInfo(publisherUser, n.secret), nats.Name("hangar log publisher"))
	if err != nil {
		srv.Shutdown()
		return nil, fmt.Errorf("NATS log stream: connect the publisher: %w", err)
	}
	return n, nil
}

// Addr is the address the server listens on.
func (n *NATS) Addr() string {
	if a, ok := n.srv.Addr().(*net.TCPAddr); ok {
		return a.String()
	}
	return n.o.Listen
}

// Close stops the publisher and the server.
func (n *NATS) Close() {
	n.conn.Close()
	n.srv.Shutdown()
	n.srv.WaitForShutdown()
}

// Stats reports the connected clients (the publisher included) and the
// slow consumers cut off so far.
func (n *NATS) Stats() (clients int, slow int64) {
	return n.srv.NumClients(), n.srv.NumSlowConsumers()
}

// Check authenticates a client (server.Authentication): user the org
// slug, password a token; an app token's client goes to its app's
// account.
func (n *NATS) Check(c server.ClientAuthentication) bool {
	co := c.GetOpts()
	if co.Username == publisherUser && c.Kind() == server.CLIENT {
		if co.Password != n.secret {
			return false
		}
		c.RegisterUser(&server.User{Username: publisherUser, Account: n.orgAcc,
			Permissions: &server.Permissions{Publish: &server.SubjectPermission{Allow: []string{"logs.>"}}, Subscribe: &server.SubjectPermission{Deny: []string{">"}}}})
		return true
	}
	if co.Username != n.o.Org || n.o.Verify == nil {
		return false
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	app, err := n.o.Verify(ctx, co.Password)
	if err != nil {
		n.o.Log.Info("NATS log stream: refused a client", "remote", c.RemoteAddress(), "err", err)
		return false
	}
	acc := n.orgAcc
	if app != "" {
		if acc, err = n.appAccount(app); err != nil {
			n.o.Log.Warn("NATS log stream: app account", "app", app, "err", err)
			return false
		}
	}
	c.RegisterUser(&server.User{Username: co.Username, Account: acc, Permissions: &server.Permissions{
		Publish:   &server.SubjectPermission{Deny: []string{">"}},
		Subscribe: &server.SubjectPermission{Allow: []string{"logs.>"}},
	}})
	return true
}

// appAccount returns the account of an app's clients, which sees only
// the app's subjects.
func (n *NATS) appAccount(app string) (*server.Account, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if acc := n.apps[app]; acc != nil {
		return acc, nil
	}
	if strings.ContainsAny(app, ".*> \t") {
		return nil, fmt.Errorf("app name %q cannot be a NATS subject token", app)
	}
	acc, err := n.srv.RegisterAccount("app:" + app)
	if err != nil {
		return nil, err
	}
	if err := acc.AddStreamImport(n.orgAcc, "logs."+app+".>", ""); err != nil {
		return nil, err
	}
	n.apps[app] = acc
	return acc, nil
}

// FlyLogMessage is a log line as Fly publishes it on NATS (what
// fly-log-shipper's Vector config parses), with Hangar's stream and
// process group beside.
type FlyLogMessage struct {
	Event struct {
		Provider string `json:"provider"`
	} `json:"event"`
	Fly struct {
		App struct {
			Instance string `json:"instance"`
			Name     string `json:"name"`
		} `json:"app"`
		Region string `json:"region"`
	} `json:"fly"`
	Host string `json:"host"`
	Log  struct {
		Level string `json:"level"`
	} `json:"log"`
	Message   string `json:"message"`
	Timestamp string `json:"timestamp"`
	Hangar    struct {
		Stream       string `json:"stream"`
		ProcessGroup string `json:"process_group,omitempty"`
	} `json:"hangar"`
}

// Subject is the NATS subject of a line: logs.<app>.<region>.<instance>.
func Subject(l types.LogLine) string {
	return "logs." + token(l.App) + "." + token(l.Region) + "." + token(l.MachineID)
}

// token makes s a valid subject token.
func token(s string) string {
	if s == "" {
		return "_"
	}
	return strings.Map(func(r rune) rune {
		if r == '.' || r == '*' || r == '>' || r <= ' ' {
			return '_'
		}
		return r
	}, s)
}

// Publish publishes lines, in order.
func (n *NATS) Publish(host string, lines []types.LogLine) error {
	for _, l := range lines {
		var m FlyLogMessage
		m.Event.Provider = "app"
		m.Fly.App.Instance, m.Fly.App.Name, m.Fly.Region = l.MachineID, l.App, l.Region
		m.Host = host
		m.Log.Level = "info"
		if l.Stream == "stderr" {
			m.Log.Level = "error"
		}
		m.Message, m.Timestamp = l.Message, l.Timestamp
		m.Hangar.Stream, m.Hangar.ProcessGroup = l.Stream, l.ProcessGroup
		b, err := json.Marshal(m)
		if err != nil {
			return err
		}
		if err := n.conn.Publish(Subject(l), b); err != nil {
			return fmt.Errorf("publish on the NATS log stream: %w", err)
		}
	}
	return nil
}

// Publisher publishes every machine's new lines on the NATS stream.
type Publisher struct {
	NATS *NATS
	// Sources lists the logs of every app.
	Sources func(ctx context.Context) ([]Source, error)
	// Host names this host in the messages.
	Host    string
	Poll    time.Duration // default 200 ms
	Metrics *Metrics
	Log     *slog.Logger

	cursor Cursor
}

// Run publishes until ctx ends, from the lines written since it began.
func (p *Publisher) Run(ctx context.Context) {
	poll := p.Poll
	if poll <= 0 {
		poll = 200 * time.Millisecond
	}
	p.cursor = Cursor{Since: time.Now()}
	for {
		start := time.Now()
		more, err := p.Step(ctx)
		if err != nil && ctx.Err() == nil {
			p.Log.Warn("NATS log stream", "err", err)
		}
		wait := poll
		if more {
			// Catching up: at most half of a core, so that a machine
			// flooding its log does not starve the proxy.
			wait = time.Since(start)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}

// Step publishes one batch of new lines; more says lines were left. With
// no client but the publisher, nothing is read: the stream is live, and
// starts again from now for the next client.
func (p *Publisher) Step(ctx context.Context) (more bool, err error) {
	if clients, _ := p.NATS.Stats(); clients <= 1 {
		p.cursor = Cursor{Since: time.Now()}
		return false, nil
	}
	sources, err := p.Sources(ctx)
	b, rerr := readBatch(ctx, sources, p.cursor, Limits{Lines: 5000, Bytes: 4 << 20}, nil)
	if len(b.Lines) > 0 {
		if perr := p.NATS.Publish(p.Host, b.Lines); perr != nil {
			return false, perr
		}
		p.Metrics.publishedLines(len(b.Lines))
	}
	p.cursor = p.cursor.advance(b.End)
	if err == nil {
		p.cursor = p.cursor.prune(sources)
		err = rerr
	}
	return b.More, err
}
