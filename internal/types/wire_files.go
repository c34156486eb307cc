package types

// FileInfo describes a file in a machine (`hangar ssh sftp`): GET
// /v1/apps/{app}/machines/{id}/files/stat answers one, with Entries for
// a directory; PUT .../files answers the file written.
type FileInfo struct {
	Path    string     `json:"path,omitempty"`
	Name    string     `json:"name"`
	Size    int64      `json:"size"`
	Mode    string     `json:"mode"` // as ls shows it: drwxr-xr-x
	Perm    uint32     `json:"perm"` // permission bits (with setuid, setgid, sticky)
	IsDir   bool       `json:"is_dir"`
	Link    string     `json:"link,omitempty"` // a symbolic link's target
	UID     uint32     `json:"uid"`
	GID     uint32     `json:"gid"`
	ModTime string     `json:"mod_time"` // RFC 3339, UTC
	Entries []FileInfo `json:"entries,omitempty"`
}
