#!/usr/bin/env bash
# Prove the installed wheel runs on an x86-64 CPU without AVX: run tests/wheel/old_cpu_smoke.py with
# the wheel venv's python under user-mode emulation of an Intel Nehalem (SSE4.2, no AVX/AVX2/AVX-512).
#
#   bash tests/wheel/old_cpu_check.sh
#
# Uses build/wheel-venv from tests/wheel/build_and_check.sh (built here with --build-only if missing).
# Installs Debian's qemu-user if qemu-x86_64 is missing. Two emulated runs:
#   1. SIMDNORM_ISA unset: dispatcher must pick 'scalar', every public operation matches NumPy float64;
#   2. SIMDNORM_ISA=avx512: the import must warn (RuntimeWarning) and fall back to 'scalar'.
# An illegal instruction kills the emulated process (SIGILL) -> non-zero exit -> this script fails.
#
# NumPy under emulation: NumPy's own baseline (x86-64-v2: SSE4.2, POPCNT) is met by Nehalem, but the
# OpenBLAS bundled with NumPy's wheels picks its kernels with its own CPU detection, which under
# qemu-user selects Haswell (AVX2) kernels whatever -cpu says, and `import numpy` (its BLAS sanity
# check) dies with SIGILL. OPENBLAS_CORETYPE=Nehalem pins OpenBLAS to its SSE kernels; this script
# applies it only after probing that the plain import faults, and says so. simdnorm never calls BLAS.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
VENV="$ROOT/build/wheel-venv"
CPU=${SIMDNORM_OLD_CPU:-Nehalem}
start=$SECONDS

# ---- qemu-user ---------------------------------------------------------------------------------
if ! command -v qemu-x86_64 >/dev/null 2>&1; then
    echo "== installing qemu-user (Debian) for qemu-x86_64"
    sudo=""
    [[ $(id -u) -eq 0 ]] || sudo="sudo -n"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq qemu-user >/dev/null
fi
echo "== $(qemu-x86_64 --version | awk 'NR == 1')"
models=$(qemu-x86_64 -cpu help | awk '{print $2}' || true)  # 'help' exits 1
if ! grep -qx "$CPU" <<<"$models"; then
    echo "qemu-x86_64 has no CPU model '$CPU'" >&2
    exit 1
fi

# ---- the wheel venv ----------------------------------------------------------------------------
if [[ ! -x $VENV/bin/python ]] || ! "$VENV/bin/python" -c "import simdnorm" >/dev/null 2>&1; then
    echo "== $VENV missing: building it (tests/wheel/build_and_check.sh --build-only)"
    bash "$ROOT/tests/wheel/build_and_check.sh" --build-only
fi
# qemu-user needs an ELF file: venv/bin/python is a symlink to the real interpreter (never a pyenv
# shim script). argv[0] stays the venv path, so the interpreter still finds pyvenv.cfg.
python_elf=$(readlink -f "$VENV/bin/python")
if [[ $(head -c4 "$python_elf" | tail -c3) != ELF ]]; then
    echo "$VENV/bin/python -> $python_elf is not an ELF executable" >&2
    exit 1
fi

RUN_DIR=$(mktemp -d)  # cwd without the source tree's python/ on sys.path
trap 'rm -rf "$RUN_DIR"' EXIT
cd "$RUN_DIR"
emulate() {  # emulate ENV... -- ARGS: run the venv python under the old CPU model
    local -a envs=()
    while [[ $1 != -- ]]; do envs+=("$1"); shift; done
    shift
    env -u SIMDNORM_ISA "${envs[@]}" qemu-x86_64 -cpu "$CPU" "$VENV/bin/python" "$@"
}

# ---- the CPU model really lacks AVX ------------------------------------------------------------
emulate -- -c "
import ctypes, mmap, sys
# cpuid leaf 1 via a tiny machine-code thunk: ecx bit 28 = AVX
code = bytes([0x53, 0xB8, 1, 0, 0, 0, 0x0F, 0xA2, 0x89, 0xC8, 0x5B, 0xC3])  # push rbx; mov eax,1; cpuid; mov eax,ecx; pop rbx; ret
buf = mmap.mmap(-1, mmap.PAGESIZE, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
buf.write(code)
ecx = ctypes.CFUNCTYPE(ctypes.c_uint32)(ctypes.addressof(ctypes.c_char.from_buffer(buf)))()
avx, sse42 = bool(ecx >> 28 & 1), bool(ecx >> 20 & 1)
print(f'== emulated CPU $CPU: cpuid(1).ecx = {ecx:#010x}: SSE4.2={sse42} AVX={avx}')
sys.exit(1 if avx or not sse42 else 0)
" || { echo "CPU model $CPU is not an SSE4.2 CPU without AVX" >&2; exit 1; }
# Negative control: the emulator must really trap AVX code on this model (else run 1 proves nothing).
set +e
emulate -- -c "
import ctypes, mmap
code = bytes([0xC5, 0xFC, 0x57, 0xC0, 0xC5, 0xF8, 0x77, 0xC3])  # vxorps ymm0,ymm0,ymm0; vzeroupper; ret
buf = mmap.mmap(-1, mmap.PAGESIZE, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
buf.write(code)
ctypes.CFUNCTYPE(None)(ctypes.addressof(ctypes.c_char.from_buffer(buf)))()
" 2>/dev/null
status=$?
set -e
if [[ $status -ne 132 ]]; then
    echo "negative control: an AVX instruction under -cpu $CPU exited $status, expected 132 (SIGILL)" >&2
    exit 1
fi
echo "== negative control: one AVX instruction under -cpu $CPU -> SIGILL (exit 132), as on the real CPU"

# ---- NumPy under emulation ---------------------------------------------------------------------
blas_env=()
if emulate -- -c "import numpy" 2>/dev/null; then
    echo "== numpy imports on $CPU as is"
else
    status=$?
    echo "== plain 'import numpy' on $CPU exits $status (SIGILL is 132): NumPy's bundled OpenBLAS picked"
    echo "   AVX2 kernels under qemu-user; pinning OPENBLAS_CORETYPE=Nehalem (SSE kernels) for these runs"
    blas_env=(OPENBLAS_CORETYPE=Nehalem)
    emulate "${blas_env[@]}" -- -c "import numpy; print('== numpy', numpy.__version__, 'imports with', '${blas_env[*]}')"
fi

# ---- 1. default dispatch -----------------------------------------------------------------------
failed=0
echo
echo "== run 1: qemu-x86_64 -cpu $CPU python old_cpu_smoke.py (SIMDNORM_ISA unset)"
t0=$SECONDS
if emulate "${blas_env[@]}" -- "$ROOT/tests/wheel/old_cpu_smoke.py"; then
    echo "== run 1 passed ($((SECONDS - t0))s)"
else
    echo "== run 1 FAILED (exit $?; 132 = SIGILL)"
    failed=1
fi

# ---- 2. a forced ISA the CPU lacks -------------------------------------------------------------
echo
echo "== run 2: SIMDNORM_ISA=avx512 qemu-x86_64 -cpu $CPU python old_cpu_smoke.py --expect-fallback avx512"
t0=$SECONDS
if emulate "${blas_env[@]}" SIMDNORM_ISA=avx512 -- "$ROOT/tests/wheel/old_cpu_smoke.py" --expect-fallback avx512; then
    echo "== run 2 passed ($((SECONDS - t0))s)"
else
    echo "== run 2 FAILED (exit $?; 132 = SIGILL)"
    failed=1
fi

echo
echo "== old_cpu_check on $CPU: $([[ $failed -eq 0 ]] && echo passed || echo FAILED) ($((SECONDS - start))s)"
exit $failed
