#!/bin/sh
# Builds the libFuzzer targets (clang, -fsanitize=fuzzer,address,undefined) into
# ./build-fuzz, generates the seed corpus and runs every target for a bounded time.
#   sh scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]     (default 45 s, all targets)
#   sh scripts/fuzz.sh ci [TARGET...]
# "ci" is what the test command runs: a fixed number of executions per target with a
# fixed seed, from the seeds alone (a fresh corpus each time), so every machine runs
# the same inputs and a CI result can be reproduced here. A time budget would not be:
# the inputs explored would depend on the machine's speed and on earlier corpora.
# Exit status: non-zero when a target found a crash, leak, timeout or UB; the input
# is kept as build-fuzz/fuzz-artifacts/TARGET-crash-* (reproduce: the target binary
# with that file as its only argument). The corpus grows in build-fuzz/fuzz-corpus
# and is reused by the next run. Long runs (docs/fuzzing.md):
#   sh scripts/fuzz.sh 3600 fuzz_image_load
set -eu
cd "$(dirname "$0")/.."
secs=${1:-45}
[ $# -gt 0 ] && shift
ci=0
[ "$secs" = ci ] && ci=1
targets=${*:-fuzz_image_load fuzz_remove_bg fuzz_manifest}
b=build-fuzz
jobs=$(nproc 2>/dev/null || echo 2)

command -v clang >/dev/null 2>&1 || { echo "fuzz.sh: clang is missing (apt-get install clang libclang-rt-14-dev)"; exit 1; }
t0=$(date +%s)
# -O1 with asserts on: stb_image's internal asserts are findings too.
cmake -S . -B "$b" -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_BUILD_TYPE=Debug \
  -DCMAKE_C_FLAGS_DEBUG="-O1 -g" -DCMAKE_CXX_FLAGS_DEBUG="-O1 -g" \
  -DPETMATTE_FUZZ=ON -DPETMATTE_BUILD_TESTS=OFF -DPETMATTE_BUILD_EXAMPLES=OFF >/dev/null
cmake --build "$b" -j "$jobs" --target make_fuzz_seeds $targets
t1=$(date +%s)

models=$(pwd)/$b/tests/models
[ -f "$models/red32.pt" ] || /usr/bin/python3 tests/models/make_test_models.py "$models" >/dev/null
rm -rf "$b/fuzz-seeds"
"$b/tests/fuzz/make_fuzz_seeds" "$b/fuzz-seeds"
mkdir -p "$b/fuzz-artifacts" "$b/fuzz-logs"

export PM_TEST_MODELS="$models"
# UBSan: stop at the first report, with a stack. ASan: leaks are findings, but the
# fuzzer checks them itself after each input (-detect_leaks=1).
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1"
export ASAN_OPTIONS="detect_leaks=1:allocator_may_return_null=1"
export LSAN_OPTIONS="suppressions=$(pwd)/tests/sanitizers/lsan.supp:print_suppressions=0"
status=0
for t in $targets; do
  case $t in
    fuzz_image_load) seeds=image; dict=; ci_runs=100000 ;;
    fuzz_remove_bg) seeds=remove_bg; dict=; ci_runs=8000 ;;
    fuzz_manifest) seeds=manifest; dict="-dict=tests/fuzz/manifest.dict"; ci_runs=3000000 ;;
    *) echo "fuzz.sh: unknown target $t"; exit 2 ;;
  esac
  if [ $ci -eq 1 ]; then
    corpus=$b/fuzz-ci-corpus/$t
    rm -rf "$corpus"
    budget="-runs=$ci_runs -seed=1"
  else
    corpus=$b/fuzz-corpus/$t
    budget="-max_total_time=$secs -seed=${FUZZ_SEED:-1}"
  fi
  mkdir -p "$corpus"
  log=$b/fuzz-logs/$t.log
  rm -f "$b/fuzz-artifacts/$t-"* # a finding of an earlier run is a regression test by now
  set +e
  # -rss_limit_mb: torch under ASan alone is ~1 GB; -timeout: a hang is a finding.
  # FUZZ_SEED: long runs that should explore differently from the last one.
  t_start=$(date +%s)
  # shellcheck disable=SC2086 # $budget and $dict are lists of options
  "$b/tests/fuzz/$t" $budget -timeout=10 -rss_limit_mb=3072 -max_len=65536 \
    -print_final_stats=1 -artifact_prefix="$b/fuzz-artifacts/$t-" $dict \
    "$corpus" "$b/fuzz-seeds/$seeds" >"$log" 2>&1
  rc=$?
  set -e
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -n 1)
  n=$(ls "$corpus" | wc -l)
  took=$(( $(date +%s) - t_start ))
  [ "$took" -gt 0 ] || took=1
  if [ $rc -eq 0 ]; then
    echo "$t: ${runs:-?} runs in ${took} s ($(( ${runs:-0} / took )) exec/s), $cov, corpus $n files: no findings"
  else
    status=1
    echo "$t: FAILED (exit $rc) after ${runs:-?} runs; last lines of $log:"
    tail -n 40 "$log"
    ls "$b"/fuzz-artifacts/"$t"-* 2>/dev/null || true
  fi
done
echo "fuzz.sh: build $((t1 - t0)) s, total $(( $(date +%s) - t0 )) s"
exit $status
