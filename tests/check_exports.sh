#!/bin/sh
# Fails when the shared library exports anything but the public pm_* functions.
set -eu
lib="$1"
bad=$(nm -D --defined-only "$lib" | awk '{print $3}' | grep -v '^pm_' | grep -v '^PETMATTE_1$' || true)
if [ -n "$bad" ]; then
  echo "unexpected exported symbols:"; echo "$bad" | head -20; exit 1
fi
count=$(nm -D --defined-only "$lib" | awk '{print $3}' | grep -c '^pm_')
internal=$(nm -D --defined-only "$lib" | awk '{print $3}' | grep -E '^pm_(shim|image|manifest|fail|now|copy|rgba|build|estimate|unix)' || true)
if [ -n "$internal" ]; then
  echo "internal helpers exported:"; echo "$internal"; exit 1
fi
echo "ok: $count pm_* symbols exported, nothing else"
