#!/usr/bin/env bash
# Installs what Hangar needs on a fresh Debian machine (as root), builds
# hangar, starts the daemon in the background and deploys examples/hello,
# printing its URL. Re-running it redeploys.
#
# Environment: HANGAR_DATA_DIR (default /var/lib/hangar), HANGAR_HTTP_LISTEN
# (default :80), HANGAR_DOMAIN (default localhost).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" != 0 ]; then
  echo "quickstart: run as root (containers and network namespaces need it)" >&2
  exit 1
fi
export PATH="/usr/local/go/bin:$PATH"
if ! command -v go >/dev/null; then
  echo "quickstart: Go is not installed; install Go 1.24+ into /usr/local/go (https://go.dev/dl/)" >&2
  exit 1
fi

missing=""
for p in crun runc tini-static ip curl; do command -v "$p" >/dev/null || missing=1; done
if [ -n "$missing" ]; then
  echo "==> Installing crun, runc, tini, iproute2, curl"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq crun runc tini iproute2 curl ca-certificates >/dev/null
fi

echo "==> Building hangar"
go build -o bin/hangar ./cmd/hangar

DATA_DIR="${HANGAR_DATA_DIR:-/var/lib/hangar}"
HTTP_LISTEN="${HANGAR_HTTP_LISTEN:-:80}"
DOMAIN="${HANGAR_DOMAIN:-localhost}"
export HANGAR_DATA_DIR="$DATA_DIR"
mkdir -p "$DATA_DIR"

if ! bin/hangar apps list >/dev/null 2>&1; then
  echo "==> Starting hangar server (log: $DATA_DIR/hangar.log)"
  rm -f "$DATA_DIR/api-addr"
  nohup bin/hangar server --data-dir "$DATA_DIR" --http-listen "$HTTP_LISTEN" --domain "$DOMAIN" \
    >>"$DATA_DIR/hangar.log" 2>&1 </dev/null &
  for _ in $(seq 1 100); do
    [ -s "$DATA_DIR/api-addr" ] && break
    if ! kill -0 $! 2>/dev/null; then
      echo "quickstart: hangar server exited; its log:" >&2
      tail -n 20 "$DATA_DIR/hangar.log" >&2
      exit 1
    fi
    sleep 0.1
  done
fi

echo "==> Deploying examples/hello"
bin/hangar deploy -c examples/hello/fly.toml | tee /tmp/hangar-deploy.out
url=$(grep -o 'http://[^ ]*' /tmp/hangar-deploy.out | tail -n 1)
host=$(echo "$url" | sed -E 's#http://([^/:]+).*#\1#')
port=$(echo "$url" | sed -nE 's#http://[^/:]+:([0-9]+).*#\1#p')
echo "==> curl $url"
curl -sS --resolve "$host:${port:-80}:127.0.0.1" "$url"
echo
echo "Hangar is running. The example app is at: $url"
