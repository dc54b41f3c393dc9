#!/bin/sh
# Installs the Debian 12 packages libpetmatte builds, tests and runs with (as root).
set -eu
export DEBIAN_FRONTEND=noninteractive
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends \
  build-essential cmake pkg-config git ca-certificates \
  libtorch-dev python3-torch libstb-dev libjansson-dev libexif-dev libturbojpeg0-dev zlib1g-dev \
  libdeflate-dev libwebp-dev \
  libcmocka-dev abigail-tools clang libclang-rt-14-dev \
  python3 python3-numpy python3-pil python3-onnx python3-pytest python3-skimage \
  libmicrohttpd-dev chromium python3-websocket haproxy \
  python3-yaml python3-kubernetes \
  libopenblas0-pthread \
  libavformat-dev libavcodec-dev libswscale-dev libswresample-dev libavutil-dev python3-av \
  python3-torchvision
# python3-skimage: its data/ folder holds the cat photo (chelsea.png) the quick start
# and the default model's test cut out (python3-skimage-lib alone has no data/).
# libdeflate-dev, zlib1g-dev: PNG output (one libdeflate call, or zlib bands on several
# threads); libwebp-dev: WebP output.
# haproxy: tests/deploy runs petmatte-server processes behind examples/haproxy/petmatte.cfg.
# python3-yaml, python3-kubernetes: tests/deploy loads examples/deploy/k8s.yaml and
# deserializes it into the Kubernetes client's models.
# libopenblas0-pthread: Debian's torch calls the system BLAS (libblas.so.3); without it
# that is the reference BLAS, about 9x slower for the matrix products in Swin layers.
# libavformat-dev, libavcodec-dev, libswscale-dev, libswresample-dev, libavutil-dev:
# video in the CLI (decoding, libvpx-vp9/prores_ks/libx264 encoding, audio re-encoding).
# python3-av: the CLI video tests make their clips and decode the outputs with it.
# python3-torchvision: the reference the BiRefNet test checks libpetmatte's deformable
# convolution against (torchvision.ops.deform_conv2d).
# npm fetches the default model's weights from the npm registry.
command -v npm >/dev/null 2>&1 || $SUDO apt-get install -y -q --no-install-recommends npm
