# PostgreSQL and Redis for swiftlet: use the ones that are running, or start
# private ones under a data folder, installing the Debian packages if missing.
# Sourced by scripts/serve.sh and scripts/test.sh; not run on its own.
#
# After ensure_postgres:  PG_ADMIN_URL  (a URL to the `postgres` database, user postgres)
# After ensure_redis:     REDIS_ADDR    (host:port)
# stop_private_services stops only what these functions started.

# Where a running server is looked for (overridable, e.g. to try the private path).
SHARED_PG_PORT=${SWIFTLET_SHARED_PG_PORT:-5432}
SHARED_REDIS_PORT=${SWIFTLET_SHARED_REDIS_PORT:-6379}

PRIVATE_PG_DIR=""
PRIVATE_REDIS_PID=""

say() { printf '[services] %s\n' "$*" >&2; }

as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"
    elif command -v sudo >/dev/null; then sudo "$@"
    else say "need root to run: $*"; return 1
    fi
}

# Installs Debian packages (once per call, with one apt-get update).
install_packages() {
    say "installing $* (Debian packages)"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# Whether the Redis on this port answers PING without authentication.
redis_answers() {
    local reply
    reply=$( { exec 3<>"/dev/tcp/127.0.0.1/$1" && printf 'PING\r\n' >&3 && timeout 2 head -c 5 <&3; } 2>/dev/null )
    [ "$reply" = "+PONG" ]
}

# A TCP port nobody listens on, below the kernel's ephemeral range (32768+), where
# an outgoing connection could hold it without listening.
free_port() {
    local port
    while :; do
        port=$((20000 + RANDOM % 12000))
        port_open "$port" || { echo "$port"; return; }
    done
}

pg_bin_dir() {
    local dir
    dir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
    [ -n "$dir" ] && [ -x "$dir/initdb" ] && echo "$dir"
}

# The PostgreSQL server programs, the psql client and redis-server, installed if missing.
ensure_packages() {
    local missing=()
    pg_bin_dir >/dev/null || missing+=(postgresql)
    command -v psql >/dev/null || missing+=(postgresql-client)
    command -v redis-server >/dev/null || missing+=(redis-server)
    # libfaketime, for the tests only: the ID tests step a server's wall clock with it.
    if [ "${1:-}" = tests ] && ! command -v faketime >/dev/null; then missing+=(faketime); fi
    [ ${#missing[@]} -eq 0 ] || install_packages "${missing[@]}"
}

# Runs a PostgreSQL program as a user it accepts (it refuses root).
pg_run() {
    if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

# ensure_postgres DATA_DIR [PORT]: the running server on 5432 if there is one,
# else a private cluster under DATA_DIR/pg (reused if it is already there).
ensure_postgres() {
    local data=$1 port=${2:-25432}
    if [ -n "${SWIFTLET_TEST_PG:-}" ]; then PG_ADMIN_URL=$SWIFTLET_TEST_PG; return; fi
    if port_open "$SHARED_PG_PORT"; then
        local url="postgres://postgres@127.0.0.1:$SHARED_PG_PORT/postgres"
        # Debian's own cluster asks for a password over TCP: use it only if it lets us in.
        if psql "$url" -X -q -t -c 'SELECT 1' >/dev/null 2>&1; then
            PG_ADMIN_URL=$url
            say "using the PostgreSQL on 127.0.0.1:$SHARED_PG_PORT"
            return
        fi
        say "the PostgreSQL on 127.0.0.1:$SHARED_PG_PORT does not let user postgres in without a password; starting a private one"
    fi
    local bin
    bin=$(pg_bin_dir) || { say "no PostgreSQL server programs"; return 1; }
    mkdir -p "$data"
    local dir=$data/pg
    if [ ! -f "$dir/PG_VERSION" ]; then
        say "creating a private PostgreSQL cluster in $dir"
        mkdir -p "$dir"
        [ "$(id -u)" = 0 ] && chown postgres:postgres "$dir"
        pg_run "$bin/initdb" -D "$dir" -A trust -U postgres -E UTF8 >/dev/null
    fi
    [ "$(id -u)" = 0 ] && chown postgres:postgres "$data"
    if ! port_open "$port"; then
        say "starting the private PostgreSQL on 127.0.0.1:$port"
        pg_run "$bin/pg_ctl" -D "$dir" -l "$data/postgres.log" -w \
            -o "-p $port -k $data -c listen_addresses=127.0.0.1" start >/dev/null
        PRIVATE_PG_DIR=$dir
    fi
    PG_ADMIN_URL="postgres://postgres@127.0.0.1:$port/postgres"
}

# ensure_redis DATA_DIR [PORT]: the running server on 6379 if there is one, else a private one.
ensure_redis() {
    local data=$1 port=${2:-26379}
    if [ -n "${SWIFTLET_TEST_REDIS:-}" ]; then REDIS_ADDR=$SWIFTLET_TEST_REDIS; return; fi
    if port_open "$SHARED_REDIS_PORT"; then
        if redis_answers "$SHARED_REDIS_PORT"; then
            REDIS_ADDR="127.0.0.1:$SHARED_REDIS_PORT"
            say "using the Redis on 127.0.0.1:$SHARED_REDIS_PORT"
            return
        fi
        say "the Redis on 127.0.0.1:$SHARED_REDIS_PORT does not answer PING without a password; starting a private one"
    fi
    mkdir -p "$data"
    if ! port_open "$port"; then
        say "starting a private Redis on 127.0.0.1:$port"
        # A child of this script (not daemonized), so the script reaps it.
        redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no --dir "$data" \
            >"$data/redis.log" 2>&1 &
        PRIVATE_REDIS_PID=$!
        local i
        for i in $(seq 100); do port_open "$port" && break; sleep 0.05; done
    fi
    REDIS_ADDR="127.0.0.1:$port"
}

# moto's standalone S3 server, for the video storage tests: a real S3-protocol
# peer that checks SigV4 signatures. Installed into a virtualenv under target/
# (kept between runs) and pinned, so every machine tests against the same one.
# Sets MOTO_SERVER to its executable.
ensure_moto() {
    local venv=${SWIFTLET_MOTO_VENV:-$PWD/target/moto-venv}
    if [ ! -x "$venv/bin/moto_server" ]; then
        command -v python3 >/dev/null || install_packages python3
        rm -rf "$venv"
        if ! python3 -m venv "$venv" >/dev/null 2>&1; then
            install_packages python3-venv
            rm -rf "$venv"
            python3 -m venv "$venv"
        fi
        say "installing moto (S3 server for the tests) into $venv"
        "$venv/bin/pip" install --quiet --disable-pip-version-check 'moto[s3,server]==5.2.1'
    fi
    export MOTO_SERVER=$venv/bin/moto_server
}

stop_private_services() {
    if [ -n "$PRIVATE_PG_DIR" ]; then
        say "stopping the private PostgreSQL"
        pg_run "$(pg_bin_dir)/pg_ctl" -D "$PRIVATE_PG_DIR" -m fast -w stop >/dev/null || true
        # Where a running server is looked for (overridable, e.g. to try the private path).
SHARED_PG_PORT=${SWIFTLET_SHARED_PG_PORT:-5432}
SHARED_REDIS_PORT=${SWIFTLET_SHARED_REDIS_PORT:-6379}

PRIVATE_PG_DIR=""
    fi
    if [ -n "$PRIVATE_REDIS_PID" ]; then
        say "stopping the private Redis"
        kill "$PRIVATE_REDIS_PID" 2>/dev/null || true
        wait "$PRIVATE_REDIS_PID" 2>/dev/null || true
        PRIVATE_REDIS_PID=""
    fi
}

# psql against the admin database.
admin_psql() { psql "$PG_ADMIN_URL" -X -q -v ON_ERROR_STOP=1 "$@"; }
