package image

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestBuildDockerfile(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	builder, err := DetectBuilder(ctx)
	if err != nil {
		t.Skipf("skipping: %v", err)
	}
	if builder != "buildah" {
		t.Logf("using %s", builder)
	}
	// Put the built hello binary into a FROM scratch image with COPY.
	hello := helloImage(t)
	s := newTestStore(t)
	base, err := s.Put(ctx, hello, "hello:base")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	bin, err := os.ReadFile(filepath.Join(base.RootFS, "app"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "hello"), bin, 0o755); err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(dir, "msg.txt"), "copied\n")
	write(t, filepath.Join(dir, "build.Dockerfile"), `FROM scratch
ARG GREETING=unset
COPY hello /bin/hello
COPY msg.txt /data/msg.txt
ENV GREETING=${GREETING}
WORKDIR /data
EXPOSE 9000
ENTRYPOINT ["/bin/hello"]
`)
	archive, err := BuildDockerfile(ctx, dir, "build.Dockerfile", DockerBuildOptions{
		Ref:       "built:v1",
		BuildArgs: map[string]string{"GREETING": "howdy"},
		Labels:    map[string]string{"team": "infra"},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(archive) })
	if kind, err := DetectArchive(archive); err != nil || kind != KindOCIArchive {
		t.Fatalf("archive kind = %q, %v", kind, err)
	}
	img, err := s.Import(ctx, archive, "")
	if err != nil {
		t.Fatal(err)
	}
	if img.Ref != "built:v1" {
		t.Errorf("ref = %q, want built:v1", img.Ref)
	}
	if b, err := os.ReadFile(filepath.Join(img.RootFS, "data", "msg.txt")); err != nil || string(b) != "copied\n" {
		t.Errorf("msg.txt = %q, %v", b, err)
	}
	out, err := exec.Command(filepath.Join(img.RootFS, "bin", "hello"), "z").CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != helloGreeting+" v1 [z]" {
		t.Errorf("run /bin/hello: %q, %v", out, err)
	}
	if !slices.Equal(img.Config.Entrypoint, []string{"/bin/hello"}) || img.Config.WorkingDir != "/data" {
		t.Errorf("config = %+v", img.Config)
	}
	if !slices.Contains(img.Config.Env, "GREETING=howdy") || img.Config.Labels["team"] != "infra" || !slices.Equal(img.Config.ExposedPorts, []int{9000}) {
		t.Errorf("config = %+v", img.Config)
	}

	// A broken Dockerfile fails with the builder's message.
	write(t, filepath.Join(dir, "bad.Dockerfile"), "FROM scratch\nCOPY does-not-exist /x\n")
	if _, err := BuildDockerfile(ctx, dir, "bad.Dockerfile", DockerBuildOptions{}); err == nil || !strings.Contains(err.Error(), builder) {
		t.Fatalf("bad Dockerfile: err = %v", err)
	}
	if _, err := BuildDockerfile(ctx, dir, "missing.Dockerfile", DockerBuildOptions{}); err == nil || !strings.Contains(err.Error(), "not found") {
		t.Fatalf("missing Dockerfile: err = %v", err)
	}
}
