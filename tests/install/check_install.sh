#!/bin/sh
# Installs the build into a temporary prefix, then builds a consumer with
# find_package(petmatte) and another with pkg-config, and runs both.
# Usage: check_install.sh BUILD_DIR SOURCE_DIR
set -eu
build=$1
src=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cmake --install "$build" --prefix "$work/prefix" >/dev/null
libdir=$(ls -d "$work"/prefix/lib*/ | head -1)
test -e "$libdir/libpetmatte.so.2"
test -f "$work/prefix/include/petmatte.h"
cmake -S "$src/tests/install/consumer" -B "$work/cmake" -DCMAKE_PREFIX_PATH="$work/prefix" >/dev/null
cmake --build "$work/cmake" >/dev/null
LD_LIBRARY_PATH="$libdir" "$work/cmake/consumer"
pc=$(find "$work/prefix" -name petmatte.pc | head -1)
flags=$(PKG_CONFIG_PATH=$(dirname "$pc") pkg-config --cflags --libs petmatte)
cc -std=c99 "$src/tests/install/consumer/main.c" $flags -o "$work/pkgconfig-consumer"
LD_LIBRARY_PATH="$libdir" "$work/pkgconfig-consumer"
