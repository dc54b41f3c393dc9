#!/bin/sh
# Shows that tests/abi/check_abi.sh fails on incompatible changes, without the
# committed baseline: builds a stub libpetmatte.so (every PM_API function of the
# header, empty bodies) from the real header and from edited copies, takes abidw of
# the original, and requires check_abi.sh to pass for the original and to fail for
# each edited copy.
# Usage: abi_break_detected.sh CC path/to/petmatte.h WORKDIR
set -eu
cc=$1
header=$2
work=$3
here=$(cd "$(dirname "$0")" && pwd)
rm -rf "$work"
mkdir -p "$work"

# stubs HEADER_DIR OUT.so: a shared library defining every PM_API declaration of
# HEADER_DIR/petmatte.h with an empty body (void) or "return 0".
stubs() {
  awk '
    /^PM_API / { decl = ""; collecting = 1 }
    collecting { decl = decl " " $0 }
    collecting && /;/ {
      collecting = 0
      sub(/;.*/, "", decl)
      body = (decl ~ /^ *PM_API void /) ? "{}" : "{ return 0; }"
      print decl " " body
    }' "$1/petmatte.h" > "$1/stubs.c.body"
  { echo '#include "petmatte.h"'; cat "$1/stubs.c.body"; } > "$1/stubs.c"
  "$cc" -g -O0 -shared -fPIC -fvisibility=hidden -I"$1" -o "$2" "$1/stubs.c"
}

mkdir -p "$work/orig"
cp "$header" "$work/orig/petmatte.h"
stubs "$work/orig" "$work/orig/libpetmatte.so"
n=$(grep -c 'PM_API' "$work/orig/stubs.c") || true
[ "$n" -ge 15 ] || { echo "only $n functions found in the header: the stub generator is broken"; exit 1; }
abidw --headers-dir "$work/orig" --no-corpus-path --drop-private-types "$work/orig/libpetmatte.so" > "$work/orig.abi"

if ! sh "$here/check_abi.sh" "$work/orig.abi" "$work/orig/libpetmatte.so" "$work/orig" > "$work/orig.log" 2>&1; then
  echo "FAIL: check_abi.sh rejects an unchanged library:"; cat "$work/orig.log"; exit 1
fi
echo "ok: unchanged library passes"

status=0
# break NAME SED-EXPRESSION: edit a copy of the header, rebuild, expect a failure.
break_it() {
  name=$1
  dir=$work/$name
  mkdir -p "$dir"
  sed "$2" "$header" > "$dir/petmatte.h"
  if cmp -s "$header" "$dir/petmatte.h"; then
    echo "FAIL: $name: the edit changed nothing (header moved on?)"; status=1; return
  fi
  stubs "$dir" "$dir/libpetmatte.so"
  if sh "$here/check_abi.sh" "$work/orig.abi" "$dir/libpetmatte.so" "$dir" > "$dir/check.log" 2>&1; then
    echo "FAIL: $name: check_abi.sh accepted it:"; cat "$dir/check.log"; status=1
  else
    echo "ok: $name is rejected ($(grep -m1 -o 'INCOMPATIBLE ABI change\|ABI change' "$dir/check.log"))"
  fi
}
# pm_image: `size` moved in front of `data` (two fields swap offsets).
break_it reordered_struct_field '/^    const void \*data;$/{N;s/\(.*\)\n\(.*\)/\2\n\1/}'
# pm_cuda_device_count(int *) becomes (long *).
break_it changed_parameter_type 's/pm_cuda_device_count(int \*count)/pm_cuda_device_count(long *count)/'
# pm_warmup loses its function (removed from the ABI).
break_it removed_function '/^PM_API pm_code pm_warmup_start(pm_ctx \*ctx);$/d'
# A public enum value changes.
break_it changed_enum_value 's/PM_ERR_DECODE = 6,/PM_ERR_DECODE = 60,/'
exit $status
