#!/usr/bin/env python3
"""The TechEmpower database tests, swiftlet against the axum baseline, in one
run, alternating the two servers.

For every endpoint and server: requests/s and p50/p99 latency at 256
connections (wrk, 2 threads), the server's CPU seconds per request and
PostgreSQL's (all its processes, from /proc), p50/p99 at a fixed rate that both servers sustain
(perf/loadgen, corrected for coordinated omission: at saturation a
closed-loop p99 mostly measures the queue), and the count of non-2xx
answers. Server, PostgreSQL, Redis and wrk share this machine's cores, so the
CPU per request is the figure to read beside requests/s.

Before the rounds, PostgreSQL transactions per request are counted the way
TechEmpower's maintainers check an entry: `pg_stat_database` over
PERF_COUNT_REQUESTS (200) requests on a fresh server, less the server's own
transactions (a start and stop with no requests).

`/plaintext` runs in the same rounds and configuration as the reference for
the database path's cost: each endpoint's server CPU per request is also
given as a multiple of the same server's `/plaintext`.

Each figure is the median over the rounds; within a round the servers
alternate, and each measured run follows a 2 s warm-up on the same endpoint.
Run it through perf/run-db.sh, which builds both servers and prepares the
database (DATABASE_URL, default postgres://postgres@127.0.0.1:5432/swiftlet_bench).
"""

import http.client
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench  # noqa: E402  (shared helpers: CPU from /proc, wait for /health)

ROOT = bench.ROOT
DURATION = int(os.environ.get("PERF_DURATION", "5"))
ROUNDS = int(os.environ.get("PERF_ROUNDS", "3"))
CONNS = int(os.environ.get("PERF_CONNS", "256"))
COUNT_REQUESTS = int(os.environ.get("PERF_COUNT_REQUESTS", "200"))
ENDPOINTS = os.environ.get(
    "PERF_ENDPOINTS", "/plaintext,/db,/queries?queries=20,/updates?queries=20,/fortunes,/cached-queries?count=20"
).split(",")
DATABASE_URL = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/swiftlet_bench")
REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379")
PORT = bench.PORT

# The fixed-rate run: about 60 % of what axum sustains here, so both servers
# keep up and the p99 compares the same load (perf/loadgen, CO-corrected).
RATES = {"/plaintext": 15000, "/db": 15000, "/queries?queries=20": 3000, "/updates?queries=20": 1200, "/fortunes": 15000,
         "/cached-queries?count=20": 15000}
RATE_SCALE = float(os.environ.get("PERF_RATE_SCALE", "1"))
# Extra flags for swiftlet, e.g. PERF_SWIFTLET_ARGS="--pg-connections 2".
SWIFTLET_ARGS = os.environ.get("PERF_SWIFTLET_ARGS", "").split()

TARGETS = {  # requests/s ratio swiftlet/axum the issues ask for (18: ≥ 1.5× on /queries and /updates)
    "/db": 1.5, "/queries?queries=20": 1.5, "/updates?queries=20": 1.5, "/fortunes": 1.5,
}
# Server CPU per request as a multiple of the same server's /plaintext (issue 18).
PLAINTEXT_MULTIPLE = {"/db": 1.6, "/fortunes": 2.0}


def log(*args):
    print(*args, file=sys.stderr, flush=True)


def start(name):
    addr = f"127.0.0.1:{PORT}"
    if name == "swiftlet":
        cmd = [str(bench.SWIFTLET), "--listen", addr, "--log", "warn"] + SWIFTLET_ARGS
    else:
        cmd = [str(bench.AXUM), addr]
    env = dict(os.environ, DATABASE_URL=DATABASE_URL, REDIS_URL=REDIS_URL, JWT_SECRET=bench.BENCH_JWT_SECRET)
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    bench.wait_ready(proc)
    return proc


def postgres_cpu_seconds():
    """CPU of every PostgreSQL process (the postmaster's and the backends')."""
    total = 0.0
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/comm") as f:
                if f.read().strip() not in ("postgres", "postmaster"):
                    continue
            total += bench.cpu_seconds(pid)
        except OSError:
            pass  # a backend that ended meanwhile
    return total


def admin_url():
    base, _, _ = DATABASE_URL.rpartition("/")
    return f"{base}/postgres"


def psql(query):
    out = subprocess.run(["psql", admin_url(), "-At", "-c", query], capture_output=True, text=True, timeout=30)
    if out.returncode != 0:
        raise RuntimeError(f"psql: {out.stderr}")
    return out.stdout.strip()


def transactions():
    """Transactions committed and rolled back in the benchmark database once
    no session is open on it: a backend reports its counts at exit at the
    latest, so the count is complete only after the server has stopped."""
    db = DATABASE_URL.rpartition("/")[2].split("?")[0]
    deadline = time.monotonic() + 20
    while psql(f"SELECT count(*) FROM pg_stat_activity WHERE datname = '{db}'") != "0":
        if time.monotonic() > deadline:
            raise RuntimeError(f"sessions still open on {db}")
        time.sleep(0.1)
    query = f"SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = '{db}'"
    last = int(psql(query))
    for _ in range(30):
        time.sleep(0.3)
        now = int(psql(query))
        if now == last:
            return now
        last = now
    raise RuntimeError("the transaction count kept moving with no session open")


def wrk(path, duration):
    cmd = ["wrk", "-t", "2", "-c", str(CONNS), "-d", f"{duration}s", "--latency", f"http://127.0.0.1:{PORT}{path}"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 60).stdout
    return bench.parse_wrk(out)


def fixed_rate(path):
    rate = int(RATES.get(path, 5000) * RATE_SCALE)
    cmd = [str(bench.LOADGEN), f"http://127.0.0.1:{PORT}{path}", str(rate), str(CONNS), str(DURATION)]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=DURATION + 60)
    if out.returncode != 0:
        raise RuntimeError(f"loadgen failed: {out.stderr}")
    data = json.loads(out.stdout)
    data["rate"] = rate
    return data


def get_many(path, n):
    """`n` answers of 200, one request after another on one keep-alive
    connection. A 503 while the server's database connections come up is
    retried; it touched no table."""
    conn = http.client.HTTPConnection("127.0.0.1", PORT, timeout=30)
    ok = 0
    for _ in range(n + 1000):
        conn.request("GET", path)
        res = conn.getresponse()
        res.read()
        if res.status == 200:
            ok += 1
            if ok == n:
                break
        elif res.status == 503:
            time.sleep(0.01)
        else:
            raise RuntimeError(f"{path}: {res.status}")
    conn.close()
    if ok < n:
        raise RuntimeError(f"{path}: {ok} of {n} answered 200")


def xacts_per_request(name, path):
    before = transactions()
    bench.stop(start(name))
    own = transactions() - before
    before = transactions()
    proc = start(name)
    try:
        get_many(path, COUNT_REQUESTS)
    finally:
        bench.stop(proc)
    return (transactions() - before - own) / COUNT_REQUESTS


def measure(name, path):
    proc = start(name)
    try:
        wrk(path, 2)
        server_before, pg_before = bench.cpu_seconds(proc.pid), postgres_cpu_seconds()
        res = wrk(path, DURATION)
        server_cpu = bench.cpu_seconds(proc.pid) - server_before
        pg_cpu = postgres_cpu_seconds() - pg_before
        fixed = fixed_rate(path)
    finally:
        bench.stop(proc)
    res["fixed_rate"] = fixed["rate"]
    res["fixed_p50_ms"] = fixed["p50_ms"]
    res["fixed_p99_ms"] = fixed["p99_ms"]
    res["fixed_achieved_rps"] = fixed["achieved_rps"]
    res["non_2xx"] += fixed["non_2xx"]
    res["server_us_per_req"] = server_cpu / res["requests"] * 1e6
    res["pg_us_per_req"] = pg_cpu / res["requests"] * 1e6
    return res


FIGURES = [
    ("rps", "requests/s", "", "higher"),
    ("p50_ms", "p50 latency", "ms", "lower"),
    ("p99_ms", "p99 latency", "ms", "lower"),
    ("server_us_per_req", "server CPU per request", "µs", "lower"),
    ("pg_us_per_req", "PostgreSQL CPU per request", "µs", "lower"),
    ("fixed_p50_ms", "p50 at a fixed rate (CO-corrected)", "ms", "lower"),
    ("fixed_p99_ms", "p99 at a fixed rate (CO-corrected)", "ms", "lower"),
    ("fixed_achieved_rps", "achieved rate in the fixed-rate run", "", "higher"),
    ("non_2xx", "non-2xx answers (sum over rounds, both runs)", "", "lower"),
]


def fmt(v, unit):
    if unit == "ms":
        return f"{v:.2f} ms"
    if unit == "µs":
        return f"{v:.1f} µs"
    return f"{v:,.0f}"


def main():
    runs = {}
    xacts = {}
    for path in ENDPOINTS:
        if path != "/plaintext":
            xacts[path] = {name: xacts_per_request(name, path) for name in ("swiftlet", "axum")}
            log(f"{path}: transactions per request {xacts[path]}")
    for path in ENDPOINTS:
        runs[path] = {"swiftlet": [], "axum": []}
        for r in range(ROUNDS):
            order = ("swiftlet", "axum") if r % 2 == 0 else ("axum", "swiftlet")
            for name in order:
                log(f"{path} round {r + 1}/{ROUNDS}: {name}")
                runs[path][name].append(measure(name, path))

    out = [f"Each figure: median of {ROUNDS} rounds (non-2xx: sum), {DURATION} s per run after a 2 s warm-up, "
           f"{CONNS} connections, wrk with 2 threads; server, PostgreSQL, Redis and wrk share the machine's "
           f"{os.cpu_count()} cores; servers alternate within each round. Fixed-rate runs: "
           + ", ".join(f"`{p}` {int(RATES.get(p, 5000) * RATE_SCALE)}/s" for p in ENDPOINTS)
           + f" over {CONNS} connections for {DURATION} s.\n"]
    out.append("| endpoint | figure | swiftlet | axum | swiftlet/axum | target |")
    out.append("|---|---|---:|---:|---:|---|")
    for path in ENDPOINTS:
        for key, label, unit, better in FIGURES:
            if key == "non_2xx":
                s = sum(x[key] for x in runs[path]["swiftlet"])
                a = sum(x[key] for x in runs[path]["axum"])
                out.append(f"| `{path}` | {label} | {s} | {a} | | |")
                continue
            s = statistics.median(x[key] for x in runs[path]["swiftlet"])
            a = statistics.median(x[key] for x in runs[path]["axum"])
            ratio = s / a if a else float("nan")
            target = ""
            if key == "rps" and path in TARGETS:
                t = TARGETS[path]
                target = f"≥ {t}×: {'met' if ratio >= t else '**not met**'}"
            elif key in ("p99_ms", "server_us_per_req") and path in TARGETS:
                target = f"lower: {'met' if ratio < 1 else '**not met**'}"
            out.append(f"| `{path}` | {label} | {fmt(s, unit)} | {fmt(a, unit)} | {ratio:.2f} | {target} |")
    if xacts:
        out.append("")
        out.append(f"PostgreSQL transactions per request, counted in `pg_stat_database` over {COUNT_REQUESTS} "
                   "requests on a fresh server (its own transactions taken off), as TechEmpower's maintainers check:")
        out.append("")
        out.append("| endpoint | swiftlet | axum |")
        out.append("|---|---:|---:|")
        for path, x in xacts.items():
            out.append(f"| `{path}` | {x['swiftlet']:.2f} | {x['axum']:.2f} |")
    if "/plaintext" in runs:
        out.append("")
        out.append("Server CPU per request as a multiple of the same server's `/plaintext` in this run "
                   "(medians; the database path's own cost):")
        out.append("")
        out.append("| endpoint | swiftlet | axum | target (swiftlet) |")
        out.append("|---|---:|---:|---|")
        plain = {n: statistics.median(x["server_us_per_req"] for x in runs["/plaintext"][n]) for n in ("swiftlet", "axum")}
        for path in ENDPOINTS:
            if path == "/plaintext":
                continue
            m = {n: statistics.median(x["server_us_per_req"] for x in runs[path][n]) / plain[n] for n in plain}
            target = ""
            if path in PLAINTEXT_MULTIPLE:
                t = PLAINTEXT_MULTIPLE[path]
                target = f"≤ {t}×: {'met' if m['swiftlet'] <= t else '**not met**'}"
            out.append(f"| `{path}` | {m['swiftlet']:.2f}× | {m['axum']:.2f}× | {target} |")
    print("\n".join(out))

    (ROOT / "perf/out").mkdir(exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%S")
    (ROOT / f"perf/out/db-{stamp}.json").write_text(json.dumps({"runs": runs, "xacts": xacts}, indent=2))


if __name__ == "__main__":
    main()
