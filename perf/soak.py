#!/usr/bin/env python3
"""Soak: the product API's mixed workload (perf/api.py's mix: 80 % reads,
20 % writes, each as a random seeded user) at about 70 % of the maximum
throughput for PERF_SOAK_MINUTES (10) minutes.

1. Seed the database through the API (as perf/api.py does) and measure the
   maximum: wrk, closed loop, 200 connections, the mix, 10 s.
2. Run perf/loadgen at 70 % of that, fixed rate over 64 connections, in
   30-second slices back to back; each slice reports its p99 and errors.
3. Sample the server's RSS every second throughout.

Pass: zero errors; RSS flat after warm-up (the last third's mean within 10 %
of the second third's, and no slice's peak more than 20 % above the second
third's mean); p99 stable (no slice's p99 above 3x the median slice's).
Writes perf/soak.png (RSS and p99 over time) and prints the report. Run it
through perf/run-soak.sh.
"""

import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import json
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import api  # noqa: E402  (start, seed, mix, the mix's wrk script)
import bench  # noqa: E402

PORT = bench.PORT
MINUTES = float(os.environ.get("PERF_SOAK_MINUTES", "10"))
SLICE = 30
SHARE = 0.7
PLOT = bench.ROOT / "perf/soak.png"


def log(*args):
    print(*args, file=sys.stderr, flush=True)


def main():
    proc = api.start()
    samples = []  # (seconds since the soak began, RSS KiB)
    slices = []  # (end second, p99 ms, errors, requests, achieved rps)
    try:
        users, slugs = api.seed()
        with tempfile.NamedTemporaryFile(prefix="swiftlet-soak-mix-", delete=False) as f:
            f.write(b"\0".join(api.mix(users, slugs)) + b"\0")
            mix_file = f.name
        api.wrk("/", lua=api.MIX_LUA, env={"MIX_FILE": mix_file}, seconds=3)  # warm
        peak = api.wrk("/", lua=api.MIX_LUA, env={"MIX_FILE": mix_file}, seconds=10)
        rate = int(peak["rps"] * SHARE)
        log(f"maximum {peak['rps']:,.0f}/s; soaking at {rate:,}/s for {MINUTES} min")

        stop = threading.Event()
        began = time.monotonic()

        def sample():
            while not stop.is_set():
                samples.append((time.monotonic() - began, bench.rss_kib(proc.pid)))
                time.sleep(1)

        sampler = threading.Thread(target=sample)
        sampler.start()
        try:
            for _ in range(int(MINUTES * 60 / SLICE)):
                out = subprocess.run([str(bench.LOADGEN), f"http://127.0.0.1:{PORT}/", str(rate), "64", str(SLICE),
                                      "@mix", mix_file], capture_output=True, text=True, timeout=SLICE + 60)
                if out.returncode != 0:
                    raise RuntimeError(f"loadgen failed: {out.stderr}")
                res = json.loads(out.stdout)
                slices.append((time.monotonic() - began, res["p99_ms"], res["non_2xx"] + res["errors"],
                               res["requests"], res["achieved_rps"]))
                log(f"slice {len(slices)}: p99 {res['p99_ms']:.2f} ms, errors {res['non_2xx'] + res['errors']}, "
                    f"RSS {samples[-1][1] / 1024:.1f} MiB")
        finally:
            stop.set()
            sampler.join()
        counters = api.counters_agree()
        os.unlink(mix_file)
    finally:
        bench.stop(proc)

    rss = [kib / 1024 for _, kib in samples]
    third = len(rss) // 3
    second, last = rss[third:2 * third], rss[2 * third:]
    mean2, mean3 = statistics.mean(second), statistics.mean(last)
    p99s = [s[1] for s in slices]
    med_p99 = statistics.median(p99s)
    errors = sum(s[2] for s in slices)
    requests = sum(s[3] for s in slices)
    flat = abs(mean3 - mean2) <= 0.10 * mean2 and max(rss[third:]) <= 1.20 * mean2
    stable = max(p99s) <= 3 * med_p99

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(2, 1, figsize=(9, 6), sharex=True)
    ax[0].plot([t / 60 for t, _ in samples], rss, lw=1)
    ax[0].set_ylabel("server RSS (MiB)")
    ax[0].set_ylim(0, max(rss) * 1.2)
    ax[0].set_title(f"swiftlet soak: API mix at {rate:,}/s (70 % of the {peak['rps']:,.0f}/s maximum)")
    ax[1].plot([s[0] / 60 for s in slices], p99s, marker="o", lw=1)
    ax[1].set_ylabel("p99 per 30 s slice (ms)")
    ax[1].set_ylim(0, max(p99s) * 1.2)
    ax[1].set_xlabel("minutes")
    fig.tight_layout()
    fig.savefig(PLOT, dpi=80)

    print(f"The product API's mixed workload (perf/api.py: 80 % reads, 20 % writes, {api.USERS} seeded users), "
          f"maximum by wrk closed loop at 200 connections: {peak['rps']:,.0f}/s. Soak: perf/loadgen at {rate:,}/s "
          f"(70 %) over 64 connections for {MINUTES:g} minutes in {len(slices)} slices of {SLICE} s; RSS sampled "
          f"every second. Plot: `perf/soak.png`.\n")
    print("| figure | value | verdict |")
    print("|---|---:|---|")
    print(f"| requests | {requests:,} at {statistics.mean(s[4] for s in slices):,.0f}/s achieved | |")
    print(f"| errors (non-2xx or failed) | {errors:,} | {'met' if errors == 0 else '**not met**'} |")
    print(f"| RSS: first sample, second-third mean, last-third mean, peak after warm-up | {rss[0]:.1f}, {mean2:.1f}, "
          f"{mean3:.1f}, {max(rss[third:]):.1f} MiB | {'flat' if flat else '**not flat**'} |")
    print(f"| p99 per slice: median, min, max | {med_p99:.2f}, {min(p99s):.2f}, {max(p99s):.2f} ms | "
          f"{'stable' if stable else '**not stable**'} |")
    print(f"| article counters agree with the rows after the soak | {'yes' if counters else '**no**'} | |")


if __name__ == "__main__":
    main()
