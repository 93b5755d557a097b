#!/usr/bin/env bash
# Fails when the stripped release binary is larger than its budget. Size is
# not noisy, so this is a plain check, run by CI (.ci/run). The budget is
# the number in perf/size-budget (bytes); raise it only with a reason in the
# commit that does, and the per-crate table of perf/footprint.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
budget=$(grep -v '^#' perf/size-budget | tr -d '[:space:]')
cargo build --release --locked --bin swiftlet
size=$(stat -c %s target/release/swiftlet)
if [ "$size" -gt "$budget" ]; then
  echo "binary size: target/release/swiftlet is $size bytes, over its budget of $budget (perf/size-budget)" >&2
  exit 1
fi
echo "binary size: $size bytes, within the budget of $budget"
