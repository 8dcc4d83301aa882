#!/usr/bin/env bash
# Parses a kernel-tier guest log. Passes only when the guest printed its summary and exit status
# 0, no check failed, and every check named in EXPECTED (one name a line, # comments) passed.
# Prints the guest's check lines and a closing `kernel-tier: N passed, M failed` line.
#
# usage: check-results.sh GUEST_LOG EXPECTED
set -euo pipefail
log=$1 expected=$2
grep -E '^(KTIER|KTEST)' "$log" || true
problems=()
grep -q '^KTIER-BOOTED ' "$log" || problems+=("the guest never reached /init")
grep -q '^KTIER-INSMOD-FAILED' "$log" && problems+=("a module failed to load")
summary=$(grep -E '^KTEST-SUMMARY: [0-9]+ passed, [0-9]+ failed$' "$log" | tail -n1 || true)
[ -n "$summary" ] || problems+=("the self-test never printed its summary (crash or timeout)")
grep -q '^KTIER-EXIT 0 ' "$log" || problems+=("the self-test did not exit 0")
passed=$(grep -c '^KTEST PASS ' "$log" || true)
failed=$(grep -c '^KTEST FAIL ' "$log" || true)
while read -r name; do
  case "$name" in ''|'#'*) continue ;; esac
  # A check that failed is counted by its FAIL line; one that never ran is a problem of its own.
  if ! grep -qE "^KTEST (PASS|FAIL) $name :: " "$log"; then
    problems+=("expected check $name never ran")
  fi
done < "$expected"
if [ "${#problems[@]}" -gt 0 ] || [ "$failed" -gt 0 ]; then
  # On standard output, so the problem stands right above the closing line in a CI log tail.
  for problem in "${problems[@]}"; do echo "kernel-tier: FAIL: $problem"; done
  # Every problem counts as a failure in the closing line, so it can never read "0 failed" while
  # the tier fails: a missing expected check is one, and so is a guest that never booted or exited
  # non-zero.
  echo "kernel-tier: $passed passed, $((failed + ${#problems[@]})) failed"
  exit 1
fi
echo "kernel-tier: $passed passed, 0 failed"
