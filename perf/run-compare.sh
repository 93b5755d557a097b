#!/usr/bin/env bash
# What a change cost on the plain request path (perf/compare.py): this tree
# against an earlier commit, built side by side, measured in one run. Needs no
# database. Records the report in perf/RESULTS.md (newest first).
#
#   PERF_BASE_COMMIT=e5f0be1 perf/run-compare.sh     # the commit to compare with (required)
#   PERF_ROUNDS=5 PERF_DURATION=4 ...                # the knobs (defaults shown)
#   PERF_NO_RECORD=1 ...                             # print only
#   PERF_STORE_PATHS=/db,/fortunes ...               # also paths that reach PostgreSQL and Redis
#   PERF_STORES_ONLY=1 ...                           # only those
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/services.sh
source perf/stores.sh

: "${PERF_BASE_COMMIT:?set PERF_BASE_COMMIT to the commit to compare with}"
command -v wrk >/dev/null || install_packages wrk
command -v valgrind >/dev/null || install_packages valgrind
cargo build --release --locked --bin swiftlet
if [ -n "${PERF_STORE_PATHS:-}" ]; then
  bench_stores
  bench_database swiftlet_bench # exports DATABASE_URL and REDIS_URL
fi

# The base build: a worktree of that commit, its own target directory (kept,
# so comparing with the same commit again builds nothing).
base_tree=target/compare-base/tree
base_target=$PWD/target/compare-base/target
rm -rf "$base_tree"
git worktree prune
git worktree add --detach "$base_tree" "$PERF_BASE_COMMIT" >/dev/null
# (Replaces bench_stores' trap, so it does that one's work too.)
trap 'git worktree remove --force "$base_tree" >/dev/null 2>&1 || true; if [ -n "${data:-}" ]; then stop_private_services; rm -rf "$data"; fi' EXIT
(cd "$base_tree" && CARGO_TARGET_DIR=$base_target cargo build --release --locked --bin swiftlet)
export PERF_BASE_BINARY=$base_target/release/swiftlet PERF_BASE_COMMIT

settings="PERF_BASE_COMMIT=$PERF_BASE_COMMIT PERF_ROUNDS=${PERF_ROUNDS:-5} PERF_DURATION=${PERF_DURATION:-4}"
[ -n "${PERF_STORE_PATHS:-}" ] && settings="$settings PERF_STORE_PATHS=$PERF_STORE_PATHS"
[ -n "${PERF_STORES_ONLY:-}" ] && settings="$settings PERF_STORES_ONLY=1"
run_report "Against an earlier build" "$settings" perf/run-compare.sh perf/compare.py src protocol Cargo.toml Cargo.lock perf/bench.py perf/metrics.py
