#!/bin/sh
# Runs every test: builds, makes the default model (idempotent, verified), then ctest.
set -eu
cd "$(dirname "$0")/.."
sh scripts/build.sh
/usr/bin/python3 tools/setup_default_model.py
ctest --test-dir build --output-on-failure -j 2 --timeout 900
# Reliability (docs/reliability.md, docs/fuzzing.md): the C tests under ASan+UBSan and
# the threaded ones under TSan, then each fuzzer for a fixed number of inputs (fuzz.sh ci).
sh scripts/sanitize.sh
sh scripts/fuzz.sh ci
