#!/usr/bin/env bash
# HTTPS against plain HTTP (perf/tls.py): keep-alive throughput and new
# connections (TLS handshakes) per second, one server, one run. Needs no
# database. Records the report in perf/RESULTS.md (newest first).
#
#   perf/run-tls.sh                         # about 2 minutes
#   PERF_ROUNDS=5 PERF_DURATION=4 ...       # the knobs (defaults shown)
#   PERF_NO_RECORD=1 perf/run-tls.sh        # print only
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/services.sh
source perf/stores.sh

command -v wrk >/dev/null || install_packages wrk
cargo build --release --locked --bin swiftlet

settings="PERF_ROUNDS=${PERF_ROUNDS:-5} PERF_DURATION=${PERF_DURATION:-4}"
run_report "HTTPS against HTTP" "$settings" perf/run-tls.sh perf/tls.py src protocol Cargo.toml Cargo.lock perf/tls.py
