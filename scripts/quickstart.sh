#!/bin/sh
# Fresh Debian 12 to a cut-out cat: installs packages, builds, makes the default model
# (IS-Net from the npm registry, hashes checked) and removes the background of a photo.
set -eu
cd "$(dirname "$0")/.."
sh scripts/install-deps.sh
sh scripts/build.sh
/usr/bin/python3 tools/setup_default_model.py
mkdir -p out
photo=/usr/lib/python3/dist-packages/skimage/data/chelsea.png
./build/examples/petmatte remove "$photo" -o out/chelsea-cutout.png --device cpu
echo "cut-out written to $(pwd)/out/chelsea-cutout.png"
