#!/usr/bin/env bash
# The run command: swiftlet with its PostgreSQL and Redis. Uses the servers on
# 127.0.0.1:5432 and :6379 when they are running; otherwise starts private
# ones under $SWIFTLET_DATA (installing the Debian packages if missing), which
# keep their data between runs and are stopped when swiftlet exits. Creates the
# `swiftlet` database if it is missing; swiftlet applies its migrations at
# start. The API's token secret is JWT_SECRET if set, otherwise one generated
# on first run and kept in $SWIFTLET_DATA/jwt-secret (mode 600), so tokens
# survive restarts; the log service's token likewise (SWIFTLET_INGEST_TOKEN, or
# $SWIFTLET_DATA/ingest-token). Uploaded videos go to $SWIFTLET_DATA/videos unless
# SWIFTLET_VIDEO_DIR or an S3 bucket says otherwise. Extra arguments go to
# swiftlet (see --help).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/services.sh

if [ "$(id -u)" = 0 ]; then default_data=/var/lib/swiftlet; else default_data=$HOME/.local/share/swiftlet; fi
data=${SWIFTLET_DATA:-$default_data}

trap stop_private_services EXIT
ensure_packages
ensure_postgres "$data"
ensure_redis "$data"
if [ -z "$(admin_psql -At -c "SELECT 1 FROM pg_database WHERE datname = 'swiftlet'")" ]; then
    say "creating database swiftlet"
    admin_psql -c "CREATE DATABASE swiftlet"
fi
export DATABASE_URL=${DATABASE_URL:-${PG_ADMIN_URL%/postgres}/swiftlet}
export REDIS_URL=${REDIS_URL:-redis://$REDIS_ADDR}
export SWIFTLET_VIDEO_DIR=${SWIFTLET_VIDEO_DIR:-$data/videos}
# A secret made once and kept (mode 600) under $data: prints it.
kept_secret() {
    local file=$data/$1 bytes=$2 what=$3
    if [ ! -s "$file" ]; then
        mkdir -p "$data"
        (umask 077 && head -c "$bytes" /dev/urandom | od -An -tx1 | tr -d ' \n' > "$file")
        say "generated $what in $file"
    fi
    cat "$file"
}
# The API's token secret, and the log service's bearer token ("Authorization:
# Bearer <token>"), unless the environment gives them.
JWT_SECRET=${JWT_SECRET:-$(kept_secret jwt-secret 32 "a token secret")}
SWIFTLET_INGEST_TOKEN=${SWIFTLET_INGEST_TOKEN:-$(kept_secret ingest-token 24 "an ingest token")}
export JWT_SECRET SWIFTLET_INGEST_TOKEN

cargo build --release --locked
# In the background so a SIGTERM to this script reaches swiftlet too (graceful
# shutdown), after which the EXIT trap stops the private services.
./target/release/swiftlet "$@" &
pid=$!
trap 'kill -TERM "$pid" 2>/dev/null || true' INT TERM
status=0
while kill -0 "$pid" 2>/dev/null; do
    if wait "$pid"; then status=0; else status=$?; fi
done
exit "$status"
