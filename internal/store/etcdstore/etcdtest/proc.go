package etcdtest

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
)

// memberEnv carries a member's spec to a process started by
// StartProcessCluster.
const memberEnv = "HANGAR_ETCDTEST_MEMBER"

const readyLine = "etcdtest: member ready"

type memberSpec struct {
	Name, ClientURL, PeerURL, Dir, Initial, Token, State string
}

// RunMemberIfAsked runs an etcd member and never returns when the process
// was started by StartProcessCluster; otherwise it returns at once. Call it
// first in the TestMain of a package that uses StartProcessCluster.
func RunMemberIfAsked() {
	raw := os.Getenv(memberEnv)
	if raw == "" {
		return
	}
	var sp memberSpec
	if err := json.Unmarshal([]byte(raw), &sp); err != nil {
		fmt.Fprintf(os.Stderr, "etcdtest: bad %s: %v\n", memberEnv, err)
		os.Exit(2)
	}
	m := &Member{Name: sp.Name, ClientURL: sp.ClientURL, peerURL: sp.PeerURL, dir: sp.Dir, initial: sp.Initial, token: sp.Token}
	cfg, err := m.config(sp.State)
	if err != nil {
		fmt.Fprintf(os.Stderr, "etcdtest: %v\n", err)
		os.Exit(2)
	}
	// A real crash follows, so writes must really be on disk.
	cfg.UnsafeNoFsync = false
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		fmt.Fprintf(os.Stderr, "etcdtest: start %s: %v\n", sp.Name, err)
		os.Exit(2)
	}
	select {
	case <-e.Server.ReadyNotify():
		fmt.Println(readyLine)
	case err := <-e.Err():
		fmt.Fprintf(os.Stderr, "etcdtest: %s: %v\n", sp.Name, err)
		os.Exit(2)
	}
	err = <-e.Err()
	fmt.Fprintf(os.Stderr, "etcdtest: %s: %v\n", sp.Name, err)
	os.Exit(2)
}

// ProcCluster is a cluster whose members run in child processes (the test
// binary again, see RunMemberIfAsked), so that a member can be killed with
// SIGKILL like a crashed host's daemon. Members fsync.
type ProcCluster struct {
	Members []*ProcMember
}

// ProcMember is one member in a child process.
type ProcMember struct {
	spec memberSpec

	mu    sync.Mutex
	cmd   *exec.Cmd     // nil while stopped
	ready chan struct{} // closed when the child printed readyLine
	exit  chan struct{} // closed when the child exited
}

// StartProcessCluster starts n members in child processes, waits until all
// are ready, and kills them when t ends. The package's TestMain must call
// RunMemberIfAsked.
func StartProcessCluster(t testing.TB, n int) *ProcCluster {
	t.Helper()
	c := &ProcCluster{}
	token := fmt.Sprintf("etcdtest-proc-%d", time.Now().UnixNano())
	var peers []string
	for i := range n {
		sp := memberSpec{
			Name:      fmt.Sprintf("p%d", i),
			ClientURL: "http://" + freeAddr(t),
			PeerURL:   "http://" + freeAddr(t),
			Dir:       t.TempDir(),
			Token:     token,
		}
		peers = append(peers, sp.Name+"="+sp.PeerURL)
		c.Members = append(c.Members, &ProcMember{spec: sp})
	}
	t.Cleanup(func() {
		for _, m := range c.Members {
			m.Stop()
		}
	})
	for _, m := range c.Members {
		m.spec.Initial = strings.Join(peers, ",")
		if err := m.start("new"); err != nil {
			t.Fatalf("etcdtest: start %s: %v", m.spec.Name, err)
		}
	}
	for _, m := range c.Members {
		m.WaitReady(t)
	}
	return c
}

// Endpoints returns the client URLs of all members, stopped or not.
func (c *ProcCluster) Endpoints() []string {
	var eps []string
	for _, m := range c.Members {
		eps = append(eps, m.spec.ClientURL)
	}
	return eps
}

func (m *ProcMember) String() string { return m.spec.Name }

func (m *ProcMember) start(state string) error {
	sp := m.spec
	sp.State = state
	raw, err := json.Marshal(sp)
	if err != nil {
		return err
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), memberEnv+"="+string(raw))
	cmd.Stderr = os.Stderr
	dieWithParent(cmd)
	out, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return err
	}
	ready, exit := make(chan struct{}), make(chan struct{})
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if sc.Text() == readyLine {
				close(ready)
			}
		}
		cmd.Wait()
		close(exit)
	}()
	m.mu.Lock()
	m.cmd, m.ready, m.exit = cmd, ready, exit
	m.mu.Unlock()
	return nil
}

// WaitReady waits until a (re)started member serves clients.
func (m *ProcMember) WaitReady(t testing.TB) {
	t.Helper()
	m.mu.Lock()
	ready, exit := m.ready, m.exit
	m.mu.Unlock()
	select {
	case <-ready:
	case <-exit:
		t.Fatalf("etcdtest: member %s exited while starting", m.spec.Name)
	case <-time.After(readyTimeout):
		t.Fatalf("etcdtest: member %s not ready after %s", m.spec.Name, readyTimeout)
	}
}

// Running reports whether the member's process runs.
func (m *ProcMember) Running() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.cmd != nil
}

// Stop kills the member's process with SIGKILL and waits for it to be gone.
func (m *ProcMember) Stop() {
	m.mu.Lock()
	cmd, exit := m.cmd, m.exit
	m.cmd = nil
	m.mu.Unlock()
	if cmd == nil {
		return
	}
	cmd.Process.Kill()
	<-exit
}

// Restart starts a killed member again from its data dir (see
// Member.Restart).
func (m *ProcMember) Restart(t testing.TB) {
	t.Helper()
	if err := m.start("existing"); err != nil {
		t.Fatalf("etcdtest: restart %s: %v", m.spec.Name, err)
	}
}

// IsLeader reports whether the member runs and says it is the leader.
func (m *ProcMember) IsLeader() bool {
	if !m.Running() {
		return false
	}
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{m.spec.ClientURL}, DialTimeout: time.Second, Logger: zap.NewNop()})
	if err != nil {
		return false
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	st, err := cli.Status(ctx, m.spec.ClientURL)
	return err == nil && st.Leader == st.Header.MemberId
}
