#!/usr/bin/env python3
"""What the request metrics cost: swiftlet with its counters and histogram
(the default) against the same binary with --no-metrics, in one run.

- Instructions per request, counted by valgrind's callgrind (repeatable,
  whatever else the machine does): one worker serves N1 and then, in a second
  run, N2 keep-alive requests on /plaintext, sent one at a time; the
  difference of the two totals divided by N2 - N1 is the cost of a request
  without the start-up.
- Pipelined throughput and server CPU per request on /plaintext (wrk, 16
  requests per write, 200 connections), ROUNDS rounds alternating the two.

Run it through perf/run-metrics.sh, which builds the server first.
"""

import os
import re
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench  # noqa: E402  (CPU from /proc, wait for /health, wrk parsing)

PORT = bench.PORT
ROUNDS = int(os.environ.get("PERF_ROUNDS", "5"))
DURATION = int(os.environ.get("PERF_DURATION", "4"))
N1, N2 = 1_000, 6_000
REQUEST = b"GET /plaintext HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
VARIANTS = {"metrics on": [], "metrics off": ["--no-metrics"]}


def log(*args):
    print(*args, file=sys.stderr, flush=True)


def send(n):
    """n keep-alive requests over one connection, one at a time: each is one
    read and one write for the server, so the count does not depend on how
    the kernel happened to split a batch."""
    with socket.create_connection(("127.0.0.1", PORT)) as s:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for _ in range(n):
            s.sendall(REQUEST)
            buf = b""
            while not buf.endswith(b"Hello, World!"):
                chunk = s.recv(4096)
                if not chunk:
                    raise RuntimeError("server closed")
                buf += chunk


def instructions(args, n):
    cmd = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null",
           str(bench.SWIFTLET), "--listen", f"127.0.0.1:{PORT}", "--workers", "1", "--log", "warn", *args]
    proc = subprocess.Popen(cmd, env=bench.SERVER_ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        bench.wait_ready(proc, timeout=60)
        send(n)
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=120)
    m = re.search(r"Collected : (\d+)", err)
    if not m:
        raise RuntimeError(f"no callgrind total:\n{err}")
    return int(m.group(1))


def pipelined(args):
    proc = subprocess.Popen([str(bench.SWIFTLET), "--listen", f"127.0.0.1:{PORT}", "--log", "warn", *args],
                            env=bench.SERVER_ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        bench.wait_ready(proc)
        env = dict(os.environ, PIPELINE="16")
        wrk = ["wrk", "-t", "2", "-c", "200", "--latency", "-s", str(bench.LUA), f"http://127.0.0.1:{PORT}/plaintext"]
        subprocess.run(wrk[:5] + ["-d", "2s"] + wrk[5:], env=env, capture_output=True, timeout=60)
        before = bench.cpu_seconds(proc.pid)
        out = subprocess.run(wrk[:5] + ["-d", f"{DURATION}s"] + wrk[5:], env=env, capture_output=True, text=True,
                             timeout=DURATION + 60).stdout
        cpu = bench.cpu_seconds(proc.pid) - before
        res = bench.parse_wrk(out)
        return res["rps"], cpu / res["requests"] * 1e6
    finally:
        bench.stop(proc)


def main():
    per_request = {}
    for name, args in VARIANTS.items():
        log(f"callgrind: {name}")
        a, b = instructions(args, N1), instructions(args, N2)
        per_request[name] = (b - a) / (N2 - N1)
    runs = {name: [] for name in VARIANTS}
    for r in range(ROUNDS):
        order = list(VARIANTS) if r % 2 == 0 else list(reversed(VARIANTS))
        for name in order:
            log(f"pipelined round {r + 1}/{ROUNDS}: {name}")
            runs[name].append(pipelined(VARIANTS[name]))
    on, off = "metrics on", "metrics off"
    med = {n: (statistics.median(x[0] for x in runs[n]), statistics.median(x[1] for x in runs[n])) for n in runs}
    print(f"`/plaintext`, one binary with and without `--no-metrics`. Instructions: callgrind, one worker, "
          f"({N2:,} - {N1:,} requests) / {N2 - N1:,}. Pipelined: wrk -c 200, 16 per write, {DURATION} s after a "
          f"2 s warm-up, median of {ROUNDS} alternating rounds.\n")
    print("| figure | metrics on | metrics off | on/off |")
    print("|---|---:|---:|---:|")
    print(f"| instructions per request | {per_request[on]:,.0f} | {per_request[off]:,.0f} | "
          f"{per_request[on] / per_request[off]:.3f} |")
    print(f"| pipelined requests/s | {med[on][0]:,.0f} | {med[off][0]:,.0f} | {med[on][0] / med[off][0]:.3f} |")
    print(f"| server CPU per request, pipelined | {med[on][1]:.3f} µs | {med[off][1]:.3f} µs | "
          f"{med[on][1] / med[off][1]:.3f} |")
    spread = {n: (min(x[0] for x in runs[n]), max(x[0] for x in runs[n])) for n in runs}
    print(f"\nPipelined requests/s, range over the rounds: on {spread[on][0]:,.0f}–{spread[on][1]:,.0f}, "
          f"off {spread[off][0]:,.0f}–{spread[off][1]:,.0f}.")


if __name__ == "__main__":
    main()
