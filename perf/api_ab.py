#!/usr/bin/env python3
"""The product API's closed-loop mix on two builds, alternating, on one
database: did a change cost the API anything? Compares this tree's release
binary with PERF_BASE_BINARY (run-compare.sh leaves one in
target/compare-base/target/release/swiftlet).

Needs a seeded benchmark database in DATABASE_URL/REDIS_URL and a mix file
(PERF_MIX_FILE) as perf/api.py writes one; prints one line per run:
requests/s, p50, p99 and server CPU per request of the mix at 200
connections, and `/json` requests/s beside it.
"""

import os
import sys
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import api  # noqa: E402
import bench  # noqa: E402

ROUNDS = int(os.environ.get("PERF_ROUNDS", "2"))


def main():
    mix_file = os.environ["PERF_MIX_FILE"]
    builds = {"base": Path(os.environ["PERF_BASE_BINARY"]), "head": bench.SWIFTLET}
    for r in range(ROUNDS):
        order = list(builds.items()) if r % 2 == 0 else list(builds.items())[::-1]
        for name, path in order:
            bench.SWIFTLET = path
            proc = api.start()
            try:
                api.wrk("/", seconds=2, lua=api.MIX_LUA, env={"MIX_FILE": mix_file})  # warm
                before = bench.cpu_seconds(proc.pid)
                m = api.wrk("/", lua=api.MIX_LUA, env={"MIX_FILE": mix_file})
                cpu = (bench.cpu_seconds(proc.pid) - before) / m["requests"]
                j = api.wrk("/json", seconds=3)
                print(f"{name}: mix {m['rps']:,.0f} req/s, p50 {m['p50_ms']:.1f} ms, p99 {m['p99_ms']:.1f} ms, "
                      f"CPU {cpu * 1e6:.1f} µs/request, non-2xx {m['non_2xx']}; /json {j['rps']:,.0f} req/s",
                      flush=True)
            finally:
                bench.stop(proc)


if __name__ == "__main__":
    main()
