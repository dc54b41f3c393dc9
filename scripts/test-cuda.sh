#!/bin/sh
# The whole test suite on a CUDA machine: builds against the libtorch inside a CUDA
# PyTorch wheel (python3 -c 'import torch; print(torch.utils.cmake_prefix_path)') and
# runs ctest with the C tests' contexts on "auto" (PM_TEST_DEVICE), which is the GPU.
# Libraries the machine lacks come from DEPS (default .deps): Debian packages unpacked
# under DEPS/root (libjansson, libexif, libturbojpeg, libdeflate, libwebp, zlib and
# libcmocka, each with its -dev), the stb headers under DEPS/stb, and, if python3 has
# no pytest, Debian's pure-Python pytest under DEPS/py.
# Usage: sh scripts/test-cuda.sh [BUILD_DIR] [ctest args...]
set -eu
cd "$(dirname "$0")/.."
build=${1:-build-cuda}
[ $# -gt 0 ] && shift
deps=${DEPS:-$PWD/.deps}
tp=$(python3 -c 'import torch; print(torch.utils.cmake_prefix_path)')
export LD_LIBRARY_PATH="$deps/root/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
python3 -c 'import pytest' 2>/dev/null || export PYTHONPATH="$deps/py${PYTHONPATH:+:$PYTHONPATH}"
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_PREFIX_PATH="$tp;$deps/root/usr" \
  -DPETMATTE_STB_INCLUDE_DIR="$deps/stb" -DPETMATTE_TEST_PYTHON="$(command -v python3)" >/dev/null
cmake --build "$build" -j "$(nproc)" >/dev/null
PM_TEST_DEVICE=auto ctest --test-dir "$build" --output-on-failure -j "$(nproc)" --timeout 900 "$@"
