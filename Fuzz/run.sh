#!/usr/bin/env bash
# `make fuzz`: builds the libFuzzer executables of Fuzz/ (swiftc -sanitize=fuzzer,address) and runs
# each target for a fixed count of inputs, from its committed seeds (Fuzz/corpus/<target>) and the
# regression inputs (Fuzz/regressions/<target>). New coverage goes to a scratch corpus under
# Fuzz/.build/corpus (an optimised build: the fuzzers run many times faster than debug); a crash leaves its input in Fuzz/.build/crashes/<target>/ and fails the run.
# Copy such an input to Fuzz/regressions/<target>/ when you fix it: `make test` replays it.
#
#   FUZZ_RUNS=100000 make fuzz          every target for that many inputs
#   FUZZ_TARGETS="fdinfo sysfs" make fuzz
#   FUZZ_SECONDS=600 make fuzz          every target for that long instead (a plateau round)
#
# Each row reports coverage as libFuzzer counts it (edges `cov`, features `ft`) once the seeds are
# loaded and at the end, and the execution that found the last new input: a target whose last new
# input came early in a long run has plateaued. A crash, a timeout (-timeout, seconds per input) and
# running out of memory (-rss_limit_mb) all stop the target with an artifact and fail the run.
set -euo pipefail
cd "$(dirname "$0")"
SWIFT=${SWIFT:-swift}
TARGETS=${FUZZ_TARGETS:-"config-space fdinfo topology-yaml scenario-yaml sysfs"}

# Runs per target: the fast parsers get more, the ones that touch the file system or run the
# simulator fewer, so that the whole run takes about ten minutes on two cores.
runs_for() {
    if [[ -n "${FUZZ_RUNS:-}" ]]; then echo "$FUZZ_RUNS"; return; fi
    case "$1" in
        config-space) echo 1000000 ;;
        fdinfo) echo 1000000 ;;
        topology-yaml) echo 50000 ;;
        scenario-yaml) echo 20000 ;;
        sysfs) echo 20000 ;;
    esac
}

$SWIFT build --scratch-path .build -c release -Xswiftc -sanitize=fuzzer,address -Xswiftc -parse-as-library 2>&1 \
    | grep -v "Cannot export local symbol" || true
BIN=$($SWIFT build --scratch-path .build -c release --show-bin-path)

failed=0
printf '%-14s %10s %8s %8s %8s %14s %14s %10s\n' target executions seconds corpus crashes "cov/ft seeds" "cov/ft end" "last new"
for target in $TARGETS; do
    corpus=.build/corpus/$target
    crashes=.build/crashes/$target
    mkdir -p "$corpus" "$crashes" "regressions/$target"
    if [[ -n "${FUZZ_SECONDS:-}" ]]; then
        limit=(-max_total_time="$FUZZ_SECONDS")
    else
        limit=(-runs="$(runs_for "$target")")
    fi
    log=.build/fuzz-$target.log
    start=$(date +%s)
    set +e
    dict=()
    case "$target" in
        sysfs) dict=(-dict=dict/sysfs.dict) ;;
        topology-yaml | scenario-yaml) dict=(-dict=dict/yaml.dict) ;;
    esac
    # The Swift runtime's backtracer would take a crash from libFuzzer (and wait for a terminal).
    SWIFT_BACKTRACE=enable=no ASAN_OPTIONS=detect_leaks=0 "$BIN/fuzz-$target" "${dict[@]}" "${limit[@]}" -max_len=16384 -timeout=20 -rss_limit_mb=4096 \
        -print_final_stats=1 -artifact_prefix="$crashes/" "$corpus" "corpus/$target" "regressions/$target" >"$log" 2>&1
    status=$?
    set -e
    seconds=$(( $(date +%s) - start ))
    executions=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo "?")
    # libFuzzer names what stops a run crash-, timeout-, oom- or leak-; a slow-unit- file is an input
    # that took over 10 s once (-report_slow_units), kept to look at, not a failure.
    found=$(find "$crashes" -type f \( -name 'crash-*' -o -name 'timeout-*' -o -name 'oom-*' -o -name 'leak-*' \) | wc -l)
    slow=$(find "$crashes" -type f -name 'slow-unit-*' | wc -l)
    [[ $slow -eq 0 ]] || echo "  fuzz-$target: $slow input(s) over 10 s once, in $crashes (slow-unit-*)" >&2
    # 'INITED cov: 812 ft: 2904', '#40213 NEW cov: 830 ft: 3101 ...', the last status line.
    inited=$(grep -o 'INITED cov: [0-9]* ft: [0-9]*' "$log" | head -n1 | awk '{print $3 "/" $5}')
    final=$(grep -oE '^#[0-9]+[[:space:]]+[A-Za-z]+[[:space:]]+cov: [0-9]+ ft: [0-9]+' "$log" | tail -n1 | awk '{print $4 "/" $6}')
    last_new=$(grep -oE '^#[0-9]+[[:space:]]+NEW' "$log" | tail -n1 | grep -oE '^#[0-9]+' | tr -d '#')
    printf '%-14s %10s %8s %8s %8s %14s %14s %10s\n' "$target" "$executions" "$seconds" "$(ls "$corpus" | wc -l)" "$found" \
        "${inited:-?}" "${final:-?}" "${last_new:-none}"
    if [[ $status -ne 0 ]]; then
        failed=1
        echo "  fuzz-$target stopped with status $status; the end of $log:" >&2
        tail -25 "$log" >&2
    fi
done
exit $failed
