"""Per-sample cost of RunningStats.update_normalize through the C-level API (capi.h, `cimport simdnorm`).

    python bench/bench_capi.py [--quick] [--repeat N] [--build-dir DIR]

Builds (with Cython + setuptools, against the installed simdnorm, into a temporary directory) two
kinds of extension and times, per ISA and F in {16, 64, 256}, one float32 sample per step:

* raw kernel  -- a Cython nogil loop calling the per-sample Welford step itself
                 (cpp/src/running_stats_steps.inl compiled into the bench module: baseline flags for
                 `scalar`, -mavx2 -mfma for `avx2` / `avx512`, as RunningStats picks them), no checks;
* C API       -- a Cython nogil loop calling simdnorm.running_update_normalize_f32 (table lookup,
                 argument checks, ISA check, the same step);
* Python      -- `RunningStats.update_normalize(x, out=out)` from a Python loop.

C API and raw kernel stream N distinct samples and report total / N; Python repeats one sample (the
call overhead dominates). Medians of --repeat runs. Targets (issue 6): C API <= 2x raw kernel and
Python >= 10x C API at F=16.
"""

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "SIMDNORM_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import importlib  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import textwrap  # noqa: E402
import time  # noqa: E402

from _machine import cpu_model  # noqa: E402  (bench/ is sys.path[0] when run as a script)

import numpy as np  # noqa: E402

import simdnorm  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STEPS_INL = os.path.join(REPO, "cpp", "src", "running_stats_steps.inl")

CAPI_PYX = r"""
# cython: language_level=3, boundscheck=False, wraparound=False
from time import perf_counter_ns
cimport simdnorm

simdnorm.import_simdnorm()


def update_normalize_ns(float[:, ::1] x, float[:, ::1] y, double[::1] mean, double[::1] m2):
    # ns per sample of running_update_normalize_f32 over the rows of x (exact mode, eps 1e-5).
    cdef simdnorm.running_state state
    cdef Py_ssize_t i, n = x.shape[0]
    cdef int status = 0, bad = 0
    if simdnorm.running_init(&state, x.shape[1], &mean[0], &m2[0], 0.0, 1e-5,
                             simdnorm.SIMDNORM_NONFINITE_RAISE) != simdnorm.SIMDNORM_OK:
        raise ValueError("running_init failed")
    t0 = perf_counter_ns()
    with nogil:
        for i in range(n):
            status = simdnorm.running_update_normalize_f32(&state, &x[i, 0], &y[i, 0], 1, 0, 0)
            bad |= status
    t1 = perf_counter_ns()
    if bad:
        raise ValueError(simdnorm.status_message(status).decode())
    return (t1 - t0) / n
"""

RAW_HPP = r"""
#include <cmath>
#include <cstddef>
#include <cstdint>
namespace raw {
#include "STEPS_INL"
}
"""

RAW_PYX = r"""
# cython: language_level=3, boundscheck=False, wraparound=False
# distutils: language = c++
from libc.stdint cimport int64_t
from time import perf_counter_ns

cdef extern from "raw_steps.hpp" namespace "raw" nogil:
    void running_welford_f32(const float* x, float* y, double* mean, double* m2, size_t n, int64_t new_count,
                             double eps) noexcept


def update_normalize_ns(float[:, ::1] x, float[:, ::1] y, double[::1] mean, double[::1] m2):
    # ns per sample of the Welford step alone (the fused update_normalize kernel).
    cdef Py_ssize_t i, n = x.shape[0]
    cdef size_t f = x.shape[1]
    mean[:] = 0
    m2[:] = 0
    t0 = perf_counter_ns()
    with nogil:
        for i in range(n):
            running_welford_f32(&x[i, 0], &y[i, 0], &mean[0], &m2[0], f, i + 1, 1e-5)
    t1 = perf_counter_ns()
    return (t1 - t0) / n
"""

SETUP_PY = r"""
import sys
from setuptools import Extension, setup
from Cython.Build import cythonize

import simdnorm

base = ["-O3", "-fno-math-errno"]
extensions = [Extension("capi_bench", ["capi_bench.pyx"], include_dirs=[simdnorm.get_include()])]
extensions.append(Extension("raw_baseline", ["raw_baseline.pyx"], include_dirs=["."], language="c++",
                            extra_compile_args=base + ["-std=c++17"]))
if "--avx2" in sys.argv:
    sys.argv.remove("--avx2")
    extensions.append(Extension("raw_avx2", ["raw_avx2.pyx"], include_dirs=["."], language="c++",
                                extra_compile_args=base + ["-std=c++17", "-mavx2", "-mfma"]))
setup(name="simdnorm-capi-bench", ext_modules=cythonize(extensions, quiet=True))
"""


def build(build_dir):
    x86 = "avx2" in simdnorm.compiled_isas()
    files = {
        "capi_bench.pyx": CAPI_PYX,
        "raw_steps.hpp": RAW_HPP.replace("STEPS_INL", STEPS_INL),
        "raw_baseline.pyx": RAW_PYX,
        "setup.py": SETUP_PY,
    }
    if x86:
        files["raw_avx2.pyx"] = RAW_PYX
    for name, text in files.items():
        with open(os.path.join(build_dir, name), "w") as f:
            f.write(textwrap.dedent(text))
    cmd = [sys.executable, "setup.py", "build_ext", "--inplace"] + (["--avx2"] if x86 else [])
    subprocess.run(cmd, cwd=build_dir, check=True, capture_output=True)
    sys.path.insert(0, build_dir)
    mods = {"capi": importlib.import_module("capi_bench"), "baseline": importlib.import_module("raw_baseline")}
    if x86:
        mods["avx2"] = importlib.import_module("raw_avx2")
    return mods


def median_of(fn, repeats):
    return statistics.median(fn() for _ in range(repeats))


def python_ns(x, out, calls):
    rs = simdnorm.RunningStats(x.shape[0])
    rs.update(x)
    call = rs.update_normalize
    t0 = time.perf_counter_ns()
    for _ in range(calls):
        call(x, out=out)
    return (time.perf_counter_ns() - t0) / calls


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer samples and repeats")
    parser.add_argument("--repeat", type=int, default=None, help="timed runs per cell (median)")
    parser.add_argument("--build-dir", default=None, help="where to build the bench extensions (default: a temp dir)")
    args = parser.parse_args()
    repeats = args.repeat or (5 if args.quick else 21)
    samples = 4096 if args.quick else 16384
    calls = 20000 if args.quick else 100000

    with tempfile.TemporaryDirectory() as tmp:
        mods = build(args.build_dir or tmp)
        print(f"CPU: {cpu_model()} | Python {platform.python_version()} | NumPy {np.__version__} | "
              f"simdnorm {simdnorm.__version__} | ISAs {simdnorm.available_isas()} | "
              f"{samples} samples per timed loop, median of {repeats}")
        print()
        print("| ISA | F | raw kernel ns | C API ns | C API / raw | Python ns | Python / C API |")
        print("|---|---:|---:|---:|---:|---:|---:|")
        rng = np.random.default_rng(0)
        for isa in simdnorm.available_isas():
            raw = mods["avx2"] if isa in ("avx2", "avx512") else mods["baseline"]
            with simdnorm.use_isa(isa):
                for f in (16, 64, 256):
                    x = rng.standard_normal((samples, f)).astype(np.float32)
                    y = np.empty_like(x)
                    mean, m2 = np.empty(f), np.empty(f)
                    sample, out = x[0].copy(), np.empty(f, np.float32)
                    t_raw = median_of(lambda: raw.update_normalize_ns(x, y, mean, m2), repeats)  # noqa: B023
                    t_capi = median_of(lambda: mods["capi"].update_normalize_ns(x, y, mean, m2), repeats)  # noqa: B023
                    t_py = median_of(lambda: python_ns(sample, out, calls), repeats)  # noqa: B023
                    print(f"| {isa} | {f} | {t_raw:.1f} | {t_capi:.1f} | {t_capi / t_raw:.2f}x | "
                          f"{t_py:.0f} | {t_py / t_capi:.1f}x |")


if __name__ == "__main__":
    main()
