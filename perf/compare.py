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


def main():
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


if __name__ == "__main__":
    main()
