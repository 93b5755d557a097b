#!/usr/bin/env bash
# Soak (perf/soak.py): the product API's mixed workload at 70 % of its
# measured maximum for 10 minutes, RSS sampled every second, p99 per 30 s;
# writes perf/soak.png. Uses the PostgreSQL and Redis that are running, or
# starts private ones. Records the report in perf/RESULTS.md (newest first).
#
#   perf/run-soak.sh                          # about 12 minutes
#   PERF_SOAK_MINUTES=10 perf/run-soak.sh     # the length (default shown)
#   PERF_NO_RECORD=1 perf/run-soak.sh         # print only
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/services.sh
source perf/stores.sh

bench_stores
python3 -c 'import matplotlib' 2>/dev/null || pip install --quiet matplotlib
cargo build --release --locked --bin swiftlet
(cd perf/loadgen && cargo build --release --locked)

bench_database swiftlet_soak_bench fresh

settings="PERF_SOAK_MINUTES=${PERF_SOAK_MINUTES:-10}"
run_report "Soak" "$settings" perf/run-soak.sh perf/soak.py src protocol Cargo.toml Cargo.lock perf/soak.py
