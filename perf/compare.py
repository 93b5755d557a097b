#!/usr/bin/env python3
"""Two builds of swiftlet, one harness, one run: what a change cost on the
plain request path. BASE is the build of an earlier commit (perf/run-compare.sh
builds it), HEAD this tree's release build.

- Instructions per request (callgrind, one worker, /plaintext sent one at a
  time; the difference of two runs of different lengths, so start-up cancels).
- Pipelined /plaintext throughput and server CPU per request (wrk -c 200, 16
  per write), ROUNDS rounds alternating the two builds.
- RSS: fresh and after 500 busy connections (wrk -c 500), and the stripped
  binary's size.
- With PERF_STORE_PATHS (and DATABASE_URL, REDIS_URL: perf/run-compare.sh
  sets them up), the paths that reach PostgreSQL and Redis too: server CPU
  per request, requests/s and context switches per request under wrk -c 256 (one request per write, both
  cores shared as in perf/run-db.sh), ROUNDS alternating rounds.
"""

import os
import statistics
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench  # noqa: E402
import metrics  # noqa: E402  (callgrind counting and the pipelined run, parameterised by binary below)

PORT = bench.PORT
ROUNDS = int(os.environ.get("PERF_ROUNDS", "5"))
DURATION = int(os.environ.get("PERF_DURATION", "4"))
BUILDS = {"base": Path(os.environ["PERF_BASE_BINARY"]), "head": bench.SWIFTLET}
STORE_PATHS = [p for p in os.environ.get("PERF_STORE_PATHS", "").split(",") if p]


def log(*args):
    print(*args, file=sys.stderr, flush=True)


def with_binary(path, f, *args):
    """Runs one of metrics.py's measurements against `path`."""
    saved = bench.SWIFTLET
    bench.SWIFTLET = path
    try:
        return f(*args)
    finally:
        bench.SWIFTLET = saved


def anon_kib(pid):
    """The process's anonymous resident memory now (RssAnon), KiB."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("RssAnon:"):
                return int(line.split()[1])
    raise RuntimeError("no RssAnon")


def rss_under_load(path):
    proc = subprocess.Popen([str(path), "--listen", f"127.0.0.1:{PORT}", "--log", "warn"], env=bench.SERVER_ENV,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        bench.wait_ready(proc)
        fresh = bench.peak_rss_kib(proc.pid)
        subprocess.run(["wrk", "-t", "2", "-c", "500", "-d", f"{DURATION}s", f"http://127.0.0.1:{PORT}/plaintext"],
                       capture_output=True, timeout=DURATION + 60)
        # Anonymous memory is what the server allocates; file-backed pages
        # of the binary vary with the page cache from run to run.
        return fresh, bench.peak_rss_kib(proc.pid), anon_kib(proc.pid)
    finally:
        bench.stop(proc)


def with_stores(path, url):
    """Server CPU per request (µs), requests/s and the server's context
    switches per request of one build on `url`, its stores those of the
    environment."""
    env = dict(bench.SERVER_ENV, DATABASE_URL=os.environ["DATABASE_URL"], REDIS_URL=os.environ["REDIS_URL"])
    proc = subprocess.Popen([str(path), "--listen", f"127.0.0.1:{PORT}", "--log", "warn"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        bench.wait_ready(proc)
        def wrk(seconds):
            return subprocess.run(["wrk", "-t", "2", "-c", "256", "-d", f"{seconds}s", "--latency",
                                   f"http://127.0.0.1:{PORT}{url}"], capture_output=True, text=True,
                                  timeout=seconds + 60).stdout

        wrk(2)
        before, switches = bench.cpu_seconds(proc.pid), bench.context_switches(proc.pid)
        out = wrk(DURATION)
        used = bench.cpu_seconds(proc.pid) - before
        switches = bench.context_switches(proc.pid) - switches
        res = bench.parse_wrk(out)
        if res["non_2xx"]:
            raise RuntimeError(f"{url}: non-2xx answers\n{out}")
        return used / res["requests"] * 1e6, res["rps"], switches / res["requests"]
    finally:
        bench.stop(proc)


def compare_stores():
    """The PERF_STORE_PATHS table (see the module comment)."""
    runs = {(url, name): [] for url in STORE_PATHS for name in BUILDS}
    for url in STORE_PATHS:
        for r in range(ROUNDS):
            for name in (list(BUILDS) if r % 2 == 0 else list(reversed(BUILDS))):
                log(f"{url} round {r + 1}/{ROUNDS}: {name}")
                runs[(url, name)].append(with_stores(BUILDS[name], url))
    print(f"\nWith PostgreSQL and Redis: wrk -t 2 -c 256, one request per write, {DURATION} s after 2 s of warm-up, "
          f"server, stores and wrk sharing the cores; median of {ROUNDS} alternating rounds (each round's "
          f"head/base CPU ratio in brackets).\n")
    print("| path | server CPU per request: base | head | head/base | requests/s: base | head | head/base "
          "| context switches per request: base | head |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for url in STORE_PATHS:
        base, head = runs[(url, "base")], runs[(url, "head")]
        cpu = [statistics.median(x[0] for x in xs) for xs in (base, head)]
        rps = [statistics.median(x[1] for x in xs) for xs in (base, head)]
        switches = [statistics.median(x[2] for x in xs) for xs in (base, head)]
        each = ", ".join(f"{h[0] / b[0]:.2f}" for b, h in zip(base, head))
        print(f"| `{url}` | {cpu[0]:.2f} µs | {cpu[1]:.2f} µs | {cpu[1] / cpu[0]:.3f} ({each}) | "
              f"{rps[0]:,.0f} | {rps[1]:,.0f} | {rps[1] / rps[0]:.3f} | {switches[0]:.3f} | {switches[1]:.3f} |")


def main():
    if os.environ.get("PERF_STORES_ONLY"):
        return compare_stores()
    instr = {}
    for name, path in BUILDS.items():
        log(f"callgrind: {name}")
        a = with_binary(path, metrics.instructions, [], metrics.N1)
        b = with_binary(path, metrics.instructions, [], metrics.N2)
        instr[name] = (b - a) / (metrics.N2 - metrics.N1)
    runs = {name: [] for name in BUILDS}
    rss = {name: [] for name in BUILDS}
    for r in range(ROUNDS):
        order = list(BUILDS) if r % 2 == 0 else list(reversed(BUILDS))
        for name in order:
            log(f"round {r + 1}/{ROUNDS}: {name}")
            runs[name].append(with_binary(BUILDS[name], metrics.pipelined, []))
            rss[name].append(rss_under_load(BUILDS[name]))
    size = {name: bench.stripped_size(path) for name, path in BUILDS.items()}
    med = {n: (statistics.median(x[0] for x in runs[n]), statistics.median(x[1] for x in runs[n])) for n in runs}
    mrss = {n: tuple(statistics.median(x[i] for x in rss[n]) / 1024 for i in range(3)) for n in rss}
    base_commit = os.environ.get("PERF_BASE_COMMIT", "?")
    print(f"`base` is commit {base_commit}, `head` this tree. `/plaintext`, no stores. Instructions: callgrind, one "
          f"worker, ({metrics.N2:,} - {metrics.N1:,} requests) / {metrics.N2 - metrics.N1:,}. Pipelined: wrk -c 200, "
          f"16 per write; RSS: fresh, then VmHWM and RssAnon after wrk -c 500; {DURATION} s runs, median of {ROUNDS} "
          f"alternating rounds.\n")
    print("| figure | base | head | head/base |")
    print("|---|---:|---:|---:|")
    print(f"| instructions per request | {instr['base']:,.0f} | {instr['head']:,.0f} | "
          f"{instr['head'] / instr['base']:.3f} |")
    print(f"| pipelined requests/s | {med['base'][0]:,.0f} | {med['head'][0]:,.0f} | "
          f"{med['head'][0] / med['base'][0]:.3f} |")
    print(f"| server CPU per request, pipelined | {med['base'][1]:.3f} µs | {med['head'][1]:.3f} µs | "
          f"{med['head'][1] / med['base'][1]:.3f} |")
    print(f"| RSS fresh | {mrss['base'][0]:.1f} MiB | {mrss['head'][0]:.1f} MiB | {mrss['head'][0] / mrss['base'][0]:.3f} |")
    print(f"| peak RSS, 500 connections | {mrss['base'][1]:.1f} MiB | {mrss['head'][1]:.1f} MiB | "
          f"{mrss['head'][1] / mrss['base'][1]:.3f} |")
    print(f"| anonymous RSS after 500 connections | {mrss['base'][2]:.2f} MiB | {mrss['head'][2]:.2f} MiB | "
          f"{mrss['head'][2] / mrss['base'][2]:.3f} |")
    print(f"| stripped binary | {size['base'] / 1e6:.2f} MB | {size['head'] / 1e6:.2f} MB | "
          f"{size['head'] / size['base']:.3f} |")
    spread = {n: (min(x[0] for x in runs[n]), max(x[0] for x in runs[n])) for n in runs}
    print(f"\nPipelined requests/s, range over the rounds: base {spread['base'][0]:,.0f}–{spread['base'][1]:,.0f}, "
          f"head {spread['head'][0]:,.0f}–{spread['head'][1]:,.0f}.")
    if STORE_PATHS:
        compare_stores()


if __name__ == "__main__":
    main()
