package export

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// validateScript runs botocore's own parameter validator (the check the AWS
// SDK for Python makes before it sends a request) on every step of an
// ecs-json document, against the ECS, ELBv2, CloudWatch Logs and IAM API
// models that ship with botocore.
const validateScript = `
import json, sys
import botocore.session
from botocore.validate import validate_parameters
from botocore.exceptions import ParamValidationError
session = botocore.session.get_session()
models = {}
failed = 0
steps = []
for path in sys.argv[1:]:
    steps += json.load(open(path))["steps"]
for step in steps:
    svc = step["service"]
    if svc not in models:
        models[svc] = session.get_service_model(svc)
    op = models[svc].operation_model(step["operation"])
    try:
        validate_parameters(step["input"], op.input_shape)
    except ParamValidationError as e:
        failed += 1
        print("FAIL step %d %s.%s: %s" % (step["step"], svc, step["operation"], e))
    else:
        print("ok step %d %s.%s" % (step["step"], svc, step["operation"]))
sys.exit(1 if failed else 0)
`

// botocoreMissing says why botocore cannot run here ("" when it can).
func botocoreMissing() string {
	if _, err := exec.LookPath("python3"); err != nil {
		return "python3 not found: install the Debian package python3-botocore to run AWS parameter validation"
	}
	if out, err := exec.Command("python3", "-c", "import botocore.session, botocore.validate").CombinedOutput(); err != nil {
		return fmt.Sprintf("botocore not importable (%v: %s): install the Debian package python3-botocore to run AWS parameter validation", err, strings.TrimSpace(string(out)))
	}
	return ""
}

// requireBotocore skips the test when python3-botocore is not installed.
func requireBotocore(t *testing.T) {
	t.Helper()
	if why := botocoreMissing(); why != "" {
		t.Skip(why)
	}
}

// runBotocore validates the steps of every document in one python3 run.
func runBotocore(t *testing.T, docs ...any) (string, error) {
	t.Helper()
	dir := t.TempDir()
	args := []string{"-c", validateScript}
	for i, doc := range docs {
		b, err := json.Marshal(doc)
		if err != nil {
			t.Fatal(err)
		}
		f := filepath.Join(dir, fmt.Sprintf("ecs-%d.json", i))
		if err := os.WriteFile(f, b, 0o600); err != nil {
			t.Fatal(err)
		}
		args = append(args, f)
	}
	out, err := exec.Command("python3", args...).CombinedOutput()
	return string(out), err
}

func TestECSJSONPassesBotocoreValidation(t *testing.T) {
	requireBotocore(t)
	plan, err := Build(fixtureApp(), Options{Image: "123456789012.dkr.ecr.us-east-1.amazonaws.com/shop:v1"})
	if err != nil {
		t.Fatal(err)
	}
	doc := plan.ECSJSON()
	out, err := runBotocore(t, doc)
	if err != nil {
		t.Fatalf("botocore rejected the ecs-json inputs: %v\n%s", err, out)
	}
	// Every operation the brief names must have been validated.
	for _, op := range []string{"secretsmanager.CreateSecret", "ecs.RegisterTaskDefinition", "ecs.CreateService", "ecs.RunTask",
		"elbv2.CreateLoadBalancer", "elbv2.CreateTargetGroup", "elbv2.CreateListener"} {
		if !strings.Contains(out, " "+op+"\n") {
			t.Errorf("no %s was validated; output:\n%s", op, out)
		}
	}
	if n := strings.Count(out, "ok step"); n != len(doc.Steps) {
		t.Errorf("validated %d steps, document has %d", n, len(doc.Steps))
	}
}

// The validator must catch what AWS would reject; otherwise the test above
// proves nothing.
func TestBotocoreCatchesBadInput(t *testing.T) {
	requireBotocore(t)
	plan, err := Build(fixtureApp(), Options{Image: "shop:v1"})
	if err != nil {
		t.Fatal(err)
	}
	doc := plan.ECSJSON()
	raw, _ := json.Marshal(doc)
	var generic map[string]any
	if err := json.Unmarshal(raw, &generic); err != nil {
		t.Fatal(err)
	}
	steps := generic["steps"].([]any)
	broke := 0
	for _, s := range steps {
		st := s.(map[string]any)
		in := st["input"].(map[string]any)
		switch st["operation"] {
		case "RegisterTaskDefinition":
			in["containerDefinitions"].([]any)[0].(map[string]any)["portMappings"] = []any{map[string]any{"containerPort": "8080"}}
			broke++
		case "CreateTargetGroup":
			in["HealthCheckPathX"] = "/"
			broke++
		}
	}
	if broke < 2 {
		t.Fatalf("fixture has too few steps to break (%d)", broke)
	}
	out, err := runBotocore(t, generic)
	if err == nil {
		t.Fatalf("botocore accepted broken inputs:\n%s", out)
	}
	if !strings.Contains(out, "FAIL") || !strings.Contains(out, "containerPort") || !strings.Contains(out, "HealthCheckPathX") {
		t.Errorf("expected failures naming containerPort and HealthCheckPathX, got:\n%s", out)
	}
}
