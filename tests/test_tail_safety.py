"""Vector tails never touch memory outside the arrays.

Every array (x, out, weight, bias, running stats, scale, shift) is placed so that it ends exactly
at a PROT_NONE page (or starts right after one, for negative strides and head handling). Any
out-of-bounds load or store then segfaults. The checks run in a subprocess (this file as a
script), so a crash fails one test with its faulthandler trace instead of killing pytest.
"""

import ctypes
import mmap
import os
import subprocess
import sys

import numpy as np
import pytest

LENGTHS = range(1, 41)
PAGE = mmap.PAGESIZE
PROT_NONE = 0  # mmap has no PROT_NONE constant before Python 3.13


class GuardedRegion:
    """One writable page between two PROT_NONE pages."""

    def __init__(self):
        self._map = mmap.mmap(-1, 3 * PAGE, prot=mmap.PROT_READ | mmap.PROT_WRITE)
        base = ctypes.addressof(ctypes.c_char.from_buffer(self._map))
        libc = ctypes.CDLL(None, use_errno=True)
        libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
        for start in (base, base + 2 * PAGE):
            if libc.mprotect(ctypes.c_void_p(start), PAGE, PROT_NONE) != 0:
                raise OSError(ctypes.get_errno(), "mprotect failed")

    def place(self, shape, dtype, where):
        """An array of `shape` ending at the upper guard ("tail") or starting at the lower ("head")."""
        dtype = np.dtype(dtype)
        count = int(np.prod(shape))
        nbytes = count * dtype.itemsize
        assert nbytes <= PAGE
        offset = 2 * PAGE - nbytes if where == "tail" else PAGE
        return np.frombuffer(self._map, dtype, count, offset).reshape(shape)


class Arrays:
    """Guarded storage per argument role, refilled with fresh values on every call."""

    ROLES = ["x", "out", "weight", "bias", "running_mean", "running_var"]

    def __init__(self):
        self.regions = {role: GuardedRegion() for role in self.ROLES}
        self.rng = np.random.default_rng(0)

    def get(self, role, shape, dtype, where, low=-2.0, high=2.0):
        a = self.regions[role].place(shape, dtype, where)
        a[...] = self.rng.uniform(low, high, shape)
        return a


def _close(got, expected, dtype, what):
    import reference

    t = reference.tol(dtype)
    np.testing.assert_allclose(got, expected, rtol=t["rtol"] * 10, atol=t["atol"] * 10, err_msg=what)


def check_rows(arrays, dtype, isa, n, where):
    """Reductions / channels along the contiguous last axis (inner == 1)."""
    import reference
    import simdnorm

    count = 0
    for shape in [(n,), (3, n)]:
        x = arrays.get("x", shape, dtype, where)
        w = arrays.get("weight", (n,), dtype, where, 0.5, 2.0)
        b = arrays.get("bias", (n,), dtype, where)
        xr = x.copy()
        ctx = f"{isa} {np.dtype(dtype).name} n={n} {where} shape={shape}"
        y, mean, rstd = simdnorm.layer_norm(x, w, b, return_stats=True)
        _close(y, reference.layer_norm(xr, w, b), dtype, "layer_norm " + ctx)
        _close(simdnorm.rms_norm(x, w), reference.rms_norm(xr, w), dtype, "rms_norm " + ctx)
        out = arrays.get("out", shape, dtype, where)
        simdnorm.layer_norm(x, w, b, out=out)
        _close(out, reference.layer_norm(xr, w, b), dtype, "layer_norm out " + ctx)
        simdnorm.rms_norm(x, None, out=out)
        _close(out, reference.rms_norm(xr), dtype, "rms_norm out " + ctx)
        if x.ndim == 2:
            _close(simdnorm.layer_norm(x[::-1], w, b), reference.layer_norm(xr[::-1], w, b), dtype,
                   "layer_norm reversed rows " + ctx)
            _close(simdnorm.rms_norm(x[::-1, ::-1], w), reference.rms_norm(xr[::-1, ::-1], w), dtype,
                   "rms_norm reversed " + ctx)
            # (N, F) BatchNorm: n channels along the contiguous axis.
            rm = arrays.get("running_mean", (n,), dtype, where)
            rv = arrays.get("running_var", (n,), dtype, where, 0.5, 2.0)
            ey, erm, erv = reference.batch_norm(xr, rm, rv, w, b, training=True, axis=-1)
            _close(simdnorm.batch_norm(x, rm, rv, w, b, training=True, axis=-1), ey, dtype, "bn train " + ctx)
            _close(rm, erm, dtype, "bn running_mean " + ctx)
            _close(rv, erv, dtype, "bn running_var " + ctx)
            _close(simdnorm.batch_norm(x, rm, rv, w, b, axis=-1), reference.batch_norm(xr, rm, rv, w, b, axis=-1)[0],
                   dtype, "bn eval " + ctx)
            mean, var, _ = simdnorm.batch_stats(x, axis=-1)
            emean, evar, _ = reference.batch_stats(xr, axis=-1)
            _close(mean, emean, dtype, "batch_stats mean " + ctx)
            _close(var, evar, dtype, "batch_stats var " + ctx)
            _close(simdnorm.scale_shift(x, w, b, axis=-1), reference.scale_shift(xr, w, b, axis=-1), dtype,
                   "scale_shift " + ctx)
            scale, shift = simdnorm.fold_batch_norm(rm, rv, w, b)
            es, eb = reference.fold_batch_norm(rm, rv, w, b)
            _close(scale, es, dtype, "fold scale " + ctx)
            _close(shift, eb, dtype, "fold shift " + ctx)
            simdnorm.scale_shift(x, w, b, axis=-1, out=out)
            _close(out, reference.scale_shift(xr, w, b, axis=-1), dtype, "scale_shift out " + ctx)
            simdnorm.batch_norm(x, None, None, w, b, training=True, axis=-1, out=out)
            _close(out, reference.batch_norm(xr, None, None, w, b, training=True, axis=-1)[0], dtype,
                   "bn train out " + ctx)
            # In place, every op (x is refreshed before each).
            for name, call, expected in [
                ("layer_norm", lambda a: simdnorm.layer_norm(a, w, b, out=a), lambda a: reference.layer_norm(a, w, b)),
                ("rms_norm", lambda a: simdnorm.rms_norm(a, w, out=a), lambda a: reference.rms_norm(a, w)),
                ("bn train", lambda a: simdnorm.batch_norm(a, None, None, w, b, training=True, axis=-1, out=a),
                 lambda a: reference.batch_norm(a, None, None, w, b, training=True, axis=-1)[0]),
                ("bn eval", lambda a: simdnorm.batch_norm(a, rm, rv, w, b, axis=-1, out=a),
                 lambda a: reference.batch_norm(a, rm, rv, w, b, axis=-1)[0]),
                ("scale_shift", lambda a: simdnorm.scale_shift(a, w, b, axis=-1, out=a),
                 lambda a: reference.scale_shift(a, w, b, axis=-1)),
            ]:
                a = arrays.get("x", shape, dtype, where)
                e = expected(a.copy())
                call(a)
                _close(a, e, dtype, f"{name} in place " + ctx)
                count += 1
        count += 1
    return count


def check_columns(arrays, dtype, isa, n, where):
    """Reductions / channels along a strided axis, vectors along the contiguous axis of length n."""
    import reference
    import simdnorm

    count = 0
    for shape in [(2, 3, n), (1, 3, n), (3, n)]:
        x = arrays.get("x", shape, dtype, where)
        xr = x.copy()
        axis = 0 if len(shape) == 2 else 1
        w = arrays.get("weight", (3,), dtype, where, 0.5, 2.0)
        b = arrays.get("bias", (3,), dtype, where)
        rm = arrays.get("running_mean", (3,), dtype, where)
        rv = arrays.get("running_var", (3,), dtype, where, 0.5, 2.0)
        out = arrays.get("out", shape, dtype, where)
        ctx = f"{isa} {np.dtype(dtype).name} n={n} {where} shape={shape}"
        y, mean, rstd = simdnorm.layer_norm(x, w, b, axis=(axis,), return_stats=True)
        _close(y, reference.layer_norm(xr, w, b, axis=(axis,)), dtype, "layer_norm " + ctx)
        _close(simdnorm.rms_norm(x, w, axis=(axis,)), reference.rms_norm(xr, w, axis=(axis,)), dtype, "rms " + ctx)
        simdnorm.layer_norm(x, w, b, axis=(axis,), out=out)
        _close(out, reference.layer_norm(xr, w, b, axis=(axis,)), dtype, "layer_norm out " + ctx)
        _close(simdnorm.layer_norm(x[..., ::-1], w, b, axis=(axis,)),
               reference.layer_norm(xr[..., ::-1], w, b, axis=(axis,)), dtype, "layer_norm reversed " + ctx)
        if x.size // 3 > 1:
            ey, erm, erv = reference.batch_norm(xr, rm, rv, w, b, training=True, axis=axis)
            _close(simdnorm.batch_norm(x, rm, rv, w, b, training=True, axis=axis), ey, dtype, "bn train " + ctx)
            _close(rm, erm, dtype, "bn running_mean " + ctx)
            _close(rv, erv, dtype, "bn running_var " + ctx)
            mean, var, _ = simdnorm.batch_stats(x, axis=axis)
            emean, evar, _ = reference.batch_stats(xr, axis=axis)
            _close(mean, emean, dtype, "batch_stats mean " + ctx)
            _close(var, evar, dtype, "batch_stats var " + ctx)
        _close(simdnorm.batch_norm(x, rm, rv, w, b, axis=axis), reference.batch_norm(xr, rm, rv, w, b, axis=axis)[0],
               dtype, "bn eval " + ctx)
        _close(simdnorm.scale_shift(x, w, b, axis=axis), reference.scale_shift(xr, w, b, axis=axis), dtype,
               "scale_shift " + ctx)
        simdnorm.scale_shift(x, w, b, axis=axis, out=out)
        _close(out, reference.scale_shift(xr, w, b, axis=axis), dtype, "scale_shift out " + ctx)
        calls = [
            ("layer_norm", lambda a: simdnorm.layer_norm(a, w, b, axis=(axis,), out=a),
             lambda a: reference.layer_norm(a, w, b, axis=(axis,))),
            ("rms_norm", lambda a: simdnorm.rms_norm(a, w, axis=(axis,), out=a),
             lambda a: reference.rms_norm(a, w, axis=(axis,))),
            ("bn eval", lambda a: simdnorm.batch_norm(a, rm, rv, w, b, axis=axis, out=a),
             lambda a: reference.batch_norm(a, rm, rv, w, b, axis=axis)[0]),
            ("scale_shift", lambda a: simdnorm.scale_shift(a, w, b, axis=axis, out=a),
             lambda a: reference.scale_shift(a, w, b, axis=axis)),
        ]
        if x.size // 3 > 1:
            calls.append(("bn train", lambda a: simdnorm.batch_norm(a, None, None, w, b, training=True, axis=axis,
                                                                    out=a),
                          lambda a: reference.batch_norm(a, None, None, w, b, training=True, axis=axis)[0]))
        for name, call, expected in calls:
            a = arrays.get("x", shape, dtype, where)
            e = expected(a.copy())
            call(a)
            _close(a, e, dtype, f"{name} in place " + ctx)
            count += 1
        count += 1
    return count


def main(dtype_name, layout):
    import simdnorm

    dtype = np.dtype(dtype_name)
    arrays = Arrays()
    check = check_rows if layout == "rows" else check_columns
    count = 0
    for isa in simdnorm.available_isas():
        with simdnorm.use_isa(isa):
            for n in LENGTHS:
                for where in ("tail", "head"):
                    count += check(arrays, dtype, isa, n, where)
    print(f"OK {count}")


@pytest.mark.parametrize("layout", ["rows", "columns"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_no_access_past_guard_pages(dtype, layout):
    proc = subprocess.run(
        [sys.executable, "-X", "faulthandler", os.path.abspath(__file__), dtype, layout],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, (
        f"subprocess exited with {proc.returncode} (negative = killed by signal, -11 = SIGSEGV)\n"
        f"stdout:\n{proc.stdout[-2000:]}\nstderr:\n{proc.stderr[-6000:]}"
    )
    import simdnorm

    lines = proc.stdout.strip().splitlines()
    assert lines and lines[-1].startswith("OK ")
    assert int(lines[-1].split()[1]) >= len(simdnorm.available_isas()) * len(LENGTHS) * 2 * 2


def test_guard_page_really_faults():
    """The harness itself: touching one element past a placed array kills the subprocess."""
    code = (
        "import sys; sys.path.insert(0, %r)\n"
        "import numpy as np, test_tail_safety as t\n"
        "r = t.GuardedRegion(); a = r.place((5,), np.float32, 'tail'); a[...] = 1.0\n"
        "print('placed', float(a.sum()), flush=True)\n"
        "b = np.lib.stride_tricks.as_strided(a, shape=(6,), strides=(4,)); print(float(b[5]))\n"
    ) % os.path.dirname(os.path.abspath(__file__))
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert "placed 5.0" in proc.stdout
    assert proc.returncode != 0  # SIGSEGV (or SIGBUS)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
