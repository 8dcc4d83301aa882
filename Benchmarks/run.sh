#!/usr/bin/env bash
# `make bench`: generates the inputs into a temporary folder (a 1,024-endpoint sysfs copy and a
# 10,000-step scenario, and the scale rows' 10,000-device topology, 5,115-function copy, 100,000 steps), runs every benchmark once with ordo-one/benchmark, and prints each row
# with its ratio to the baseline measured in the same run (scripts/report.py).
# BENCH_FILTER=REGEX runs only the matching benchmarks ('scale.*': the scale rows of issue [O]); BENCH_RESULTS=DIR keeps the percentile files;
# BENCH_RUNS=N runs everything N times and prints each row from the median run with every run's ratio
# (on a shared machine single numbers move by 10-40 %).
set -euo pipefail
cd "$(dirname "$0")"
SWIFT=${SWIFT:-swift}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
python3 scripts/make-sysfs.py "$work/sys"
python3 scripts/make-scenario.py "$work/scenario.yaml" 10000
# The scale rows (issue [O]): 1,000 and 10,000 devices, 5,115 sysfs functions, 100,000 steps.
python3 scripts/make-topology.py "$work/topology-1k.yaml" 1000
python3 scripts/make-topology.py "$work/topology-10k.yaml" 10000
python3 scripts/make-sysfs.py "$work/sys-5k" 7 16 8 5
python3 scripts/make-scenario.py "$work/scenario-100k.yaml" 100000
# The census row (issue [M]): a /proc copy of 2,000 processes with 64 dma-buf fds each.
python3 scripts/make-proc.py "$work/proc" 2000 64
export DMABUF_BENCH_SYSFS="$work/sys"
export DMABUF_BENCH_SCENARIO="$work/scenario.yaml"
export DMABUF_BENCH_TOPOLOGY_1K="$work/topology-1k.yaml"
export DMABUF_BENCH_TOPOLOGY_10K="$work/topology-10k.yaml"
export DMABUF_BENCH_SYSFS_5K="$work/sys-5k"
export DMABUF_BENCH_SCENARIO_100K="$work/scenario-100k.yaml"
export DMABUF_BENCH_PROC="$work/proc"
results=${BENCH_RESULTS:-$work/results}
runs=${BENCH_RUNS:-1}
if ! [[ "$runs" =~ ^[1-9][0-9]*$ ]]; then
  echo "run.sh: BENCH_RUNS must be a positive whole number, not '$runs'" >&2
  exit 2
fi
filter=()
if [ -n "${BENCH_FILTER:-}" ]; then filter=(--filter "$BENCH_FILTER"); fi
folders=()
for ((run = 1; run <= runs; run++)); do
  folder=$results
  if [ "$runs" -gt 1 ]; then folder=$results/run$run; echo "== run $run of $runs"; fi
  mkdir -p "$folder"
  "$SWIFT" package --allow-writing-to-directory "$folder" benchmark "${filter[@]}" \
    --format histogramPercentiles --path "$folder" --no-progress
  folders+=("$folder")
done
echo
echo "Machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), $(nproc) CPUs," \
  "$(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo); $(date -u '+%Y-%m-%d %H:%M UTC')"
python3 scripts/report.py "${folders[@]}"
