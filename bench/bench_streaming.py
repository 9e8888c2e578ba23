"""Per-sample cost of RunningStats: one float32 sample per call, medians of repeated timed loops.

    python bench/bench_streaming.py [--quick]

Compares ``update_normalize(x, out=out)`` (exact and momentum mode), ``update(x)`` and
``normalize(x, out=out)`` with three floors -- ``simdnorm._core._noop(x, out=out)`` (a bound module
function taking two arrays, doing nothing), ``RunningStats._noop(x, out=out)`` (the same as a
pybind11 method of the class: the issue's definition of the floor) and
``RunningStats._noop_fastcall(x, out=out)`` (the vectorcall entry point the hot methods use, with
their argument parsing, doing nothing) -- and with a NumPy Welford update + normalize into ``out``. Prints one markdown table; the issue's targets are
update_normalize <= 1.5x floor at F=16 and <= 3x at F=256.
"""

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "SIMDNORM_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

from _cases_stateful import NumpyWelford  # noqa: E402  (bench/ is sys.path[0] when run as a script)
from _machine import cpu_model  # noqa: E402

import numpy as np  # noqa: E402

import simdnorm  # noqa: E402
from simdnorm import RunningStats  # noqa: E402


def per_call_ns(call, x, out, calls, repeats):
    """Median over `repeats` loops of `calls` calls, in ns per call."""
    samples = []
    for _ in range(repeats):
        t0 = time.perf_counter_ns()
        for _ in range(calls):
            call(x, out=out)
        samples.append((time.perf_counter_ns() - t0) / calls)
    return statistics.median(samples)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="fewer calls (a smoke run)")
    args = parser.parse_args()
    calls, repeats = (2000, 5) if args.quick else (20000, 15)

    print(f"CPU: {cpu_model()}; ISA: {simdnorm.current_isa()}; simdnorm {simdnorm.__version__}, "
          f"NumPy {np.__version__}, Python {sys.version.split()[0]}")
    print(f"one float32 sample per call; median of {repeats} loops x {calls} calls; ns per call\n")
    rng = np.random.default_rng(0)
    header = ("| F | floor `_core._noop` | floor pybind11 method | floor vectorcall | update_normalize exact "
              "| momentum | update | normalize | NumPy Welford | ratio to pybind11 method floor "
              "| ratio to `_core._noop` | ratio to vectorcall floor | NumPy / simdnorm |")
    print(header)
    print("|---:" * (header.count("|") - 1) + "|")
    for features in (16, 64, 256, 768):
        x = (rng.standard_normal(features) * 3 + 100).astype(np.float32)
        out = np.empty_like(x)
        exact = RunningStats(features)
        momentum = RunningStats(features, momentum=0.01)
        reference = NumpyWelford(np, np.zeros(features), np.zeros(features), 0)
        for rs in (exact, momentum):
            rs.update(x)
            rs.update(x + 1)
        t_floor = per_call_ns(simdnorm._core._noop, x, out, calls, repeats)
        t_method = per_call_ns(exact._noop, x, out, calls, repeats)
        t_fast = per_call_ns(exact._noop_fastcall, x, out, calls, repeats)
        t_exact = per_call_ns(exact.update_normalize, x, out, calls, repeats)
        t_momentum = per_call_ns(momentum.update_normalize, x, out, calls, repeats)
        t_update = per_call_ns(lambda v, out: exact.update(v), x, None, calls, repeats) - per_call_ns(
            lambda v, out: None, x, None, calls, repeats
        )  # minus the lambda's own cost
        t_normalize = per_call_ns(exact.normalize, x, out, calls, repeats)
        t_numpy = per_call_ns(reference.update_normalize, x, out, max(calls // 10, 200), repeats)
        print(f"| {features} | {t_floor:.0f} | {t_method:.0f} | {t_fast:.0f} | {t_exact:.0f} | {t_momentum:.0f} | "
              f"{t_update:.0f} | {t_normalize:.0f} | {t_numpy:.0f} | {t_exact / t_method:.2f}x | "
              f"{t_exact / t_floor:.2f}x | {t_exact / t_fast:.2f}x | {t_numpy / t_exact:.1f}x |")
    print("\nTargets (issue 3): update_normalize(x, out=) <= 1.5x the floor at F=16, <= 3x at F=256.")
    print("`update` is measured through a lambda whose own cost is subtracted.")


if __name__ == "__main__":
    main()
