#!/usr/bin/env bash
# What jemalloc's settings buy in memory: for each MALLOC_CONF given (none =
# the defaults), a fresh swiftlet with one worker, its anonymous RSS idle,
# then its peak RSS (VmHWM) and anonymous RSS after wrk -c500 on /plaintext
# for 3 s. Prints one line per setting; needs the release build and wrk.
#
#   perf/jemalloc-settings.sh "" narenas:1 tcache:false "dirty_decay_ms:1000,muzzy_decay_ms:0"
set -euo pipefail
cd "$(dirname "$0")/.."
port=18097
for conf in "$@"; do
  env -i PATH="$PATH" _RJEM_MALLOC_CONF="$conf" DATABASE_URL= REDIS_URL= SWIFTLET_DEV=true \
    JWT_SECRET=jemalloc-settings-only-secret-0123456789 \
    target/release/swiftlet --listen 127.0.0.1:$port --workers 1 --log warn >/dev/null 2>&1 &
  pid=$!
  for _ in $(seq 100); do curl -sf -o /dev/null http://127.0.0.1:$port/plaintext && break; sleep 0.02; done
  idle=$(awk '/RssAnon/{print $2}' /proc/$pid/status)
  rps=$(wrk -t 2 -c 500 -d 3s http://127.0.0.1:$port/plaintext | awk '/Requests\/sec/{print $2}')
  peak=$(awk '/VmHWM/{print $2}' /proc/$pid/status)
  after=$(awk '/RssAnon/{print $2}' /proc/$pid/status)
  kill "$pid"; wait "$pid" 2>/dev/null || true
  echo "| \`${conf:-defaults}\` | ${idle} KiB | ${peak} KiB | ${after} KiB | ${rps} |"
done
