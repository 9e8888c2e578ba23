"""Old-CPU smoke test of an INSTALLED simdnorm wheel, run by tests/wheel/old_cpu_check.sh under
``qemu-x86_64 -cpu Nehalem`` (SSE4.2, no AVX): the dispatcher must pick 'scalar', every public
operation must run without an illegal instruction and match a float64 NumPy reference.

    python old_cpu_smoke.py                              # default choice must be scalar
    SIMDNORM_ISA=avx512 python old_cpu_smoke.py --expect-fallback avx512

With ``--expect-fallback ISA`` the import must warn (RuntimeWarning naming ISA) and fall back to
'scalar'. Self-contained on purpose (no pytest, no tests/ imports): it runs from any directory
against whatever simdnorm the interpreter imports, and prints one line per check.
"""

from __future__ import annotations

import argparse
import os
import pickle
import sys
import warnings

import numpy as np

TOL = {np.float32: dict(rtol=3e-5, atol=3e-5), np.float64: dict(rtol=1e-11, atol=1e-11)}
checks = 0


def ok(name: str) -> None:
    global checks
    checks += 1
    print(f"  ok  {name}", flush=True)


def close(name, got, want, dtype) -> None:
    np.testing.assert_allclose(np.asarray(got, dtype=np.float64), want, err_msg=name, **TOL[dtype])
    ok(name)


# ---- float64 references (textbook formulas) -------------------------------------------------------
def norm_axes(ndim, axis):
    if isinstance(axis, tuple):
        return tuple(sorted(a % ndim for a in axis))
    return tuple(range(axis % ndim, ndim))


def param_view(p, shape, axes):
    return np.asarray(p, np.float64).reshape([shape[a] if a in axes else 1 for a in range(len(shape))])


def ref_layer_norm(x, w, b, eps, axis):
    x = x.astype(np.float64)
    axes = norm_axes(x.ndim, axis)
    mean = x.mean(axis=axes, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=axes, keepdims=True)
    rstd = 1.0 / np.sqrt(var + eps)
    y = (x - mean) * rstd
    if w is not None:
        y = y * param_view(w, x.shape, axes)
    if b is not None:
        y = y + param_view(b, x.shape, axes)
    return y, mean, rstd


def ref_rms_norm(x, w, eps, axis):
    x = x.astype(np.float64)
    axes = norm_axes(x.ndim, axis)
    y = x / np.sqrt((x * x).mean(axis=axes, keepdims=True) + eps)
    return y if w is None else y * param_view(w, x.shape, axes)


def channel_view(p, ndim, axis):
    shape = [1] * ndim
    shape[axis % ndim] = -1
    return np.asarray(p, np.float64).reshape(shape)


def ref_batch_stats(x, axis):
    x = x.astype(np.float64)
    c = axis % x.ndim
    reduce = tuple(a for a in range(x.ndim) if a != c)
    return x.mean(axis=reduce), x.var(axis=reduce), int(np.prod([x.shape[a] for a in reduce]))


def ref_batch_norm_apply(x, mean, var, w, b, eps, axis):
    x = x.astype(np.float64)
    y = (x - channel_view(mean, x.ndim, axis)) / np.sqrt(channel_view(var, x.ndim, axis) + eps)
    return y * channel_view(w, x.ndim, axis) + channel_view(b, x.ndim, axis)


# ---- checks ---------------------------------------------------------------------------------------
def check_dispatch(simdnorm, expect_fallback: str | None, caught) -> None:
    print(f"simdnorm {simdnorm.__version__} from {os.path.dirname(simdnorm.__file__)}")
    print(f"  compiled_isas()  = {simdnorm.compiled_isas()}")
    print(f"  available_isas() = {simdnorm.available_isas()}")
    print(f"  current_isa()    = {simdnorm.current_isa()}")
    print(f"  SIMDNORM_ISA     = {os.environ.get('SIMDNORM_ISA', '(unset)')}")
    assert os.path.realpath(simdnorm.__file__).startswith(os.path.realpath(sys.prefix) + os.sep), (
        f"simdnorm imported from {simdnorm.__file__}, not from this interpreter's prefix {sys.prefix}"
    )
    assert simdnorm.available_isas() == ["scalar"], simdnorm.available_isas()
    assert simdnorm.current_isa() == "scalar", simdnorm.current_isa()
    ok("dispatcher picked 'scalar'; available_isas() == ['scalar']")
    if sys.platform.startswith("linux") and os.uname().machine == "x86_64":
        # The wheel still carries the AVX2 / AVX-512 kernels; they are just never selected here.
        assert {"avx2", "avx512", "scalar"} <= set(simdnorm.compiled_isas()), simdnorm.compiled_isas()
        ok("wheel carries avx512 + avx2 + scalar kernels")
    runtime = [w for w in caught if issubclass(w.category, RuntimeWarning)]
    if expect_fallback:
        assert any(expect_fallback in str(w.message) for w in runtime), [str(w.message) for w in caught]
        print(f"  import warned: {runtime[0].category.__name__}: {runtime[0].message}")
        ok(f"SIMDNORM_ISA={expect_fallback} warned and fell back to 'scalar'")
    else:
        assert not runtime, [str(w.message) for w in runtime]
        ok("import did not warn")
    for isa in ("avx2", "avx512", "neon"):
        try:
            with simdnorm.use_isa(isa):
                raise AssertionError(f"use_isa({isa!r}) was accepted on a CPU without it")
        except ValueError as error:
            assert simdnorm.current_isa() == "scalar"
            print(f"  use_isa({isa!r}) -> ValueError: {error}")
    ok("use_isa() refuses avx2 / avx512 / neon and keeps 'scalar'")


def check_functions(simdnorm, rng) -> None:
    for dtype in (np.float32, np.float64):
        name = np.dtype(dtype).name
        # Sizes straddle the 4/8/16-lane widths so every tail path of the scalar table runs.
        for cols in (1, 7, 16, 33, 100):
            x = (rng.standard_normal((5, cols)) * 3 + 2).astype(dtype)
            w = rng.uniform(0.5, 2.0, cols).astype(dtype)
            b = rng.standard_normal(cols).astype(dtype)
            close(f"layer_norm {name} (5,{cols})", simdnorm.layer_norm(x, w, b, eps=1e-5),
                  ref_layer_norm(x, w, b, 1e-5, -1)[0], dtype)
            close(f"rms_norm {name} (5,{cols})", simdnorm.rms_norm(x, w, eps=1e-6), ref_rms_norm(x, w, 1e-6, -1),
                  dtype)

        x = rng.standard_normal((2, 3, 4, 5)).astype(dtype)
        # axis tuples (ConvNeXt channels-first LayerNorm), an int axis, and return_stats
        for axis in ((1,), (1, 3), (2, 3), 2):
            axes = norm_axes(x.ndim, axis)
            shape = tuple(x.shape[a] for a in axes)
            w = rng.uniform(0.5, 2.0, shape).astype(dtype)
            b = rng.standard_normal(shape).astype(dtype)
            y, mean, rstd = simdnorm.layer_norm(x, w, b, eps=1e-5, axis=axis, return_stats=True)
            ry, rmean, rrstd = ref_layer_norm(x, w, b, 1e-5, axis)
            close(f"layer_norm {name} axis={axis}", y, ry, dtype)
            close(f"layer_norm {name} axis={axis} return_stats mean", mean, rmean, dtype)
            close(f"layer_norm {name} axis={axis} return_stats rstd", rstd, rrstd, dtype)
            close(f"rms_norm {name} axis={axis}", simdnorm.rms_norm(x, w, eps=1e-6, axis=axis),
                  ref_rms_norm(x, w, 1e-6, axis), dtype)
        close(f"rms_norm {name} eps=None", simdnorm.rms_norm(x, eps=None),
              ref_rms_norm(x, None, float(np.finfo(dtype).eps), -1), dtype)
        xt = x.transpose(0, 3, 1, 2)  # strided input
        close(f"layer_norm {name} strided", simdnorm.layer_norm(xt), ref_layer_norm(xt, None, None, 1e-5, -1)[0],
              dtype)
        out = np.empty_like(x)
        got = simdnorm.layer_norm(x, out=out)
        assert got is out or np.shares_memory(got, out)
        close(f"layer_norm {name} out=", out, ref_layer_norm(x, None, None, 1e-5, -1)[0], dtype)

        # batch_norm: NCHW (axis=1) and NHWC (axis=-1), training then eval
        c = 6
        nchw = (rng.standard_normal((4, c, 3, 5)) * 2 + 1).astype(dtype)
        for layout, x_bn, axis in (("NCHW", nchw, 1), ("NHWC", np.ascontiguousarray(nchw.transpose(0, 2, 3, 1)), -1)):
            w = rng.uniform(0.5, 2.0, c).astype(dtype)
            b = rng.standard_normal(c).astype(dtype)
            rm0 = rng.standard_normal(c).astype(dtype)
            rv0 = rng.uniform(0.5, 2.0, c).astype(dtype)
            mean, var, count = ref_batch_stats(x_bn, axis)
            rm, rv = rm0.copy(), rv0.copy()
            y = simdnorm.batch_norm(x_bn, rm, rv, w, b, training=True, momentum=0.1, eps=1e-5, axis=axis)
            close(f"batch_norm train {name} {layout}", y, ref_batch_norm_apply(x_bn, mean, var, w, b, 1e-5, axis),
                  dtype)
            close(f"batch_norm train {name} {layout} running_mean", rm, 0.9 * rm0 + 0.1 * mean, dtype)
            close(f"batch_norm train {name} {layout} running_var (unbiased)", rv,
                  0.9 * rv0 + 0.1 * var * count / (count - 1), dtype)
            y = simdnorm.batch_norm(x_bn, rm0, rv0, w, b, training=False, eps=1e-5, axis=axis)
            close(f"batch_norm eval {name} {layout}", y, ref_batch_norm_apply(x_bn, rm0, rv0, w, b, 1e-5, axis),
                  dtype)
            got_mean, got_var, got_count = simdnorm.batch_stats(x_bn, axis=axis)
            assert got_count == count, (got_count, count)
            close(f"batch_stats {name} {layout} mean", got_mean, mean, dtype)
            close(f"batch_stats {name} {layout} var", got_var, var, dtype)
            scale, shift = simdnorm.fold_batch_norm(rm0, rv0, w, b, eps=1e-5)
            want_scale = w.astype(np.float64) / np.sqrt(rv0.astype(np.float64) + 1e-5)
            want_shift = b - rm0.astype(np.float64) * want_scale
            close(f"fold_batch_norm {name} scale", scale, want_scale, dtype)
            close(f"fold_batch_norm {name} shift", shift, want_shift, dtype)
            x64 = x_bn.astype(np.float64)
            close(f"scale_shift {name} {layout}", simdnorm.scale_shift(x_bn, scale, shift, axis=axis),
                  x64 * channel_view(scale, x.ndim, axis) + channel_view(shift, x.ndim, axis), dtype)


def check_running_stats(simdnorm, rng) -> None:
    features = 13
    stream = (rng.standard_normal((40, features)) * np.arange(1, features + 1) + 1e3).astype(np.float32)
    whole = simdnorm.RunningStats(features)
    for sample in stream[:25]:
        whole.update(sample)  # one sample at a time
    whole.update(stream[25:])  # and a batch
    assert int(whole.count) == len(stream)
    s64 = stream.astype(np.float64)
    np.testing.assert_allclose(whole.mean, s64.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(whole.var, s64.var(axis=0), rtol=1e-9)
    np.testing.assert_allclose(whole.std, s64.std(axis=0), rtol=1e-9)
    np.testing.assert_allclose(whole.var_unbiased, s64.var(axis=0, ddof=1), rtol=1e-9)
    ok("RunningStats exact: per-sample + batch updates == float64 mean / var / std / var_unbiased")
    x = stream[:3]
    close("RunningStats.normalize", whole.normalize(x), (s64[:3] - s64.mean(0)) / np.sqrt(s64.var(0) + 1e-5),
          np.float32)
    half_a, half_b = simdnorm.RunningStats(features), simdnorm.RunningStats(features)
    half_a.update(stream[:17])
    half_b.update(stream[17:])
    half_a.merge(half_b)
    np.testing.assert_allclose(half_a.mean, whole.mean, rtol=1e-12)
    np.testing.assert_allclose(half_a.var, whole.var, rtol=1e-9)
    ok("RunningStats.merge of two halves == whole stream")
    clone = pickle.loads(pickle.dumps(whole))
    assert np.array_equal(clone.mean, whole.mean) and np.array_equal(clone.var, whole.var)
    ok("RunningStats pickles bit for bit")
    ema = simdnorm.RunningStats(features, momentum=0.2)
    ema.update_normalize(stream[0])
    mean, var = s64[0].copy(), np.zeros(features)
    for sample in s64[1:10]:
        ema.update(sample.astype(np.float32))
        d = sample - mean
        mean += 0.2 * d
        var = 0.8 * (var + 0.2 * d * d)
    np.testing.assert_allclose(ema.mean, mean, rtol=1e-12)
    np.testing.assert_allclose(ema.var, var, rtol=1e-9)
    ok("RunningStats(momentum=0.2) follows the EMA update")


def check_norm_modules(simdnorm, rng) -> None:
    x = rng.standard_normal((3, 4, 8)).astype(np.float32)
    if hasattr(simdnorm, "LayerNorm"):
        m = simdnorm.LayerNorm((4, 8))
        close("LayerNorm((4, 8)) module", m(x), ref_layer_norm(x, None, None, 1e-5, 1)[0], np.float32)
        close("LayerNorm module (pickled)", pickle.loads(pickle.dumps(m))(x), ref_layer_norm(x, None, None, 1e-5, 1)[0],
              np.float32)
    if hasattr(simdnorm, "RMSNorm"):
        m = simdnorm.RMSNorm(8)
        close("RMSNorm(8) module", m(x), ref_rms_norm(x, None, 1e-6, -1), np.float32)


def check_batch_norm_module(simdnorm, rng) -> None:
    c = 5
    m = simdnorm.BatchNorm(c)  # training mode, momentum 0.1, weight 1, bias 0, running 0 / 1
    x = (rng.standard_normal((6, c, 3, 3)) * 2 + 3).astype(np.float32)
    mean, var, count = ref_batch_stats(x, 1)
    ones, zeros = np.ones(c), np.zeros(c)
    close("BatchNorm module train", m(x), ref_batch_norm_apply(x, mean, var, ones, zeros, 1e-5, 1), np.float32)
    close("BatchNorm module running_mean", m.running_mean, 0.1 * mean, np.float32)
    close("BatchNorm module running_var", m.running_var, 0.9 + 0.1 * var * count / (count - 1), np.float32)
    m.eval()
    close("BatchNorm module eval", m(x),
          ref_batch_norm_apply(x, 0.1 * mean, 0.9 + 0.1 * var * count / (count - 1), ones, zeros, 1e-5, 1), np.float32)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--expect-fallback", metavar="ISA", help="SIMDNORM_ISA=ISA is set and must be refused")
    args = parser.parse_args()
    if args.expect_fallback and os.environ.get("SIMDNORM_ISA") != args.expect_fallback:
        parser.error(f"--expect-fallback {args.expect_fallback} needs SIMDNORM_ISA={args.expect_fallback}")
    if not args.expect_fallback and os.environ.get("SIMDNORM_ISA"):
        parser.error("unset SIMDNORM_ISA (or pass --expect-fallback)")

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        import simdnorm
    print(f"python {sys.version.split()[0]}, numpy {np.__version__}, sys.executable {sys.executable}")
    check_dispatch(simdnorm, args.expect_fallback, caught)
    rng = np.random.default_rng(20240611)
    check_functions(simdnorm, rng)
    simdnorm.set_num_threads(2)  # the thread pool path, still scalar kernels
    big = rng.standard_normal((256, 512)).astype(np.float32)
    close("layer_norm (256,512) with 2 threads", simdnorm.layer_norm(big), ref_layer_norm(big, None, None, 1e-5, -1)[0],
          np.float32)
    skipped = []
    if hasattr(simdnorm, "RunningStats"):
        check_running_stats(simdnorm, rng)
    else:
        skipped.append("RunningStats")
    if hasattr(simdnorm, "LayerNorm") or hasattr(simdnorm, "RMSNorm"):
        check_norm_modules(simdnorm, rng)
    skipped += [name for name in ("LayerNorm", "RMSNorm") if not hasattr(simdnorm, name)]
    if hasattr(simdnorm, "BatchNorm"):
        check_batch_norm_module(simdnorm, rng)
    else:
        skipped.append("BatchNorm")
    assert simdnorm.current_isa() == "scalar", simdnorm.current_isa()
    note = f" (not in this simdnorm, skipped: {', '.join(skipped)})" if skipped else ""
    print(f"old_cpu_smoke: {checks} checks passed on '{simdnorm.current_isa()}'{note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
