package types

import "time"

// Image is an image held by the daemon's image store, unpacked and ready to
// run (GET /v1/images).
type Image struct {
	// Ref is the name the image was imported, pulled or built as, normalized:
	// local names as "repo:tag" ("hello:deployment-01J..."), registry refs
	// fully qualified ("index.docker.io/library/alpine:3"). Empty when the
	// image was looked up by digest and has no name.
	Ref string `json:"ref"`
	// Digest is the manifest digest, "sha256:...".
	Digest string      `json:"digest"`
	Config ImageConfig `json:"config"`
	// RootFS is the absolute path of the unpacked root filesystem on the
	// daemon's host. It is shared read-only by every machine of this digest
	// and never modified after unpack: use it as an overlay lower dir, never
	// write to it.
	RootFS string `json:"rootfs"`
	// Size is the number of bytes of regular files in RootFS.
	Size int64 `json:"size"`
	// Created is when this digest was first stored in this store.
	Created time.Time `json:"created"`
}

// ImageConfig is the part of an image's OCI config a machine needs to run
// it.
type ImageConfig struct {
	Entrypoint   []string          `json:"entrypoint,omitempty"`
	Cmd          []string          `json:"cmd,omitempty"`
	Env          []string          `json:"env,omitempty"`
	WorkingDir   string            `json:"working_dir,omitempty"`
	User         string            `json:"user,omitempty"`
	ExposedPorts []int             `json:"exposed_ports,omitempty"`
	Labels       map[string]string `json:"labels,omitempty"`
}

// PullImageRequest is the body of POST /v1/images/pull.
type PullImageRequest struct {
	Ref      string `json:"ref"`
	Insecure bool   `json:"insecure,omitempty"` // allow a plain-HTTP registry
}
