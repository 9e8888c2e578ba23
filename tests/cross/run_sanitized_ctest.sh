#!/usr/bin/env bash
# Builds the C++ core and its tests with AddressSanitizer and UndefinedBehaviorSanitizer and runs
# them with ctest: every kernel variant this CPU supports, tails, strides and guard-page cases
# included, with any out-of-bounds access, leak or undefined operation failing the run.
# Usage: tests/cross/run_sanitized_ctest.sh   (from anywhere; exits non-zero on any finding)
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
build="${repo}/build/ctest-sanitized"

if [ ! -f /usr/include/doctest/doctest.h ]; then
    echo "Installing: doctest-dev"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    apt-get install -y -q --no-install-recommends doctest-dev
fi

sanitizers="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer"
cmake -S "${repo}" -B "${build}" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DSIMDNORM_BUILD_PYTHON=OFF -DSIMDNORM_BUILD_TESTS=ON \
    -DCMAKE_CXX_FLAGS="${sanitizers}" -DCMAKE_EXE_LINKER_FLAGS="${sanitizers}"
cmake --build "${build}"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
    ctest --test-dir "${build}" --output-on-failure -j 2
