#!/usr/bin/env bash
# Two swiftlet nodes behind HAProxy sharing one PostgreSQL and one Redis
# (perf/fleet.py): unique IDs across nodes, writes and cache invalidations
# seen across nodes, a node killed and a rolling restart under load. Installs
# HAProxy (Debian) if missing. Records the report in perf/RESULTS.md (newest first).
#
#   perf/run-fleet.sh                     # about 1 minute
#   PERF_NO_RECORD=1 perf/run-fleet.sh    # print only
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/services.sh
source perf/stores.sh

bench_stores
command -v haproxy >/dev/null || install_packages haproxy
for port in 18081 18082; do
    if ss -ltn 2>/dev/null | grep -q ":$port "; then
        echo "port $port is busy; stop whatever holds it first" >&2
        exit 1
    fi
done
cargo build --release --locked --bin swiftlet
bench_database swiftlet_fleet

settings="PERF_DURATION=${PERF_DURATION:-6}"
run_report "Two nodes behind HAProxy" "$settings" perf/run-fleet.sh perf/fleet.py src Cargo.toml Cargo.lock perf/fleet.py perf/fleet
