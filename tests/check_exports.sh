#!/bin/sh
# Fails unless the shared library exports exactly the functions the public header
# declares with PM_API: nothing else (no internal pm_* helper, no torch), and none
# missing. Usage: check_exports.sh LIBRARY HEADER
set -eu
lib="$1"
header="$2"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
nm -D --defined-only "$lib" | awk '{print $3}' | sed 's/@.*//' | grep -v '^PETMATTE_1$' | sort -u >"$work/exported"
# "PM_API const char *pm_tune_name(pm_tune key);" -> pm_tune_name
grep -o '^PM_API[^(;]*(' "$header" | sed 's/($//; s/.*[ *]//' | sort -u >"$work/declared"
if [ ! -s "$work/declared" ]; then
  echo "no PM_API functions found in $header"; exit 1
fi
extra=$(comm -23 "$work/exported" "$work/declared")
missing=$(comm -13 "$work/exported" "$work/declared")
if [ -n "$extra" ]; then
  echo "exported but not declared in $(basename "$header"):"; echo "$extra" | head -20
fi
if [ -n "$missing" ]; then
  echo "declared in $(basename "$header") but not exported:"; echo "$missing"
fi
[ -z "$extra" ] && [ -z "$missing" ] || exit 1
echo "ok: the $(wc -l <"$work/declared") functions of $(basename "$header") are exported, nothing else"
