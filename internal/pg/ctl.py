# hangar-pg-ctl: Hangar's CLI runs this inside a member (through the
# machine console) to read Patroni's view of the cluster and to ask for a
# switchover, to read and change the cluster's PostgreSQL parameters and
# to restart a member. It talks to the member's own Patroni REST API (and
# for a restart to the member's, at the address Patroni publishes); the
# API's password is the file the start script wrote (root only).
import base64
import json
import sys
import urllib.error
import urllib.request

API = "http://127.0.0.1:8008"


def call(method, path, body=None, api=API, timeout=30):
    req = urllib.request.Request(api + path, method=method)
    if body is not None:
        req.data = json.dumps(body).encode()
        req.add_header("Content-Type", "application/json")
        with open("/run/hangar-pg/api-password") as f:
            pw = f.read().strip()
        token = base64.b64encode(("hangar:" + pw).encode()).decode()
        req.add_header("Authorization", "Basic " + token)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def main():
    cmd = sys.argv[1] if len(sys.argv) > 1 else "cluster"
    if cmd == "cluster":
        code, out = call("GET", "/cluster")
    elif cmd == "switchover":
        code, out = call("GET", "/cluster")
        if code != 200:
            print(out)
            return 1
        leader = [m["name"] for m in json.loads(out)["members"] if m.get("role") == "leader"]
        if not leader:
            print("no primary to switch over from")
            return 1
        body = {"leader": leader[0]}
        if len(sys.argv) > 2 and sys.argv[2]:
            body["candidate"] = sys.argv[2]
        code, out = call("POST", "/switchover", body)
    elif cmd == "config":
        code, out = call("GET", "/config")
    elif cmd == "patch-config" and len(sys.argv) > 2:
        code, out = call("PATCH", "/config", json.loads(sys.argv[2]))
    elif cmd == "restart" and len(sys.argv) > 2:
        code, out = call("GET", "/cluster")
        if code != 200:
            print(out)
            return 1
        urls = [m.get("api_url", "") for m in json.loads(out)["members"] if m["name"] == sys.argv[2]]
        if not urls or not urls[0]:
            print("no member " + sys.argv[2])
            return 1
        api = urls[0].rsplit("/patroni", 1)[0]
        code, out = call("POST", "/restart", {"restart_pending": True}, api, 180)
    else:
        print("usage: ctl.py cluster|switchover [CANDIDATE]|config|patch-config JSON|restart MEMBER")
        return 2
    print(out)
    return 0 if 200 <= code < 300 else 1


sys.exit(main())
