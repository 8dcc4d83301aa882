#!/bin/sh
# Issue [N] item 5: the public surface per module (before/after a change: run it on two checkouts).
# Counts public (and open) declarations per module: every line of a Swift file under Sources/ or
# Fuzz/Targets whose declaration starts with `public` or `open` (after attributes).
cd "${1:-.}" || exit 1
for dir in Sources/* Fuzz/Targets; do
  [ -d "$dir" ] || continue
  n=$(find "$dir" -name '*.swift' -print0 | xargs -0 cat 2>/dev/null | grep -cE '^\s*(@[A-Za-z_]+(\([^)]*\))?\s+)*(public|open)\s+(static\s+|final\s+|override\s+|nonisolated\s+|mutating\s+|indirect\s+|convenience\s+|required\s+)*(func|var|let|init|struct|enum|class|protocol|typealias|case|subscript|actor|extension|macro)\b')
  [ "$n" -gt 0 ] && printf '%-24s %5d\n' "$(basename "$dir")" "$n"
done
