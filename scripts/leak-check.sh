#!/usr/bin/env bash
# `make leak-check`: `dmabuf demo` (the six stories) under LeakSanitizer (an address-sanitizer build,
# .build-asan) and under valgrind (a release build, .build-valgrind). Either finding a leak fails.
# valgrind counts only "definitely lost" blocks as errors: the Swift runtime keeps its metadata
# caches reachable until exit on purpose.
set -euo pipefail
cd "$(dirname "$0")/.."
SWIFT=${SWIFT:-swift}

echo "== LeakSanitizer: dmabuf demo (address sanitizer build)"
$SWIFT build --scratch-path .build-asan --sanitize=address --product dmabuf
ASAN_OPTIONS=detect_leaks=1:exitcode=23 "$($SWIFT build --scratch-path .build-asan --sanitize=address --show-bin-path)/dmabuf" demo >/dev/null
echo "LeakSanitizer: no leak"

echo "== valgrind: dmabuf demo (release build)"
$SWIFT build -c release --scratch-path .build-valgrind --product dmabuf
log=$(mktemp)
# Debian 12's valgrind 3.19 cannot read the DWARF 5 debug info of Swift 6.3 binaries ("unhandled
# dwarf2 abbrev form code 0x25 … Giving up"), so it runs on a stripped copy.
stripped=$(mktemp)
strip -o "$stripped" "$($SWIFT build -c release --scratch-path .build-valgrind --show-bin-path)/dmabuf"
status=0
valgrind --leak-check=full --show-leak-kinds=definite --errors-for-leak-kinds=definite --error-exitcode=1 \
    "$stripped" demo >/dev/null 2>"$log" || status=$?
rm -f "$stripped"
grep -E "definitely lost|indirectly lost|possibly lost|still reachable|ERROR SUMMARY" "$log" | sed 's/^==[0-9]*== //'
rm -f "$log"
exit $status
