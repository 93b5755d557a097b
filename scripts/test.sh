#!/usr/bin/env bash
# The test command: builds and runs every test against a real PostgreSQL and
# Redis. Uses the servers on 127.0.0.1:5432 and :6379 when they are running;
# otherwise starts private ones under a temporary folder (installing the Debian
# packages if missing) and stops and removes them at the end. The tests create
# a throwaway database each (named after this run) and drop it; whatever a
# crashed test left behind is dropped here. Extra arguments go to cargo test.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/services.sh

export SWIFTLET_TEST_RUN="r$$"
data=$(mktemp -d "${TMPDIR:-/tmp}/swiftlet-test-XXXXXX")
chmod 755 "$data"

cleanup() {
    local status=$?
    if [ -n "${PG_ADMIN_URL:-}" ] && command -v psql >/dev/null; then
        for db in $(admin_psql -At -c "SELECT datname FROM pg_database WHERE datname LIKE 'swiftlet_test_${SWIFTLET_TEST_RUN}_%'" 2>/dev/null); do
            admin_psql -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" || true
        done
    fi
    stop_private_services
    rm -rf "$data"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The restart tests run servers of their own, so the programs must be here
# even when the shared services are running.
ensure_packages tests
ensure_postgres "$data" "$(free_port)"
ensure_redis "$data" "$(free_port)"
ensure_moto
export SWIFTLET_TEST_PG=$PG_ADMIN_URL SWIFTLET_TEST_REDIS=$REDIS_ADDR SWIFTLET_TEST_MOTO=$MOTO_SERVER

cargo test --workspace --locked --features fuzzing "$@"
