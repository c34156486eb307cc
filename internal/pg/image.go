// Package pg is Hangar Postgres' definition, the part that needs no
// server: the image (Debian's PostgreSQL, Patroni, pgBackRest and
// prometheus-postgres-exporter, built from Debian's archive with
// mmdebstrap, never pulled from a registry) and the script that starts
// PostgreSQL inside a machine. The CLI builds the image on the Hangar
// host (`hangar pg image build`) and uploads it to the daemon, named by
// the digest of its package set and script, so an unchanged definition is
// not built twice.
package pg

import (
	_ "embed"
	"fmt"
	"slices"
	"strconv"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/hangar-dev/hangar/internal/image"
)

// DefaultVersion is the PostgreSQL major version of Debian 12 (bookworm),
// the only one its archive carries.
const DefaultVersion = 15

// Versions are the PostgreSQL major versions an image can be built with
// from DefaultSuite's archive.
var Versions = []int{15}

// DefaultSuite is the Debian release the image is built from.
const DefaultSuite = "bookworm"

// ImageRepo is the name the image is stored under in Hangar's image store
// (tag: version and definition digest).
const ImageRepo = "hangar/postgres"

// DataDir is where the start script keeps the cluster: on the volume
// mounted at /data.
const DataDir = "/data/postgresql"

// StartScript is the image's entrypoint.
const StartScript = "/usr/local/bin/hangar-pg-start"

//go:embed start.sh
var startScript []byte

// ImageOptions describe the image for a PostgreSQL major version.
func ImageOptions(version int, mirror string) (image.DebianOptions, error) {
	if !slices.Contains(Versions, version) {
		return image.DebianOptions{}, fmt.Errorf("postgres version %d: this Hangar builds %v from Debian %s's archive (other versions need the PostgreSQL project's apt repository, which is not configured)", version, Versions, DefaultSuite)
	}
	v := strconv.Itoa(version)
	return image.DebianOptions{
		Suite:  DefaultSuite,
		Mirror: mirror,
		Packages: []string{
			"postgresql-" + v,
			"postgresql-client-" + v,
			"patroni",
			"pgbackrest",
			"prometheus-postgres-exporter",
			"ca-certificates",
		},
		Files: []image.DebianFile{{Path: StartScript, Mode: 0o755, Data: startScript}},
		Config: v1.Config{
			Entrypoint: []string{StartScript},
			Env: []string{
				"PATH=/usr/lib/postgresql/" + v + "/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
				"PG_MAJOR=" + v,
				"PGDATA=" + DataDir,
				"LANG=C.UTF-8",
			},
			ExposedPorts: map[string]struct{}{"5432/tcp": {}},
			Labels:       map[string]string{"org.opencontainers.image.title": "Hangar Postgres " + v},
		},
	}, nil
}

// ImageRef is the image's name in the store: the version and the digest
// of its definition.
func ImageRef(version int, o image.DebianOptions) string {
	return fmt.Sprintf("%s:%d-%s", ImageRepo, version, image.DebianDigest(o))
}
