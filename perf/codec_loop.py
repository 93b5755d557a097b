#!/usr/bin/env python3
"""A hand-driven loop measured before it is built (issue 19, item 3): the
floor (perf/floor/floor.c), swiftlet's codec on a bare mio loop
(perf/codec-loop: parse, route, encode, buffers per connection as
swiftlet's, and nothing else) and swiftlet, in the same rounds.

The codec loop is an upper bound on what an event loop could make of
swiftlet's per-request work: it has no runtime, timers, metrics or panic
guard, and does for each request only what swiftlet's /plaintext hot path
cannot skip. So
- floor -> codec loop is what this codec and per-connection buffers cost
  (the floor keeps one receive buffer per thread), which no change of loop
  or runtime wins back;
- codec loop -> swiftlet is everything else (tokio's task and reactor, the
  connection's state machine, timeouts, metrics), what a hand-driven loop
  would be built to remove.

CPU: pinned, the server on core 0 with one worker, wrk on core 1, 200
connections, one request at a time and 16 pipelined per write; per round the
servers take turns in a rotating order. /proc gives CPU time in 10 ms ticks,
so the user/system split of a run is coarse; the totals are not.
Instructions: callgrind, one worker, user space only (perf/instructions.py's
count), which splits the user-space work exactly. Run through
perf/run-codec-loop.sh.
"""

import os
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench  # noqa: E402
import instructions  # noqa: E402

ROUNDS = int(os.environ.get("PERF_ROUNDS", "5"))
SERVERS = ("floor", "codec-loop", "swiftlet")
LOADS = {"one at a time": 1, "16 pipelined": 16}
# The targets for swiftlet, as fractions of the floor.
TARGETS = {"one at a time": 0.95, "16 pipelined": 0.90}


def log(*args):
    print(*args, file=sys.stderr, flush=True)


def main():
    runs = {(n, load): [] for n in SERVERS for load in LOADS}
    for r in range(ROUNDS):
        order = SERVERS[r % 3:] + SERVERS[:r % 3]
        for load, depth in LOADS.items():
            for name in order:
                log(f"round {r + 1}/{ROUNDS}: {name}, {load}")
                runs[(name, load)].append(bench.per_cpu_second(name, depth))

    def med(name, load, key):
        return statistics.median(x[key] for x in runs[(name, load)])

    print(f"Pinned (server on core 0, one worker; wrk -t1 -c200 on core 1), `/plaintext`, {bench.DURATION} s per "
          f"run after a warm-up, {ROUNDS} rounds in rotating order; medians of requests per server CPU-second, "
          f"and server CPU per request split into user and system time (from /proc, 10 ms ticks).\n")
    print("| load | server | requests per CPU-second | of the floor | per round, of that round's floor "
          "| user µs / request | system µs / request | requests/s |")
    print("|---|---|---:|---:|---|---:|---:|---:|")
    for load in LOADS:
        floor = [x["per_cpu_s"] for x in runs[("floor", load)]]
        for name in SERVERS:
            mine = [x["per_cpu_s"] for x in runs[(name, load)]]
            rounds = ", ".join(f"{m / f:.2f}" for m, f in zip(mine, floor))
            print(f"| {load} | {name} | {statistics.median(mine):,.0f} | "
                  f"{statistics.median(mine) / statistics.median(floor):.2f} | {rounds} | "
                  f"{med(name, load, 'user_us'):.3f} | {med(name, load, 'sys_us'):.3f} | "
                  f"{med(name, load, 'rps'):,.0f} |")
    print("\nWhere swiftlet's CPU per request above the floor's goes (medians, µs per request): the codec loop's "
          "excess over the floor, and swiftlet's excess over the codec loop.\n")
    print("| load | swiftlet above the floor | codec loop above the floor (codec, buffers per connection) "
          "| swiftlet above the codec loop (runtime, connection, timeouts, metrics) | codec loop, of the floor "
          "| target for swiftlet | a loop with this codec could reach it |")
    print("|---|---:|---:|---:|---:|---|---|")
    for load in LOADS:
        us = {n: 1e6 / statistics.median(x["per_cpu_s"] for x in runs[(n, load)]) for n in SERVERS}
        codec = us["codec-loop"] - us["floor"]
        rest = us["swiftlet"] - us["codec-loop"]
        ceiling = us["floor"] / us["codec-loop"]
        target = TARGETS[load]
        print(f"| {load} | {us['swiftlet'] - us['floor']:.3f} | {codec:.3f} | {rest:.3f} | {ceiling:.2f} | "
              f"≥ {target:.2f} of the floor | {'yes' if ceiling >= target else '**no**'} |")

    log("callgrind: the three servers")
    counts = {}
    for name in SERVERS:
        cmd = bench.server_cmd(name, "pinned")[3:]  # without taskset: valgrind runs it
        for load, depth in LOADS.items():
            log(f"callgrind: {name}, {load}")
            counts[(name, load)] = instructions.callgrind(cmd, "/plaintext", depth, bench.SERVER_ENV)[1]
    print(f"\nUser-space instructions per request (callgrind, one worker, {instructions.N:,} keep-alive requests "
          f"after {instructions.WARM} of warm-up), and what each step adds.\n")
    print("| load | floor | codec loop | swiftlet | the codec's share of swiftlet's excess over the floor |")
    print("|---|---:|---:|---:|---:|")
    for load in LOADS:
        f, c, w = (counts[(n, load)] for n in SERVERS)
        print(f"| {load} | {f:,.0f} | {c:,.0f} (+{c - f:,.0f}) | {w:,.0f} (+{w - c:,.0f}) | "
              f"{(c - f) / (w - f):.0%} |")

if __name__ == "__main__":
    main()
