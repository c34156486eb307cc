// Package testapp builds the test machine (./app) into a root filesystem
// for tests and benchmarks: a static binary at /app plus the few files a
// machine expects.
package testapp

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
)

var (
	once   sync.Once
	built  string
	buildE error
)

// Source is the directory of the test app's main package.
func Source() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "app")
}

// RootFS builds the test app once per process into a rootfs directory under
// dir (the first caller's) and returns its path.
func RootFS(dir string) (string, error) {
	once.Do(func() {
		root := filepath.Join(dir, "testapp-rootfs")
		for _, d := range []string{"etc", "tmp", "proc", "dev", "sys"} {
			if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
				buildE = err
				return
			}
		}
		_ = os.Chmod(filepath.Join(root, "tmp"), 0o1777)
		_ = os.WriteFile(filepath.Join(root, "etc/passwd"), []byte("root:x:0:0:root:/:/app\nnobody:x:65534:65534:nobody:/:/app\n"), 0o644)
		_ = os.WriteFile(filepath.Join(root, "etc/group"), []byte("root:x:0:\nnogroup:x:65534:\n"), 0o644)
		cmd := exec.Command("go", "build", "-trimpath", "-o", filepath.Join(root, "app"), ".")
		cmd.Dir = Source()
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			buildE = fmt.Errorf("build test app: %v: %s", err, out)
			return
		}
		built = root
	})
	return built, buildE
}
