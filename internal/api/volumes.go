package api

import (
	"encoding/json"
	"net/http"

	"github.com/hangar-dev/hangar/internal/types"
	"github.com/hangar-dev/hangar/internal/volume"
)

// Volume endpoints, with the Machines API's paths and shapes:
//
//	GET    /v1/apps/{app}/volumes                     [Volume]
//	POST   /v1/apps/{app}/volumes                     CreateVolumeRequest (snapshot_id restores, source_volume_id forks) → Volume
//	GET    /v1/apps/{app}/volumes/{volume_id}                Volume
//	POST   /v1/apps/{app}/volumes/{volume_id}                {"snapshot_retention", "auto_backup_enabled"} → Volume
//	DELETE /v1/apps/{app}/volumes/{volume_id}                Volume (state "destroyed")
//	PUT    /v1/apps/{app}/volumes/{volume_id}/extend         {"size_gb"} → {"volume", "needs_restart"}
//	GET    /v1/apps/{app}/volumes/{volume_id}/snapshots      [VolumeSnapshot]
//	POST   /v1/apps/{app}/volumes/{volume_id}/snapshots      VolumeSnapshot (Fly answers with no body)

type volumeUpdate struct {
	SnapshotRetention *int  `json:"snapshot_retention"`
	AutoBackupEnabled *bool `json:"auto_backup_enabled"`
}

type volumeExtend struct {
	SizeGB int `json:"size_gb"`
	SizeMB int `json:"size_mb"`
}

func (s *Server) volumeManager(r *http.Request) (*volume.Manager, string, error) {
	app, err := s.requireApp(r)
	if err != nil {
		return nil, "", err
	}
	if s.volumes == nil {
		return nil, "", notConfigured("volumes")
	}
	return s.volumes, app, nil
}

func (s *Server) listVolumes(w http.ResponseWriter, r *http.Request) error {
	m, app, err := s.volumeManager(r)
	if err != nil {
		return err
	}
	vols, err := m.List(r.Context(), app)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, vols)
	return nil
}

func (s *Server) createVolume(w http.ResponseWriter, r *http.Request) error {
	m, app, err := s.volumeManager(r)
	if err != nil {
		return err
	}
	var req volume.CreateRequest
	if err := decode(w, r, &req); err != nil {
		return err
	}
	if !forwarded(r) && req.SourceVolumeID == "" {
		// A volume is made on a host of its region, which keeps it. (A
		// fork is made where its source is.)
		h, here, err := s.place(r.Context(), app, req.Region, nil)
		if err != nil {
			return err
		}
		if !here {
			if req.Region == "" {
				req.Region = h.Region
			}
			body, err := json.Marshal(req)
			if err != nil {
				return err
			}
			s.proxyTo(w, r, &h, body)
			return nil
		}
	}
	v, err := m.Create(r.Context(), app, req)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, v)
	return nil
}

func (s *Server) getVolume(w http.ResponseWriter, r *http.Request) error {
	m, app, err := s.volumeManager(r)
	if err != nil {
		return err
	}
	v, err := m.Get(r.Context(), app, r.PathValue("volume_id"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, v)
	return nil
}

func (s *Server) updateVolume(w http.ResponseWriter, r *http.Request) error {
	m, app, err := s.volumeManager(r)
	if err != nil {
		return err
	}
	var req volumeUpdate
	if err := decode(w, r, &req); err != nil {
		return err
	}
	v, err := m.SetRetention(r.Context(), app, r.PathValue("volume_id"), req.SnapshotRetention, req.AutoBackupEnabled)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, v)
	return nil
}

func (s *Server) destroyVolume(w http.ResponseWriter, r *http.Request) error {
	m, app, err := s.volumeManager(r)
	if err != nil {
		return err
	}
	v, err := m.Destroy(r.Context(), app, r.PathValue("volume_id"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, v)
	return nil
}

func (s *Server) extendVolume(w http.ResponseWriter, r *http.Request) error {
	m, app, err := s.volumeManager(r)
	if err != nil {
		return err
	}
	var req volumeExtend
	if err := decode(w, r, &req); err != nil {
		return err
	}
	if req.SizeGB <= 0 && req.SizeMB <= 0 {
		return badRequest("size_gb is required: the new size in GB")
	}
	v, restart, err := m.Extend(r.Context(), app, r.PathValue("volume_id"), req.SizeGB, req.SizeMB)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, types.ExtendVolumeResponse{Volume: v, NeedsRestart: restart})
	return nil
}

func (s *Server) listSnapshots(w http.ResponseWriter, r *http.Request) error {
	m, app, err := s.volumeManager(r)
	if err != nil {
		return err
	}
	if _, err := m.Get(r.Context(), app, r.PathValue("volume_id")); err != nil {
		// Snapshots outlive their volume: list them even after a destroy.
		snaps, lerr := m.Snapshots(r.Context(), app, r.PathValue("volume_id"))
		if lerr != nil || len(snaps) == 0 {
			return err
		}
		writeJSON(w, http.StatusOK, snaps)
		return nil
	}
	snaps, err := m.Snapshots(r.Context(), app, r.PathValue("volume_id"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, snaps)
	return nil
}

func (s *Server) createSnapshot(w http.ResponseWriter, r *http.Request) error {
	m, app, err := s.volumeManager(r)
	if err != nil {
		return err
	}
	snap, err := m.CreateSnapshot(r.Context(), app, r.PathValue("volume_id"), volume.SnapshotOnDemand)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, snap)
	return nil
}
