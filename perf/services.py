#!/usr/bin/env python3
"""The ID service and log ingestion, swiftlet against the axum baseline, in
one run, the servers alternating within each round.

IDs (`GET /api/ids`):
- swiftlet's server CPU per request on /api/ids against its own /plaintext,
  measured on the same server process (the target: at most 1.1x), and
- swiftlet's requests per server CPU-second on /api/ids against the axum
  baseline's, which uses the `sonyflake` crate as the reference benchmark's
  Rust entry does (the target: at least 1.5x).
Each is measured twice: closed loop (wrk, CONNS connections), and at a fixed
rate below what a Sonyflake node can issue (perf/loadgen). The Sonyflake
layout allows 256 IDs per 10 ms per generator: 51,200/s for swiftlet's two
workers, 25,600/s for the crate's single generator. A closed loop that asks
for more makes requests wait for the next tick, so its CPU per request
includes timer wake-ups that /plaintext never pays; the fixed rate compares
the work per ID (at a rate the crate's single generator sustains too).
swiftlet in the Snowflake layout (4,096 IDs per ms per worker) is measured
closed loop too, against its own /plaintext, where no tick runs out.

Ingestion (`POST /ingest`, every request a new event): for swiftlet in
durable and in queued mode and for axum (one INSERT per request on a
deadpool connection, 202 after it commits), p50/p99 at a fixed INGEST_RATE
that all three sustain (perf/loadgen `@each`, a file of distinct events),
then events/s, p50/p99 and the server's and PostgreSQL's CPU per event
closed loop at INGEST_CONNS connections (wrk, perf/lua/ingest.lua). The
table is emptied before each server's runs, and after them the stored rows
are counted against the 202s.

Heap allocations per request: the `count-allocations` builds of both
servers, read before and after a run (perf/run-services.sh builds them).

Run it through perf/run-services.sh.
"""

import json
import os
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench  # noqa: E402  (shared helpers: CPU from /proc, wait for /health)
import db  # noqa: E402  (PostgreSQL's CPU from /proc)

ROOT = bench.ROOT
PORT = bench.PORT
DURATION = int(os.environ.get("PERF_DURATION", "5"))
ROUNDS = int(os.environ.get("PERF_ROUNDS", "3"))
CONNS = int(os.environ.get("PERF_CONNS", "256"))
INGEST_CONNS = int(os.environ.get("PERF_INGEST_CONNS", "64"))
ID_RATE = int(os.environ.get("PERF_ID_RATE", "10000"))
# swiftlet's /api/ids against its /plaintext also at a rate near the two
# Sonyflake workers' 51,200 IDs/s (axum's single generator cannot follow).
ID_HIGH_RATE = int(os.environ.get("PERF_ID_HIGH_RATE", "40000"))
INGEST_RATE = int(os.environ.get("PERF_INGEST_RATE", "4000"))
DATABASE_URL = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/swiftlet_services_bench")
REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379")
SECTIONS = os.environ.get("PERF_SECTIONS", "ids,ingest,allocations").split(",")
# Extra flags for swiftlet, e.g. PERF_SWIFTLET_ARGS="--ingest-batch-ms 0".
SWIFTLET_ARGS = os.environ.get("PERF_SWIFTLET_ARGS", "").split()
COUNTING = {
    "swiftlet": ROOT / "target/count-allocations/release/swiftlet",
    "axum": ROOT / "perf/baseline/axum/target/count-allocations/release/axum-baseline",
}
INGEST_LUA = ROOT / "perf/lua/ingest.lua"
RUN = time.strftime("%Y%m%dT%H%M%S")
runs_started = 0


def log(*args):
    print(*args, file=sys.stderr, flush=True)


def start(name, args=(), binary=None):
    addr = f"127.0.0.1:{PORT}"
    if name == "swiftlet":
        cmd = [str(binary or bench.SWIFTLET), "--listen", addr, "--log", "warn", *args, *SWIFTLET_ARGS]
    else:
        cmd = [str(binary or bench.AXUM), addr]
    env = dict(bench.SERVER_ENV, DATABASE_URL=DATABASE_URL, REDIS_URL=REDIS_URL)
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    bench.wait_ready(proc)
    # swiftlet answers /health before its node id is leased and its database
    # connections are up; wait until the routes measured here answer.
    for path in ("/api/ids", "/api/logs?limit=1") if name == "swiftlet" else ("/api/ids",):
        for _ in range(200):
            try:
                with urllib.request.urlopen(f"http://{addr}{path}", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            time.sleep(0.05)
        else:
            raise RuntimeError(f"{name} never answered {path}")
    return proc


def psql(sql):
    out = subprocess.run(["psql", DATABASE_URL, "-At", "-c", sql], capture_output=True, text=True, timeout=60)
    if out.returncode != 0:
        raise RuntimeError(f"psql: {out.stderr}")
    return out.stdout.strip()


def wrk(path, conns, duration, lua=None):
    global runs_started
    runs_started += 1
    cmd = ["wrk", "-t", "2", "-c", str(conns), "-d", f"{duration}s", "--latency"]
    if lua:
        cmd += ["-s", str(lua)]
    cmd.append(f"http://127.0.0.1:{PORT}{path}")
    if lua:
        cmd += ["--", f"{RUN}-{runs_started}"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 60).stdout
    return bench.parse_wrk(out)


def fixed_rate(path, rate):
    cmd = [str(bench.LOADGEN), f"http://127.0.0.1:{PORT}{path}", str(rate), str(CONNS), str(DURATION)]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=DURATION + 60)
    if out.returncode != 0:
        raise RuntimeError(f"loadgen failed: {out.stderr}")
    return json.loads(out.stdout)


def closed_loop(proc, path):
    wrk(path, CONNS, 2)
    before = bench.cpu_seconds(proc.pid)
    res = wrk(path, CONNS, DURATION)
    cpu = bench.cpu_seconds(proc.pid) - before
    res["cpu_us"] = cpu / res["requests"] * 1e6
    res["per_cpu_s"] = res["requests"] / cpu
    return res


def at_fixed_rate(proc, path, rate=None):
    rate = rate or ID_RATE
    before = bench.cpu_seconds(proc.pid)
    res = fixed_rate(path, rate)
    cpu = bench.cpu_seconds(proc.pid) - before
    # loadgen's first second is warm-up but still served: count it in.
    served = res["achieved_rps"] * DURATION + rate
    return {"cpu_us": cpu / served * 1e6, "per_cpu_s": served / cpu, "p99_ms": res["p99_ms"],
            "achieved_rps": res["achieved_rps"], "non_2xx": res["non_2xx"] + res["errors"]}


def ids_round(r, results):
    servers = [("swiftlet", ["--id-layout", "sonyflake"]), ("swiftlet-snowflake", ["--id-layout", "snowflake"]),
               ("axum", [])]
    if r % 2:
        servers.reverse()
    for name, args in servers:
        log(f"ids round {r + 1}/{ROUNDS}: {name}")
        proc = start("axum" if name == "axum" else "swiftlet", args)
        try:
            paths = ["/api/ids"] if name == "axum" else ["/plaintext", "/api/ids"]
            if r % 2:
                paths.reverse()
            for path in paths:
                results.setdefault((name, path, "closed"), []).append(closed_loop(proc, path))
                if name != "swiftlet-snowflake":
                    results.setdefault((name, path, "fixed"), []).append(at_fixed_rate(proc, path))
                if name == "swiftlet":
                    results.setdefault((name, path, "fixed-high"), []).append(at_fixed_rate(proc, path, ID_HIGH_RATE))
        finally:
            bench.stop(proc)


def event_file(count):
    """`count` distinct POST /ingest requests, NUL-separated, for loadgen's @each."""
    global runs_started
    runs_started += 1
    path = ROOT / "perf/out/ingest-events.bin"
    path.parent.mkdir(exist_ok=True)
    with open(path, "wb") as f:
        for n in range(count):
            body = (f'{{"event_id":"{RUN}-{runs_started}-{n}","timestamp":"2026-11-29T10:{n // 60000 % 60:02d}:'
                    f'{n // 1000 % 60:02d}.{n % 1000:03d}Z","service":"svc{n % 8}","message":"GET /api/articles 200 '
                    f'in 3 ms (request {n})","metadata":{{"host":"web-{n % 16}","region":"eu-west-1"}}}}')
            f.write(f"POST /ingest HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                    f"Content-Length: {len(body)}\r\n\r\n{body}\0".encode())
    return path


def ingest_at_fixed_rate():
    # loadgen's warm-up second is sent too; a tenth more for its start.
    events = event_file(int(INGEST_RATE * (DURATION + 1) * 1.1))
    cmd = [str(bench.LOADGEN), f"http://127.0.0.1:{PORT}/ingest", str(INGEST_RATE), str(INGEST_CONNS),
           str(DURATION), "@each", str(events)]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=DURATION + 60)
    if out.returncode != 0:
        raise RuntimeError(f"loadgen failed: {out.stderr}")
    return json.loads(out.stdout)


def ingest_run(name):
    server, args = {"swiftlet durable": ("swiftlet", ["--ingest-ack", "durable"]),
                    "swiftlet queued": ("swiftlet", ["--ingest-ack", "queued"]),
                    "axum": ("axum", [])}[name]
    psql("TRUNCATE log_events")
    proc = start(server, args)
    try:
        fixed = ingest_at_fixed_rate()
        warm = wrk("/ingest", INGEST_CONNS, 2, INGEST_LUA)
        server_before, pg_before = bench.cpu_seconds(proc.pid), db.postgres_cpu_seconds()
        res = wrk("/ingest", INGEST_CONNS, DURATION, INGEST_LUA)
        # Events accepted (202) per second; a 503 from a full queue is not an event stored.
        accepted = res["requests"] - res["non_2xx"]
        res["events_per_s"] = accepted / res["seconds"]
        res["cpu_us"] = (bench.cpu_seconds(proc.pid) - server_before) / accepted * 1e6
        res["pg_us"] = (db.postgres_cpu_seconds() - pg_before) / accepted * 1e6
    finally:
        # A graceful stop: queued mode stores what it acknowledged before exiting.
        bench.stop(proc)
    # wrk counts a request cut off at the end of the run as not done, but
    # the server may have stored it: stored >= answered 202.
    answered = warm["requests"] - warm["non_2xx"] + res["requests"] - res["non_2xx"]
    answered += fixed["requests"] - fixed["non_2xx"]
    res["fixed_p50_ms"], res["fixed_p99_ms"] = fixed["p50_ms"], fixed["p99_ms"]
    res["fixed_achieved"], res["fixed_failed"] = fixed["achieved_rps"], fixed["non_2xx"] + fixed["errors"]
    res["stored"] = int(psql("SELECT count(*) FROM log_events"))
    res["answered"] = answered
    if res["stored"] < answered:
        raise RuntimeError(f"{name}: {answered} events answered 202 but only {res['stored']} stored")
    return res


def allocations(name):
    server, binary = ("swiftlet", COUNTING["swiftlet"]) if name == "swiftlet" else ("axum", COUNTING["axum"])
    psql("TRUNCATE log_events")
    proc = start(server, ["--ingest-ack", "durable"] if server == "swiftlet" else [], binary)
    out = {}
    try:
        def count():
            with urllib.request.urlopen(f"http://127.0.0.1:{PORT}/__allocations", timeout=5) as r:
                return int(r.read())
        for path, lua, conns in (("/ingest", INGEST_LUA, INGEST_CONNS), ("/api/ids", None, CONNS),
                                 ("/plaintext", None, CONNS)):
            wrk(path, conns, 2, lua)
            before = count()
            res = wrk(path, conns, DURATION, lua)
            out[path] = (count() - before) / res["requests"]
    finally:
        bench.stop(proc)
    return out


def med(values):
    return statistics.median(values)


def main():
    lines = [f"Medians of {ROUNDS} rounds, {DURATION} s per run after a 2 s warm-up; wrk with 2 threads; "
             f"server, PostgreSQL, Redis and the load generator share the machine's {os.cpu_count()} cores.\n"]

    if "ids" in SECTIONS:
        results = {}
        for r in range(ROUNDS):
            ids_round(r, results)
        lines.append(f"### IDs: closed loop at {CONNS} connections (wrk), and at fixed rates over {CONNS} connections "
                     f"(perf/loadgen): `fixed` {ID_RATE:,}/s, `fixed-high` {ID_HIGH_RATE:,}/s\n")
        lines.append("| server | path | load | requests/s | p99 | server CPU per request | requests per CPU-second |")
        lines.append("|---|---|---|---:|---:|---:|---:|")
        for (name, path, load), rs in results.items():
            rps = med(x["rps"] for x in rs) if load == "closed" else med(x["achieved_rps"] for x in rs)
            lines.append(f"| {name} | `{path}` | {load} | {rps:,.0f} | {med(x['p99_ms'] for x in rs):.2f} ms | "
                         f"{med(x['cpu_us'] for x in rs):.1f} µs | {med(x['per_cpu_s'] for x in rs):,.0f} |")
        lines.append("")
        for load in ("fixed", "fixed-high", "closed"):
            ids = med(x["cpu_us"] for x in results[("swiftlet", "/api/ids", load)])
            plain = med(x["cpu_us"] for x in results[("swiftlet", "/plaintext", load)])
            ratio = ids / plain
            lines.append(f"- {load}: swiftlet `/api/ids` / `/plaintext` CPU per request = **{ratio:.2f}×** "
                         f"(target ≤ 1.1×: {'met' if ratio <= 1.1 else 'not met'})")
        snow = med(x["cpu_us"] for x in results[("swiftlet-snowflake", "/api/ids", "closed")])
        plain = med(x["cpu_us"] for x in results[("swiftlet-snowflake", "/plaintext", "closed")])
        lines.append(f"- closed, Snowflake layout (no tick runs out): `/api/ids` / `/plaintext` CPU per request = "
                     f"**{snow / plain:.2f}×**")
        for load in ("fixed", "closed"):
            s = med(x["per_cpu_s"] for x in results[("swiftlet", "/api/ids", load)])
            a = med(x["per_cpu_s"] for x in results[("axum", "/api/ids", load)])
            lines.append(f"- {load}: `/api/ids` requests per CPU-second, swiftlet / axum+sonyflake = "
                         f"**{s / a:.2f}×** (target ≥ 1.5×: {'met' if s / a >= 1.5 else 'not met'})")
        nonok = sum(x["non_2xx"] for rs in results.values() for x in rs)
        lines.append(f"- non-2xx answers over every IDs run: {nonok}\n")

    if "ingest" in SECTIONS:
        names = ["swiftlet durable", "swiftlet queued", "axum"]
        results = {n: [] for n in names}
        for r in range(ROUNDS):
            order = names if r % 2 == 0 else list(reversed(names))
            for name in order:
                log(f"ingest round {r + 1}/{ROUNDS}: {name}")
                results[name].append(ingest_run(name))
        lines.append(f"### Ingestion: `POST /ingest`, a new event per request, {INGEST_CONNS} connections\n")
        lines.append(f"At a fixed {INGEST_RATE:,} events/s (perf/loadgen, CO-corrected):\n")
        lines.append("| server | achieved/s | p50 | p99 | non-2xx or errors (sum) |")
        lines.append("|---|---:|---:|---:|---:|")
        for name in names:
            rs = results[name]
            lines.append(f"| {name} | {med(x['fixed_achieved'] for x in rs):,.0f} | "
                         f"{med(x['fixed_p50_ms'] for x in rs):.2f} ms | {med(x['fixed_p99_ms'] for x in rs):.2f} ms | "
                         f"{sum(x['fixed_failed'] for x in rs)} |")
        lines.append("\nClosed loop (wrk):\n")
        lines.append("| server | events/s accepted | p50 | p99 | server CPU per event | PostgreSQL CPU per event | "
                     "503s (queue full; sum) | stored / answered 202 (last round) |")
        lines.append("|---|---:|---:|---:|---:|---:|---:|---:|")
        for name in names:
            rs = results[name]
            lines.append(f"| {name} | {med(x['events_per_s'] for x in rs):,.0f} | {med(x['p50_ms'] for x in rs):.2f} ms | "
                         f"{med(x['p99_ms'] for x in rs):.2f} ms | {med(x['cpu_us'] for x in rs):.1f} µs | "
                         f"{med(x['pg_us'] for x in rs):.1f} µs | {sum(x['non_2xx'] for x in rs)} | "
                         f"{rs[-1]['stored']:,} / {rs[-1]['answered']:,} |")
        lines.append("")
        a = med(x["events_per_s"] for x in results["axum"])
        for name in names[:2]:
            s = med(x["events_per_s"] for x in results[name])
            p = med(x["p99_ms"] for x in results[name]) / med(x["p99_ms"] for x in results["axum"])
            f = med(x["fixed_p99_ms"] for x in results[name]) / med(x["fixed_p99_ms"] for x in results["axum"])
            lines.append(f"- {name} / axum: events/s **{s / a:.2f}×**, closed-loop p99 {p:.2f}×, "
                         f"p99 at {INGEST_RATE:,}/s **{f:.2f}×**")
        lines.append("")

    if "allocations" in SECTIONS:
        lines.append("### Heap allocations per request (the `count-allocations` builds; alloc + realloc calls)\n")
        lines.append("| server | `/ingest` (durable) | `/api/ids` | `/plaintext` |")
        lines.append("|---|---:|---:|---:|")
        for name in ("swiftlet", "axum"):
            log(f"allocations: {name}")
            a = allocations(name)
            lines.append(f"| {name} | {a['/ingest']:.2f} | {a['/api/ids']:.2f} | {a['/plaintext']:.2f} |")
        lines.append("")

    print("\n".join(lines))


if __name__ == "__main__":
    main()
