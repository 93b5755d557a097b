#!/usr/bin/env bash
# Instructions per request, endpoint by endpoint, from /plaintext to POST /ingest
# and a cached Conduit article read (perf/instructions.py:
# callgrind, one worker, one request per write and 16 per write, with the ten
# costliest functions of each), recorded in perf/RESULTS.md with the date,
# commit and command. Repeatable on a noisy machine: run it before and after a
# change to the request path. Builds the `profiling` profile (the release code
# with symbols) and the benchmark database as perf/run-db.sh does.
#
#   perf/run-instructions.sh                                 # every endpoint (about 3 minutes)
#   PERF_PATHS=/plaintext,/fortunes perf/run-instructions.sh # a subset
#   PERF_NO_RECORD=1 perf/run-instructions.sh                # print only
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/services.sh
source perf/stores.sh

command -v valgrind >/dev/null || install_packages valgrind
bench_stores

cargo build --release --locked --bin swiftlet # bench_database migrates with it
cargo build --profile profiling --locked --bin swiftlet

bench_database swiftlet_bench

settings="PERF_N=${PERF_N:-2000} PERF_WARM=${PERF_WARM:-300}"
[ -n "${PERF_PATHS:-}" ] && settings="$settings PERF_PATHS=$PERF_PATHS"
run_report "Instructions per request" "$settings" perf/run-instructions.sh perf/instructions.py perf/bench.py src protocol Cargo.toml Cargo.lock
