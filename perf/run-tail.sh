#!/usr/bin/env bash
# The tail at fixed rates against the floor (issue 19): perf/tail.py runs the
# floor, swiftlet, axum and the floor again (the control) pinned at 10K, 20K
# and 50K requests/s, 5 rounds,
# and the report is recorded in perf/RESULTS.md. About 11 minutes.
#
#   perf/run-tail.sh
#   PERF_ROUNDS=5 PERF_DURATION=4 PERF_RATES=10000,20000,50000 ...  # the knobs (defaults shown)
#   PERF_NO_RECORD=1 perf/run-tail.sh                              # print only
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/services.sh
source perf/stores.sh

command -v wrk >/dev/null || install_packages wrk
cargo build --release --locked --bin swiftlet
(cd perf/baseline/axum && cargo build --release --locked)
(cd perf/loadgen && cargo build --release --locked)
cc -O2 -Wall -Wextra -pthread -o perf/floor/floor perf/floor/floor.c

settings="PERF_ROUNDS=${PERF_ROUNDS:-5} PERF_DURATION=${PERF_DURATION:-4} PERF_RATES=${PERF_RATES:-10000,20000,50000}"
run_report "The tail at fixed rates, against the floor" "$settings" perf/run-tail.sh perf/tail.py perf/floor src protocol Cargo.toml Cargo.lock
