#!/bin/sh
# The GPU measurements of docs/benchmarks.md, on a machine with a CUDA PyTorch 2.x
# (python3 with torch) and no internet. Usage, from the repository root:
#   sh tools/gpu/run_bench.sh MODELS_DIR OUT_DIR
# MODELS_DIR must hold isnet-general.pt (made here by tools/setup_default_model.py and
# copied over); inspyrenet-swinb-1024-random.pt is exported there if missing.
# jansson/libexif and the stb headers come from DEPS (default .deps: unpacked Debian
# packages under .deps/root/usr and stb_image*.h under .deps/stb).
set -eu
models=$1
out=$2
deps=${DEPS:-$PWD/.deps}
mkdir -p "$out"
export PYTHONUNBUFFERED=1
tp=$(python3 -c 'import torch; print(torch.utils.cmake_prefix_path)')
cmake -S . -B build-gpu -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$tp;$deps/root/usr" \
  -DPETMATTE_STB_INCLUDE_DIR="$deps/stb" -DPETMATTE_BUILD_TESTS=OFF > "$out/cmake.log"
cmake --build build-gpu -j "$(nproc)" >> "$out/cmake.log"
export LD_LIBRARY_PATH="$deps/root/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
gcc -std=c11 -O2 -D_POSIX_C_SOURCE=200809L -Iinclude tools/gpu/variants.c -Lbuild-gpu/lib -lpetmatte \
  -lpthread -Wl,-rpath,"$PWD/build-gpu/lib" -o build-gpu/variants
swin="$models/inspyrenet-swinb-1024-random.pt"
[ -f "$swin" ] || python3 tools/export_inspyrenet.py --random-weights --seed 0 --size 1024 --out "$swin"
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader > "$out/gpu.txt"
for m in "$models/isnet-general.pt" "$swin"; do
  name=$(basename "$m" .pt)
  # precision (1 fp32, 2 fp16, 3 bf16), cuda_graph, channels_last, jit_optimize
  for cfg in "1 -1 0 0" "2 -1 0 0" "2 -1 1 0" "3 -1 0 0" "2 0 0 0" "2 0 0 1"; do
    set -- $cfg
    build-gpu/variants "$m" cuda:0 "$1" "$2" "$3" "$4" >> "$out/variants-$name.txt" 2>&1 || true
  done
  python3 tools/bench.py --bench build-gpu/examples/petmatte-bench --model "$m" --device cuda:0 \
    --precision fp32,fp16 --runs 100 --cold-repeats 3 --concurrency 1,2,4,8 \
    --out "$out/bench-$name.json" > "$out/bench-$name.txt" 2>&1
done
PYTHONPATH=bindings/python PETMATTE_LIBRARY="$PWD/build-gpu/lib/libpetmatte.so" \
  python3 tools/gpu/precision_delta.py "$models/isnet-general.pt" > "$out/precision-delta.txt" 2>&1
