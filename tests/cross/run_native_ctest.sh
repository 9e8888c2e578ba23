#!/usr/bin/env bash
# Builds the C++ core and its tests for this machine and runs them with ctest (every compiled
# variant the CPU supports vs scalar and the float64 reference).
# Then tests/cross/check_codegen.sh reads the x86 kernel objects for dropped prefetches / stores.
# With --sanitize: the same tests built with AddressSanitizer and UndefinedBehaviorSanitizer (any
# out-of-bounds access, leak or undefined operation fails the run); codegen is not checked there.
# Usage: tests/cross/run_native_ctest.sh [--sanitize]   (from anywhere; exits non-zero on any failure)
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
sanitize=false
[ "${1:-}" = "--sanitize" ] && sanitize=true

if [ ! -f /usr/include/doctest/doctest.h ]; then
    echo "Installing: doctest-dev"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    apt-get install -y -q --no-install-recommends doctest-dev
fi

if "${sanitize}"; then
    build="${repo}/build/ctest-sanitized"
    flags="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer"
    cmake -S "${repo}" -B "${build}" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
        -DSIMDNORM_BUILD_PYTHON=OFF -DSIMDNORM_BUILD_TESTS=ON \
        -DCMAKE_CXX_FLAGS="${flags}" -DCMAKE_EXE_LINKER_FLAGS="${flags}"
    cmake --build "${build}"
    ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
        ctest --test-dir "${build}" --output-on-failure -j 2
    exit 0
fi

build="${repo}/build/ctest-native"
cmake -S "${repo}" -B "${build}" -G Ninja -DCMAKE_BUILD_TYPE=Release \
    -DSIMDNORM_BUILD_PYTHON=OFF -DSIMDNORM_BUILD_TESTS=ON
cmake --build "${build}"
ctest --test-dir "${build}" --output-on-failure -j 2
# Instructions no numerical test can see (prefetches, streamed stores, inlining): read the objects.
case "$(uname -m)" in
    x86_64 | aarch64) bash "${repo}/tests/cross/check_codegen.sh" "${build}" ;;
    *) echo "check_codegen: no SIMD variant for $(uname -m), skipped" ;;
esac
