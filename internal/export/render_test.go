package export

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

func TestRenderECSJSONFiles(t *testing.T) {
	t.Parallel()
	plan, err := Build(fixtureApp(), Options{Image: "x"})
	if err != nil {
		t.Fatal(err)
	}
	files, err := plan.Render("ecs-json")
	if err != nil {
		t.Fatal(err)
	}
	if files[0].Name != "plan.json" || files[len(files)-1].Name != "README.md" {
		t.Fatalf("files = %s ... %s", files[0].Name, files[len(files)-1].Name)
	}
	var doc struct {
		Steps []struct {
			File      string         `json:"file"`
			Operation string         `json:"operation"`
			Input     map[string]any `json:"input"`
		} `json:"steps"`
	}
	if err := json.Unmarshal(files[0].Data, &doc); err != nil {
		t.Fatal(err)
	}
	if len(files) != len(doc.Steps)+2 {
		t.Fatalf("%d files for %d steps", len(files), len(doc.Steps))
	}
	readme := string(files[len(files)-1].Data)
	for i, s := range doc.Steps {
		f := files[i+1]
		if f.Name != s.File {
			t.Errorf("file %d is %s, step says %s", i+1, f.Name, s.File)
		}
		var in map[string]any
		if err := json.Unmarshal(f.Data, &in); err != nil {
			t.Fatalf("%s: %v", f.Name, err)
		}
		if !reflect.DeepEqual(in, s.Input) {
			t.Errorf("%s differs from the step's input", f.Name)
		}
		if !strings.Contains(readme, "file://"+f.Name) {
			t.Errorf("README does not run %s", f.Name)
		}
	}
	// The release task runs before the services are created.
	runAt, svcAt := strings.Index(readme, "run-task"), strings.Index(readme, "create-service")
	if runAt < 0 || svcAt < 0 || runAt > svcAt {
		t.Errorf("README: run-task at %d, create-service at %d; the release must come first", runAt, svcAt)
	}
	if _, err := plan.Render("pulumi"); err == nil {
		t.Error("unknown format accepted")
	}
	for _, f := range []string{"cloudformation", "terraform"} {
		out, err := plan.Render(f)
		if err != nil || len(out) != 1 || len(out[0].Data) == 0 {
			t.Errorf("%s: %v, %d files", f, err, len(out))
		}
	}
}
