#!/usr/bin/env bash
# Checks console.sed on console text seen in real runs (run.sh calls this before booting anything):
# a marker glued to the end of a SeaBIOS line by a dropped newline, a bare carriage return inside a
# line, CRLF endings and a screen-clearing escape. Exit 1 with the difference when a case breaks.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
input=$(printf 'SeaBIOS (version 1.16.2)\r\nBooting from ROM..KTIER-BOOTED 7.3.4 uptime 3.68\r\nBooting from ROM...\rKTIER-BOOTED 6.12 uptime 2.0\r\n\x1b[2J\x1bcKTEST PASS vfio.bind :: ok\r\nxKTEST FAIL a :: b\nKTEST-SUMMARY: 1 passed, 1 failed\nKTIER-EXIT 0 uptime 5.03\n')
want=$(printf 'SeaBIOS (version 1.16.2)\nBooting from ROM..\nKTIER-BOOTED 7.3.4 uptime 3.68\nBooting from ROM...\nKTIER-BOOTED 6.12 uptime 2.0\nKTEST PASS vfio.bind :: ok\nx\nKTEST FAIL a :: b\nKTEST-SUMMARY: 1 passed, 1 failed\nKTIER-EXIT 0 uptime 5.03\n')
got=$(printf '%s\n' "$input" | sed -f "$here/console.sed")
if [ "$got" != "$want" ]; then
  echo "kernel-tier: console.sed breaks a console line:" >&2
  diff <(printf '%s\n' "$want") <(printf '%s\n' "$got") >&2 || true
  exit 1
fi
