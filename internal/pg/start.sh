#!/bin/sh
# hangar-pg-start: runs PostgreSQL in a Hangar Postgres machine.
#
# The cluster lives on the machine's volume (PGDATA, /data/postgresql by
# default). On the first start it is made with initdb: the superuser
# postgres gets OPERATOR_PASSWORD (a secret `hangar pg create` sets), local
# connections use peer authentication, network connections SCRAM
# passwords. PostgreSQL then runs as the postgres user, listening on every
# address of the machine (the private network; the edge's pg_tls handler
# adds TLS for clients that come in through the proxy).
set -eu

: "${PG_MAJOR:=15}"
: "${PGDATA:=/data/postgresql}"
bin=/usr/lib/postgresql/$PG_MAJOR/bin
say() { echo "hangar-pg: $*" >&2; }

parent=$(dirname "$PGDATA")
if [ ! -d "$parent" ]; then
	say "$parent does not exist: mount a volume there ([mounts] destination = \"$parent\")"
	exit 1
fi
mkdir -p "$PGDATA"
chown postgres:postgres "$PGDATA"
chmod 0700 "$PGDATA"

if [ ! -s "$PGDATA/PG_VERSION" ]; then
	if [ -z "${OPERATOR_PASSWORD:-}" ]; then
		say "OPERATOR_PASSWORD is not set: set it as a secret (hangar secrets set OPERATOR_PASSWORD=...) before the first start"
		exit 1
	fi
	say "initializing a PostgreSQL $PG_MAJOR cluster in $PGDATA"
	pwfile=$(mktemp)
	printf '%s\n' "$OPERATOR_PASSWORD" >"$pwfile"
	chown postgres "$pwfile"
	setpriv --reuid=postgres --regid=postgres --init-groups -- \
		"$bin/initdb" -D "$PGDATA" -U postgres --pwfile="$pwfile" \
		--auth-local=peer --auth-host=scram-sha-256 --encoding=UTF8 --locale=C.UTF-8 >&2
	rm -f "$pwfile"
	cat >>"$PGDATA/pg_hba.conf" <<'HBA'
# Hangar: password (SCRAM) connections from the private network and the proxy.
host all all 0.0.0.0/0 scram-sha-256
host all all ::/0 scram-sha-256
HBA
fi

# The password lives in the cluster now; do not hand it to the server's
# environment.
unset OPERATOR_PASSWORD
exec setpriv --reuid=postgres --regid=postgres --init-groups -- \
	"$bin/postgres" -D "$PGDATA" -c listen_addresses='*' -c unix_socket_directories=/tmp "$@"
