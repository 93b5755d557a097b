#!/usr/bin/env bash
# The database benchmark: builds swiftlet and the axum baseline, prepares the
# benchmark database (created if missing, migrated by `swiftlet migrate`),
# measures both servers in one run (perf/db.py) and records the report (newest first) in
# perf/RESULTS.md with the date, commit and command. Uses the PostgreSQL and
# Redis that are running, or starts private ones (scripts/services.sh).
#
#   perf/run-db.sh                                   # every endpoint (about 6 minutes)
#   PERF_ENDPOINTS=/db,/fortunes perf/run-db.sh      # a subset
#   PERF_DURATION=5 PERF_ROUNDS=3 PERF_CONNS=256 ... # the knobs (defaults shown)
#   PERF_SWIFTLET_ARGS="--pg-connections 2" ...      # flags for swiftlet
#   PERF_NO_RECORD=1 perf/run-db.sh                  # print only
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/services.sh
source perf/stores.sh

bench_stores

cargo build --release --locked --bin swiftlet
(cd perf/baseline/axum && cargo build --release --locked)
(cd perf/loadgen && cargo build --release --locked)

bench_database swiftlet_bench

settings="PERF_DURATION=${PERF_DURATION:-5} PERF_ROUNDS=${PERF_ROUNDS:-3} PERF_CONNS=${PERF_CONNS:-256}"
[ -n "${PERF_ENDPOINTS:-}" ] && settings="$settings PERF_ENDPOINTS=$PERF_ENDPOINTS"
[ -n "${PERF_SWIFTLET_ARGS:-}" ] && settings="$settings PERF_SWIFTLET_ARGS=\"$PERF_SWIFTLET_ARGS\""
run_report "Database tests" "$settings" perf/run-db.sh perf/db.py src protocol Cargo.toml Cargo.lock perf/baseline
