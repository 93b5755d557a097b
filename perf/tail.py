#!/usr/bin/env python3
"""The tail at fixed rates, against the floor (issue 19, item 5).

p50 and p99 of `/plaintext` (perf/loadgen: open loop, each latency counted
from the request's scheduled send time, so a stall shows in full) at RATES
requests/s over 200 connections, for the floor (perf/floor/floor.c),
swiftlet and axum, every server at every rate in every round, the order
rotating from round to round. Pinned: the server on core 0 (one worker), the
load generator on core 1, so the floor's tail is what the generator, the
kernel and the VM's wake-ups add whatever the server does; swiftlet's tail is
read against it, round by round.

The floor runs twice in every round (at different places in the order):
the second run, "floor again", is the control. Its p99 over the first's is
what the per-round ratio reads for two identical servers, so it shows how
much of a swiftlet/floor ratio is the machine rather than swiftlet.

Prints the medians, each round's swiftlet/floor p99 ratio beside the
control's, and the target (≤ 1.2× the floor's p99 in every round at 10K and
20K/s). Run it through perf/run-tail.sh.
"""

import os
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench  # noqa: E402

ROUNDS = int(os.environ.get("PERF_ROUNDS", "5"))
RATES = [int(r) for r in os.environ.get("PERF_RATES", "10000,20000,50000").split(",")]
SERVERS = ("floor", "swiftlet", "floor again", "axum")
CONTROL = "floor again"
TARGET = 1.2
TARGET_RATES = (10000, 20000)


def log(*args):
    print(*args, file=sys.stderr, flush=True)


def at_rate(name, rate):
    proc = bench.start("floor" if name == CONTROL else name, "pinned")
    saved = bench.RATE
    bench.RATE = rate
    try:
        bench.warm_up("pinned", "/plaintext")
        return bench.fixed_rate("pinned", "/plaintext")
    finally:
        bench.RATE = saved
        bench.stop(proc)


def main():
    runs = {(n, rate): [] for n in SERVERS for rate in RATES}
    for r in range(ROUNDS):
        order = SERVERS[r % len(SERVERS):] + SERVERS[:r % len(SERVERS)]
        for rate in RATES:
            for name in order:
                log(f"round {r + 1}/{ROUNDS}: {name} at {rate}/s")
                runs[(name, rate)].append(at_rate(name, rate))
    print(f"Pinned (server on core 0, one worker; perf/loadgen on core 1), `/plaintext` over 200 connections, "
          f"{bench.DURATION} s per run after a 2 s wrk warm-up, {ROUNDS} rounds, the order of the servers rotating; "
          f"latencies CO-corrected; medians over the rounds.\n")
    shown = ("floor", "swiftlet", "axum", CONTROL)
    print("| rate | " + " | ".join(f"{n} p50 / p99" for n in shown) + " | swiftlet p99 ÷ floor p99, each round "
          "| control (floor again) p99 ÷ floor p99, each round | axum p99 ÷ floor p99, each round "
          "| achieved (lowest of any run) | target |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    medians = []
    for rate in RATES:
        med = {n: (statistics.median(x["p50_ms"] for x in runs[(n, rate)]),
                   statistics.median(x["p99_ms"] for x in runs[(n, rate)])) for n in SERVERS}

        def ratios(name):
            return [s["p99_ms"] / f["p99_ms"] for s, f in zip(runs[(name, rate)], runs[("floor", rate)])]

        per_round, control, axum_round = ratios("swiftlet"), ratios(CONTROL), ratios("axum")
        achieved = min(x["achieved_rps"] for n in SERVERS for x in runs[(n, rate)])
        target = ""
        if rate in TARGET_RATES:
            worst, control_worst = max(per_round), max(control)
            target = (f"≤ {TARGET}× in every round: {'met' if worst <= TARGET else '**not met**'} "
                      f"(worst {worst:.2f}×; the control's worst {control_worst:.2f}×)")
        cells = " | ".join(f"{med[n][0]:.3f} / {med[n][1]:.3f} ms" for n in shown)
        listed = " | ".join(", ".join(f"{x:.2f}" for x in xs) for xs in (per_round, control, axum_round))
        print(f"| {rate:,}/s | {cells} | {listed} | {achieved:,.0f} | {target} |")
        medians.append(f"{rate:,}/s swiftlet {statistics.median(per_round):.2f}, "
                       f"control {statistics.median(control):.2f}, axum {statistics.median(axum_round):.2f}")
    print("\nMedian of the per-round p99 ratios to the floor: " + "; ".join(medians) + ".")


if __name__ == "__main__":
    main()
