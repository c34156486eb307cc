package deploy

import (
	"context"
	"sync"
	"testing"
)

// memSecrets stands in for the secrets store: versions only.
type memSecrets struct {
	mu               sync.Mutex // guards the fields below
	latest, deployed int
}

func (m *memSecrets) Version(context.Context, string) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.latest, nil
}

func (m *memSecrets) DeployedVersion(context.Context, string) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.deployed, nil
}

func (m *memSecrets) MarkDeployed(_ context.Context, _ string, v int) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.deployed = v
	return nil
}

// TestDeploySecretsMarksDeployed: a roll-out marks its version deployed
// and says so last; what is deployed is the marked version until a
// release records one.
func TestDeploySecretsMarksDeployed(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	sec := &memSecrets{latest: 1, deployed: 0}
	e.d.Secrets = sec
	if v, err := DeployedSecretsVersion(ctx, e.st, sec, testApp); err != nil || v != 0 {
		t.Fatalf("deployed before anything: %d, %v", v, err)
	}
	e.mustDeploy("v1", Request{Counts: map[string]int{"app": 1}})
	if v, err := DeployedSecretsVersion(ctx, e.st, sec, testApp); err != nil || v != 1 {
		t.Fatalf("deployed after release v1 (secrets v1): %d, %v", v, err)
	}
	sec.mu.Lock()
	sec.latest = 2
	sec.mu.Unlock()
	var last Event
	if _, err := e.d.DeploySecrets(ctx, testApp, 2, "", func(ev Event) { last = ev }); err != nil {
		t.Fatalf("DeploySecrets: %v", err)
	}
	if v, _ := sec.DeployedVersion(ctx, testApp); v != 2 {
		t.Errorf("marked deployed: %d, want 2", v)
	}
	if last.Step != "secrets" || last.Message != "secrets version 2 deployed" {
		t.Errorf("last event %+v", last)
	}
	if v, err := DeployedSecretsVersion(ctx, e.st, sec, testApp); err != nil || v != 2 {
		t.Errorf("deployed after the roll-out (a restart release): %d, %v", v, err)
	}
}
