#!/usr/bin/env bash
# What the request metrics cost (perf/metrics.py): swiftlet with and without
# --no-metrics, by callgrind instruction counts and pipelined throughput, in one
# run. Needs no database. Records the report in perf/RESULTS.md (newest first).
#
#   perf/run-metrics.sh                     # about 2 minutes
#   PERF_ROUNDS=5 PERF_DURATION=4 ...       # the knobs (defaults shown)
#   PERF_NO_RECORD=1 perf/run-metrics.sh    # print only
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/services.sh
source perf/stores.sh

command -v wrk >/dev/null || install_packages wrk
command -v valgrind >/dev/null || install_packages valgrind
cargo build --release --locked --bin swiftlet

settings="PERF_ROUNDS=${PERF_ROUNDS:-5} PERF_DURATION=${PERF_DURATION:-4}"
run_report "Metrics cost" "$settings" perf/run-metrics.sh perf/metrics.py src protocol Cargo.toml Cargo.lock perf/metrics.py
