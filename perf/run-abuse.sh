#!/usr/bin/env bash
# Hostile clients beside normal ones (perf/abuse.py): slowloris, giant heads
# and bodies, chunked bombs, a pipelined flood and the fuzz corpora as raw
# bytes, each bounded in time and count, on loopback only. Reports normal
# clients' p99 against the unloaded figure and peak RSS. Needs no database.
# Records the report in perf/RESULTS.md (newest first).
#
#   perf/run-abuse.sh                              # about 1 minute
#   PERF_RATE=2000 PERF_DURATION=5 ...             # the knobs (defaults shown)
#   PERF_NO_RECORD=1 perf/run-abuse.sh             # print only
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/services.sh
source perf/stores.sh

cargo build --release --locked --bin swiftlet
(cd perf/loadgen && cargo build --release --locked)

settings="PERF_RATE=${PERF_RATE:-2000} PERF_DURATION=${PERF_DURATION:-5}"
run_report "Abuse beside normal clients" "$settings" perf/run-abuse.sh perf/abuse.py src protocol Cargo.toml Cargo.lock perf/abuse.py
