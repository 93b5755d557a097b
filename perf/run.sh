#!/usr/bin/env bash
# Builds swiftlet, the axum baseline and the floor (perf/floor/floor.c, a bare
# epoll responder), then measures the three in one run (perf/bench.py) and records the report in perf/RESULTS.md (newest first)
# with the date, commit and command. Installs wrk (Debian) if missing and builds the
# fixed-rate load generator in perf/loadgen.
#
#   perf/run.sh                     # full run, both modes (about 35 minutes)
#   PERF_MODES=pinned PERF_ENDPOINTS=/plaintext perf/run.sh   # a subset
#   PERF_DURATION=4 PERF_ROUNDS=5 PERF_RATE=50000 ...         # the knobs (defaults shown)
#   PERF_NO_RECORD=1 perf/run.sh    # print only, do not touch RESULTS.md
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/services.sh
source perf/stores.sh

if ! command -v wrk >/dev/null; then
  sudo_cmd=""; [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq && $sudo_cmd apt-get install -y -qq wrk
fi
command -v taskset >/dev/null || { echo "taskset (util-linux) is required" >&2; exit 1; }

if [ "$(nproc)" -lt 2 ]; then
  echo "the pinned mode needs 2 cores; run with PERF_MODES=unpinned" >&2
fi

cargo build --release --locked --bin swiftlet
(cd perf/baseline/axum && cargo build --release --locked)
(cd perf/loadgen && cargo build --release --locked)
cc -O2 -Wall -Wextra -pthread -o perf/floor/floor perf/floor/floor.c

# Nothing of ours may be left listening on the bench port.
if ss -ltn 2>/dev/null | grep -q ':18080 '; then
  echo "port 18080 is busy; stop whatever holds it first" >&2
  exit 1
fi

report=$(mktemp)
trap 'rm -f "$report"' EXIT
python3 perf/bench.py | tee "$report"

if [ -z "${PERF_NO_RECORD:-}" ]; then
  settings="PERF_DURATION=${PERF_DURATION:-4} PERF_ROUNDS=${PERF_ROUNDS:-5} PERF_RATE=${PERF_RATE:-50000} PERF_MODES=${PERF_MODES:-pinned,unpinned} PERF_ENDPOINTS=${PERF_ENDPOINTS:-/health,/plaintext,/json}"
  code=(src protocol Cargo.toml Cargo.lock perf/run.sh perf/bench.py perf/floor)
  dirty=""
  if ! git diff --quiet HEAD -- "${code[@]}" || [ -n "$(git ls-files --others --exclude-standard -- "${code[@]}")" ]; then
    dirty=" (with uncommitted changes)"
  fi
  section=$(mktemp)
  {
    echo "## $(date -u '+%Y-%m-%d %H:%M UTC'), commit $(git rev-parse --short HEAD)${dirty}"
    echo
    echo "Command: \`${settings} perf/run.sh\` on $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs))."
    echo
    cat "$report"
  } > "$section"
  insert_report "$section"
  rm -f "$section"
fi
