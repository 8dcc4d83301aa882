#!/usr/bin/env bash
# `make bench`: generates the inputs into a temporary folder (a 1,024-endpoint sysfs copy and a
# 10,000-step scenario), runs every benchmark once with ordo-one/benchmark, and prints each row
# with its ratio to the baseline measured in the same run (scripts/report.py).
# BENCH_FILTER=REGEX runs only the matching benchmarks; BENCH_RESULTS=DIR keeps the percentile files.
set -euo pipefail
cd "$(dirname "$0")"
SWIFT=${SWIFT:-swift}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
python3 scripts/make-sysfs.py "$work/sys"
python3 scripts/make-scenario.py "$work/scenario.yaml" 10000
export DMABUF_BENCH_SYSFS="$work/sys"
export DMABUF_BENCH_SCENARIO="$work/scenario.yaml"
results=${BENCH_RESULTS:-$work/results}
mkdir -p "$results"
filter=()
if [ -n "${BENCH_FILTER:-}" ]; then filter=(--filter "$BENCH_FILTER"); fi
"$SWIFT" package --allow-writing-to-directory "$results" benchmark "${filter[@]}" \
  --format histogramPercentiles --path "$results" --no-progress
echo
echo "Machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), $(nproc) CPUs," \
  "$(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo); $(date -u '+%Y-%m-%d %H:%M UTC')"
python3 scripts/report.py "$results"
