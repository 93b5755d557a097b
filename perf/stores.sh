# Shared by the perf scripts that need PostgreSQL and Redis (run-db.sh,
# run-api.sh, run-services.sh); sourced after scripts/services.sh.

# wrk, a data folder for private servers (removed on exit, with the servers
# stopped), and the running or private PostgreSQL and Redis.
bench_stores() {
    command -v wrk >/dev/null || install_packages wrk
    data=$(mktemp -d "${TMPDIR:-/tmp}/swiftlet-perf-XXXXXX")
    chmod 755 "$data"
    trap 'stop_private_services; rm -rf "$data"' EXIT
    ensure_packages
    ensure_postgres "$data"
    ensure_redis "$data"
}

# Nothing of ours may be left listening on the bench port.
require_bench_port() {
    if ss -ltn 2>/dev/null | grep -q ':18080 '; then
        echo "port 18080 is busy; stop whatever holds it first" >&2
        exit 1
    fi
}

# The line of perf/RESULTS.md under which each new report goes: the summary
# table stays on top, and the runs follow newest first.
RESULTS_MARKER='<!-- runs, newest first: the perf scripts insert each report below this line -->'

# insert_report FILE: puts the report in FILE (its heading first) into
# perf/RESULTS.md right under RESULTS_MARKER.
insert_report() {
    python3 - "$1" "$RESULTS_MARKER" <<'PY'
import sys
section, marker = open(sys.argv[1]).read().strip("\n"), sys.argv[2]
text = open("perf/RESULTS.md").read()
if marker not in text:
    sys.exit("perf/RESULTS.md has no marker line for new reports")
head, tail = text.split(marker, 1)
open("perf/RESULTS.md", "w").write(head + marker + "\n\n" + section + "\n" + tail)
PY
    echo "recorded in perf/RESULTS.md (newest first)" >&2
}

# record_report TITLE SETTINGS SCRIPT REPORT PATH...: records REPORT in
# perf/RESULTS.md under a heading with the date and commit (flagged when any
# PATH has uncommitted changes) and the command that made it, unless
# PERF_NO_RECORD is set.
record_report() {
    local title=$1 settings=$2 script=$3 report=$4
    shift 4
    [ -n "${PERF_NO_RECORD:-}" ] && return 0
    local dirty=""
    # Changed or new: a script or harness not yet committed is uncommitted code too.
    if ! git diff --quiet HEAD -- "$@" || [ -n "$(git ls-files --others --exclude-standard -- "$@")" ]; then
        dirty=" (with uncommitted changes)"
    fi
    local section
    section=$(mktemp)
    {
        echo "## ${title}: $(date -u '+%Y-%m-%d %H:%M UTC'), commit $(git rev-parse --short HEAD)${dirty}"
        echo
        local stores=""
        if [ -n "${PG_ADMIN_URL:-}" ]; then
            stores=", PostgreSQL $(admin_psql -At -c 'SHOW server_version' | cut -d' ' -f1), Redis $(redis-server --version | grep -o 'v=[0-9.]*' | cut -d= -f2)"
        fi
        echo "Command: \`${settings} ${script}\` on $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs))${stores}."
        echo
        cat "$report"
    } > "$section"
    insert_report "$section"
    rm -f "$section"
}

# bench_database NAME [fresh]: the benchmark database NAME, created if missing
# (dropped and created anew with "fresh", its Redis keys deleted with it),
# migrated by this build of swiftlet; exports DATABASE_URL and REDIS_URL for
# the harness.
bench_database() {
    local name=$1 fresh=${2:-}
    if [ -n "$fresh" ]; then
        admin_psql -q -c "DROP DATABASE IF EXISTS $name WITH (FORCE)"
        redis-cli -h "${REDIS_ADDR%:*}" -p "${REDIS_ADDR##*:}" --scan --pattern "swiftlet:$name:*" \
            | xargs -r redis-cli -h "${REDIS_ADDR%:*}" -p "${REDIS_ADDR##*:}" del >/dev/null
    fi
    if [ -z "$(admin_psql -At -c "SELECT 1 FROM pg_database WHERE datname = '$name'")" ]; then
        admin_psql -q -c "CREATE DATABASE $name"
    fi
    export DATABASE_URL=${PG_ADMIN_URL%/postgres}/$name
    export REDIS_URL=redis://$REDIS_ADDR
    ./target/release/swiftlet migrate
}

# run_report TITLE SETTINGS SCRIPT HARNESS PATH...: checks the bench port, runs
# the Python HARNESS, shows its report and records it (record_report).
run_report() {
    local title=$1 settings=$2 script=$3 harness=$4
    shift 4
    require_bench_port
    local report
    report=$(mktemp)
    python3 "$harness" | tee "$report"
    # The script and its harness count as the run's code too.
    record_report "$title" "$settings" "$script" "$report" "$script" "$harness" "$@"
    rm -f "$report"
}
