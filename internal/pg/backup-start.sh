#!/bin/sh
# A Hangar Postgres cluster's backup repository machine: pgBackRest's TLS
# server keeps the repository (on the volume at /backup, or in S3) for
# the members' WAL archiving, and backup.py takes the scheduled backups
# and serves metrics. `hangar pg create` mounts this script, backup.py,
# pgBackRest's configuration and the TLS files under /etc/hangar/pg.
set -eu

conf=/etc/hangar/pg
tls=/run/hangar-pg
say() { echo "hangar-pg-backup: $*" >&2; }

if [ -z "${PG_CLUSTER:-}" ]; then
	say "PG_CLUSTER is not set: this machine was not made by \`hangar pg create\`"
	exit 1
fi
install -d -o postgres -g postgres -m 0700 "$tls" /tmp/pgbackrest
install -o postgres -g postgres -m 0600 "$conf/backup.key" "$tls/backup.key"
install -o postgres -g postgres -m 0644 "$conf/backup.crt" "$tls/backup.crt"
install -o postgres -g postgres -m 0644 "$conf/ca.crt" "$tls/ca.crt"
if [ "${PG_BACKUP_S3:-}" = 1 ]; then
	install -d -o postgres -g postgres -m 0700 /var/lib/postgresql/hangar-backup
	export PG_BACKUP_STATE=/var/lib/postgresql/hangar-backup/state.json
else
	if [ ! -d /backup ]; then
		say "/backup does not exist: the repository's volume is not mounted"
		exit 1
	fi
	chown postgres:postgres /backup
	install -d -o postgres -g postgres -m 0750 /backup/repo
	export PG_BACKUP_STATE=/backup/hangar-state.json
fi
# The cluster's other secrets are not this machine's business; an S3
# repository's keys stay (pgBackRest reads them from the environment).
unset OPERATOR_PASSWORD REPL_PASSWORD PATRONI_API_PASSWORD PATRONI_ETCD3_PASSWORD PG_TLS_KEY PG_CA_KEY PG_BACKUP_TLS_KEY
export HOME=/var/lib/postgresql
say "repository for $PG_CLUSTER; schedule: full every ${PG_BACKUP_FULL_EVERY:-0}s, diff every ${PG_BACKUP_DIFF_EVERY:-0}s"
exec setpriv --reuid=postgres --regid=postgres --init-groups -- python3 "$conf/backup.py" serve
