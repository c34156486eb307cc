package cli

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/hangar-dev/hangar/internal/daemon"
)

func TestByteSizeFlag(t *testing.T) {
	for in, want := range map[string]int64{
		"0": 0, "32MiB": 32 << 20, "32mb": 32 << 20, "512KiB": 512 << 10, "1GiB": 1 << 30, "131072": 128 << 10, "2 MiB": 2 << 20,
	} {
		var b byteSize
		if err := b.Set(in); err != nil || int64(b) != want {
			t.Errorf("Set(%q) = %d, %v; want %d", in, int64(b), err, want)
		}
	}
	for in, msg := range map[string]string{
		"lots": "not a size", "-1MiB": "not a size", "3XB": "not a size", "1.5MiB": "not a size", "64KiB": "too small", "100": "too small",
	} {
		var b byteSize
		if err := b.Set(in); err == nil || !strings.Contains(err.Error(), msg) {
			t.Errorf("Set(%q) = %v, want an error saying %q", in, err, msg)
		}
	}
	b := byteSize(32 << 20)
	if b.String() != "32MiB" {
		t.Errorf("String() = %q", b.String())
	}
}

func TestEtcdFlags(t *testing.T) {
	def := daemon.DefaultEtcdPrefix
	eo, err := etcdFlags{prefix: def}.options(false)
	if err != nil || eo != nil {
		t.Fatalf("no --etcd-endpoints = %+v, %v; want the state file (nil)", eo, err)
	}
	eo, err = etcdFlags{endpoints: []string{"https://10.0.0.1:2379", "https://10.0.0.2:2379"}, ca: "ca.pem", cert: "c.pem", key: "k.pem", prefix: "/hangar/prod/"}.options(false)
	if err != nil {
		t.Fatal(err)
	}
	want := daemon.EtcdOptions{Endpoints: []string{"https://10.0.0.1:2379", "https://10.0.0.2:2379"}, CAFile: "ca.pem", CertFile: "c.pem", KeyFile: "k.pem", Prefix: "/hangar/prod/"}
	if fmt.Sprint(*eo) != fmt.Sprint(want) {
		t.Fatalf("options = %+v, want %+v", *eo, want)
	}
	if eo, err := (etcdFlags{endpoints: []string{"http://127.0.0.1:2379"}, prefix: def}).options(false); err != nil || eo.Prefix != def {
		t.Fatalf("plain http endpoint = %+v, %v", eo, err)
	}
	for name, c := range map[string]struct {
		f   etcdFlags
		msg string
	}{
		"tls without endpoints":  {etcdFlags{ca: "ca.pem", prefix: def}, "need --etcd-endpoints"},
		"prefix without":         {etcdFlags{prefix: "/x/"}, "need --etcd-endpoints"},
		"no scheme":              {etcdFlags{endpoints: []string{"10.0.0.1:2379"}, prefix: def}, "not an etcd client URL"},
		"no port":                {etcdFlags{endpoints: []string{"https://10.0.0.1"}, prefix: def}, "not an etcd client URL"},
		"path":                   {etcdFlags{endpoints: []string{"https://10.0.0.1:2379/v3"}, prefix: def}, "not an etcd client URL"},
		"grpc scheme":            {etcdFlags{endpoints: []string{"grpc://10.0.0.1:2379"}, prefix: def}, "not an etcd client URL"},
		"mixed schemes":          {etcdFlags{endpoints: []string{"https://a:2379", "http://b:2379"}, prefix: def}, "mixes"},
		"cert without key":       {etcdFlags{endpoints: []string{"https://a:2379"}, cert: "c.pem", prefix: def}, "go together"},
		"key without cert":       {etcdFlags{endpoints: []string{"https://a:2379"}, key: "k.pem", prefix: def}, "go together"},
		"tls files on http":      {etcdFlags{endpoints: []string{"http://a:2379"}, ca: "ca.pem", prefix: def}, "https://"},
		"prefix without slashes": {etcdFlags{endpoints: []string{"http://a:2379"}, prefix: "hangar"}, "start and end with /"},
		"root prefix":            {etcdFlags{endpoints: []string{"http://a:2379"}, prefix: "/"}, "start and end with /"},
	} {
		_, err := c.f.options(false)
		var he *HintError
		if err == nil || !strings.Contains(err.Error(), c.msg) || !errors.As(err, &he) || he.Hint == "" {
			t.Errorf("%s: %v, want an error with a hint saying %q", name, err, c.msg)
		}
	}
}

// TestEtcdFlagsParse checks the flags as `hangar server` declares them.
func TestEtcdFlagsParse(t *testing.T) {
	cmd := newServerCmd()
	if err := cmd.ParseFlags([]string{"--etcd-endpoints", "https://a:2379,https://b:2379", "--etcd-endpoints", "https://c:2379",
		"--etcd-ca", "ca.pem", "--etcd-cert", "c.pem", "--etcd-key", "k.pem"}); err != nil {
		t.Fatal(err)
	}
	f := cmd.Flags()
	if got := f.Lookup("etcd-endpoints").Value.String(); got != "[https://a:2379,https://b:2379,https://c:2379]" {
		t.Errorf("--etcd-endpoints = %s", got)
	}
	for name, want := range map[string]string{"etcd-ca": "ca.pem", "etcd-cert": "c.pem", "etcd-key": "k.pem", "etcd-prefix": daemon.DefaultEtcdPrefix} {
		if got := f.Lookup(name).Value.String(); got != want {
			t.Errorf("--%s = %q, want %q", name, got, want)
		}
	}
}

// TestClusterFlags: the cluster flags' checks and what they become.
func TestClusterFlags(t *testing.T) {
	parse := func(args ...string) (*daemon.ClusterOptions, error) {
		t.Helper()
		cmd := newServerCmd()
		if err := cmd.ParseFlags(args); err != nil {
			t.Fatal(err)
		}
		var ef etcdFlags
		ef.prefix = daemon.DefaultEtcdPrefix
		ef.endpoints, _ = cmd.Flags().GetStringSlice("etcd-endpoints")
		var cf clusterFlags
		cf.init, _ = cmd.Flags().GetBool("cluster-init")
		cf.voters, _ = cmd.Flags().GetInt("voters")
		cf.join, _ = cmd.Flags().GetString("join")
		cf.token, _ = cmd.Flags().GetString("join-token")
		cf.name, _ = cmd.Flags().GetString("member-name")
		cf.peerListen, _ = cmd.Flags().GetString("etcd-peer-listen")
		cf.clientListen, _ = cmd.Flags().GetString("etcd-client-listen")
		cf.clusterListen, _ = cmd.Flags().GetString("cluster-listen")
		return cf.options(cmd, ef)
	}
	if co, err := parse(); co != nil || err != nil {
		t.Fatalf("no cluster flags: %+v %v", co, err)
	}
	co, err := parse("--cluster-init", "--voters", "5", "--member-name", "a")
	if err != nil || !co.Init || co.Voters != 5 || co.Name != "a" || co.Prefix != daemon.DefaultEtcdPrefix {
		t.Fatalf("--cluster-init --voters 5: %+v %v", co, err)
	}
	co, err = parse("--join", "https://10.0.0.1", "--join-token", "hj1_x")
	if err != nil || co.Join != "https://10.0.0.1:4281" || co.JoinToken != "hj1_x" {
		t.Fatalf("--join without a port: %+v %v", co, err)
	}
	for _, bad := range []struct {
		args []string
		want string
	}{
		{[]string{"--cluster-init", "--join", "https://a:4281", "--join-token", "t"}, "exclude each other"},
		{[]string{"--join", "https://a:4281"}, "needs --join-token"},
		{[]string{"--join-token", "t"}, "needs --join"},
		{[]string{"--voters", "5"}, "is for --cluster-init"},
		{[]string{"--cluster-init", "--voters", "4"}, "--voters 4"},
		{[]string{"--join", "http://a:4281", "--join-token", "t"}, "not a cluster listener URL"},
		{[]string{"--cluster-init", "--etcd-peer-listen", "10.0.0.1"}, "not HOST:PORT"},
		{[]string{"--cluster-init", "--etcd-endpoints", "https://a:2379"}, "exclude each other"},
	} {
		_, err := parse(bad.args...)
		var he *HintError
		if err == nil || !strings.Contains(err.Error(), bad.want) || !errors.As(err, &he) || he.Hint == "" {
			t.Errorf("%v: %v; want an error saying %q with a hint", bad.args, err, bad.want)
		}
	}
}
