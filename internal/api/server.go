// Package api serves Hangar's HTTP+JSON API under /v1: the Machines API
// with Fly.io's paths and JSON shapes, plus Hangar's own endpoints for
// images, deploys, releases and logs. It is HTTP only: every route is in
// one table (routes.go), every error category becomes a status in one
// place (errors.go), and the domain work is done by the packages the
// Server is given (apps, supervisor, deploy, secrets, volumes, certs). With
// several hosts, any host serves the whole installation: requests for
// machines and volumes of other hosts are forwarded to them (forward.go).
package api

import (
	"bufio"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/hangar-dev/hangar/internal/apps"
	"github.com/hangar-dev/hangar/internal/certs"
	"github.com/hangar-dev/hangar/internal/deploy"
	"github.com/hangar-dev/hangar/internal/hosts"
	"github.com/hangar-dev/hangar/internal/image"
	"github.com/hangar-dev/hangar/internal/secrets"
	"github.com/hangar-dev/hangar/internal/store"
	"github.com/hangar-dev/hangar/internal/supervisor"
	"github.com/hangar-dev/hangar/internal/types"
	"github.com/hangar-dev/hangar/internal/volume"
)

// MaxBodyBytes bounds JSON request bodies.
const MaxBodyBytes = 1 << 20

// Options are the Server's dependencies. Store and Sup are required;
// without Secrets, Volumes or Certs their endpoints answer 404 (not
// configured on this daemon).
type Options struct {
	Store store.Store
	// Apps holds the app records (default: apps.New over Store and Org).
	Apps     *apps.Service
	Sup      *supervisor.Supervisor
	Deployer *deploy.Deployer
	Images   *image.Store
	Secrets  *secrets.Store
	Volumes  *volume.Manager
	Certs    *certs.Manager
	Log      *slog.Logger
	Org      string
	Region   string
	Domain   string
	HTTPPort string
	// Disk reports the data dir's disk (nil: not reported).
	Disk func() types.DiskState
	// Hosts is the installation's host registry (nil: one host, nothing
	// forwarded). With it, machine operations for machines of other hosts
	// are forwarded to them (forward.go) and creates are placed.
	Hosts *hosts.Registry
	// HostRemover forgets a host for good (DELETE /v1/hosts/{id}; nil:
	// not offered).
	HostRemover HostRemover
	// Forward sends requests to other hosts' APIs (nil:
	// DefaultForwardClient); the cluster's mutual TLS goes in its
	// Transport.
	Forward *http.Client
	// History is the recent history of the apps' key series (nil:
	// metrics are off; GET /v1/apps/{app}/metrics answers 404).
	History History
	// Observe, if set, is told of every routed request: its route
	// pattern, status and duration (metrics).
	Observe func(route string, status int, d time.Duration)
	// Cluster is this host's part in a cluster (nil: a single host).
	Cluster Cluster
	// LogSinks ships logs to HTTP sinks (nil: /v1/log-sinks answers 503).
	LogSinks LogSinks
	// PgConsensus is the Patroni consensus store of Hangar Postgres
	// clusters (nil: POST /v1/apps/{app}/pg/consensus answers 400).
	PgConsensus PgConsensus
}

// Server is the API. Its fields are set by New and never change.
type Server struct {
	store    store.Store
	apps     *apps.Service
	sup      *supervisor.Supervisor
	deployer *deploy.Deployer
	images   *image.Store
	secrets  *secrets.Store
	volumes  *volume.Manager
	certs    *certs.Manager
	log      *slog.Logger
	org      string
	region   string
	domain   string
	httpPort string
	disk     func() types.DiskState
	hosts    *hosts.Registry
	remover  HostRemover
	forward  *http.Client
	observe  func(route string, status int, d time.Duration)
	cluster  Cluster
	history  History
	logSinks LogSinks
	pgDCS    PgConsensus
}

// New returns the API server over o's dependencies.
func New(o Options) *Server {
	if o.Log == nil {
		o.Log = slog.Default()
	}
	if o.Apps == nil {
		o.Apps = apps.New(apps.Options{Store: o.Store, Org: o.Org})
	}
	if o.Forward == nil {
		o.Forward = DefaultForwardClient()
	}
	return &Server{hosts: o.Hosts, remover: o.HostRemover, forward: o.Forward, store: o.Store, apps: o.Apps, sup: o.Sup, deployer: o.Deployer, images: o.Images,
		secrets: o.Secrets, volumes: o.Volumes, certs: o.Certs, log: o.Log,
		org: o.Org, region: o.Region, domain: o.Domain, httpPort: o.HTTPPort, disk: o.Disk, cluster: o.Cluster, observe: o.Observe, history: o.History, logSinks: o.LogSinks, pgDCS: o.PgConsensus}
}

// Handler returns the API's routes (routes.go), all behind token auth.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	for _, rt := range s.routes() {
		mux.HandleFunc(rt.pattern, s.serve(rt))
	}
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusNotFound, types.ErrorResponse{Error: fmt.Sprintf("no API endpoint %s %s; see docs/api.md", r.Method, r.URL.Path)})
	})
	return s.authenticate(mux)
}

// serve runs one route: the route's access rule, then its handler; the
// handler's error becomes the answer (errors.go).
func (s *Server) serve(rt route) http.HandlerFunc {
	h := s.serveRoute(rt)
	if s.observe == nil {
		return h
	}
	return func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w}
		h(sw, r)
		if sw.status == 0 {
			sw.status = http.StatusOK
		}
		s.observe(rt.pattern, sw.status, time.Since(start))
	}
}

// statusWriter remembers the status a handler answered with. Flush and
// Hijack pass through (NDJSON streams, the console's WebSocket).
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (w *statusWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	if h, ok := w.ResponseWriter.(http.Hijacker); ok {
		if w.status == 0 {
			w.status = http.StatusSwitchingProtocols
		}
		return h.Hijack()
	}
	return nil, nil, fmt.Errorf("api: the connection cannot be taken over: %w", http.ErrNotSupported)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (s *Server) serveRoute(rt route) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if err := authorize(rt.access, TokenFrom(r), r.PathValue("app")); err != nil {
			s.writeError(w, r, err)
			return
		}
		var handled bool
		var err error
		switch {
		case isMachineRoute(rt.pattern):
			handled, err = s.forwardMachine(w, r, rt.pattern)
		case isVolumeRoute(rt.pattern):
			handled, err = s.forwardVolume(w, r)
		}
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		if handled {
			return
		}
		if err := rt.handle(w, r); err != nil {
			s.writeError(w, r, err)
		}
	}
}
