#!/usr/bin/env bash
# Fails when a request costs more user-space instructions than its budget in
# perf/instructions-budget: perf/instructions.py (callgrind, one worker, 2,000
# keep-alive requests after a warm-up) on the endpoints listed there, which
# need no stores. Run by CI (.ci/run); about 5 minutes with the build.
# Installs valgrind if missing.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/services.sh

command -v valgrind >/dev/null || install_packages valgrind
cargo build --release --locked --bin swiftlet
cargo build --profile profiling --locked --bin swiftlet

budget=$(grep -v '^#' perf/instructions-budget)
paths=$(awk '{print $1}' <<<"$budget" | sort -u | paste -sd, -)
counts=$(mktemp)
trap 'rm -f "$counts"' EXIT
PERF_PATHS=$paths PERF_JSON=$counts python3 perf/instructions.py >/dev/null

failed=0
while read -r path depth limit; do
  [ -n "$path" ] || continue
  count=$(python3 -c 'import json, sys; print(round(json.load(open(sys.argv[1]))[sys.argv[2]]))' "$counts" "$path $depth")
  if [ "$count" -gt "$limit" ]; then
    echo "instructions: $path, $depth per write: $count per request, over its budget of $limit (perf/instructions-budget)" >&2
    failed=1
  else
    echo "instructions: $path, $depth per write: $count per request, within the budget of $limit"
  fi
done <<<"$budget"
exit "$failed"
