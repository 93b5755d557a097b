#!/usr/bin/env bash
# The product API benchmark (issue 4): builds swiftlet and the load generator,
# makes a fresh benchmark database (swiftlet_api_bench), and runs perf/api.py,
# which seeds it over the API and measures
#   - a mixed logged-in workload (80 % reads, 20 % writes) at 200 connections,
#     closed-loop (wrk) and at a fixed rate (perf/loadgen, CO-corrected);
#   - the cached anonymous article read against /json, server CPU per request;
#   - /health's p99 at a fixed rate, alone and beside a stream of logins.
# Appends the report to perf/RESULTS.md with the date, commit and command.
#
#   perf/run-api.sh                         # defaults (about 4 minutes)
#   PERF_DURATION=5 PERF_ROUNDS=3 ...       # the knobs (defaults shown)
#   PERF_NO_RECORD=1 perf/run-api.sh        # print only
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/services.sh

command -v wrk >/dev/null || install_packages wrk
data=$(mktemp -d "${TMPDIR:-/tmp}/swiftlet-perf-XXXXXX")
chmod 755 "$data"
trap 'stop_private_services; rm -rf "$data"' EXIT
ensure_packages
ensure_postgres "$data"
ensure_redis "$data"

cargo build --release --locked --bin swiftlet
(cd perf/loadgen && cargo build --release --locked)

admin_psql -q -c "DROP DATABASE IF EXISTS swiftlet_api_bench WITH (FORCE)"
admin_psql -q -c "CREATE DATABASE swiftlet_api_bench"
export DATABASE_URL=${PG_ADMIN_URL%/postgres}/swiftlet_api_bench
export REDIS_URL=redis://$REDIS_ADDR
./target/release/swiftlet migrate
redis-cli -h "${REDIS_ADDR%:*}" -p "${REDIS_ADDR##*:}" --scan --pattern 'swiftlet:swiftlet_api_bench:*' \
    | xargs -r redis-cli -h "${REDIS_ADDR%:*}" -p "${REDIS_ADDR##*:}" del >/dev/null

if ss -ltn 2>/dev/null | grep -q ':18080 '; then
    echo "port 18080 is busy; stop whatever holds it first" >&2
    exit 1
fi

report=$(mktemp)
python3 perf/api.py | tee "$report"

if [ -z "${PERF_NO_RECORD:-}" ]; then
    settings="PERF_DURATION=${PERF_DURATION:-5} PERF_ROUNDS=${PERF_ROUNDS:-3}"
    dirty=""; git diff --quiet HEAD -- src protocol Cargo.toml Cargo.lock perf/loadgen || dirty=" (with uncommitted changes)"
    {
        echo
        echo "## Product API: $(date -u '+%Y-%m-%d %H:%M UTC'), commit $(git rev-parse --short HEAD)${dirty}"
        echo
        echo "Command: \`${settings} perf/run-api.sh\` on $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)), PostgreSQL $(admin_psql -At -c 'SHOW server_version' | cut -d' ' -f1), Redis $(redis-server --version | grep -o 'v=[0-9.]*' | cut -d= -f2)."
        echo
        cat "$report"
    } >> perf/RESULTS.md
    echo "appended to perf/RESULTS.md" >&2
fi
rm -f "$report"
