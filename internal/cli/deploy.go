package cli

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/hangar-dev/hangar/internal/appconfig"
	"github.com/hangar-dev/hangar/internal/image"
	"github.com/hangar-dev/hangar/internal/types"
)

func newDeployCmd() *cobra.Command {
	var (
		configPath, app, imageRef, strategy, waitTimeout string
		asJSON, detach                                   bool
	)
	cmd := &cobra.Command{
		Use:   "deploy [WORKING_DIR]",
		Short: "Deploy an app from its fly.toml",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			if len(args) == 1 && configPath == "" {
				configPath = filepath.Join(args[0], "fly.toml")
			}
			if configPath == "" {
				configPath = "fly.toml"
			}
			raw, err := os.ReadFile(configPath)
			if err != nil {
				return &HintError{Err: fmt.Errorf("read %s: %w", configPath, err), Hint: "run in the app's directory or pass -c path/to/fly.toml"}
			}
			cfg, err := appconfig.Parse(raw, configPath)
			if err != nil {
				return configError(err)
			}
			warnings, err := cfg.Validate(false)
			if err != nil {
				return configError(err)
			}
			localFiles := map[string][]byte{}
			for _, lp := range cfg.UnresolvedFiles() {
				full := lp
				if !filepath.IsAbs(full) {
					full = filepath.Join(filepath.Dir(configPath), lp)
				}
				b, err := os.ReadFile(full)
				if err != nil {
					return &HintError{Err: fmt.Errorf("[[files]] local_path %q: %w", lp, err), Hint: "local_path is relative to fly.toml's directory"}
				}
				localFiles[lp] = b
			}
			out := cmd.OutOrStdout()
			for _, w := range warnings {
				fmt.Fprintf(cmd.ErrOrStderr(), "warning: %s\n", w.String())
			}
			if app == "" {
				app = cfg.AppName
			}
			if app == "" {
				return &HintError{Err: errors.New("no app name"), Hint: "set `app = \"name\"` in fly.toml or pass --app"}
			}
			c, err := newClient()
			if err != nil {
				return err
			}
			progress := func(format string, a ...any) {
				if !asJSON {
					fmt.Fprintf(out, "==> "+format+"\n", a...)
				}
			}
			start := time.Now()
			ref, err := resolveImage(ctx, c, cfg, configPath, app, imageRef, progress, cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			progress("Deploying %s with image %s", app, ref)
			path := "/v1/deploys"
			if detach {
				path += "?detach=true"
			}
			resp, err := c.send(ctx, "POST", path, types.DeployRequest{
				App: app, Config: string(raw), ConfigFile: filepath.Base(configPath), LocalFiles: localFiles, Image: ref,
				Strategy: strategy, WaitTimeout: waitTimeout,
			}, "")
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			final, err := printReleaseStream(out, resp.Body, asJSON)
			if err != nil {
				return err
			}
			if detach {
				fmt.Fprintf(out, "Deploy of %s started; follow it with `hangar releases -a %s` and `hangar status -a %s`\n", app, app, app)
				return nil
			}
			if final.Error != "" {
				return &HintError{Err: fmt.Errorf("deploy failed: %s", final.Error), Hint: "see `hangar logs -a " + app + "` and `hangar status -a " + app + "`"}
			}
			if final.Release == nil {
				return errors.New("deploy stream ended without a result; check `hangar releases`")
			}
			var info types.Info
			if err := c.do(ctx, "GET", "/v1/info", nil, &info); err != nil {
				return err
			}
			if !asJSON {
				fmt.Fprintf(out, "\nRelease v%d of %s deployed in %s.\nVisit your app at %s\n", final.Release.Version, app, time.Since(start).Round(time.Millisecond), appURL(app, info))
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVarP(&configPath, "config", "c", "", "path to fly.toml (default ./fly.toml)")
	f.StringVarP(&app, "app", "a", "", "app name (default: `app` in fly.toml)")
	f.StringVarP(&imageRef, "image", "i", "", "deploy this image instead of building: a reference known to the daemon or pullable")
	f.StringVar(&strategy, "strategy", "", "deploy strategy (default from fly.toml)")
	f.StringVar(&waitTimeout, "wait-timeout", "", "how long to wait for new machines to be healthy (e.g. 2m)")
	f.BoolVar(&asJSON, "json", false, "print machine-readable progress events")
	f.BoolVar(&detach, "detach", false, "return once the release has started")
	return cmd
}

// printReleaseStream prints a deploy/rollback/scale progress stream and
// returns its last line (the release or the error).
func printReleaseStream(out io.Writer, body io.Reader, asJSON bool) (types.DeployLine, error) {
	sc := bufio.NewScanner(body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	var final types.DeployLine
	for sc.Scan() {
		var l types.DeployLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			return final, fmt.Errorf("progress stream: %w", err)
		}
		if asJSON {
			fmt.Fprintln(out, sc.Text())
		} else if l.Event != nil {
			prefix := "  "
			if l.Event.Step == "release_command" && l.Event.MachineID != "" {
				prefix = "  | "
			}
			fmt.Fprintf(out, "%s%s\n", prefix, l.Event.Message)
		}
		if l.Event == nil {
			final = l
		}
	}
	if err := sc.Err(); err != nil {
		return final, fmt.Errorf("progress stream: %w", err)
	}
	return final, nil
}

func configError(err error) error {
	var ce *appconfig.Error
	if errors.As(err, &ce) {
		return &HintError{Err: err, Hint: ce.Hint()}
	}
	return err
}

// appURL is where the proxy serves app.
func appURL(app string, info types.Info) string {
	host := app + "." + info.Domain
	if info.HTTPPort != "" && info.HTTPPort != "80" {
		host += ":" + info.HTTPPort
	}
	return "http://" + host + "/"
}

// resolveImage gets the image to deploy onto the daemon: --image as given
// (pulled by the daemon if it does not know it), [build] image pulled by
// the daemon, builtin = "go" compiled here, or a Dockerfile built here.
func resolveImage(ctx context.Context, c *client, cfg *appconfig.Config, configPath, app, imageRef string, progress func(string, ...any), logw io.Writer) (string, error) {
	if imageRef == "" && cfg.Build != nil && cfg.Build.Image != "" {
		imageRef = cfg.Build.Image
	}
	if imageRef != "" {
		imgs, err := c.Images(ctx)
		if err != nil {
			return "", err
		}
		for _, i := range imgs {
			if i.Ref == imageRef || i.Digest == imageRef || strings.HasSuffix(i.Ref, "/"+imageRef) {
				return i.Ref, nil
			}
		}
		progress("Pulling image %s", imageRef)
		img, err := c.PullImage(ctx, types.PullImageRequest{Ref: imageRef})
		if err != nil {
			return "", &HintError{Err: fmt.Errorf("image %s: %w", imageRef, err), Hint: "import it first with `hangar image import PATH`, or check the reference"}
		}
		return img.Ref, nil
	}
	dir := filepath.Dir(configPath)
	tag := fmt.Sprintf("%s:deployment-%d", app, time.Now().Unix())
	tmp, err := os.MkdirTemp("", "hangar-build-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)
	archive := filepath.Join(tmp, "image.tar")
	switch {
	case cfg.Build != nil && cfg.Build.Builtin != "":
		if cfg.Build.Builtin != "go" {
			return "", &HintError{Err: fmt.Errorf("builtin %q is not supported", cfg.Build.Builtin), Hint: "Hangar builds builtin = \"go\"; for other languages use a Dockerfile or [build] image"}
		}
		progress("Building %s with the host's Go toolchain (builtin go)", dir)
		img, err := image.BuildGo(ctx, dir, image.GoBuildOptions{Name: app, BuildArgs: cfg.Build.Args, Output: logw})
		if errors.Is(err, image.ErrNoGoModule) {
			return "", &HintError{Err: fmt.Errorf("build: %w", err),
				Hint: fmt.Sprintf("builtin = \"go\" builds a Go module: run `go mod init %s` in %s (examples/hello has its own go.mod to copy)", app, dir)}
		}
		if err != nil {
			return "", fmt.Errorf("build: %w", err)
		}
		if err := image.WriteOCIArchive(img, tag, archive); err != nil {
			return "", fmt.Errorf("build: %w", err)
		}
	default:
		dockerfile := "Dockerfile"
		if cfg.Build != nil && cfg.Build.Dockerfile != "" {
			dockerfile = cfg.Build.Dockerfile
		}
		if _, err := os.Stat(filepath.Join(dir, dockerfile)); err != nil {
			return "", &HintError{Err: fmt.Errorf("nothing to deploy: no [build] image or builtin, and no %s in %s", dockerfile, dir),
				Hint: "add [build] image = \"...\", builtin = \"go\", or a Dockerfile; or pass --image"}
		}
		progress("Building %s from %s", dir, dockerfile)
		var buildArgs map[string]string
		target := ""
		if cfg.Build != nil {
			buildArgs, target = cfg.Build.Args, cfg.Build.DockerBuildTarget
		}
		if _, err := image.BuildDockerfile(ctx, dir, dockerfile, image.DockerBuildOptions{Ref: tag, BuildArgs: buildArgs, Target: target, OutputPath: archive, Output: logw}); err != nil {
			return "", fmt.Errorf("build: %w", err)
		}
	}
	progress("Uploading image %s", tag)
	img, err := c.UploadImage(ctx, archive, tag)
	if err != nil {
		return "", err
	}
	return img.Ref, nil
}
