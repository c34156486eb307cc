// Package pgdcs is the consensus store (DCS) Hangar Postgres clusters'
// Patroni uses: an embedded single-member etcd the daemon serves only on
// its machine network's gateway (a single host: the bridge's IPv4
// gateway; a host of a cluster: its 6PN gateway, which the machines of
// every host reach over the mesh), with authentication on. Each Postgres
// cluster (an app) gets an etcd user and a role that may read and write
// only its own key prefix, so one database's machines cannot touch
// another's leader key. The member is started on the first grant, and
// again at every daemon start once it exists; its data is in
// <data-dir>/pg-etcd.
package pgdcs

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"

	"github.com/hangar-dev/hangar/internal/fsutil"
	"github.com/hangar-dev/hangar/internal/types"
)

// Namespace is the etcd key prefix under which Patroni keeps every
// cluster (Patroni's `namespace`); a cluster's keys are Namespace +
// app + "/".
const Namespace = "/hangar-pg/"

// dirName is the member's directory in the data dir.
const dirName = "pg-etcd"

// ErrUnavailable: the store cannot be started or reached.
var ErrUnavailable = types.NewError(types.ErrUnavailable, "postgres consensus store unavailable")

// Grant is what a Postgres cluster's members need to reach the store; the
// password goes separately (the API keeps it as the app's secret).
type Grant = types.PgConsensus

// Server is the embedded etcd for Postgres clusters.
type Server struct {
	// DataDir is the daemon's data dir; the member lives in DataDir/pg-etcd.
	DataDir string
	// Host is the address the member's client port listens on: a
	// gateway of the machine network (IPv4 or IPv6), which the machines
	// reach.
	Host string
	Log  *slog.Logger

	mu   sync.Mutex // guards e, cli, ep
	e    *embed.Etcd
	cli  *clientv3.Client
	ep   string
	stop bool
}

// state is the member's file: its ports (kept so that machines find it at
// the same address after a daemon restart) and the root password.
type state struct {
	ClientPort   int    `json:"client_port"`
	PeerPort     int    `json:"peer_port"`
	RootPassword string `json:"root_password"`
}

func (s *Server) dir() string { return filepath.Join(s.DataDir, dirName) }

// Exists reports whether a member was made in the data dir (a daemon
// restart starts it again at once: Postgres machines depend on it).
func (s *Server) Exists() bool {
	_, err := os.Stat(filepath.Join(s.dir(), "state.json"))
	return err == nil
}

// Start starts the member (making it on the first call) and waits until
// it serves. It is idempotent.
func (s *Server) Start(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.startLocked(ctx)
}

func (s *Server) log() *slog.Logger {
	if s.Log == nil {
		return slog.Default()
	}
	return s.Log
}

func (s *Server) startLocked(ctx context.Context) error {
	if s.cli != nil {
		return nil
	}
	if s.stop {
		return fmt.Errorf("%w: the daemon is stopping", ErrUnavailable)
	}
	if s.Host == "" {
		return fmt.Errorf("%w: no bridge address to serve it on", ErrUnavailable)
	}
	if err := os.MkdirAll(s.dir(), 0o700); err != nil {
		return fmt.Errorf("pg consensus store: %w", err)
	}
	st, fresh, err := s.loadState()
	if err != nil {
		return err
	}
	cfg := embed.NewConfig()
	cfg.Name = "pg"
	cfg.Dir = filepath.Join(s.dir(), "data")
	cu := url.URL{Scheme: "http", Host: net.JoinHostPort(s.Host, strconv.Itoa(st.ClientPort))}
	pu := url.URL{Scheme: "http", Host: net.JoinHostPort("127.0.0.1", strconv.Itoa(st.PeerPort))}
	cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{cu}, []url.URL{cu}
	cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{pu}, []url.URL{pu}
	cfg.InitialCluster = cfg.Name + "=" + pu.String()
	cfg.InitialClusterToken = "hangar-pg"
	cfg.AutoCompactionMode = "revision"
	cfg.AutoCompactionRetention = "10000"
	cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.NewNop())
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return fmt.Errorf("%w: start etcd on %s: %w", ErrUnavailable, cu.Host, err)
	}
	select {
	case <-e.Server.ReadyNotify():
	case err := <-e.Err():
		e.Close()
		return fmt.Errorf("%w: etcd on %s: %w", ErrUnavailable, cu.Host, err)
	case <-time.After(time.Minute):
		e.Close()
		return fmt.Errorf("%w: etcd on %s not ready within a minute", ErrUnavailable, cu.Host)
	case <-ctx.Done():
		e.Close()
		return ctx.Err()
	}
	cli, err := s.rootClient(ctx, cu.String(), st, fresh)
	if err != nil {
		e.Close()
		return err
	}
	s.e, s.cli, s.ep = e, cli, cu.String()
	s.log().Info("postgres consensus store (etcd) is serving", "client", s.ep)
	return nil
}

// loadState reads the member's file, or makes it (free ports, a root
// password) for a new member.
func (s *Server) loadState() (state, bool, error) {
	p := filepath.Join(s.dir(), "state.json")
	var st state
	b, err := os.ReadFile(p)
	if err == nil {
		if err := json.Unmarshal(b, &st); err != nil {
			return st, false, fmt.Errorf("pg consensus store: %s: %w", p, err)
		}
		return st, false, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return st, false, fmt.Errorf("pg consensus store: %w", err)
	}
	if st.ClientPort, err = freePort(s.Host); err != nil {
		return st, false, fmt.Errorf("%w: no free port on %s: %w", ErrUnavailable, s.Host, err)
	}
	if st.PeerPort, err = freePort("127.0.0.1"); err != nil {
		return st, false, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	st.RootPassword = rand.Text()
	return st, true, nil
}

// rootClient connects as root; for a new member it first turns
// authentication on (root user and role), then writes the member's file.
func (s *Server) rootClient(ctx context.Context, ep string, st state, fresh bool) (*clientv3.Client, error) {
	if fresh {
		cli, err := clientv3.New(clientv3.Config{Endpoints: []string{ep}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrUnavailable, err)
		}
		defer cli.Close()
		if _, err := cli.UserAdd(ctx, "root", st.RootPassword); err != nil && !errors.Is(err, rpctypes.ErrUserAlreadyExist) {
			return nil, fmt.Errorf("pg consensus store: add root: %w", err)
		}
		if _, err := cli.UserGrantRole(ctx, "root", "root"); err != nil {
			return nil, fmt.Errorf("pg consensus store: grant root: %w", err)
		}
		if _, err := cli.AuthEnable(ctx); err != nil {
			return nil, fmt.Errorf("pg consensus store: enable authentication: %w", err)
		}
		b, _ := json.Marshal(st)
		if err := fsutil.WriteFileAtomic(filepath.Join(s.dir(), "state.json"), b, 0o600); err != nil {
			return nil, fmt.Errorf("pg consensus store: %w", err)
		}
	}
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{ep}, DialTimeout: 5 * time.Second, Username: "root", Password: st.RootPassword, Logger: zap.NewNop()})
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	return cli, nil
}

func freePort(host string) (int, error) {
	l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// userOf is the etcd user and role of an app's cluster.
func userOf(app string) string { return "pg-" + app }

// Prefix is the key prefix an app's cluster may use.
func Prefix(app string) string { return Namespace + app + "/" }

// Grant makes (or renews) the app's etcd user with a new password and a
// role that may read and write only Prefix(app), starting the store if
// needed. It returns where to reach it and the password.
func (s *Server) Grant(ctx context.Context, app string) (Grant, string, error) {
	if app == "" || strings.ContainsAny(app, "/ ") {
		return Grant{}, "", types.NewError(types.ErrInvalid, fmt.Sprintf("app name %q", app))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.startLocked(ctx); err != nil {
		return Grant{}, "", err
	}
	name := userOf(app)
	if _, err := s.cli.RoleAdd(ctx, name); err != nil && !errors.Is(err, rpctypes.ErrRoleAlreadyExist) {
		return Grant{}, "", fmt.Errorf("pg consensus store: role %s: %w", name, err)
	}
	p := Prefix(app)
	if _, err := s.cli.RoleGrantPermission(ctx, name, p, clientv3.GetPrefixRangeEnd(p), clientv3.PermissionType(clientv3.PermReadWrite)); err != nil {
		return Grant{}, "", fmt.Errorf("pg consensus store: grant %s on %s: %w", name, p, err)
	}
	password := rand.Text()
	if _, err := s.cli.UserAdd(ctx, name, password); errors.Is(err, rpctypes.ErrUserAlreadyExist) {
		_, err = s.cli.UserChangePassword(ctx, name, password)
		if err != nil {
			return Grant{}, "", fmt.Errorf("pg consensus store: user %s: %w", name, err)
		}
	} else if err != nil {
		return Grant{}, "", fmt.Errorf("pg consensus store: user %s: %w", name, err)
	}
	if _, err := s.cli.UserGrantRole(ctx, name, name); err != nil {
		return Grant{}, "", fmt.Errorf("pg consensus store: grant role %s: %w", name, err)
	}
	return Grant{Endpoints: []string{s.ep}, Username: name, Namespace: Namespace, Scope: app}, password, nil
}

// Forget removes an app's keys, user and role (its app was deleted). It
// does nothing when the store was never made.
func (s *Server) Forget(ctx context.Context, app string) error {
	if !s.Exists() {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.startLocked(ctx); err != nil {
		return err
	}
	if _, err := s.cli.Delete(ctx, Prefix(app), clientv3.WithPrefix()); err != nil {
		return fmt.Errorf("pg consensus store: delete %s: %w", Prefix(app), err)
	}
	name := userOf(app)
	if _, err := s.cli.UserDelete(ctx, name); err != nil && !errors.Is(err, rpctypes.ErrUserNotFound) {
		return fmt.Errorf("pg consensus store: delete user %s: %w", name, err)
	}
	if _, err := s.cli.RoleDelete(ctx, name); err != nil && !errors.Is(err, rpctypes.ErrRoleNotFound) {
		return fmt.Errorf("pg consensus store: delete role %s: %w", name, err)
	}
	return nil
}

// Close stops the member.
func (s *Server) Close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stop = true
	if s.cli != nil {
		s.cli.Close()
		s.cli = nil
	}
	if s.e != nil {
		s.e.Close()
		s.e = nil
	}
}
