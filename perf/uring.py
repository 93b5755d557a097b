#!/usr/bin/env python3
"""io_uring measured before built (issue 19, item 4): the floor on epoll
(perf/floor/floor.c) against the same bare responder on io_uring
(perf/floor/floor-uring.c: multishot accept and recv, a provided buffer
ring, SINGLE_ISSUER | DEFER_TASKRUN, one io_uring_enter per loop turn).

Pinned: the responder on core 0 with one worker, wrk on core 1. Per round,
the two alternate; for each: requests per server CPU-second (utime + stime
of the process, io_uring's in-kernel work included: with DEFER_TASKRUN it runs
in the worker's own io_uring_enter) at 200 connections one request at a time,
and with 16 pipelined per write. Run through perf/run-uring.sh.
"""

import os
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench  # noqa: E402

ROUNDS = int(os.environ.get("PERF_ROUNDS", "5"))
SERVERS = ("floor", "floor-uring")
LOADS = {"one at a time": 1, "16 pipelined": 16}
TARGET = 1.10  # io_uring must beat the epoll floor by 10 % to be worth a transport


def log(*args):
    print(*args, file=sys.stderr, flush=True)


def per_cpu_second(name, depth):
    run = bench.per_cpu_second(name, depth)
    return run["per_cpu_s"], run["rps"]


def main():
    runs = {(n, load): [] for n in SERVERS for load in LOADS}
    for r in range(ROUNDS):
        order = SERVERS if r % 2 == 0 else tuple(reversed(SERVERS))
        for load, depth in LOADS.items():
            for name in order:
                log(f"round {r + 1}/{ROUNDS}: {name}, {load}")
                runs[(name, load)].append(per_cpu_second(name, depth))
    print(f"Pinned (responder on core 0, one worker; wrk -t1 -c200 on core 1), `/plaintext`, {bench.DURATION} s per "
          f"run after a 2 s warm-up, {ROUNDS} rounds alternating; medians, with each round's ratio.\n")
    print("| load | epoll floor: requests per CPU-second | io_uring: requests per CPU-second | io_uring / epoll "
          "| per round | requests/s, epoll / io_uring | target |")
    print("|---|---:|---:|---:|---|---|---|")
    for load in LOADS:
        e = [x[0] for x in runs[("floor", load)]]
        u = [x[0] for x in runs[("floor-uring", load)]]
        ratio = statistics.median(u) / statistics.median(e)
        rounds = ", ".join(f"{b / a:.2f}" for a, b in zip(e, u))
        rps = (statistics.median(x[1] for x in runs[("floor", load)]),
               statistics.median(x[1] for x in runs[("floor-uring", load)]))
        print(f"| {load} | {statistics.median(e):,.0f} | {statistics.median(u):,.0f} | {ratio:.2f} | {rounds} | "
              f"{rps[0]:,.0f} / {rps[1]:,.0f} | ≥ {TARGET}: {'met' if ratio >= TARGET else '**not met**'} |")


if __name__ == "__main__":
    main()
