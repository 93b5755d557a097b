#!/usr/bin/env python3
"""Two swiftlet nodes on one machine, one PostgreSQL and one Redis, behind
HAProxy (perf/fleet/haproxy.cfg), checked end to end:

1. IDs made through the balancer by both nodes are unique, and the nodes
   leased different node ids.
2. A write through one node is read back through the other.
3. A cached read on one node follows a write on the other (invalidation
   through the shared Redis).
4. A node killed with SIGKILL under load: the balancer keeps serving.
5. A rolling restart (SIGTERM one node, start it again, then the other) under
   load: no request fails.

Each check prints what it measured; any failure exits non-zero. Run it
through perf/run-fleet.sh, which builds swiftlet and prepares the database.
"""

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
FLEET_PORT, NODE_PORTS = 18080, {"a": 18081, "b": 18082}
DURATION = int(os.environ.get("PERF_DURATION", "6"))
ENV = dict(bench.SERVER_ENV, DATABASE_URL=os.environ["DATABASE_URL"], REDIS_URL=os.environ["REDIS_URL"])
failures = []


def log(*args):
    print(*args, file=sys.stderr, flush=True)


def check(ok, what):
    print(f"| {what} | {'ok' if ok else '**FAILED**'} |")
    if not ok:
        failures.append(what)


def call(port, method, path, body=None, token=None):
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Token {token}"
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=10) as res:
            return res.status, json.loads(res.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


def start_node(name):
    out = open(f"/tmp/fleet-{name}-{time.time():.0f}.log", "w") if os.environ.get("FLEET_LOGS") else subprocess.DEVNULL
    proc = subprocess.Popen([str(bench.SWIFTLET), "--listen", f"127.0.0.1:{NODE_PORTS[name]}", "--workers", "1",
                             "--log", "info"], env=ENV, stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 30
    while True:
        try:
            if call(NODE_PORTS[name], "GET", "/api/ids")[0] == 200:  # migrated, and holding a node id
                return proc
        except OSError:
            pass  # not listening yet
        if time.monotonic() > deadline or proc.poll() is not None:
            raise RuntimeError(f"node {name} did not become ready")
        time.sleep(0.1)


class Load:
    """Keep-alive GETs through the balancer from 4 threads until stopped;
    counts answers by status, and failures (no answer at all)."""

    def __init__(self, path):
        self.path, self.running, self.lock = path, True, threading.Lock()
        self.statuses, self.errors, self.samples = {}, [], {}
        self.threads = [threading.Thread(target=self.run, daemon=True) for _ in range(4)]
        for t in self.threads:
            t.start()

    def run(self):
        import http.client
        conn = http.client.HTTPConnection("127.0.0.1", FLEET_PORT, timeout=10)
        while self.running:
            try:
                conn.request("GET", self.path)
                res = conn.getresponse()
                body = res.read()
                with self.lock:
                    self.statuses[res.status] = self.statuses.get(res.status, 0) + 1
                    if res.status != 200 and res.status not in self.samples:
                        self.samples[res.status] = body[:200].decode(errors="replace")
            except Exception as e:  # noqa: BLE001 (any failure is counted, then a new connection)
                with self.lock:
                    self.errors.append(repr(e))
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", FLEET_PORT, timeout=10)

    def stop(self):
        self.running = False
        for t in self.threads:
            t.join()
        return self.statuses, self.errors


def main():
    nodes, haproxy_holder = {}, []
    try:
        run(nodes, haproxy_holder)
    finally:
        for proc in haproxy_holder:
            proc.terminate()
            proc.wait()
        for proc in nodes.values():
            if proc.poll() is None:
                proc.terminate()
                proc.wait()
    print(f"\nTwo nodes (1 worker each) on 127.0.0.1:{NODE_PORTS['a']} and :{NODE_PORTS['b']}, HAProxy "
          f"{subprocess.run(['haproxy', '-v'], capture_output=True, text=True).stdout.split()[2]} on :{FLEET_PORT} "
          f"(perf/fleet/haproxy.cfg), one PostgreSQL and one Redis. Load: 4 keep-alive clients through the balancer.")
    if failures:
        sys.exit(f"{len(failures)} check(s) failed")


def run(nodes, haproxy_holder):
    for name in NODE_PORTS:
        nodes[name] = start_node(name)
    haproxy = subprocess.Popen(["haproxy", "-db", "-f", str(ROOT / "perf/fleet/haproxy.cfg")],
                               env=dict(os.environ, FLEET_PORT=str(FLEET_PORT), NODE_A_PORT=str(NODE_PORTS["a"]),
                                        NODE_B_PORT=str(NODE_PORTS["b"])),
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    haproxy_holder.append(haproxy)
    deadline = time.monotonic() + 10
    while True:
        try:
            if call(FLEET_PORT, "GET", "/health")[0] == 200:
                break
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError("HAProxy did not come up")
        time.sleep(0.1)
    time.sleep(1)  # both servers' first health checks
    print("| check | result |")
    print("|---|---|")

    # 1. IDs through the balancer.
    ids = []
    for _ in range(20):
        ids += call(FLEET_PORT, "GET", "/api/ids?count=1000")[1]["ids"]
    node_of = {name: call(port, "GET", "/api/ids/" + call(port, "GET", "/api/ids")[1]["id"])[1]["node"]
               for name, port in NODE_PORTS.items()}
    nodes_seen = {call(FLEET_PORT, "GET", f"/api/ids/{i}")[1]["node"] for i in ids[::997]}
    check(len(set(ids)) == len(ids) == 20_000,
          f"20,000 IDs through the balancer, {len(set(ids)):,} distinct")
    check(node_of["a"] != node_of["b"] and nodes_seen == set(node_of.values()),
          f"leased node ids: a={node_of['a']}, b={node_of['b']}; both seen among the IDs: {sorted(nodes_seen)}")

    # 2. Write through one node, read through the other.
    stamp = int(time.time() * 1000)
    user = {"username": f"fleet{stamp}", "email": f"fleet{stamp}@example.com", "password": "fleet-password"}
    status, _ = call(NODE_PORTS["a"], "POST", "/api/users", {"user": user})
    status2, body = call(NODE_PORTS["b"], "POST", "/api/users/login",
                         {"user": {"email": user["email"], "password": user["password"]}})
    check(status == 201 and status2 == 200, "registered on a, logged in on b")
    token = body["user"]["token"]
    status, body = call(NODE_PORTS["a"], "POST", "/api/articles",
                        {"article": {"title": f"Fleet {stamp}", "description": "d", "body": "first"}}, token)
    slug = body["article"]["slug"]
    status2, read = call(NODE_PORTS["b"], "GET", f"/api/articles/{slug}")
    check(status == 201 and status2 == 200 and read["article"]["body"] == "first",
          "article written on a, read on b")

    # 3. Cache invalidation across nodes.
    for _ in range(2):  # the second read is served from Redis
        call(NODE_PORTS["b"], "GET", f"/api/articles/{slug}")
    call(NODE_PORTS["a"], "PUT", f"/api/articles/{slug}", {"article": {"body": "second"}}, token)
    _, read = call(NODE_PORTS["b"], "GET", f"/api/articles/{slug}")
    check(read["article"]["body"] == "second", "cached on b, updated on a, read on b: the update")

    # 4. A node killed under load.
    load = Load("/api/ids")
    time.sleep(DURATION / 3)
    nodes["a"].send_signal(signal.SIGKILL)
    nodes["a"].wait()
    time.sleep(DURATION / 3)
    statuses, errors = load.stop()
    ok = sum(n for s, n in statuses.items() if s == 200)
    bad = sum(n for s, n in statuses.items() if s != 200)
    check(ok > 1000 and bad == 0 and not errors,
          f"node a killed (SIGKILL) under load: {ok:,} answered 200, {bad} other statuses, {len(errors)} failed")

    # 5. Rolling restart: a back, then b restarted gracefully, then a.
    nodes["a"] = start_node("a")
    time.sleep(1)  # HAProxy's rise checks
    load = Load("/api/ids")
    for name in ("b", "a"):
        time.sleep(DURATION / 4)
        nodes[name].send_signal(signal.SIGTERM)
        nodes[name].wait(timeout=30)
        nodes[name] = start_node(name)
        time.sleep(1)
    time.sleep(DURATION / 4)
    statuses, errors = load.stop()
    ok = sum(n for s, n in statuses.items() if s == 200)
    bad = {s: n for s, n in statuses.items() if s != 200}
    check(ok > 1000 and not bad and not errors,
          f"rolling restart (SIGTERM, start again; b then a) under load: {ok:,} answered 200, "
          f"other statuses {bad or 'none'}{' ' + repr(load.samples) if bad else ''}, {len(errors)} failed"
              f"{': ' + errors[0] if errors else ''}")


if __name__ == "__main__":
    main()
