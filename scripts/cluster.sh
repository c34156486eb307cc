#!/usr/bin/env bash
# Makes a cluster of Hangar hosts (see README, "A cluster", and
# docs/cluster-join.md). As root, from the repository, on each host:
#
#   bash scripts/cluster.sh init ADDRESS [REGION]
#       on the first host: starts `hangar server --cluster-init`; a host
#       that already runs a single-host daemon (scripts/quickstart.sh) is
#       turned into the first member, its machines kept running.
#   bash scripts/cluster.sh join URL TOKEN ADDRESS [REGION]
#       on a new host: starts `hangar server --join URL --join-token TOKEN`
#       (TOKEN from `hangar cluster join-token` on a member).
#
# ADDRESS is the IP other hosts reach this one at. Environment as
# quickstart.sh's: HANGAR_DATA_DIR (default /var/lib/hangar),
# HANGAR_HTTP_LISTEN (default :80), HANGAR_DOMAIN (default localhost).
set -euo pipefail
cd "$(dirname "$0")/.."

usage() {
  sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
}
[ $# -ge 2 ] || usage
mode=$1
shift
case "$mode" in
  init) addr=$1; region=${2:-local}; join_args=(--cluster-init) ;;
  join) [ $# -ge 3 ] || usage; addr=$3; region=${4:-local}; join_args=(--join "$1" --join-token "$2") ;;
  *) usage ;;
esac

if [ "$(id -u)" != 0 ]; then
  echo "cluster: run as root (containers and network namespaces need it)" >&2
  exit 1
fi
export PATH="/usr/local/go/bin:$PATH"
command -v go >/dev/null || { echo "cluster: Go is not installed; install it into /usr/local/go (https://go.dev/dl/)" >&2; exit 1; }
missing=""
for p in crun runc tini-static ip nft curl; do command -v "$p" >/dev/null || missing=1; done
if [ -n "$missing" ]; then
  echo "==> Installing crun, runc, tini, iproute2, nftables, curl"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq crun runc tini iproute2 nftables curl ca-certificates >/dev/null
fi
echo "==> Building hangar"
go build -o bin/hangar ./cmd/hangar

DATA_DIR="${HANGAR_DATA_DIR:-/var/lib/hangar}"
export HANGAR_DATA_DIR="$DATA_DIR"
mkdir -p "$DATA_DIR"

if [ "$mode" = init ] && [ -f "$DATA_DIR/state.db" ] && [ ! -f "$DATA_DIR/cluster/member.json" ]; then
  # A single host already: stop its daemon (machines keep running), move
  # its state into the new cluster's etcd, then start as the first member.
  if [ -s "$DATA_DIR/hangar.pid" ] && kill -0 "$(cat "$DATA_DIR/hangar.pid")" 2>/dev/null; then
    pid=$(cat "$DATA_DIR/hangar.pid")
    echo "==> Stopping the single-host daemon (pid $pid); machines keep running"
    kill -TERM "$pid"
    for _ in $(seq 1 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  fi
  echo "==> Moving $DATA_DIR/state.db into the cluster's etcd"
  bin/hangar cluster init --from-data-dir "$DATA_DIR" --advertise-addr "$addr" --region "$region"
  join_args=()
fi

echo "==> Starting hangar server (log: $DATA_DIR/hangar.log)"
rm -f "$DATA_DIR/api-addr"
nohup bin/hangar server --data-dir "$DATA_DIR" --http-listen "${HANGAR_HTTP_LISTEN:-:80}" \
  --domain "${HANGAR_DOMAIN:-localhost}" --region "$region" --advertise-addr "$addr" "${join_args[@]}" \
  >>"$DATA_DIR/hangar.log" 2>&1 </dev/null &
for _ in $(seq 1 600); do
  [ -s "$DATA_DIR/api-addr" ] && break
  if ! kill -0 $! 2>/dev/null; then
    echo "cluster: hangar server exited; its log:" >&2
    tail -n 20 "$DATA_DIR/hangar.log" >&2
    exit 1
  fi
  sleep 0.1
done
[ -s "$DATA_DIR/api-addr" ] || { echo "cluster: hangar server did not start in 60 s; see $DATA_DIR/hangar.log" >&2; exit 1; }
bin/hangar cluster members
if [ "$mode" = init ]; then
  echo
  echo "This host is the cluster's first member. To add a host, run here:"
  echo "  bin/hangar cluster join-token"
  echo "and on the new host:"
  echo "  bash scripts/cluster.sh join https://$addr:4281 TOKEN ADDRESS [REGION]"
fi
