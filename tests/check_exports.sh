#!/bin/sh
# Fails when the shared library exports anything but the public pm_* functions.
set -eu
lib="$1"
bad=$(nm -D --defined-only "$lib" | awk '{print $3}' | grep -v '^pm_' | grep -v '^PETMATTE_1$' || true)
if [ -n "$bad" ]; then
  echo "unexpected exported symbols:"; echo "$bad" | head -20; exit 1
fi
count=$(nm -D --defined-only "$lib" | awk '{print $3}' | grep -c '^pm_')
internal=$(nm -D --defined-only "$lib" | awk '{print $3}' | grep -E '^pm_(shim_|image_load|manifest_|fail|now_ms|copy_sized|rgba_|build_output|estimate_|unix_now|stb_|jpeg_|img_|fg_)' || true)
if [ -n "$internal" ]; then
  echo "internal helpers exported:"; echo "$internal"; exit 1
fi
echo "ok: $count pm_* symbols exported, nothing else"
