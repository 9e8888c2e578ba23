#!/usr/bin/env bash
# Cross-builds the C++ core and its tests for AArch64 and runs them under qemu-aarch64, so the
# NEON variant is executed and compared with scalar and the float64 reference.
# Usage: tests/cross/run_aarch64.sh   (from anywhere; exits non-zero on any failure)
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
build="${repo}/build/cross-aarch64"

# Debian packages: cross compiler, user-mode emulator, test framework (header-only), build tools.
needed=()
command -v aarch64-linux-gnu-g++ >/dev/null || needed+=(g++-aarch64-linux-gnu)
command -v qemu-aarch64 >/dev/null || needed+=(qemu-user)
[ -f /usr/include/doctest/doctest.h ] || needed+=(doctest-dev)
command -v cmake >/dev/null || needed+=(cmake)
command -v ninja >/dev/null || needed+=(ninja-build)
if [ ${#needed[@]} -gt 0 ]; then
    echo "Installing: ${needed[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    apt-get install -y -q --no-install-recommends "${needed[@]}"
fi

aarch64-linux-gnu-g++ --version | sed -n 1p
qemu-aarch64 --version | sed -n 1p

cmake -S "${repo}" -B "${build}" -G Ninja \
    -DCMAKE_TOOLCHAIN_FILE="${repo}/tests/cross/aarch64-toolchain.cmake" \
    -DCMAKE_BUILD_TYPE=Release \
    -DSIMDNORM_BUILD_PYTHON=OFF -DSIMDNORM_BUILD_TESTS=ON
cmake --build "${build}"

# The binary must really be AArch64 and contain the NEON variant, or this run proves nothing.
# ELF e_machine (bytes 18-19, little-endian) is 0xb7 = EM_AARCH64.
[ "$(od -An -tx1 -j18 -N2 "${build}/cpp/tests/simdnorm_tests" | tr -d ' ')" = "b700" ] ||
    { echo "error: test binary is not AArch64" >&2; exit 1; }
grep -q 'SIMDNORM_HAVE_NEON=1' "${build}/build.ninja" ||
    { echo "error: NEON variant not compiled (CMAKE_SYSTEM_PROCESSOR?)" >&2; exit 1; }

# -j2: the suites are independent processes. ctest exits non-zero if any suite fails.
ctest --test-dir "${build}" --output-on-failure -j 2

# Prefetches the compiler might drop (tests/cross/check_codegen.sh).
bash "${repo}/tests/cross/check_codegen.sh" "${build}" aarch64-linux-gnu-objdump
