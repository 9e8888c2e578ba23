#!/usr/bin/env bash
# A/B of one ISA's kernels in one process: the kernels of a base revision (A) against the working
# tree (B), with the compile flags of CMakeLists.txt. Both builds are linked into one driver that
# alternates blocks of calls (driver.cpp), which is how this project measures changes of a few
# per cent on noisy machines: separate processes of each build drifted 5-10 % apart on unchanged
# code (bench/README.md, tuning log 30).
#
#   bash bench/kernel_ab/run.sh [--base REV] [--isa avx2|avx512|scalar|neon] [--base-isa ISA] CASE...
#   CASE: "OP SHAPE [driver options]", e.g. "layer_norm 32x4096" "rms_norm 512x768 --no-weight"
#         "batch_stats 8x256x14x14" "channel_affine 256x768" (see driver.cpp)
#
# --base-isa builds A with another ISA's kernels (default: --isa), e.g. `--isa avx512 --base-isa
# avx2` times the two variants one CPU offers against each other, which is how a path that suits
# one ISA and not the other shows up. A case of equal builds (run with the base at the working
# tree's own state) shows the noise floor: its B/A stays within a few per cent of 1.
set -euo pipefail

base=HEAD
isa=avx2
base_isa=
while [[ $# -gt 0 ]]; do
  case "$1" in
    --base) base=$2; shift 2 ;;
    --isa) isa=$2; shift 2 ;;
    --base-isa) base_isa=$2; shift 2 ;;
    -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
    *) break ;;
  esac
done
[[ $# -gt 0 ]] || { echo "no case given (--help)" >&2; exit 2; }

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
base_isa=${base_isa:-$isa}
isa_flags() {
  case "$1" in
    avx2) echo "-mavx2 -mfma" ;;
    avx512) echo "-mavx512f -mavx512dq -mavx512bw -mavx512vl -mavx2 -mfma -Wno-uninitialized -Wno-maybe-uninitialized" ;;
    scalar|neon) echo "" ;;
    *) echo "unknown ISA $1" >&2; return 2 ;;
  esac
}
isa_flags "$isa" >/dev/null && isa_flags "$base_isa" >/dev/null || exit 2
cxx=${CXX:-g++}
flags="-O3 -DNDEBUG -std=c++17 -fno-math-errno -ffp-contract=off"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/a"
git -C "$root" archive "$base" cpp | tar -x -C "$work/a"

compile_variant() {  # tree namespace prefix output isa
  # shellcheck disable=SC2046  # the ISA's flags are words on purpose
  "$cxx" $flags $(isa_flags "$5") -Dsimdnorm="$2" -DVARIANT="$3" -DKAB_ISA="$5" -I"$1/cpp/src" \
    -I"$1/cpp/include" -c "$here/variant.cpp" -o "$4"
}
compile_variant "$work/a" simdnorm_kab_a kab_a_ "$work/a.o" "$base_isa" &
compile_variant "$root" simdnorm_kab_b kab_b_ "$work/b.o" "$isa" &
"$cxx" -O2 -std=c++17 -I"$root/cpp/include" -c "$here/driver.cpp" -o "$work/driver.o"
wait %1 %2
"$cxx" "$work/driver.o" "$work/a.o" "$work/b.o" -o "$work/driver"

echo "A = $base_isa kernels of $(git -C "$root" rev-parse --short "$base"), B = $isa kernels of the working tree"
failed=0
for case_args in "$@"; do  # a bad case is reported and skipped; the exit status says so at the end
  # shellcheck disable=SC2086  # a case is words on purpose
  "$work/driver" $case_args || failed=1
done
exit $failed
