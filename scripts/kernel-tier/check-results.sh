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
missing=0
while read -r name; do
  case "$name" in ''|'#'*) continue ;; esac
  if ! grep -q "^KTEST PASS $name :: " "$log"; then
    problems+=("expected check $name did not pass")
    missing=$((missing + 1))
  fi
done < "$expected"
if [ "${#problems[@]}" -gt 0 ] || [ "$failed" -gt 0 ]; then
  for problem in "${problems[@]}"; do echo "kernel-tier: FAIL: $problem" >&2; done
  echo "kernel-tier: $passed passed, $((failed + missing)) failed"
  exit 1
fi
echo "kernel-tier: $passed passed, 0 failed"
