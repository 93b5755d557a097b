#!/usr/bin/env bash
# A hand-driven loop measured before it is built (issue 19): the floor
# (perf/floor/floor.c), swiftlet's codec on a bare mio loop (perf/codec-loop)
# and swiftlet, pinned, by perf/codec_loop.py: CPU per request, and callgrind's
# user-space instructions per request; recorded in perf/RESULTS.md. Installs
# wrk and valgrind (Debian) if missing. About 8 minutes with the builds.
#
#   perf/run-codec-loop.sh                    # 5 rounds
#   PERF_ROUNDS=3 PERF_DURATION=4 ...         # the knobs (defaults 5 and 4)
#   PERF_NO_RECORD=1 perf/run-codec-loop.sh   # print only
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/services.sh
source perf/stores.sh

command -v wrk >/dev/null || install_packages wrk
command -v valgrind >/dev/null || install_packages valgrind
cargo build --release --locked --bin swiftlet
(cd perf/codec-loop && cargo build --release --locked)
cc -O2 -Wall -Wextra -pthread -o perf/floor/floor perf/floor/floor.c

settings="PERF_ROUNDS=${PERF_ROUNDS:-5} PERF_DURATION=${PERF_DURATION:-4}"
run_report "A hand-driven loop, measured before built: floor, swiftlet's codec on mio, swiftlet" "$settings" \
  perf/run-codec-loop.sh perf/codec_loop.py perf/codec-loop perf/bench.py perf/instructions.py perf/floor perf/lua \
  src protocol Cargo.toml Cargo.lock
