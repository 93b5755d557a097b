#!/usr/bin/env bash
# swiftlet's footprint beside the axum baseline, in one run (perf/footprint.py):
# stripped binary size, idle RSS, peak RSS at 500 busy connections, the RSS
# 10,000 idle keep-alive connections add, and cold start; then the per-crate
# share of the binary's code (cargo bloat, installed if missing). Needs no
# database. Records the report in perf/RESULTS.md (newest first).
#
#   perf/footprint.sh                        # about 5 minutes after the builds
#   PERF_ROUNDS=3 PERF_DURATION=4 PERF_IDLE_CONNECTIONS=10000 PERF_IDLE_SETTLE=12 PERF_COLD_STARTS=41 ...
#   PERF_NO_BLOAT=1 ...                      # skip the per-crate table (one more build)
#   PERF_NO_RECORD=1 ...                     # print only
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/services.sh
source perf/stores.sh

command -v wrk >/dev/null || install_packages wrk
command -v taskset >/dev/null || { echo "taskset (util-linux) is required" >&2; exit 1; }
cargo build --release --locked --bin swiftlet
(cd perf/baseline/axum && cargo build --release --locked)

require_bench_port

report=$(mktemp)
trap 'rm -f "$report"' EXIT
python3 perf/footprint.py | tee "$report"

if [ -z "${PERF_NO_BLOAT:-}" ]; then
  command -v cargo-bloat >/dev/null || cargo install --locked cargo-bloat
  # The release build's code with its symbols (the profiling profile is the
  # release build unstripped): the share of .text by crate.
  {
    echo
    echo "Code by crate (\`cargo bloat --profile profiling --crates -n 25\`; .text only, the file also holds"
    echo "data, unwind tables and relocations):"
    echo
    echo '```'
    cargo bloat --profile profiling --crates -n 25 2>/dev/null | sed '/^Note: numbers above/,$d'
    echo '```'
  } | tee -a "$report"
fi

settings="PERF_ROUNDS=${PERF_ROUNDS:-3} PERF_DURATION=${PERF_DURATION:-4} PERF_IDLE_CONNECTIONS=${PERF_IDLE_CONNECTIONS:-10000} PERF_IDLE_SETTLE=${PERF_IDLE_SETTLE:-12}"
record_report "Footprint" "$settings" perf/footprint.sh "$report" src protocol Cargo.toml Cargo.lock perf/footprint.py
