#!/usr/bin/env bash
# Memory while a 1 GiB video streams through swiftlet (perf/upload.py), to a
# local directory and to S3 (moto, installed by scripts/services.sh like the
# tests'), in one run. Uses the PostgreSQL and Redis that are running, or
# starts private ones. Records the report in perf/RESULTS.md (newest first).
#
#   perf/run-upload.sh                        # about 2 minutes
#   PERF_UPLOAD_MIB=1024 perf/run-upload.sh   # the file size (default shown)
#   PERF_NO_RECORD=1 perf/run-upload.sh       # print only
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/services.sh
source perf/stores.sh

bench_stores
ensure_moto
cargo build --release --locked --bin swiftlet
bench_database swiftlet_upload_bench

settings="PERF_UPLOAD_MIB=${PERF_UPLOAD_MIB:-1024}"
run_report "Video upload memory" "$settings" perf/run-upload.sh perf/upload.py src protocol Cargo.toml Cargo.lock perf/upload.py
