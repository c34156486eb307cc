package api

import (
	"net/http"

	"github.com/hangar-dev/hangar/internal/certs"
	"github.com/hangar-dev/hangar/internal/deploy"
	"github.com/hangar-dev/hangar/internal/image"
	"github.com/hangar-dev/hangar/internal/supervisor"
	"github.com/hangar-dev/hangar/internal/types"
	"github.com/hangar-dev/hangar/internal/volume"
)

// route is one endpoint: its pattern (method and path, as http.ServeMux
// takes it), who may call it, its handler, and its OpenAPI description.
type route struct {
	pattern string
	access  access
	handle  func(w http.ResponseWriter, r *http.Request) error
	doc     OpDoc // zero: listed in the document as undocumented
}

// routes is every endpoint the API serves: the one table. The
// authorization test (auth_test.go) has an expectation for each, and
// /v1/openapi.json is built from it.
func (s *Server) routes() []route {
	return []route{
		{"GET /v1/info", anyToken, s.info, OpDoc{ID: "Info_show", Summary: "This daemon's org, region and proxy domain", Hangar: true, Resp: types.Info{}}},
		{"GET /v1/platform/regions", anyToken, s.regions, OpDoc{ID: "Platform_regions", Summary: "This installation's regions and their hosts (Nearest: the answering daemon's region)", Resp: types.Regions{}}},
		{"GET /v1/hosts", orgOnly, s.listHosts, OpDoc{ID: "Hosts_list", Summary: "This installation's hosts: region, API URL, state (ready, unreachable, draining), capacity and what their machines use", Hangar: true, Resp: []types.Host{}, Errors: []int{403, 404}}},
		{"POST /v1/hosts/{id}/drain", orgOnly, s.drainHost, OpDoc{ID: "Hosts_drain", Summary: "Move a host's machines to other hosts of their regions (start new, wait until started, destroy old); machines a volume keeps there refuse it (409 naming them) unless force=true, which leaves them", Hangar: true, Query: []Param{{Name: "force", Type: "boolean", Desc: "move the others and leave the machines volumes keep on the host"}}, Resp: types.DrainResult{}, Errors: []int{400, 403, 404, 409, 503}}},
		{"DELETE /v1/hosts/{id}", orgOnly, s.removeHost, OpDoc{ID: "Hosts_remove", Summary: "Forget a host that is gone for good (its daemon stopped: it reads unreachable): its record, 6PN subnet, round trips and cluster membership (its etcd member), and the records of its machines that failover replaced elsewhere; machines only it ran and volumes on it refuse it (409 naming them) unless force=true, which forgets them too. A daemon started again with the removed host's data dir refuses to run", Hangar: true, Query: []Param{{Name: "force", Type: "boolean", Desc: "also forget the machines not replaced elsewhere and the volumes kept on the host (their data is lost to Hangar)"}}, Resp: types.HostRemoval{}, Errors: []int{400, 403, 404, 409, 503}}},
		{"DELETE /v1/hosts/{id}/drain", orgOnly, s.undrainHost, OpDoc{ID: "Hosts_undrain", Summary: "A draining host takes new machines again", Hangar: true, Resp: types.Host{}, Errors: []int{403, 404}}},
		{"POST /v1/platform/placements", anyToken, s.placements, OpDoc{ID: "Platform_placements", Summary: "Not supported yet: placements (a 400 saying so)", Errors: []int{400}}},
		{"POST /v1/postgres", anyToken, s.managedPostgres, OpDoc{ID: "ManagedPostgres_create", Summary: "Not supported: Fly's Managed Postgres (a 400 saying so)", Errors: []int{400}}},
		{"GET /v1/postgres/{cluster}", anyToken, s.managedPostgres, OpDoc{ID: "ManagedPostgres_show", Summary: "Not supported: Fly's Managed Postgres (a 400 saying so)", Errors: []int{400}}},
		{"GET /v1/postgres/{cluster}/users/{user}/credentials", anyToken, s.managedPostgres, OpDoc{ID: "ManagedPostgres_credentials", Summary: "Not supported: Fly's Managed Postgres (a 400 saying so)", Errors: []int{400}}},
		{"GET /v1/openapi.json", anyToken, s.openAPI, OpDoc{ID: "OpenAPI_show", Summary: "This document", Hangar: true}},

		// Apps (apps.go).
		{"GET /v1/apps", anyToken, s.listApps, OpDoc{ID: "Apps_list", Summary: "List apps (an app token sees only its app)", Query: []Param{{Name: "org_slug", Type: "string", Desc: "only apps of this org ('personal' = this daemon's org)"}}, Resp: map[string]any{}, RespType: "ListAppsResponse"}},
		{"POST /v1/apps", orgOnly, s.createApp, OpDoc{ID: "Apps_create", Summary: "Create an app in an org and network (org tokens only)", Body: types.CreateAppRequest{}, Status: 201, Resp: types.App{}, Errors: []int{400, 403, 409}}},
		{"GET /v1/apps/{app}", appPath, s.getApp, OpDoc{ID: "Apps_show", Summary: "Get an app", Resp: types.App{}, Errors: []int{404}}},
		{"DELETE /v1/apps/{app}", appPath, s.deleteApp, OpDoc{ID: "Apps_delete", Summary: "Delete an app, destroying its machines", Status: 202, Errors: []int{404}}},

		// Machines (machines.go, machineops.go).
		{"GET /v1/apps/{app}/machines", appPath, s.listMachines, OpDoc{ID: "Machines_list", Summary: "List machines", Query: []Param{{Name: "include_deleted", Type: "boolean", Desc: "include destroyed machines"}, {Name: "region", Type: "string", Desc: "only machines of this region"}, {Name: "metadata.{key}", Type: "string", Desc: "only machines whose config.metadata[key] equals the value (any key)"}}, Resp: []types.Machine{}}},
		{"POST /v1/apps/{app}/machines", appPath, s.createMachine, OpDoc{ID: "Machines_create", Summary: "Create (and unless skip_launch, start) a machine", Body: machineRequest{}, Resp: types.Machine{}, Errors: []int{400, 404, 409, 413}}},
		{"GET /v1/apps/{app}/machines/{id}", appPath, s.getMachine, OpDoc{ID: "Machines_show", Summary: "Get a machine", Resp: types.Machine{}, Errors: []int{404}}},
		{"POST /v1/apps/{app}/machines/{id}", appPath, s.updateMachine, OpDoc{ID: "Machines_update", Summary: "Replace a machine's config: the machine is replacing until the new version (a new instance_id; the old one kept as replaced) is up, or stopped with skip_launch", Header: []Param{nonceParam}, Body: machineRequest{}, Resp: types.Machine{}, Errors: []int{400, 404, 409, 413}}},
		{"DELETE /v1/apps/{app}/machines/{id}", appPath, s.destroyMachine, OpDoc{ID: "Machines_delete", Summary: "Destroy a machine (a running one needs force=true)", Header: []Param{nonceParam}, Query: []Param{{Name: "force", Type: "boolean", Desc: "stop a running machine first"}, {Name: "kill", Type: "boolean", Desc: "fly-go's name for force"}}, Resp: map[string]bool{}, Errors: []int{404, 409}}},
		{"POST /v1/apps/{app}/machines/{id}/start", appPath, s.startMachine, OpDoc{ID: "Machines_start", Summary: "Start a created, stopped or suspended machine", Header: []Param{nonceParam}, Resp: map[string]any{}, Errors: []int{404, 409}}},
		{"POST /v1/apps/{app}/machines/{id}/stop", appPath, s.stopMachine, OpDoc{ID: "Machines_stop", Summary: "Stop a machine (drained in the proxy first)", Header: []Param{nonceParam}, Body: types.StopRequest{}, BodyOptional: true, Resp: map[string]bool{}, Errors: []int{400, 404, 409}}},
		{"GET /v1/apps/{app}/machines/{id}/wait", appPath, s.waitMachine, OpDoc{ID: "Machines_wait", Summary: "Wait until the machine reaches a state", Query: []Param{
			{Name: "state", Type: "string", Desc: "started (default), created, stopped, suspended, failed, destroyed or replaced, or settled (any of these: no operation in progress; the answer names the state); may repeat (any of them)"},
			{Name: "instance_id", Type: "string", Desc: "the version to wait for (version is accepted too)"},
			{Name: "version", Type: "string", Desc: "fly-go's name for instance_id"},
			{Name: "timeout", Type: "integer", Desc: "seconds, 1 to 60 (default 60); 408 when it passes"}}, Resp: map[string]any{}, Errors: []int{400, 404, 408, 409}}},
		{"GET /v1/apps/{app}/machines/{id}/events", appPath, s.machineEvents, OpDoc{ID: "Machines_list_events", Summary: "A machine's events, newest first (exit events carry request.exit_event with exit_code and oom_killed)", Resp: []types.MachineEvent{}, Errors: []int{404}}},
		{"POST /v1/apps/{app}/machines/{id}/lease", appPath, s.acquireLease, OpDoc{ID: "Machines_create_lease", Summary: "Acquire a lease (or refresh it, with the nonce header)", Header: []Param{{Name: NonceHeader, Type: "string", Desc: "refresh this lease instead of acquiring a new one"}},
			Query: []Param{{Name: "ttl", Type: "integer", Desc: "seconds (default 30); overrides the body's ttl"}}, Body: LeaseRequest{}, BodyOptional: true, Resp: LeaseResponse{}, Errors: []int{400, 404, 409}}},
		{"GET /v1/apps/{app}/machines/{id}/lease", appPath, s.getLease, OpDoc{ID: "Machines_show_lease", Summary: "The machine's active lease", Resp: LeaseResponse{}, Errors: []int{404}}},
		{"DELETE /v1/apps/{app}/machines/{id}/lease", appPath, s.releaseLease, OpDoc{ID: "Machines_release_lease", Summary: "Release the lease", Header: []Param{nonceParam}, Resp: map[string]bool{}, Errors: []int{404, 409}}},
		{"POST /v1/apps/{app}/machines/{id}/suspend", appPath, s.suspendMachine, OpDoc{ID: "Machines_suspend", Summary: "Suspend a started machine (frozen in memory; start resumes it)", Header: []Param{nonceParam}, Resp: map[string]bool{}, Errors: []int{404, 409, 501}}},
		{"POST /v1/apps/{app}/machines/{id}/restart", appPath, s.restartMachine, OpDoc{ID: "Machines_restart", Summary: "Stop and start a machine", Header: []Param{nonceParam}, Query: []Param{
			{Name: "timeout", Type: "string", Desc: "stop timeout: a Go duration or a number of seconds"}, {Name: "signal", Type: "string", Desc: "stop signal"}, {Name: "force_stop", Type: "boolean", Desc: "stop with SIGKILL"}}, Resp: map[string]bool{}, Errors: []int{400, 404, 409}}},
		{"POST /v1/apps/{app}/machines/{id}/signal", appPath, s.signalMachine, OpDoc{ID: "Machines_signal", Summary: "Send a signal to the machine's main process", Header: []Param{nonceParam}, Body: map[string]any{}, RespType: "", Resp: map[string]bool{}, Errors: []int{400, 404, 409}}},
		{"POST /v1/apps/{app}/machines/{id}/cordon", appPath, s.cordon(true), OpDoc{ID: "Machines_cordon", Summary: "Take the machine out of proxy routing (it keeps running)", Header: []Param{nonceParam}, Resp: map[string]bool{}, Errors: []int{404, 409}}},
		{"POST /v1/apps/{app}/machines/{id}/uncordon", appPath, s.cordon(false), OpDoc{ID: "Machines_uncordon", Summary: "Return the machine to proxy routing", Header: []Param{nonceParam}, Resp: map[string]bool{}, Errors: []int{404, 409}}},
		{"GET /v1/apps/{app}/machines/{id}/metadata", appPath, s.getMetadata, OpDoc{ID: "Machines_show_metadata", Summary: "The machine's metadata", Resp: map[string]string{}, Errors: []int{404}}},
		{"POST /v1/apps/{app}/machines/{id}/metadata/{key}", appPath, s.setMetadata, OpDoc{ID: "Machines_update_metadata", Summary: "Set one metadata key (no new version)", Body: MetadataRequest{}, Status: 204, Errors: []int{400, 404}}},
		{"DELETE /v1/apps/{app}/machines/{id}/metadata/{key}", appPath, s.deleteMetadata, OpDoc{ID: "Machines_delete_metadata", Summary: "Delete one metadata key", Status: 204, Errors: []int{404}}},
		{"GET /v1/apps/{app}/machines/{id}/versions", appPath, s.machineVersions, OpDoc{ID: "Machines_list_versions", Summary: "The machine's versions, current first", Resp: []MachineVersion{}, Errors: []int{404}}},
		{"POST /v1/apps/{app}/machines/{id}/exec", appPath, s.execMachine, OpDoc{ID: "Machines_exec", Summary: "Run a command in a started machine", Body: ExecRequest{}, Resp: ExecResponse{}, Errors: []int{400, 404, 408, 409}}},
		{"GET /v1/apps/{app}/machines/{id}/console", appPath, s.machineConsole, OpDoc{ID: "Machines_console", Summary: "Run a command or a shell in a started machine over a WebSocket (stdin, stdout, stderr, resizes, exit code; the protocol is in docs/api.md), with the machine's environment", Hangar: true, Query: consoleQuery, Status: http.StatusSwitchingProtocols, Errors: []int{400, 404, 409}}},
		{"GET /v1/apps/{app}/proxy", appPath, s.privateProxy, OpDoc{ID: "Apps_proxy", Summary: "Forward one TCP connection to a port of one of the app's machines (with Upgrade: hangar-tcp; without it, only say which machine and address it would reach)", Hangar: true, Query: proxyQuery, Resp: types.ProxyTarget{}, Errors: []int{400, 403, 404, 409, 503}}},
		{"GET /v1/apps/{app}/machines/{id}/files", appPath, s.getFile, OpDoc{ID: "Machines_get_file", Summary: "Download a regular file of a started machine (read by the daemon from the machine's root filesystem; no tool needed in the image)", Hangar: true, Query: filesQuery, Errors: []int{400, 404, 409}}},
		{"PUT /v1/apps/{app}/machines/{id}/files", appPath, s.putFile, OpDoc{ID: "Machines_put_file", Summary: "Upload the raw body to a file of a started machine (replaced whole once written; mode: octal bits, default the replaced file's or 0644)", Hangar: true, Query: append(filesQuery, Param{Name: "mode", Type: "string", Desc: "octal permission bits"}), Resp: types.FileInfo{}, Errors: []int{400, 404, 409}}},
		{"GET /v1/apps/{app}/machines/{id}/files/stat", appPath, s.statFile, OpDoc{ID: "Machines_stat_file", Summary: "Describe a file of a started machine, with a directory's entries", Hangar: true, Query: filesQuery, Resp: types.FileInfo{}, Errors: []int{400, 404, 409}}},
		{"GET /v1/apps/{app}/machines/{id}/ps", appPath, s.machinePs, OpDoc{ID: "Machines_list_processes", Summary: "The machine's processes (its PID namespace)", Query: []Param{
			{Name: "sort_by", Type: "string", Desc: "pid, cpu, rss, rtime, stime or command"}, {Name: "order", Type: "string", Desc: "asc or desc"}}, Resp: []supervisor.ProcessStat{}, Errors: []int{400, 404, 409}}},

		// Releases, deploys, scaling (releases.go, deploys.go).
		{"GET /v1/apps/{app}/releases", appPath, s.listReleases, OpDoc{ID: "Releases_list", Summary: "An app's releases", Hangar: true, Resp: []deploy.Release{}, Errors: []int{404}}},
		{"GET /v1/apps/{app}/releases/{version}", appPath, s.getRelease, OpDoc{}},
		{"POST /v1/apps/{app}/releases/{version}/rollback", appPath, s.rollback, OpDoc{}},
		{"POST /v1/apps/{app}/scale", appPath, s.scale, OpDoc{}},
		{"POST /v1/apps/{app}/restart", appPath, s.restartApp, OpDoc{}},
		{"POST /v1/deploys", anyToken, s.deploy, OpDoc{ID: "Deploys_create", Summary: "Deploy a fly.toml; progress streams back as NDJSON DeployLines", Hangar: true, Body: types.DeployRequest{}, Errors: []int{400, 403}}},

		// Logs (logs.go).
		{"GET /v1/apps/{app}/logs", appPath, s.logs, OpDoc{ID: "Logs_show", Summary: "An app's machine logs as NDJSON", Hangar: true, Query: []Param{
			{Name: "lines", Type: "integer", Desc: "how many past lines (default 100; with since, a cap on the window's lines, none by default)"}, {Name: "follow", Type: "boolean", Desc: "keep streaming new lines"},
			{Name: "since", Type: "string", Desc: "every line from this time on: a duration back from now (30m, 1h, 2d, 1w) or an RFC 3339 time"},
			{Name: "until", Type: "string", Desc: "only lines up to this time (same forms as since; not with follow)"},
			{Name: "machine", Type: "string", Desc: "one machine only"}, {Name: "region", Type: "string", Desc: "only machines of this region"},
			{Name: "process_group", Type: "string", Desc: "only machines of this process group"},
			{Name: "grep", Type: "string", Desc: "only lines whose message matches this regular expression (RE2)"}}, Errors: []int{400, 404}}},
		{"GET /v1/apps/{app}/logs/retention", appPath, s.logRetention, OpDoc{ID: "Logs_show_retention", Summary: "An app's own log limits (0: the daemon's)", Hangar: true, Resp: types.LogRetention{}, Errors: []int{404}}},
		{"PUT /v1/apps/{app}/logs/retention", appPath, s.setLogRetention, OpDoc{ID: "Logs_update_retention", Summary: "Set an app's own log limits (0: back to the daemon's)", Hangar: true, Body: types.LogRetention{}, Resp: types.LogRetention{}, Errors: []int{400, 404}}},
		{"GET /v1/log-sinks", orgOnly, s.listLogSinks, OpDoc{ID: "LogSinks_list", Summary: "The HTTP sinks logs are shipped to (org tokens only)", Hangar: true, Resp: []types.LogSink{}, Errors: []int{403}}},
		{"POST /v1/log-sinks", orgOnly, s.createLogSink, OpDoc{ID: "LogSinks_create", Summary: "Ship logs (of one app, or all) to an HTTP NDJSON sink from now on (org tokens only)", Hangar: true, Body: types.CreateLogSinkRequest{}, Status: 201, Resp: types.LogSink{}, Errors: []int{400, 403, 404}}},
		{"DELETE /v1/log-sinks/{id}", orgOnly, s.deleteLogSink, OpDoc{ID: "LogSinks_delete", Summary: "Stop shipping to a sink and forget it (org tokens only)", Hangar: true, Resp: map[string]bool{}, Errors: []int{403, 404}}},

		// Metrics (metrics.go).
		{"GET /v1/apps/{app}/metrics", appPath, s.metricsHistory, OpDoc{ID: "Metrics_history", Summary: "The last hour of an app's key series (requests/s, 5xx/s, p99, memory, CPU, machines running) at 15 s steps, from the daemon's memory", Hangar: true, Resp: types.MetricsHistory{}, Errors: []int{404}}},

		// Images (images.go): an app token sees and writes only its app's refs.
		{"GET /v1/images", anyToken, s.listImages, OpDoc{ID: "Images_list", Summary: "Images on this daemon", Hangar: true, Resp: []image.Image{}}},
		{"POST /v1/images", anyToken, s.uploadImage, OpDoc{ID: "Images_upload", Summary: "Upload an OCI or docker archive (raw body)", Hangar: true, Query: []Param{{Name: "ref", Type: "string", Desc: "the reference to record; an app token may name only its app's repository (\"app:tag\")"}}, Resp: image.Image{}, Errors: []int{400, 403, 413, 507}}},
		{"POST /v1/images/pull", anyToken, s.pullImage, OpDoc{ID: "Images_pull", Summary: "Pull an image from a registry", Hangar: true, Resp: image.Image{}, Errors: []int{400}}},

		// Cluster (cluster.go).
		{"POST /v1/cluster/join-tokens", orgOnly, s.createJoinToken, OpDoc{ID: "Cluster_create_join_token", Summary: "Make a one-time token for a new host to join this cluster (hangar server --join); its secret is in the answer only", Hangar: true, Body: types.JoinTokenRequest{}, BodyOptional: true, Status: 201, Resp: types.JoinTokenResponse{}, Errors: []int{400, 403, 409, 503}}},
		{"GET /v1/cluster/members", orgOnly, s.clusterMembers, OpDoc{ID: "Cluster_list_members", Summary: "The cluster's hosts: voters (etcd members, with their health) and clients", Hangar: true, Resp: types.ClusterMembers{}, Errors: []int{403, 409, 503}}},

		// Tokens (tokens.go).
		{"GET /v1/tokens", orgOnly, s.listTokens, OpDoc{ID: "Tokens_list", Summary: "List API tokens (org tokens only)", Hangar: true, Resp: []types.TokenInfo{}, Errors: []int{403}}},
		{"POST /v1/tokens", orgOnly, s.createToken, OpDoc{ID: "Tokens_create", Summary: "Create an API token; its secret is in the answer only", Hangar: true, Body: types.CreateTokenRequest{}, Status: 201, Resp: types.CreateTokenResponse{}, Errors: []int{400, 403, 404}}},
		{"DELETE /v1/tokens/{id}", orgOnly, s.revokeToken, OpDoc{ID: "Tokens_revoke", Summary: "Revoke a token: it gets 401 from then on", Hangar: true, Resp: types.TokenInfo{}, Errors: []int{403, 404}}},

		// Hangar Postgres (pg.go).
		{"POST /v1/apps/{app}/pg/consensus", appPath, s.pgConsensus, OpDoc{ID: "Pg_consensus", Summary: "Give the app's Patroni its consensus store: an etcd user that may use only the app's keys (a new password each call, stored as the app's PATRONI_ETCD3_PASSWORD secret, never returned)", Hangar: true, Resp: types.PgConsensus{}, Errors: []int{400, 404, 503}}},

		// Secrets (secrets.go): values go in and never come out.
		{"GET /v1/apps/{app}/secrets", appPath, s.listSecrets, OpDoc{ID: "Secrets_list", Summary: "List secret names, digests and status (values never)", Resp: types.SecretsList{}, Errors: []int{400, 404}}},
		{"POST /v1/apps/{app}/secrets", appPath, s.updateSecrets, OpDoc{ID: "Secrets_update", Summary: "Set (value) and unset (null) secrets in one new version", Body: secretsUpdate{}, Resp: types.SecretsList{}, Errors: []int{400, 404}}},
		{"GET /v1/apps/{app}/secrets/{secret_name}", appPath, s.getSecret, OpDoc{ID: "Secret_get", Summary: "One secret's name, digest, dates and status (values never)", Resp: types.Secret{}, Errors: []int{400, 404}}},
		{"POST /v1/apps/{app}/secrets/{secret_name}", appPath, s.setSecret, OpDoc{ID: "Secret_create", Summary: "Set one secret", Body: secretValue{}, Resp: types.Secret{}, Errors: []int{400, 404}}},
		{"DELETE /v1/apps/{app}/secrets/{secret_name}", appPath, s.unsetSecret, OpDoc{ID: "Secret_delete", Summary: "Unset one secret", Resp: map[string]int{}, Errors: []int{404}}},
		{"GET /v1/apps/{app}/secretkeys", appPath, s.secretKeys, OpDoc{ID: "SecretKeys_list", Summary: "Not supported: Fly's KMS-style secret keys (a 400 saying so)", Errors: []int{400}}},
		{"GET /v1/apps/{app}/secretkeys/{secret_name}", appPath, s.secretKeys, OpDoc{ID: "SecretKeys_get", Summary: "Not supported: Fly's KMS-style secret keys (a 400 saying so)", Errors: []int{400}}},
		{"POST /v1/apps/{app}/secretkeys/{secret_name}", appPath, s.secretKeys, OpDoc{ID: "SecretKeys_set", Summary: "Not supported: Fly's KMS-style secret keys (a 400 saying so)", Errors: []int{400}}},
		{"DELETE /v1/apps/{app}/secretkeys/{secret_name}", appPath, s.secretKeys, OpDoc{ID: "SecretKeys_delete", Summary: "Not supported: Fly's KMS-style secret keys (a 400 saying so)", Errors: []int{400}}},
		{"POST /v1/apps/{app}/secretkeys/{secret_name}/{op}", appPath, s.secretKeys, OpDoc{ID: "SecretKeys_operate", Summary: "Not supported: Fly's KMS-style secret keys: generate, encrypt, decrypt, sign, verify (a 400 saying so)", Errors: []int{400}}},
		{"POST /v1/apps/{app}/secrets_deploy", appPath, s.deploySecrets, OpDoc{ID: "Secrets_deploy", Summary: "Restart the app's machines with the latest secrets version; NDJSON DeployLines", Hangar: true, Errors: []int{404}}},

		// Volumes (volumes.go).
		{"GET /v1/apps/{app}/volumes", appPath, s.listVolumes, OpDoc{ID: "Volumes_list", Summary: "List an app's volumes", Resp: []volume.Volume{}, Errors: []int{404}}},
		{"POST /v1/apps/{app}/volumes", appPath, s.createVolume, OpDoc{ID: "Volumes_create", Summary: "Create a volume: empty, restored from snapshot_id, or forked from source_volume_id (size_mb is Hangar's)", Body: volume.CreateRequest{}, Resp: volume.Volume{}, Errors: []int{400, 404}}},
		{"GET /v1/apps/{app}/volumes/{volume_id}", appPath, s.getVolume, OpDoc{ID: "Volumes_get_by_id", Summary: "Get a volume with its usage", Resp: volume.Volume{}, Errors: []int{404}}},
		{"POST /v1/apps/{app}/volumes/{volume_id}", appPath, s.updateVolume, OpDoc{ID: "Volumes_update", Summary: "Change snapshot_retention or auto_backup_enabled", Body: volumeUpdate{}, Resp: volume.Volume{}, Errors: []int{400, 404}}},
		{"PUT /v1/apps/{app}/volumes/{volume_id}", appPath, s.updateVolume, OpDoc{ID: "Volumes_update_put", Summary: "Change snapshot_retention or auto_backup_enabled (fly-go's method; POST does the same)", Body: volumeUpdate{}, Resp: volume.Volume{}, Errors: []int{400, 404}}},
		{"DELETE /v1/apps/{app}/volumes/{volume_id}", appPath, s.destroyVolume, OpDoc{ID: "Volume_delete", Summary: "Destroy a volume no machine holds (its snapshots stay until they expire)", Resp: volume.Volume{}, Errors: []int{404, 409}}},
		{"PUT /v1/apps/{app}/volumes/{volume_id}/extend", appPath, s.extendVolume, OpDoc{ID: "Volumes_extend", Summary: "Grow a volume (online when possible; never shrinks)", Body: volumeExtend{}, Resp: types.ExtendVolumeResponse{}, Errors: []int{400, 404}}},
		{"GET /v1/apps/{app}/volumes/{volume_id}/snapshots", appPath, s.listSnapshots, OpDoc{ID: "Volumes_list_snapshots", Summary: "A volume's snapshots (also after it is destroyed)", Resp: []volume.Snapshot{}, Errors: []int{404}}},
		{"POST /v1/apps/{app}/volumes/{volume_id}/snapshots", appPath, s.createSnapshot, OpDoc{ID: "createVolumeSnapshot", Summary: "Snapshot a volume now (the filesystem is frozen while it is cut)", Resp: volume.Snapshot{}, Errors: []int{404}}},

		// Certificates (certs.go), a Hangar extension (Fly serves them over GraphQL).
		{"GET /v1/apps/{app}/certificates", appPath, s.listCerts, OpDoc{ID: "Certificates_list", Summary: "List an app's custom hostnames and their certificates", Hangar: true, Resp: types.CertsList{}}},
		{"POST /v1/apps/{app}/certificates", appPath, s.addCert, OpDoc{ID: "Certificates_create", Summary: "Add a custom hostname; its certificate is issued over ACME in the background", Hangar: true, Body: types.AddCertRequest{}, Status: 201, Resp: certs.Info{}, Errors: []int{400, 404, 409}}},
		{"GET /v1/apps/{app}/certificates/{hostname}", appPath, s.showCert, OpDoc{ID: "Certificates_show", Summary: "Show a hostname's certificate", Hangar: true, Resp: certs.Info{}, Errors: []int{404}}},
		{"POST /v1/apps/{app}/certificates/{hostname}/check", appPath, s.checkCert, OpDoc{ID: "Certificates_check", Summary: "Check a hostname; retries issuance when it is not ready", Hangar: true, Query: []Param{{Name: "wait", Type: "string", Desc: "how long to wait for the attempt (default 30s, at most 5m)"}}, Resp: certs.Info{}, Errors: []int{400, 404}}},
		{"POST /v1/apps/{app}/certificates/acme", appPath, s.addCert, OpDoc{ID: "Certificates_create_acme", Summary: "fly-go's CreateACMECertificate: as POST /certificates", Hangar: true, Body: types.AddCertRequest{}, Status: 201, Resp: certs.Info{}, Errors: []int{400, 404, 409}}},
		{"POST /v1/apps/{app}/certificates/custom", appPath, s.customCert, OpDoc{ID: "Certificates_create_custom", Summary: "Not supported yet: importing a certificate (a 400 saying so)", Hangar: true, Errors: []int{400}}},
		{"DELETE /v1/apps/{app}/certificates/{hostname}/acme", appPath, s.removeCert, OpDoc{ID: "Certificates_delete_acme", Summary: "fly-go's DeleteACMECertificate: as DELETE /certificates/{hostname}", Hangar: true, Resp: map[string]bool{}, Errors: []int{404}}},
		{"DELETE /v1/apps/{app}/certificates/{hostname}/custom", appPath, s.customCert, OpDoc{ID: "Certificates_delete_custom", Summary: "Not supported yet: imported certificates (a 400 saying so)", Hangar: true, Errors: []int{400}}},
		{"DELETE /v1/apps/{app}/certificates/{hostname}", appPath, s.removeCert, OpDoc{ID: "Certificates_delete", Summary: "Remove a hostname and its certificate", Hangar: true, Resp: map[string]bool{}, Errors: []int{404}}},

		// IP addresses (ips.go): Flycast only.
		{"GET /v1/apps/{app}/ips", appPath, s.listIPs, OpDoc{ID: "IPs_list", Summary: "An app's IP addresses (its Flycast address, if it has one)", Hangar: true, Resp: []types.IPAddress{}, Errors: []int{404}}},
		{"POST /v1/apps/{app}/ips", appPath, s.allocateIP, OpDoc{ID: "IPs_allocate", Summary: "Allocate the app's Flycast address (type private_v6); an app has at most one, which a second call returns with 200", Hangar: true, Body: types.AllocateIPRequest{}, Status: http.StatusCreated, Resp: types.IPAddress{}, Errors: []int{400, 404}}},
		{"GET /v1/apps/{app}/ip_assignments", appPath, s.listIPAssignments, OpDoc{ID: "IPAssignments_list", Summary: "An app's IP addresses in Fly's ip_assignments shape", Resp: types.IPAssignmentsList{}, Errors: []int{404}}},
		{"POST /v1/apps/{app}/ip_assignments", appPath, s.assignIP, OpDoc{ID: "IPAssignments_create", Summary: "Assign the app's Flycast address (type private_v6; public types are a 400: every app is served on the proxy's listen addresses)", Body: types.AssignIPRequest{}, Status: http.StatusCreated, Resp: types.IPAssignment{}, Errors: []int{400, 404}}},
		{"DELETE /v1/apps/{app}/ip_assignments/{ip}", appPath, s.releaseIP, OpDoc{ID: "IPAssignments_delete", Summary: "Release one of the app's IP addresses", Status: http.StatusNoContent, Errors: []int{400, 404}}},
		{"DELETE /v1/apps/{app}/ips/{ip}", appPath, s.releaseIP, OpDoc{ID: "IPs_release", Summary: "Release one of the app's IP addresses", Hangar: true, Status: http.StatusNoContent, Errors: []int{404}}},
	}
}
