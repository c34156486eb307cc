// Package image is Hangar's image store: it imports (OCI layout, OCI archive,
// docker save tarball), pulls (any registry) and builds (Go builtin,
// Dockerfile via buildah/podman/docker) OCI images, keeps their blobs, and
// unpacks each manifest digest once into a read-only root filesystem that
// every machine of that digest shares.
//
// Unpacking is hardened against hostile layers: every file operation goes
// through an os.Root, symlinks are resolved inside the root the way the
// container sees them, and tar entries with ".." are rejected.
package image
