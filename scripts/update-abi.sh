#!/bin/sh
# Regenerates the ABI baseline tests/abi/petmatte.abi from build/lib/libpetmatte.so
# (a RelWithDebInfo build: abidw reads its DWARF). Commit it with the API change.
set -eu
cd "$(dirname "$0")/.."
abidw --headers-dir include --no-corpus-path --drop-private-types build/lib/libpetmatte.so \
  | sed -e "s|path='$(pwd)/|path='|g" -e "s|path='\(\.\./\)*|path='|g" > tests/abi/petmatte.abi
echo "wrote tests/abi/petmatte.abi"
