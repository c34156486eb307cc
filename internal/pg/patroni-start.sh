#!/bin/sh
# A Hangar Postgres cluster member: Patroni runs PostgreSQL on the volume
# at /data and takes part in the election of the primary through the
# consensus store (etcd). `hangar pg create` mounts this script, Patroni's
# configuration and the TLS files under /etc/hangar/pg; the passwords come
# from the app's secrets in the environment and are handed to Patroni
# only.
set -eu

: "${PG_MAJOR:=15}"
: "${PGDATA:=/data/postgresql}"
conf=/etc/hangar/pg
say() { echo "hangar-pg: $*" >&2; }

if [ ! -d /data ]; then
	say "/data does not exist: the member's volume is not mounted"
	exit 1
fi
for v in OPERATOR_PASSWORD REPL_PASSWORD PATRONI_API_PASSWORD PATRONI_ETCD3_PASSWORD PG_CONSENSUS_HOST FLY_MACHINE_ID; do
	eval "val=\${$v:-}"
	if [ -z "$val" ]; then
		say "$v is not set: this machine was not made by \`hangar pg create\`"
		exit 1
	fi
done
# Patroni (as postgres) moves a data directory it cannot use aside, next
# to it: the volume's root is postgres's too.
chown postgres:postgres /data
mkdir -p "$PGDATA"
chown postgres:postgres "$PGDATA"
chmod 0700 "$PGDATA"

# The server key is mounted owned by root; PostgreSQL wants its own copy.
tls=/run/hangar-pg
install -d -o postgres -g postgres -m 0700 "$tls"
install -o postgres -g postgres -m 0600 "$conf/server.key" "$tls/server.key"
install -o postgres -g postgres -m 0644 "$conf/server.crt" "$tls/server.crt"
install -o postgres -g postgres -m 0644 "$conf/ca.crt" "$tls/ca.crt"
# The REST API's password, for `hangar pg failover` (ctl.py, as root).
(umask 077 && printf '%s\n' "$PATRONI_API_PASSWORD" >"$tls/api-password" && chown root:root "$tls/api-password")

# This member's address on the private network: the source address of a
# route to the consensus store (the bridge's IPv4 gateway on a single
# host; on a cluster of hosts the 6PN gateway of the host that serves it,
# so the member's IPv6 address, which members on other hosts reach).
ip=$(python3 -c 'import socket,sys; h=sys.argv[1]; f=socket.AF_INET6 if ":" in h else socket.AF_INET; s=socket.socket(f, socket.SOCK_DGRAM); s.connect((h, 9)); print(s.getsockname()[0])' "$PG_CONSENSUS_HOST")
hostport=$ip
case $ip in *:*) hostport="[$ip]" ;; esac

export PATRONI_NAME="$FLY_MACHINE_ID"
export PATRONI_RESTAPI_CONNECT_ADDRESS="$hostport:8008"
export PATRONI_POSTGRESQL_CONNECT_ADDRESS="$hostport:5432"
export PATRONI_SUPERUSER_PASSWORD="$OPERATOR_PASSWORD"
export PATRONI_REWIND_PASSWORD="$OPERATOR_PASSWORD"
export PATRONI_REPLICATION_PASSWORD="$REPL_PASSWORD"
export PATRONI_RESTAPI_PASSWORD="$PATRONI_API_PASSWORD"
unset OPERATOR_PASSWORD REPL_PASSWORD PATRONI_API_PASSWORD PG_TLS_KEY PG_CA_KEY
# A rotated server key is PG_TLS_KEY_N (`hangar pg ca rotate`).
for v in $(env | sed -n 's/^\(PG_TLS_KEY_[A-Z0-9_]*\)=.*/\1/p'); do unset "$v"; done
export PATRONICTL_CONFIG_FILE="$conf/patroni.yml"
# libpq (replication, pg_rewind) looks for client certificates in HOME.
export HOME=/var/lib/postgresql
# Backups (pg create's default): pgBackRest's TLS server, through which
# the cluster's repository machine takes backups; restarted if it exits.
if [ "${PG_BACKUP:-}" = 1 ]; then
	install -d -o postgres -g postgres -m 0700 /tmp/pgbackrest
	(while :; do env -u PATRONI_SUPERUSER_PASSWORD -u PATRONI_REWIND_PASSWORD -u PATRONI_REPLICATION_PASSWORD -u PATRONI_RESTAPI_PASSWORD -u PATRONI_ETCD3_PASSWORD \
		setpriv --reuid=postgres --regid=postgres --init-groups -- pgbackrest server || true; sleep 2; done) &
fi
say "member $PATRONI_NAME at $ip, consensus store on $PG_CONSENSUS_HOST"
exec setpriv --reuid=postgres --regid=postgres --init-groups -- /usr/bin/patroni "$conf/patroni.yml"
