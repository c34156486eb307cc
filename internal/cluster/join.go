package cluster

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/hangar-dev/hangar/internal/fsutil"
	"github.com/hangar-dev/hangar/internal/types"
)

// Join token lifetimes.
const (
	DefaultTokenTTL = time.Hour
	MinTokenTTL     = time.Minute
	MaxTokenTTL     = 7 * 24 * time.Hour
)

// tokenRecord is a join token's record in etcd, under the hash of its
// secret (keyPrefix + "join-tokens/<sha256 hex>").
type tokenRecord struct {
	CreatedAt time.Time  `json:"created_at"`
	ExpiresAt time.Time  `json:"expires_at"`
	UsedAt    *time.Time `json:"used_at,omitempty"`
	UsedBy    string     `json:"used_by,omitempty"`
}

func tokenKey(hash string) string { return keyPrefix + "join-tokens/" + hash }

// NewJoinToken makes a one-time join token valid for ttl (0:
// DefaultTokenTTL) and returns its text and expiry. Only the hash of its
// secret is stored (in etcd, so any voting member accepts it). Records of
// tokens expired for a day are removed on the way.
func (n *Node) NewJoinToken(ctx context.Context, ttl time.Duration) (string, time.Time, error) {
	if ttl == 0 {
		ttl = DefaultTokenTTL
	}
	if ttl < MinTokenTTL || ttl > MaxTokenTTL {
		return "", time.Time{}, fmt.Errorf("join token ttl %s: use between %s and %s: %w", ttl, MinTokenTTL, MaxTokenTTL, types.ErrInvalid)
	}
	tok, err := newToken(pinOf(n.ca.cert))
	if err != nil {
		return "", time.Time{}, err
	}
	now := n.now().UTC()
	rec := tokenRecord{CreatedAt: now, ExpiresAt: now.Add(ttl)}
	b, _ := json.Marshal(rec)
	octx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := n.cli.Put(octx, tokenKey(tok.secretHash()), string(b)); err != nil {
		return "", time.Time{}, etcdErr("record the join token", err)
	}
	n.sweepTokens(octx, now)
	return tok.String(), rec.ExpiresAt, nil
}

// sweepTokens removes the records of tokens expired over a day ago (kept
// that long so that a late join hears "expired", not "unknown").
func (n *Node) sweepTokens(ctx context.Context, now time.Time) {
	resp, err := n.cli.Get(ctx, keyPrefix+"join-tokens/", clientv3.WithPrefix())
	if err != nil {
		return
	}
	for _, kv := range resp.Kvs {
		var rec tokenRecord
		if json.Unmarshal(kv.Value, &rec) == nil && now.Sub(rec.ExpiresAt) > 24*time.Hour {
			n.cli.Txn(ctx).If(clientv3.Compare(clientv3.ModRevision(string(kv.Key)), "=", kv.ModRevision)).
				Then(clientv3.OpDelete(string(kv.Key))).Commit()
		}
	}
}

// etcdErr wraps an etcd failure as types.ErrUnavailable with a hint.
func etcdErr(what string, err error) error {
	return fmt.Errorf("%s: %v; etcd has no quorum or is unreachable: check that a majority of the voting members run (`hangar cluster members`): %w", what, err, types.ErrUnavailable)
}

// joinRequest is what a joining host sends to a member's cluster listener.
type joinRequest struct {
	Secret     []byte    `json:"secret"`
	Name       string    `json:"name"`
	Region     string    `json:"region"`
	ClusterURL string    `json:"cluster_url"`
	PeerURL    string    `json:"peer_url"`
	ClientURL  string    `json:"client_url"`
	CSR        string    `json:"csr"`
	Time       time.Time `json:"time"`
}

// joinResponse is the member's answer: the host's certificate, the CA (and
// its key for a voter, which signs later joins), and where etcd is.
type joinResponse struct {
	ClusterID string `json:"cluster_id"`
	Role      string `json:"role"`
	CA        string `json:"ca"`
	CAKey     string `json:"ca_key,omitempty"`
	Cert      string `json:"cert"`
	// Voters: the member's id and etcd's --initial-cluster with it.
	MemberID       uint64    `json:"member_id,omitempty"`
	InitialCluster string    `json:"initial_cluster,omitempty"`
	Endpoints      []string  `json:"endpoints"`
	Time           time.Time `json:"time"`
	// Files are the member's copies of Config.SharedFiles, by name.
	Files map[string][]byte `json:"files,omitempty"`
}

// joinError is a refused join: Code says why (for the joining host to
// explain), Time is the member's clock.
type joinError struct {
	Code  string    `json:"code"`
	Error string    `json:"error"`
	Time  time.Time `json:"time"`
}

// Codes of joinError.
const (
	codeClock     = "clock_skew"
	codeToken     = "token_refused"
	codeName      = "name_taken"
	codeNotSigner = "not_signer"
	codeInvalid   = "invalid"
	codeEtcd      = "unavailable"
)

func (n *Node) refuse(w http.ResponseWriter, status int, code, format string, args ...any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(joinError{Code: code, Error: fmt.Sprintf(format, args...), Time: n.now().UTC()})
}

// handleJoin is POST /v1/join on the cluster listener. Everything is
// checked before anything is written: the clock, this member's CA key, the
// token, the name and the request; then the token is consumed and the host
// recorded in one etcd transaction, and a voter is added as an etcd
// learner (the token given back if that fails).
func (n *Node) handleJoin(w http.ResponseWriter, r *http.Request) {
	var req joinRequest
	if err := json.NewDecoder(io.LimitReader(r.Body, 64<<10)).Decode(&req); err != nil {
		n.refuse(w, http.StatusBadRequest, codeInvalid, "join request: %v", err)
		return
	}
	now := n.now()
	if skew := req.Time.Sub(now); skew > MaxClockSkew || skew < -MaxClockSkew {
		n.refuse(w, http.StatusBadRequest, codeClock, "clock differs from member %s's by %s (at most %s)", n.mf.Name, skew.Round(time.Second), MaxClockSkew)
		return
	}
	if n.ca.key == nil {
		n.refuse(w, http.StatusConflict, codeNotSigner, "host %s is a client of the cluster and cannot sign; join through a voting member (`hangar cluster members` lists them)", n.mf.Name)
		return
	}
	if err := validName(req.Name); err != nil {
		n.refuse(w, http.StatusBadRequest, codeInvalid, "%v", err)
		return
	}
	for _, u := range []string{req.ClusterURL, req.PeerURL, req.ClientURL} {
		if pu, err := url.Parse(u); err != nil || pu.Scheme != "https" || pu.Hostname() == "" || pu.Port() == "" {
			n.refuse(w, http.StatusBadRequest, codeInvalid, "address %q: want https://HOST:PORT", u)
			return
		}
	}
	pub, err := parseCSR([]byte(req.CSR))
	if err != nil {
		n.refuse(w, http.StatusBadRequest, codeInvalid, "%v", err)
		return
	}
	if len(req.Secret) != 32 {
		n.refuse(w, http.StatusForbidden, codeToken, "the token's secret is malformed; %s", tokenHint)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 30*time.Second)
	defer cancel()
	tok := Token{}
	copy(tok.Secret[:], req.Secret)
	tkey := tokenKey(tok.secretHash())
	mkey := memberKey(req.Name)
	var (
		tokKV []*mvccpb.KeyValue
		rec   tokenRecord
		role  string
		der   []byte
		ml    *clientv3.MemberListResponse
	)
	for attempt := 1; ; attempt++ {
		resp, err := n.cli.Txn(ctx).Then(clientv3.OpGet(tkey), clientv3.OpGet(mkey), clientv3.OpGet(keyPrefix+"config"),
			clientv3.OpGet(keyPrefix+"members/", clientv3.WithPrefix())).Commit()
		if err != nil {
			n.refuse(w, http.StatusServiceUnavailable, codeEtcd, "%v", etcdErr("read the join token", err))
			return
		}
		readRev := resp.Header.Revision
		tokKVs, memKVs, confKVs := resp.Responses[0].GetResponseRange().Kvs, resp.Responses[1].GetResponseRange().Kvs, resp.Responses[2].GetResponseRange().Kvs
		tokKV = tokKVs
		if len(tokKVs) == 0 {
			n.refuse(w, http.StatusForbidden, codeToken, "this cluster never issued that token (or it expired over a day ago and was removed)")
			return
		}
		rec = tokenRecord{}
		if err := json.Unmarshal(tokKVs[0].Value, &rec); err != nil {
			n.refuse(w, http.StatusForbidden, codeToken, "the token's record is unreadable: %v", err)
			return
		}
		if rec.UsedAt != nil {
			n.refuse(w, http.StatusForbidden, codeToken, "that token was already used, by host %s at %s; a token joins one host", rec.UsedBy, rec.UsedAt.Format(time.RFC3339))
			return
		}
		if !now.Before(rec.ExpiresAt) {
			n.refuse(w, http.StatusForbidden, codeToken, "that token expired at %s", rec.ExpiresAt.Format(time.RFC3339))
			return
		}
		if len(memKVs) != 0 {
			n.refuse(w, http.StatusConflict, codeName, "a host named %s is already in the cluster; give this host another name (--member-name)", req.Name)
			return
		}
		conf := clusterConfig{Voters: 3}
		if len(confKVs) != 0 {
			json.Unmarshal(confKVs[0].Value, &conf)
		}
		ml, err = n.cli.MemberList(ctx)
		if err != nil {
			n.refuse(w, http.StatusServiceUnavailable, codeEtcd, "%v", etcdErr("list the etcd members", err))
			return
		}
		for _, m := range ml.Members {
			if m.Name == req.Name {
				n.refuse(w, http.StatusConflict, codeName, "an etcd member named %s is already in the cluster; give this host another name (--member-name)", req.Name)
				return
			}
		}
		// The voters are counted from the hosts' records, which joins change
		// only in the transaction below, guarded by the read's revision: two
		// joins at once cannot both take the last voter's place.
		voters := 0
		for _, kv := range resp.Responses[3].GetResponseRange().Kvs {
			var mr memberRecord
			if json.Unmarshal(kv.Value, &mr) == nil && mr.Role == RoleVoter {
				voters++
			}
		}
		role = RoleClient
		if voters < conf.Voters {
			role = RoleVoter
		}
		urls := []string{req.ClusterURL}
		if role == RoleVoter {
			urls = append(urls, req.PeerURL, req.ClientURL)
		}
		der, err = n.ca.sign(pub, req.Name, sans(urls...), now)
		if err != nil {
			n.refuse(w, http.StatusInternalServerError, codeInvalid, "%v", err)
			return
		}
		// Consume the token and record the host, both or neither, and only
		// if nobody used the token, took the name or joined meanwhile.
		used := rec
		at := now.UTC()
		used.UsedAt, used.UsedBy = &at, req.Name
		ub, _ := json.Marshal(used)
		mrec := memberRecord{Name: req.Name, Region: req.Region, Role: role, ClusterURL: req.ClusterURL, JoinedAt: at}
		if role == RoleVoter {
			mrec.PeerURL, mrec.ClientURL = req.PeerURL, req.ClientURL
		}
		mb, _ := json.Marshal(mrec)
		tr, err := n.cli.Txn(ctx).If(
			clientv3.Compare(clientv3.ModRevision(tkey), "=", tokKVs[0].ModRevision),
			clientv3.Compare(clientv3.CreateRevision(mkey), "=", 0),
			clientv3.Compare(clientv3.ModRevision(keyPrefix+"members/"), "<", readRev+1).WithPrefix(),
		).Then(clientv3.OpPut(tkey, string(ub)), clientv3.OpPut(mkey, string(mb))).Commit()
		if err != nil {
			n.refuse(w, http.StatusServiceUnavailable, codeEtcd, "%v", etcdErr("consume the join token", err))
			return
		}
		if !tr.Succeeded {
			// Another join won the race: decide again on what it wrote.
			if attempt < 5 {
				continue
			}
			n.refuse(w, http.StatusConflict, codeEtcd, "other hosts kept joining at the same moment; try again")
			return
		}
		break
	}
	out := joinResponse{ClusterID: n.mf.ClusterID, Role: role, CA: string(certPEM(n.ca.der)), Cert: string(certPEM(der)), Time: now.UTC(),
		Files: map[string][]byte{}}
	for _, name := range n.cfg.SharedFiles {
		b, err := os.ReadFile(filepath.Join(n.cfg.DataDir, name))
		if err != nil && !os.IsNotExist(err) {
			n.refuse(w, http.StatusInternalServerError, codeInvalid, "read %s to share: %v", name, err)
			return
		}
		if err == nil {
			out.Files[name] = b
		}
	}
	if role == RoleVoter {
		add, err := n.addLearner(ctx, req.PeerURL)
		if err != nil {
			// Give the token back: nothing of this join stays.
			if _, uerr := n.cli.Txn(context.Background()).Then(clientv3.OpPut(tkey, string(tokKV[0].Value)), clientv3.OpDelete(mkey)).Commit(); uerr != nil {
				n.log.Error("a refused join could not give its token back", "host", req.Name, "err", uerr)
			}
			status := http.StatusServiceUnavailable
			if errors.Is(err, rpctypes.ErrPeerURLExist) {
				status = http.StatusConflict
			}
			n.refuse(w, status, codeEtcd, "add %s as an etcd member: %v (the token is still valid)", req.Name, err)
			return
		}
		key, err := keyPEM(n.ca.key)
		if err != nil {
			n.refuse(w, http.StatusInternalServerError, codeInvalid, "%v", err)
			return
		}
		out.CAKey = string(key)
		out.MemberID = add.Member.ID
		var parts []string
		for _, m := range add.Members {
			name := m.Name
			if m.ID == add.Member.ID {
				name = req.Name
			}
			for _, pu := range m.PeerURLs {
				parts = append(parts, name+"="+pu)
			}
		}
		out.InitialCluster = strings.Join(parts, ",")
	}
	for _, m := range ml.Members {
		if !m.IsLearner {
			out.Endpoints = append(out.Endpoints, m.ClientURLs...)
		}
	}
	n.log.Info("a host joined the cluster", "host", req.Name, "region", req.Region, "role", role)
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(out)
}

// addLearner adds a learner member at peerURL. etcd refuses a change of
// membership until every voter has been connected for a few seconds (a
// voter that just joined, say): that refusal is waited out.
func (n *Node) addLearner(ctx context.Context, peerURL string) (*clientv3.MemberAddResponse, error) {
	for {
		actx, cancel := context.WithTimeout(ctx, 5*time.Second)
		add, err := n.cli.MemberAddAsLearner(actx, []string{peerURL})
		cancel()
		if err == nil || !errors.Is(err, rpctypes.ErrUnhealthy) {
			return add, err
		}
		select {
		case <-ctx.Done():
			return nil, err
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// join joins the cluster at joinURL with token, as this host.
func join(ctx context.Context, cfg Config, dir, joinURL, tokenText string) (*Node, error) {
	tok, err := ParseToken(tokenText)
	if err != nil {
		return nil, fmt.Errorf("--join-token: %w", err)
	}
	ju, err := url.Parse(joinURL)
	if err != nil || ju.Scheme != "https" || ju.Host == "" {
		return nil, fmt.Errorf("--join %q: want the https://HOST:PORT of a member's cluster listener (port %d by default): %w", joinURL, DefaultClusterPort, types.ErrInvalid)
	}
	key, err := newKey()
	if err != nil {
		return nil, err
	}
	csr, err := newCSR(key, cfg.Name)
	if err != nil {
		return nil, err
	}
	mf := memberFile{Name: cfg.Name, Region: cfg.Region, ClusterListen: cfg.ClusterListen,
		ClusterURL: advertised(cfg.ClusterListen, cfg.AdvertiseAddr)}
	peerURL, clientURL := advertised(cfg.PeerListen, cfg.AdvertiseAddr), advertised(cfg.ClientListen, cfg.AdvertiseAddr)
	req := joinRequest{Secret: tok.Secret[:], Name: cfg.Name, Region: cfg.Region, ClusterURL: mf.ClusterURL,
		PeerURL: peerURL, ClientURL: clientURL, CSR: string(csr), Time: cfg.Now().UTC()}
	body, _ := json.Marshal(req)
	var pinErr error
	hc := &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{
		MinVersion: tls.VersionTLS12,
		// The server is checked against the pinned CA below, not the
		// system's roots.
		InsecureSkipVerify: true,
		VerifyConnection: func(cs tls.ConnectionState) error {
			pinErr = verifyPinned(cs, tok.Pin, cfg.Now())
			return pinErr
		},
	}}}
	defer hc.CloseIdleConnections()
	hreq, err := http.NewRequestWithContext(ctx, "POST", strings.TrimSuffix(joinURL, "/")+"/v1/join", bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	hreq.Header.Set("Content-Type", "application/json")
	hresp, err := hc.Do(hreq)
	if err != nil {
		if pinErr != nil {
			return nil, fmt.Errorf("join %s: %w", joinURL, pinErr)
		}
		return nil, fmt.Errorf("join %s: %w (is the daemon there running with a cluster, and is %s its --cluster-listen address?): %w", joinURL, err, ju.Host, types.ErrUnavailable)
	}
	defer hresp.Body.Close()
	rb, _ := io.ReadAll(io.LimitReader(hresp.Body, 1<<20))
	if hresp.StatusCode != http.StatusOK {
		var je joinError
		if json.Unmarshal(rb, &je) != nil || je.Code == "" {
			return nil, fmt.Errorf("join %s: %s: %s (is it a hangar cluster listener?): %w", joinURL, hresp.Status, bytes.TrimSpace(rb), types.ErrUnavailable)
		}
		return nil, joinRefused(joinURL, je, cfg.Now())
	}
	var out joinResponse
	if err := json.Unmarshal(rb, &out); err != nil {
		return nil, fmt.Errorf("join %s: answer: %w", joinURL, err)
	}
	// The member checked the clocks; check again from here (the answer
	// took a moment, which is far below the bound).
	if skew := cfg.Now().Sub(out.Time); skew > MaxClockSkew || skew < -MaxClockSkew {
		return nil, clockError(joinURL, skew)
	}
	mf.ClusterID, mf.Role, mf.Endpoints = out.ClusterID, out.Role, out.Endpoints
	hostKey, err := keyPEM(key)
	if err != nil {
		return nil, err
	}
	files := map[string][]byte{caFile: []byte(out.CA), certFile: []byte(out.Cert), keyFile: hostKey}
	if out.Role == RoleVoter {
		mf.PeerURL, mf.ClientURL, mf.PeerListen, mf.ClientListen = peerURL, clientURL, cfg.PeerListen, cfg.ClientListen
		mf.InitialCluster, mf.MemberID = out.InitialCluster, out.MemberID
		files[caKeyFile] = []byte(out.CAKey)
	}
	if caCert, err := parseCertPEM([]byte(out.CA)); err != nil || pinOf(caCert) != tok.Pin {
		return nil, fmt.Errorf("join %s: the CA in the answer is not the one the token pins: %w", joinURL, ErrOtherCluster)
	}
	if err := writeShared(cfg, out.Files); err != nil {
		return nil, err
	}
	if err := writeClusterDir(dir, mf, files); err != nil {
		return nil, err
	}
	n, err := load(cfg, dir)
	if err != nil {
		return nil, err
	}
	if err := n.start(ctx, "existing"); err != nil {
		n.Close()
		return nil, fmt.Errorf("joined cluster %s as a %s, but: %w (restart the daemon to retry from %s)", out.ClusterID, out.Role, err, dir)
	}
	if out.Role == RoleVoter {
		if err := n.promote(ctx); err != nil {
			n.Close()
			return nil, err
		}
	}
	n.refreshEndpoints(ctx)
	n.log.Info("joined the cluster", "cluster", out.ClusterID, "role", out.Role, "through", joinURL, "endpoints", out.Endpoints)
	return n, nil
}

// verifyPinned checks the join server's certificate chain against the CA
// the token pins: a certificate of the chain must have the pinned key and
// have signed the server's certificate.
func verifyPinned(cs tls.ConnectionState, pin [32]byte, now time.Time) error {
	if len(cs.PeerCertificates) == 0 {
		return fmt.Errorf("the server sent no certificate: %w", ErrOtherCluster)
	}
	var caCert *x509.Certificate
	for _, c := range cs.PeerCertificates[1:] {
		if pinOf(c) == pin {
			caCert = c
		}
	}
	if caCert == nil {
		return fmt.Errorf("the server's CA is not the one the token pins (sha256:%s): it belongs to another cluster, or the token does; use a token made by `hangar cluster join-token` on a member of the cluster you join: %w",
			hex.EncodeToString(pin[:8]), ErrOtherCluster)
	}
	roots := x509.NewCertPool()
	roots.AddCert(caCert)
	// Any host with a certificate of the pinned CA is a member of the
	// cluster, whatever name it was dialed by (an IP, a DNS name, a
	// forwarded port): the name is not checked.
	if _, err := cs.PeerCertificates[0].Verify(x509.VerifyOptions{Roots: roots, CurrentTime: now}); err != nil {
		return fmt.Errorf("the server's certificate does not check against the pinned CA: %v: %w", err, ErrOtherCluster)
	}
	return nil
}

func clockError(joinURL string, skew time.Duration) error {
	dir := "ahead of"
	if skew < 0 {
		dir, skew = "behind", -skew
	}
	return fmt.Errorf("this host's clock is %s %s the member's at %s (at most %s apart): sync the clocks (e.g. `timedatectl set-ntp true`, or chrony) and join again: %w",
		skew.Round(time.Second), dir, joinURL, MaxClockSkew, ErrClockSkew)
}

// joinRefused turns a member's refusal into an error saying what to do.
func joinRefused(joinURL string, je joinError, now time.Time) error {
	switch je.Code {
	case codeClock:
		return clockError(joinURL, now.Sub(je.Time))
	case codeToken:
		return fmt.Errorf("join %s: the member refused the token: %s; %s: %w", joinURL, je.Error, tokenHint, ErrTokenRefused)
	case codeName:
		return fmt.Errorf("join %s: %s: %w", joinURL, je.Error, types.ErrConflict)
	case codeNotSigner:
		return fmt.Errorf("join %s: %s: %w", joinURL, je.Error, types.ErrConflict)
	case codeEtcd:
		return fmt.Errorf("join %s: %s: %w", joinURL, je.Error, types.ErrUnavailable)
	}
	return fmt.Errorf("join %s: %s: %w", joinURL, je.Error, types.ErrInvalid)
}

// othersClient is an etcd client to the voters other than this host's
// member (nil when there are none, or it cannot be made); the caller
// closes it.
func (n *Node) othersClient() *clientv3.Client {
	var others []string
	for _, ep := range n.mf.Endpoints {
		if ep != n.mf.ClientURL {
			others = append(others, ep)
		}
	}
	if len(others) == 0 {
		return nil
	}
	c, err := clientv3.New(clientv3.Config{Endpoints: others, TLS: n.ClientTLS(), DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		return nil
	}
	return c
}

// promote makes this learner a voting member once it has caught up with
// the leader (etcd refuses until then), and records it.
func (n *Node) promote(ctx context.Context) error {
	// Ask the voters, not this learner (which serves no such request).
	cli := n.cli
	if c := n.othersClient(); c != nil {
		defer c.Close()
		cli = c
	}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		_, err := cli.MemberPromote(pctx, uint64(n.etcd.Server.MemberID()))
		cancel()
		if err == nil || errors.Is(err, rpctypes.ErrMemberNotLearner) || strings.Contains(err.Error(), "not a learner") {
			break
		}
		if ctx.Err() != nil || time.Now().After(deadline) {
			return fmt.Errorf("promote etcd member %s to a voter: %w (it stays a learner; restarting the daemon tries again)", n.mf.Name, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	n.mf.Promoted = true
	return n.saveMemberFile()
}

func randomID() (string, error) {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("cluster id: %w", err)
	}
	return hex.EncodeToString(b[:]), nil
}

// writeShared writes the member's copies of the shared files into this
// host's data dir, where it has none of its own.
func writeShared(cfg Config, files map[string][]byte) error {
	for _, name := range cfg.SharedFiles {
		b, ok := files[name]
		if !ok {
			continue
		}
		path := filepath.Join(cfg.DataDir, name)
		if cur, err := os.ReadFile(path); err == nil {
			if !bytes.Equal(cur, b) {
				cfg.Log.Warn("this host has its own copy of a file the cluster shares; keeping it, but what the cluster wrote with the other may not read here", "file", path)
			}
			continue
		}
		if err := fsutil.WriteFileAtomic(path, b, 0o600); err != nil {
			return fmt.Errorf("write %s from the cluster: %w", path, err)
		}
	}
	return nil
}
