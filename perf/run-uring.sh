#!/usr/bin/env bash
# io_uring measured before built (issue 19): the bare epoll responder
# (perf/floor/floor.c) against the same on io_uring (perf/floor/floor-uring.c),
# pinned, by perf/uring.py; recorded in perf/RESULTS.md. Installs wrk and
# liburing-dev (Debian) if missing. About 4 minutes.
#
#   perf/run-uring.sh                    # 5 rounds
#   PERF_ROUNDS=3 PERF_DURATION=4 ...    # the knobs (defaults 5 and 4)
#   PERF_NO_RECORD=1 perf/run-uring.sh   # print only
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/services.sh
source perf/stores.sh

command -v wrk >/dev/null || install_packages wrk
[ -f /usr/include/liburing.h ] || install_packages liburing-dev
if [ "$(cat /proc/sys/kernel/io_uring_disabled 2>/dev/null || echo 0)" != 0 ]; then
    echo "io_uring is disabled on this machine (kernel.io_uring_disabled)" >&2
    exit 1
fi
cc -O2 -Wall -Wextra -pthread -o perf/floor/floor perf/floor/floor.c
cc -O2 -Wall -Wextra -pthread -o perf/floor/floor-uring perf/floor/floor-uring.c -luring

settings="PERF_ROUNDS=${PERF_ROUNDS:-5} PERF_DURATION=${PERF_DURATION:-4}"
run_report "io_uring against epoll, bare responders" "$settings" perf/run-uring.sh perf/uring.py perf/floor perf/bench.py perf/lua
