#!/usr/bin/env bash
# Records a load run of swiftlet with `perf record` and renders a flamegraph SVG.
#
#   perf/flamegraph.sh [PATH] [SECONDS] [OUT.svg]
#   perf/flamegraph.sh /plaintext 5 perf/out/plaintext.svg
#
# Builds with the `profiling` profile (release code with symbols and line
# tables), pins the server to core 0 and wrk to core 1, samples the server at
# 2 kHz with call graphs, and folds the stacks with inferno (installed from
# crates.io if missing). Needs `perf` (Debian: linux-perf) and wrk.
set -euo pipefail
cd "$(dirname "$0")/.."
path="${1:-/plaintext}"
seconds="${2:-5}"
out="${3:-perf/out/flamegraph$(echo "$path" | tr '/' '-').svg}"
port=18090

command -v perf >/dev/null || { echo "perf not found (Debian: apt-get install linux-perf)" >&2; exit 1; }
command -v wrk >/dev/null || { echo "wrk not found (Debian: apt-get install wrk)" >&2; exit 1; }
command -v inferno-flamegraph >/dev/null || cargo install --locked inferno

cargo build --profile profiling --locked --bin swiftlet
mkdir -p "$(dirname "$out")"
data=$(mktemp)

JWT_SECRET=${JWT_SECRET:-flamegraph-only-secret-flamegraph-only} SWIFTLET_DEV=true \
    taskset -c 0 target/profiling/swiftlet --listen "127.0.0.1:$port" --workers 1 --log warn &
server=$!
cleanup() { kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; rm -f "$data" "$data.old"; }
trap cleanup EXIT
for _ in $(seq 100); do
  (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
  sleep 0.05
done

body=""; method="GET"
if [ "$path" = "/ingest" ]; then
  method="POST"
  body='{"event_id":"e-1","timestamp":1700000000000,"service":"api","message":"hello","metadata":{"k":"v"}}'
fi
METHOD="$method" BODY="$body" taskset -c 1 wrk -t1 -c200 -d"$((seconds + 2))s" -s perf/lua/request.lua \
  "http://127.0.0.1:$port$path" >/dev/null &
load=$!
sleep 1
perf record -F 2000 -g -p "$server" -o "$data" -- sleep "$seconds" 2>/dev/null
wait "$load"
perf script -i "$data" 2>/dev/null | inferno-collapse-perf | inferno-flamegraph --title "swiftlet $method $path" > "$out"
echo "wrote $out"
