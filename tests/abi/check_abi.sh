#!/bin/sh
# Compares the built library's ABI with the committed baseline (abidw XML).
# Fails on any change to what the baseline promises: a removed or changed function,
# a changed struct layout, enum or typedef. Adding fields at the end of a sized struct
# or adding functions is a deliberate act: regenerate the baseline with
# scripts/update-abi.sh in the same commit, so the change is reviewed as a diff.
# Usage: check_abi.sh BASELINE.abi LIBRARY.so HEADERS_DIR
set -u
baseline=$1
lib=$2
headers=$3
report=$(abidiff --headers-dir2 "$headers" --no-show-locs "$baseline" "$lib" 2>&1)
rc=$?
if [ $((rc & 3)) -ne 0 ]; then
  echo "abidiff could not compare (status $rc):"; echo "$report"; exit 1
fi
if [ $((rc & 8)) -ne 0 ]; then
  echo "INCOMPATIBLE ABI change against $baseline:"; echo "$report"; exit 1
fi
if [ $((rc & 4)) -ne 0 ]; then
  echo "ABI change against $baseline (regenerate it with scripts/update-abi.sh if intended):"
  echo "$report"; exit 1
fi
echo "ABI matches $baseline"
