#!/usr/bin/env python3
"""Instructions per request, endpoint by endpoint, and where they go.

valgrind's callgrind counts the user-space instructions swiftlet executes
(the kernel's share is not counted): repeatable whatever else the shared
machine does, so a change shows as a number, not as noise. One worker serves
WARM requests, its counters are zeroed (callgrind_control -z), it serves N
more over one keep-alive connection, and the counters are dumped: the dump
divided by N is the cost of a request without start-up or warm-up. Requests
go one at a time (each one read and one write for the server) or PIPELINE at
a time in one write.

Prints a table of instructions per request and, per endpoint, the ten
functions with the most instructions of their own (callgrind_annotate).

    python3 perf/instructions.py                      # the endpoints below
    PERF_PATHS=/fortunes,/db python3 perf/instructions.py
Database endpoints need DATABASE_URL (perf/run-db.sh's database); without it
they are left out. They include `POST /ingest` (a new event per request) and
`article`, the anonymous cached read of an article that the release build
seeds through the API first (a user and one article).
"""

import glob
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench  # noqa: E402  (the binary, the port, wait for /health)

PORT = bench.PORT
# The profiling build: the release code with its symbols (Cargo.toml).
BINARY = Path(os.environ.get("PERF_BINARY", bench.ROOT / "target/profiling/swiftlet"))
WARM = int(os.environ.get("PERF_WARM", "300"))
N = int(os.environ.get("PERF_N", "2000"))
PIPELINE = 16
STORELESS = ["/plaintext", "/json"]
# "POST /ingest": a new event per request (queued until the log writer's
# next batch, so the store's share is amortised); "article": the anonymous
# read of one seeded article by slug, answered from the Redis cache after
# the first read.
DATABASE = ["/db", "/fortunes", "/queries?queries=20", "POST /ingest", "article"]
NONCE = f"{os.getpid()}-{int(time.time())}"
TOP = 10


def log(*args):
    print(*args, file=sys.stderr, flush=True)


def read_response(s, buf):
    """One response off the socket (Content-Length framed); returns the
    bytes after it."""
    while True:
        end = buf.find(b"\r\n\r\n")
        if end >= 0:
            head = buf[:end].decode("latin-1")
            if not head.startswith("HTTP/1.1 2"):
                raise RuntimeError(f"not a 2xx: {head.splitlines()[0]}")
            m = re.search(r"(?im)^content-length:\s*(\d+)", head)
            if not m:
                raise RuntimeError("no Content-Length")
            total = end + 4 + int(m.group(1))
            if len(buf) >= total:
                return buf[total:]
        chunk = s.recv(65536)
        if not chunk:
            raise RuntimeError("server closed")
        buf += chunk


SEEDED = {}  # endpoint name -> what its requests need (the article's slug)
SENT = [0]  # requests made so far, for unique ingest events


def request_for(path):
    """The bytes of one request to `path` (a path, or a name above)."""
    if path == "POST /ingest":
        SENT[0] += 1
        body = (f'{{"event_id":"instr-{NONCE}-{SENT[0]}","timestamp":"2026-12-04T10:00:00.000Z",'
                f'"service":"svc","message":"GET /api/articles 200 in 3 ms","metadata":{{"host":"web-1"}}}}')
        return (f"POST /ingest HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\n\r\n{body}").encode()
    if path == "article":
        path = f"/api/articles/{SEEDED['article']}"
    return f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode()


def send(path, n, depth):
    with socket.create_connection(("127.0.0.1", PORT)) as s:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        buf = b""
        for _ in range(n // depth):
            s.sendall(b"".join(request_for(path) for _ in range(depth)))
            for _ in range(depth):
                buf = read_response(s, buf)


def call(method, path, token=None, body=None):
    """One JSON API call on its own connection; the decoded answer."""
    data = json.dumps(body).encode() if body is not None else b""
    head = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Type: application/json\r\n"
    if token:
        head += f"Authorization: Token {token}\r\n"
    with socket.create_connection(("127.0.0.1", PORT), timeout=60) as s:
        s.sendall(f"{head}Content-Length: {len(data)}\r\n\r\n".encode() + data)
        out = b""
        while chunk := s.recv(65536):
            out += chunk
    head, _, rest = out.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 2"):
        raise RuntimeError(f"{method} {path}: {head[:60]!r} {rest[:200]!r}")
    return json.loads(rest)


def seed(env):
    """A user and an article to read, made through the API by the release
    build (password hashing under valgrind would take minutes)."""
    proc = subprocess.Popen([str(bench.SWIFTLET), "--listen", f"127.0.0.1:{PORT}", "--workers", "1", "--log", "warn"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        bench.wait_ready(proc, timeout=30)
        until_served("/json")
        name = f"instr{NONCE.replace('-', '')}"
        user = call("POST", "/api/users", body={"user": {"username": name, "email": f"{name}@bench.example",
                                                         "password": f"pw-{name}-secret"}})["user"]
        article = call("POST", "/api/articles", user["token"], {"article": {
            "title": f"Counting instructions {NONCE}", "description": "seeded", "body": "seeded body " * 20,
            "tagList": ["perf", "callgrind"]}})["article"]
        SEEDED["article"] = article["slug"]
    finally:
        bench.stop(proc)


def until_served(path):
    """Waits for the endpoint's 200: the stores connect after /health is up
    (503 until then), slowly under valgrind."""
    deadline = time.monotonic() + 60
    while True:
        try:
            return send(path, 1, 1)
        except RuntimeError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def callgrind(cmd, path, depth, env):
    """callgrind_annotate's function table for N requests to `path` (after
    WARM), `depth` per write, served by the server that `cmd` starts on PORT;
    and the total instructions per request."""
    with tempfile.TemporaryDirectory() as tmp:
        out = f"{tmp}/callgrind.out"
        proc = subprocess.Popen(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", *cmd], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            bench.wait_ready(proc, timeout=60)
            until_served(path)
            send(path, WARM, depth)
            subprocess.run(["callgrind_control", "-z", str(proc.pid)], check=True, capture_output=True, timeout=60)
            send(path, N, depth)
            subprocess.run(["callgrind_control", "-d", str(proc.pid)], check=True, capture_output=True, timeout=60)
        finally:
            proc.terminate()
            proc.wait(timeout=120)
        dumps = [d for d in glob.glob(f"{out}*") if re.search(r"\.\d+$", d)]
        if len(dumps) != 1:
            raise RuntimeError(f"expected one dump, found {dumps}")
        ann = subprocess.run(["callgrind_annotate", "--inclusive=no", f"--threshold=100", dumps[0]],
                             capture_output=True, text=True, check=True).stdout
    m = re.search(r"^([\d,]+) \(100\.0%\)\s+PROGRAM TOTALS", ann, re.M)
    if not m:
        raise RuntimeError("no total in callgrind_annotate's output")
    return ann, int(m.group(1).replace(",", "")) / N


def count(path, depth, env):
    """Instructions per request and the top functions, for one endpoint."""
    cmd = [str(BINARY), "--listen", f"127.0.0.1:{PORT}", "--workers", "1", "--log", "warn"]
    ann, per_request = callgrind(cmd, path, depth, env)
    total = per_request * N
    # Cost by function, summed over the files its inlined code came from. A
    # dump taken mid-run lists the frames that stay on the stack the whole
    # time (thread start, the worker's closure) at the total: left out.
    by_function = {}
    listing = ann.split("file:function", 1)[1].split("\n-", 2)[1]  # the table, not the annotated sources
    for line in listing.splitlines():
        f = re.match(r"^\s*([\d,]+) \(\s*[\d.]+%\)\s+(\S.*?)\s*$", line)
        if not f or "PROGRAM TOTALS" in line:
            continue
        cost = int(f.group(1).replace(",", ""))
        name = re.sub(r" \[[^\]]*\]$", "", f.group(2))  # drop the object
        name = name.split(":", 1)[1] if ":" in name.split("::", 1)[0] else name  # and the file
        if cost < total:
            by_function[name] = by_function.get(name, 0) + cost
    top = sorted(((cost / N, 100 * cost / total, name) for name, cost in by_function.items()), reverse=True)[:TOP]
    return total / N, top


def main():
    env = dict(bench.SERVER_ENV)
    paths = STORELESS + DATABASE
    if os.environ.get("DATABASE_URL"):
        env["DATABASE_URL"] = os.environ["DATABASE_URL"]
        env["REDIS_URL"] = os.environ.get("REDIS_URL", "")
    else:
        log("no DATABASE_URL: database endpoints left out")
        paths = STORELESS
    if os.environ.get("PERF_PATHS"):
        paths = os.environ["PERF_PATHS"].split(",")
    if "article" in paths:
        seed(env)
    results = {}
    for path in paths:
        for depth in (1, PIPELINE):
            log(f"callgrind: {path}, {depth} per write")
            started = time.monotonic()
            results[(path, depth)] = count(path, depth, env)
            log(f"  {results[(path, depth)][0]:,.0f} per request ({time.monotonic() - started:.0f} s)")
    if os.environ.get("PERF_JSON"):  # for perf/instructions-budget.sh
        with open(os.environ["PERF_JSON"], "w") as f:
            json.dump({f"{path} {depth}": results[(path, depth)][0] for path, depth in results}, f)
    print(f"User-space instructions per request (callgrind, one worker, {N:,} keep-alive requests after "
          f"{WARM:,} of warm-up, counters zeroed between), one per write and {PIPELINE} per write:\n")
    print(f"| endpoint | one at a time | {PIPELINE} pipelined |")
    print("|---|---:|---:|")
    for path in paths:
        print(f"| `{path}` | {results[(path, 1)][0]:,.0f} | {results[(path, PIPELINE)][0]:,.0f} |")
    for path in paths:
        for depth in (1, PIPELINE):
            print(f"\n`{path}`, {depth} per write: the {TOP} functions with the most instructions of their own\n")
            print("| instructions per request | share | function |")
            print("|---:|---:|---|")
            for per, share, name in results[(path, depth)][1]:
                print(f"| {per:,.0f} | {share:.1f} % | `{name[:110]}` |")


if __name__ == "__main__":
    main()
