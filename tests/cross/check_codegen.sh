#!/usr/bin/env bash
# Checks the kernel objects for instructions the compiler has silently dropped or moved before:
# GCC 12 once compiled every prefetch of the LayerNorm row loops to nothing (x86-64 and AArch64),
# and once outlined write_run (bench/README.md tuning log 19). Both cost 30-80 % on streamed rows
# and no numerical test can see them, so this reads the disassembly.
# Usage: tests/cross/check_codegen.sh BUILD_DIR [OBJDUMP]
#   BUILD_DIR: a CMake build of the core (x86-64: avx2 / avx512 objects; AArch64: neon);
#   OBJDUMP: the binutils objdump for that target (default: objdump). Exits 1 on a finding.
set -euo pipefail

build="${1:?usage: check_codegen.sh BUILD_DIR [OBJDUMP]}"
objdump="${2:-objdump}"
failures=0

# Prints "<count> <function>" for every function of object $1 that contains instruction $2.
count_in_functions() {
    "${objdump}" -d -C --no-show-raw-insn "$1" |
        awk -v insn="$2" '/^[0-9a-f]+ <.*>:$/ { name = $0 } $0 ~ "\t" insn "[ \t]" { n[name]++ }
                          END { for (f in n) print n[f], f }'
}

# Fails unless some function of object $1 whose name matches regex $3 contains instruction $2.
# The listing is taken whole before grep reads it: `... | grep -q` under pipefail fails at random
# when grep exits on its first match while awk is still writing (SIGPIPE).
require() {
    local object="$1" insn="$2" pattern="$3" functions
    functions="$(count_in_functions "${object}" "${insn}")"
    if ! grep -Eq "${pattern}" <<<"${functions}"; then
        echo "FAIL ${object##*/cpp/src/}: no ${insn} in a function matching ${pattern}"
        failures=$((failures + 1))
    fi
}

checked=0
for isa in avx2 avx512 neon; do
    object="$(find "${build}" -path "*cpp/src/${isa}/kernels.cpp.o" -print -quit)"
    [ -n "${object}" ] || continue
    checked=$((checked + 1))
    prefetch=prefetcht0
    [ "${isa}" = neon ] && prefetch=prfm
    symbols="$("${objdump}" -t -C "${object}")"
    for t in float double; do
        # The row prefetch of streamed LayerNorm rows (prefetch_row_ahead): in layer_norm_rows, or
        # in the kernel itself when layer_norm_rows was inlined there (GCC for AArch64 float64).
        rows_function="layer_norm_rows<${t}>"
        grep -q "layer_norm_rows<${t}>" <<<"${symbols}" || rows_function="::layer_norm<${t}>\\("
        require "${object}" "${prefetch}" "${rows_function}"
        # BatchNorm training's next-channel prefetch.
        require "${object}" "${prefetch}" "normalize_channel_prefetching_next<${t}>"
        # x86: streamed partial vectors as non-temporal element stores (store_stream_partial).
        if [ "${isa}" != neon ]; then
            require "${object}" movnti "normalize_row<${t}, "
        fi
    done
    if grep -q "write_run" <<<"${symbols}"; then
        echo "FAIL ${isa}: write_run was compiled as a function of its own (it must be inlined)"
        failures=$((failures + 1))
    fi
done

if [ "${checked}" -eq 0 ]; then
    echo "check_codegen: no SIMD kernel objects under ${build}: nothing checked" >&2
    exit 1
fi
if [ "${failures}" -ne 0 ]; then
    echo "check_codegen: ${failures} finding(s)"
    exit 1
fi
echo "check_codegen: ${checked} kernel object(s) keep their prefetches, streamed stores and inlining"
