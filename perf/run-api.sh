#!/usr/bin/env bash
# The product API benchmark (issue 4): builds swiftlet and the load generator,
# makes a fresh benchmark database (swiftlet_api_bench), and runs perf/api.py,
# which seeds it over the API and measures
#   - a mixed logged-in workload (80 % reads, 20 % writes) at 200 connections,
#     closed-loop (wrk) and at a fixed rate (perf/loadgen, CO-corrected);
#   - the cached anonymous article read against /json, server CPU per request;
#   - /health's p99 at a fixed rate, alone and beside a stream of logins.
# Records the report in perf/RESULTS.md (newest first) with the date, commit and command.
#
#   perf/run-api.sh                         # defaults (about 4 minutes)
#   PERF_DURATION=5 PERF_ROUNDS=3 ...       # the knobs (defaults shown)
#   PERF_NO_RECORD=1 perf/run-api.sh        # print only
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/services.sh
source perf/stores.sh

bench_stores

cargo build --release --locked --bin swiftlet
(cd perf/loadgen && cargo build --release --locked)

bench_database swiftlet_api_bench fresh

settings="PERF_DURATION=${PERF_DURATION:-5} PERF_ROUNDS=${PERF_ROUNDS:-3}"
run_report "Product API" "$settings" perf/run-api.sh perf/api.py src protocol Cargo.toml Cargo.lock perf/loadgen
