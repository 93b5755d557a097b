#!/usr/bin/env bash
# The ID service and log ingestion, swiftlet against the axum baseline
# (perf/services.py): builds both servers (and their count-allocations builds),
# prepares the benchmark database (created if missing, migrated by
# `swiftlet migrate`), and records the report in perf/RESULTS.md (newest first) with the
# date, commit and command. Uses the PostgreSQL and Redis that are running, or
# starts private ones (scripts/services.sh).
#
#   perf/run-services.sh                                  # everything (about 6 minutes)
#   PERF_SECTIONS=ids perf/run-services.sh                # ids, ingest, allocations: a subset
#   PERF_DURATION=5 PERF_ROUNDS=3 PERF_CONNS=256 PERF_INGEST_CONNS=64 PERF_ID_RATE=10000 ...
#   PERF_NO_RECORD=1 perf/run-services.sh                 # print only
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/services.sh
source perf/stores.sh

bench_stores

cargo build --release --locked --bin swiftlet
cargo build --release --locked --bin swiftlet --features count-allocations --target-dir target/count-allocations
(cd perf/baseline/axum && cargo build --release --locked \
    && cargo build --release --locked --features count-allocations --target-dir target/count-allocations)
(cd perf/loadgen && cargo build --release --locked)

bench_database swiftlet_services_bench

settings="PERF_DURATION=${PERF_DURATION:-5} PERF_ROUNDS=${PERF_ROUNDS:-3} PERF_CONNS=${PERF_CONNS:-256} PERF_INGEST_CONNS=${PERF_INGEST_CONNS:-64} PERF_ID_RATE=${PERF_ID_RATE:-10000}"
[ -n "${PERF_SECTIONS:-}" ] && settings="$settings PERF_SECTIONS=$PERF_SECTIONS"
[ -n "${PERF_SWIFTLET_ARGS:-}" ] && settings="$settings PERF_SWIFTLET_ARGS=\"$PERF_SWIFTLET_ARGS\""
run_report "IDs and ingestion" "$settings" perf/run-services.sh perf/services.py \
    src protocol Cargo.toml Cargo.lock perf/baseline perf/services.py perf/lua
