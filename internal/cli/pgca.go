package cli

import (
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"io"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/hangar-dev/hangar/internal/pg"
	"github.com/hangar-dev/hangar/internal/types"
)

// `hangar pg ca rotate -a DB`: a new cluster CA and member certificate,
// rolled out so that no client or member ever sees a certificate it does
// not trust: first everyone trusts the new CA alongside the old one (the
// apps attached to the cluster, then each member), then each member
// serves the new certificate.

func newPgCARotateCmd() *cobra.Command {
	var app, config string
	cmd := &cobra.Command{
		Use:   "rotate -a DB",
		Short: "Make a new CA and member certificate for a Hangar Postgres cluster and roll them out (the old CA stays trusted until every member has the new certificate)",
		Long: `Rotate the cluster's CA and its members' certificate and key, in two
rolling steps:

 1. trust: the apps attached to the cluster (whose CA secret is the
    cluster's, e.g. DATABASE_CA_CERT) get the new CA alongside the old
    one, and are rolled out; then each member in turn (replicas first,
    the primary after a switchover to a replica) trusts both;
 2. serve: each member in turn serves a new certificate, signed by the
    new CA, with a new key.

A client that trusts the old CA only is refused by the members once
step 2 has reached them: give other clients the new bundle (` + "`hangar pg ca`" + `)
before. The old CA stays in the bundle until the next rotation.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			name, c, err := appAndClient(app, config)
			if err != nil {
				return err
			}
			return pgRotateCA(cmd.Context(), c, name, cmd.OutOrStdout())
		},
	}
	appFlags(cmd, &app, &config)
	return cmd
}

// pgFirstCert is the first certificate of a PEM bundle (the current CA;
// the ones after it are older).
func pgFirstCert(bundle string) (string, error) {
	b, _ := pem.Decode([]byte(bundle))
	if b == nil || b.Type != "CERTIFICATE" {
		return "", fmt.Errorf("no certificate in the cluster's CA file")
	}
	if _, err := x509.ParseCertificate(b.Bytes); err != nil {
		return "", fmt.Errorf("the cluster's CA: %w", err)
	}
	return string(pem.EncodeToMemory(b)), nil
}

// pgKeySecret is the secret that holds the members' server key: its
// name in the member's config.
func pgKeySecret(m *types.Machine) string {
	for _, f := range m.Config.Files {
		if f.GuestPath == pg.ConfigDir+"/server.key" && f.SecretName != nil {
			return *f.SecretName
		}
	}
	return pg.SecretServerKey
}

// pgNextKeySecret is a new secret name for the next server key: the
// members not yet moved to it keep booting with theirs.
func pgNextKeySecret(cur string) string {
	if i := strings.LastIndex(cur, "_"); i > 0 {
		if n, err := strconv.Atoi(cur[i+1:]); err == nil {
			return cur[:i+1] + strconv.Itoa(n+1)
		}
	}
	return cur + "_2"
}

func pgRotateCA(ctx context.Context, c *client, app string, out io.Writer) error {
	ms, err := c.Machines(ctx, app)
	if err != nil {
		return secretsHint(err)
	}
	var members []types.Machine
	for _, m := range ms {
		if m.Config != nil && m.Config.Metadata[pg.ClusterMetaKey] != "" {
			members = append(members, m)
		}
	}
	if len(members) == 0 {
		return &HintError{Err: fmt.Errorf("%s has no Hangar Postgres cluster members", app), Hint: "clusters made by `hangar pg create` have a CA to rotate"}
	}
	for _, m := range members {
		if m.State != types.StateStarted {
			return &HintError{Err: fmt.Errorf("member %s of %s is %s", m.ID, app, m.State), Hint: "start it first: a rotation restarts every member in turn"}
		}
	}
	oldBundle := pgCAOf(&members[0])
	oldCA, err := pgFirstCert(oldBundle)
	if err != nil {
		return err
	}
	if _, err := pgWaitCluster(ctx, c, app, len(members), false, time.Minute); err != nil {
		return &HintError{Err: err, Hint: "rotate a cluster whose members all run: see `hangar pg status -a " + app + "`"}
	}
	now := time.Now()
	caCert, caKey, err := pg.NewCA(app, now)
	if err != nil {
		return fmt.Errorf("make the new CA: %w", err)
	}
	srvCert, srvKey, err := pg.NewServerCert(caCert, caKey, pg.ServerNames(app), now)
	if err != nil {
		return fmt.Errorf("make the new member certificate: %w", err)
	}
	bundle := string(caCert) + oldCA

	// 1. Trust: the attached apps, then the members.
	var list types.SecretsList
	if err := c.do(ctx, "GET", "/v1/apps/"+url.PathEscape(app)+"/secrets", nil, &list); err != nil {
		return err
	}
	caDigest := ""
	for _, s := range list.Secrets {
		if s.Name == pg.SecretCACert {
			caDigest = s.Digest
		}
	}
	apps, err := c.Apps(ctx)
	if err != nil {
		return err
	}
	for _, a := range apps {
		if a.Name == app || caDigest == "" {
			continue
		}
		var l types.SecretsList
		if err := c.do(ctx, "GET", "/v1/apps/"+url.PathEscape(a.Name)+"/secrets", nil, &l); err != nil {
			continue // not ours to read
		}
		set := map[string]*string{}
		for _, s := range l.Secrets {
			if strings.HasSuffix(s.Name, "_CA_CERT") && s.Digest == caDigest {
				set[s.Name] = &bundle
			}
		}
		if len(set) == 0 {
			continue
		}
		res, err := c.setSecrets(ctx, a.Name, set)
		if err != nil {
			return fmt.Errorf("give %s the new CA: %w", a.Name, err)
		}
		fmt.Fprintf(out, "App %s trusts the new CA alongside the old (%d secret)\n", a.Name, len(set))
		if am, err := c.Machines(ctx, a.Name); err == nil && len(am) > 0 && res.Version != res.DeployedVersion {
			if err := pgSecretsDeploy(ctx, c, a.Name, out); err != nil {
				return fmt.Errorf("roll out %s's new CA: %w", a.Name, err)
			}
		}
	}
	if _, err := c.setSecrets(ctx, app, map[string]*string{pg.SecretCACert: &bundle}); err != nil {
		return err
	}
	fmt.Fprintf(out, "Step 1 of 2: every member trusts the new CA alongside the old\n")
	trust := func(cfg *types.MachineConfig) {
		pgSetFile(cfg, pg.ConfigDir+"/ca.crt", []byte(bundle))
	}
	if err := pgRollMembers(ctx, c, app, out, trust); err != nil {
		return err
	}
	// The backup repository trusts both CAs too, and serves a
	// certificate of the new one (the members already trust it).
	if err := pgRotateRepo(ctx, c, app, out, caCert, caKey, bundle, now); err != nil {
		return err
	}

	// 2. Serve: a new key under a new secret name (a member not yet
	// moved still boots with its own), then the certificate.
	oldKey := pgKeySecret(&members[0])
	newKey := pgNextKeySecret(oldKey)
	if _, err := c.setSecrets(ctx, app, map[string]*string{newKey: types.Ptr(string(srvKey)), pg.SecretCAKey: types.Ptr(string(caKey))}); err != nil {
		return err
	}
	fmt.Fprintf(out, "Step 2 of 2: every member serves a certificate of the new CA\n")
	serve := func(cfg *types.MachineConfig) {
		pgSetFile(cfg, pg.ConfigDir+"/server.crt", srvCert)
		// The start script of now, which keeps every key secret out of
		// Patroni's environment.
		pgSetFile(cfg, pg.ConfigDir+"/start.sh", pg.MemberStartScript())
		for i := range cfg.Files {
			if cfg.Files[i].GuestPath == pg.ConfigDir+"/server.key" {
				cfg.Files[i].SecretName = types.Ptr(newKey)
			}
		}
	}
	if err := pgRollMembers(ctx, c, app, out, serve); err != nil {
		return err
	}
	if newKey != oldKey {
		if _, err := c.setSecrets(ctx, app, map[string]*string{oldKey: nil}); err != nil {
			fmt.Fprintf(out, "Warning: the old key's secret %s is still set: %v\n", oldKey, err)
		}
	}
	fmt.Fprintf(out, "Rotated the CA of %s: `hangar pg ca -a %s` prints the new CA first, then the old one (trusted until the next rotation).\n", app, app)
	return nil
}

// pgSetFile sets a raw file of a machine config.
func pgSetFile(cfg *types.MachineConfig, path string, b []byte) {
	v := base64.StdEncoding.EncodeToString(b)
	for i := range cfg.Files {
		if cfg.Files[i].GuestPath == path {
			cfg.Files[i].RawValue = &v
			cfg.Files[i].SecretName = nil
			return
		}
	}
	cfg.Files = append(cfg.Files, types.File{GuestPath: path, RawValue: &v})
}

// pgRollMembers changes each member's config with change and restarts it
// with the new config, one at a time: the replicas first, then the
// primary after a switchover to a replica (in place when it is alone).
func pgRollMembers(ctx context.Context, c *client, app string, out io.Writer, change func(*types.MachineConfig)) error {
	v, err := pgCluster(ctx, c, app)
	if err != nil {
		return err
	}
	primary := v.primary()
	ms, err := c.Machines(ctx, app)
	if err != nil {
		return err
	}
	var members []types.Machine
	for _, m := range ms {
		if m.Config != nil && m.Config.Metadata[pg.ClusterMetaKey] != "" {
			members = append(members, m)
		}
	}
	sort.SliceStable(members, func(i, j int) bool { return members[j].ID == primary && members[i].ID != primary })
	for _, m := range members {
		if m.ID == primary && len(members) > 1 {
			if err := pgSwitchover(ctx, c, app, primary); err != nil {
				return err
			}
			fmt.Fprintf(out, "  the primary %s handed over to a replica\n", primary)
		}
		start := time.Now()
		cfg := *m.Config
		cfg.Files = append([]types.File(nil), m.Config.Files...)
		change(&cfg)
		var updated types.Machine
		if err := c.do(ctx, "POST", "/v1/apps/"+url.PathEscape(app)+"/machines/"+url.PathEscape(m.ID), types.CreateMachineRequest{Config: &cfg}, &updated); err != nil {
			return fmt.Errorf("update member %s of %s: %w", m.ID, app, err)
		}
		if err := c.do(ctx, "GET", "/v1/apps/"+url.PathEscape(app)+"/machines/"+url.PathEscape(m.ID)+"/wait?state=started&timeout=60", nil, nil); err != nil {
			return fmt.Errorf("member %s of %s did not start with its new config: %w", m.ID, app, err)
		}
		if err := pgWaitMember(ctx, c, app, m.ID, 3*time.Minute); err != nil {
			return &HintError{Err: err, Hint: "see `hangar logs -a " + app + "`"}
		}
		fmt.Fprintf(out, "  member %s restarted with it (%s)\n", m.ID, time.Since(start).Round(100*time.Millisecond))
	}
	return nil
}

// pgSwitchover hands the primary role from old to a replica and waits
// until another member is primary.
func pgSwitchover(ctx context.Context, c *client, app, old string) error {
	start := time.Now()
	for {
		res, err := pgCtl(ctx, c, app, "switchover", "")
		if err == nil {
			break
		}
		if strings.Contains(err.Error(), "sync_standby") && time.Since(start) < 30*time.Second {
			time.Sleep(time.Second)
			continue
		}
		return &HintError{Err: fmt.Errorf("switchover in %s: %w %s", app, err, res), Hint: "see `hangar pg status -a " + app + "`"}
	}
	deadline := time.Now().Add(time.Minute)
	for {
		v, err := pgCluster(ctx, c, app)
		if err == nil {
			if p := v.primary(); p != "" && p != old {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no new primary in %s within a minute of the switchover (%v)", app, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// pgSecretsDeploy rolls an app's latest secrets out to its machines.
func pgSecretsDeploy(ctx context.Context, c *client, app string, out io.Writer) error {
	resp, err := c.send(ctx, "POST", "/v1/apps/"+url.PathEscape(app)+"/secrets_deploy", nil, "")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	final, err := printReleaseStream(out, resp.Body, false)
	if err != nil {
		return err
	}
	if final.Error != "" {
		return fmt.Errorf("%s", final.Error)
	}
	return nil
}

// pgRotateRepo gives the cluster's backup repository machines (group
// pg.BackupGroup) the CA bundle and a new certificate of the new CA, with
// a new key under a new secret name, and restarts them.
func pgRotateRepo(ctx context.Context, c *client, app string, out io.Writer, caCert, caKey []byte, bundle string, now time.Time) error {
	ms, err := c.Machines(ctx, app)
	if err != nil {
		return err
	}
	for _, m := range ms {
		if m.Config == nil || m.Config.Metadata[types.MetaProcessGroup] != pg.BackupGroup || m.State == types.StateDestroyed {
			continue
		}
		cert, key, err := pg.NewServerCert(caCert, caKey, pg.BackupNames(app), now)
		if err != nil {
			return fmt.Errorf("make the backup repository's new certificate: %w", err)
		}
		oldKey := pg.SecretBackupKey
		for _, f := range m.Config.Files {
			if f.GuestPath == pg.ConfigDir+"/backup.key" && f.SecretName != nil {
				oldKey = *f.SecretName
			}
		}
		newKey := pgNextKeySecret(oldKey)
		if _, err := c.setSecrets(ctx, app, map[string]*string{newKey: types.Ptr(string(key))}); err != nil {
			return err
		}
		cfg := *m.Config
		cfg.Files = append([]types.File(nil), m.Config.Files...)
		pgSetFile(&cfg, pg.ConfigDir+"/ca.crt", []byte(bundle))
		pgSetFile(&cfg, pg.ConfigDir+"/backup.crt", cert)
		for i := range cfg.Files {
			if cfg.Files[i].GuestPath == pg.ConfigDir+"/backup.key" {
				cfg.Files[i].SecretName = types.Ptr(newKey)
				cfg.Files[i].RawValue = nil
			}
		}
		if err := c.do(ctx, "POST", "/v1/apps/"+url.PathEscape(app)+"/machines/"+url.PathEscape(m.ID), types.CreateMachineRequest{Config: &cfg}, nil); err != nil {
			return fmt.Errorf("update the backup repository %s of %s: %w", m.ID, app, err)
		}
		if m.State == types.StateStarted {
			if err := c.do(ctx, "GET", "/v1/apps/"+url.PathEscape(app)+"/machines/"+url.PathEscape(m.ID)+"/wait?state=started&timeout=60", nil, nil); err != nil {
				return fmt.Errorf("the backup repository %s of %s did not start with its new config: %w", m.ID, app, err)
			}
		}
		if newKey != oldKey {
			if _, err := c.setSecrets(ctx, app, map[string]*string{oldKey: nil}); err != nil {
				fmt.Fprintf(out, "Warning: the backup repository's old key secret %s is still set: %v\n", oldKey, err)
			}
		}
		fmt.Fprintf(out, "  the backup repository %s trusts both CAs and serves a certificate of the new one\n", m.ID)
	}
	return nil
}
