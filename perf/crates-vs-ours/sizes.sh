#!/usr/bin/env bash
# Builds the size probes (release, LTO, stripped, like the shipped binary)
# and prints what each pair's code adds to a binary that uses only it.
set -euo pipefail
cd "$(dirname "$0")"
cargo build --release --quiet --bins
dir=target/release
base=$(stat -c %s "$dir/size_none")
echo "| format | ours adds, bytes | crate adds, bytes |"
echo "|---|---:|---:|"
for pair in http_date rfc3339_write rfc3339_read range sniff; do
  ours=$(( $(stat -c %s "$dir/size_${pair}_ours") - base ))
  theirs=$(( $(stat -c %s "$dir/size_${pair}_crate") - base ))
  echo "| $pair | $ours | $theirs |"
done
