# hangar-pg-backup: the helper of a Hangar Postgres cluster's backup
# repository machine. `serve` (the machine's main process, as postgres)
# keeps pgBackRest's TLS server running, takes the scheduled backups and
# serves Prometheus metrics; Hangar's CLI runs the other commands through
# the machine console:
#   init                 create the stanza, then take a first full backup
#   backup full|diff|incr
#   info                 pgBackRest's info (JSON) and this helper's state
#   check                switch WAL on the primary and wait for its archive
#   repo-check           list the repository (an S3 endpoint refusing the keys fails)
# Backups are taken from the member Patroni names leader (pgBackRest's
# pg1-host, reached through its own TLS server).
import fcntl
import http.server
import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request

CLUSTER = os.environ.get("PG_CLUSTER", "")
STATE = "/backup/hangar-state.json" if os.path.isdir("/backup/repo") else "/var/lib/postgresql/hangar-backup/state.json"
METRICS_PORT = 9188


def log(msg):
    print("hangar-pg-backup: " + msg, file=sys.stderr, flush=True)


def load_state():
    try:
        with open(STATE) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


def update_state(fn):
    os.makedirs(os.path.dirname(STATE), exist_ok=True)
    with open(STATE + ".lock", "a") as lk:
        fcntl.flock(lk, fcntl.LOCK_EX)
        st = load_state()
        fn(st)
        tmp = STATE + ".tmp"
        with open(tmp, "w") as f:
            json.dump(st, f)
            f.flush()
            os.fsync(f.fileno())
        os.rename(tmp, STATE)
        return st


def primary():
    """The member Patroni names leader, as pgBackRest's pg1-host name."""
    seen, last = set(), "no member answered"
    try:
        infos = socket.getaddrinfo(CLUSTER + ".internal", 8008, proto=socket.IPPROTO_TCP)
    except OSError as e:
        raise RuntimeError("resolve %s.internal: %s" % (CLUSTER, e))
    for info in infos:
        addr = info[4][0]
        if addr in seen:
            continue
        seen.add(addr)
        host = "[%s]" % addr if ":" in addr else addr
        try:
            with urllib.request.urlopen("http://%s:8008/cluster" % host, timeout=5) as r:
                members = json.load(r).get("members", [])
        except Exception as e:  # a member that is down, or this machine
            last = "%s: %s" % (addr, e)
            continue
        for m in members:
            if m.get("role") == "leader" and m.get("state") == "running":
                return "%s.vm.%s.internal" % (m["name"], CLUSTER)
        last = "%s: no running primary in %s" % (addr, [(m.get("name"), m.get("role"), m.get("state")) for m in members])
    raise RuntimeError("no primary found in %s (%s)" % (CLUSTER, last))


def pgbackrest(*args, pg_host=None):
    cmd = ["pgbackrest", "--stanza=" + CLUSTER]
    if pg_host:
        cmd.append("--pg1-host=" + pg_host)
    cmd += list(args)
    p = subprocess.run(cmd, capture_output=True, text=True)
    out = (p.stdout + p.stderr).strip()
    if p.returncode != 0:
        # pgBackRest's own error lines say what failed.
        lines = [l for l in out.splitlines() if "ERROR" in l] or out.splitlines()[-5:]
        raise RuntimeError("pgbackrest %s: %s" % (" ".join(args), " ".join(lines)))
    return out


# Errors of a role change in progress: right after a promotion the new
# primary's pg_control still has the old timeline until its first
# checkpoint, and for a moment no member (or the old one) is primary.
TRANSIENT = ("does not match pg_control timeline", "unable to find primary", "no primary found", "is in recovery")


def run_backup(kind):
    started = time.time()
    try:
        for attempt in range(8):
            try:
                host = primary()
                pgbackrest("--type=" + kind, "backup", pg_host=host)
                break
            except RuntimeError as e:
                if attempt == 7 or not any(m in str(e) for m in TRANSIENT):
                    raise
                log("%s backup: %s; trying again" % (kind, e))
                time.sleep(3)
    except Exception as e:
        msg = str(e)

        def fail(st):
            st["failures"] = st.get("failures", 0) + 1
            st["last_failure"] = {"time": time.time(), "type": kind, "error": msg}
        update_state(fail)
        log("%s backup failed: %s" % (kind, msg))
        raise

    def ok(st):
        st["last_success"] = {"time": time.time(), "type": kind, "seconds": round(time.time() - started, 1)}
    update_state(ok)
    log("%s backup done in %.1fs" % (kind, time.time() - started))


def info():
    out = pgbackrest("--output=json", "info")
    return json.loads(out)


def backups(inf):
    for s in inf:
        if s.get("name") == CLUSTER:
            return s.get("backup", [])
    return []


def schedule_tick():
    """Take the backup the schedule asks for now, if any."""
    full = int(os.environ.get("PG_BACKUP_FULL_EVERY", "0"))
    diff = int(os.environ.get("PG_BACKUP_DIFF_EVERY", "0"))
    if not full and not diff:
        return
    st = load_state()
    if not st.get("initialized"):
        return  # `hangar pg create` runs init
    try:
        bs = backups(info())
    except Exception as e:
        log("schedule: %s" % e)
        return
    now = time.time()
    last_full = max([b["timestamp"]["stop"] for b in bs if b.get("type") == "full"], default=0)
    last_any = max([b["timestamp"]["stop"] for b in bs], default=0)
    # A failed attempt waits a minute before the next one.
    lf = st.get("last_failure", {}).get("time", 0)
    if now - lf < 60:
        return
    kind = None
    if full and now - last_full >= full:
        kind = "full"
    elif diff and now - last_any >= diff:
        kind = "diff"
    if kind:
        try:
            run_backup(kind)
        except Exception:
            pass


def metrics_text():
    st = load_state()
    lines = [
        "# HELP hangar_pg_backup_last_success_timestamp_seconds When the last backup of the cluster ended (Unix time).",
        "# TYPE hangar_pg_backup_last_success_timestamp_seconds gauge",
        "hangar_pg_backup_last_success_timestamp_seconds %f" % st.get("last_success", {}).get("time", 0),
        "# HELP hangar_pg_backup_failures_total Backups of the cluster that failed.",
        "# TYPE hangar_pg_backup_failures_total counter",
        "hangar_pg_backup_failures_total %d" % st.get("failures", 0),
        "# HELP hangar_pg_backup_last_failure_timestamp_seconds When the last backup failed (Unix time; 0: never).",
        "# TYPE hangar_pg_backup_last_failure_timestamp_seconds gauge",
        "hangar_pg_backup_last_failure_timestamp_seconds %f" % st.get("last_failure", {}).get("time", 0),
    ]
    return "\n".join(lines) + "\n"


class Metrics(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path != "/metrics":
            self.send_error(404)
            return
        body = metrics_text().encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def serve():
    def server():
        while True:
            log("starting pgbackrest server")
            subprocess.run(["pgbackrest", "server"])
            time.sleep(2)

    threading.Thread(target=server, daemon=True).start()

    class Server(http.server.ThreadingHTTPServer):
        address_family = socket.AF_INET6

    try:
        srv = Server(("::", METRICS_PORT), Metrics)
    except OSError:
        srv = http.server.ThreadingHTTPServer(("0.0.0.0", METRICS_PORT), Metrics)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    while True:
        schedule_tick()
        time.sleep(30)


def main():
    if not CLUSTER:
        print("PG_CLUSTER is not set: run in a repository machine made by `hangar pg create`", file=sys.stderr)
        return 2
    cmd = sys.argv[1] if len(sys.argv) > 1 else ""
    try:
        if cmd == "serve":
            serve()
        elif cmd == "init":
            host = primary()
            pgbackrest("stanza-create", pg_host=host)
            run_backup("full")

            def done(st):
                st["initialized"] = True
            update_state(done)
        elif cmd == "backup" and len(sys.argv) > 2 and sys.argv[2] in ("full", "diff", "incr"):
            run_backup(sys.argv[2])
        elif cmd == "info":
            print(json.dumps({"info": info(), "state": load_state()}))
        elif cmd == "repo-check":
            # The repository answers (an S3 endpoint takes the keys).
            p = subprocess.run(["pgbackrest", "repo-ls"], capture_output=True, text=True)
            if p.returncode != 0:
                out = (p.stdout + p.stderr).strip()
                raise RuntimeError("the repository: " + " ".join([l for l in out.splitlines() if "ERROR" in l or "HTTP" in l] or out.splitlines()[-5:]))
        elif cmd == "check":
            pgbackrest("check", pg_host=primary())
        else:
            print("usage: backup.py serve|init|backup full|diff|incr|info|check|repo-check", file=sys.stderr)
            return 2
    except Exception as e:
        print(str(e), file=sys.stderr)
        return 1
    return 0


sys.exit(main())
