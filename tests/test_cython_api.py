"""The C-level API (simdnorm/capi.h, simdnorm/__init__.pxd) from a Cython extension built at test time.

The extension is compiled once per session against the *installed* package, with only the documented
steps (``cimport simdnorm``, ``include_dirs=[simdnorm.get_include()]``, ``import_simdnorm()``), then
its per-sample loops are checked against the Python API on every ISA.
"""

import os
import shutil
import subprocess
import sys
import sysconfig
import textwrap

import numpy as np
import pytest

import simdnorm

# `cimport simdnorm`, compiled as C: per-sample loops through the C API.
PYX_LOOPS = r"""
# cython: language_level=3, boundscheck=False, wraparound=False
cimport cython
from cython cimport floating
cimport simdnorm

simdnorm.import_simdnorm()

OK = simdnorm.SIMDNORM_OK
ERR_NULL = simdnorm.SIMDNORM_ERR_NULL
ERR_SIZE = simdnorm.SIMDNORM_ERR_SIZE
ERR_LAYOUT = simdnorm.SIMDNORM_ERR_LAYOUT
ERR_VALUE = simdnorm.SIMDNORM_ERR_VALUE
ERR_NONFINITE = simdnorm.SIMDNORM_ERR_NONFINITE
ERR_EMPTY = simdnorm.SIMDNORM_ERR_EMPTY
RAISE = simdnorm.SIMDNORM_NONFINITE_RAISE
IGNORE = simdnorm.SIMDNORM_NONFINITE_IGNORE
PROPAGATE = simdnorm.SIMDNORM_NONFINITE_PROPAGATE


def table_info():
    cdef const simdnorm.simdnorm_capi* t = simdnorm.capi()
    return t.abi_version, t.size, sizeof(simdnorm.simdnorm_capi), simdnorm.SIMDNORM_CAPI_VERSION


def active_isa():
    return simdnorm.active_isa().decode()


def status_message(int status):
    return simdnorm.status_message(status).decode()


cdef Py_ssize_t row_stride(floating[:, :] a) except -1:
    if a.shape[1] > 1 and a.strides[1] != sizeof(floating):
        raise ValueError("features must be contiguous")
    return a.strides[0] // <Py_ssize_t>sizeof(floating)


def stream(floating[:, :] x, floating[:, :] y, double[::1] mean, double[::1] m2,
           double momentum, double eps, int nonfinite):
    # One sample per call: running_update_normalize over the stream. Returns (status, count, rows done).
    cdef simdnorm.running_state state
    cdef Py_ssize_t i, n = x.shape[0]
    cdef int status = simdnorm.running_init(&state, x.shape[1], &mean[0], &m2[0], momentum, eps, nonfinite)
    if status != simdnorm.SIMDNORM_OK:
        return status, 0, 0
    with nogil:
        for i in range(n):
            if floating is float:
                status = simdnorm.running_update_normalize_f32(&state, &x[i, 0], &y[i, 0], 1, 0, 0)
            else:
                status = simdnorm.running_update_normalize_f64(&state, &x[i, 0], &y[i, 0], 1, 0, 0)
            if status != simdnorm.SIMDNORM_OK:
                break
    return status, state.count, i


def update_then_normalize(floating[:, :] x, floating[:, :] y, double[::1] mean, double[::1] m2,
                          double momentum, double eps, int nonfinite, bint batch):
    # running_update (per sample or one batch call), then running_normalize of every row.
    cdef simdnorm.running_state state
    cdef Py_ssize_t i, n = x.shape[0]
    cdef Py_ssize_t xs = row_stride(x), ys = row_stride(y)
    cdef int status = simdnorm.running_init(&state, x.shape[1], &mean[0], &m2[0], momentum, eps, nonfinite)
    if status != simdnorm.SIMDNORM_OK:
        return status, 0
    with nogil:
        if batch:
            if floating is float:
                status = simdnorm.running_update_f32(&state, &x[0, 0], n, xs)
            else:
                status = simdnorm.running_update_f64(&state, &x[0, 0], n, xs)
        else:
            for i in range(n):
                if floating is float:
                    status = simdnorm.running_update_f32(&state, &x[i, 0], 1, 0)
                else:
                    status = simdnorm.running_update_f64(&state, &x[i, 0], 1, 0)
                if status != simdnorm.SIMDNORM_OK:
                    break
        if status == simdnorm.SIMDNORM_OK:
            if floating is float:
                status = simdnorm.running_normalize_f32(&state, &x[0, 0], &y[0, 0], n, xs, ys)
            else:
                status = simdnorm.running_normalize_f64(&state, &x[0, 0], &y[0, 0], n, xs, ys)
    return status, state.count


def layer_norm_rows(floating[:, :] x, floating[:, :] y, floating[::1] weight, floating[::1] bias,
                    double eps, floating[::1] mean, floating[::1] rstd):
    # One row per call.
    cdef Py_ssize_t i
    cdef int status = OK
    with nogil:
        for i in range(x.shape[0]):
            if floating is float:
                status = simdnorm.layer_norm_f32(&x[i, 0], &y[i, 0], 1, x.shape[1], 0, 0, &weight[0], &bias[0],
                                                 eps, &mean[i], &rstd[i])
            else:
                status = simdnorm.layer_norm_f64(&x[i, 0], &y[i, 0], 1, x.shape[1], 0, 0, &weight[0], &bias[0],
                                                 eps, &mean[i], &rstd[i])
            if status != simdnorm.SIMDNORM_OK:
                break
    return status


def layer_norm_batch(floating[:, :] x, floating[:, :] y, double eps):
    # All rows in one call, strided, no weight / bias / statistics.
    cdef Py_ssize_t xs = row_stride(x), ys = row_stride(y)
    if floating is float:
        return simdnorm.layer_norm_f32(&x[0, 0], &y[0, 0], x.shape[0], x.shape[1], xs, ys, NULL, NULL, eps,
                                       NULL, NULL)
    else:
        return simdnorm.layer_norm_f64(&x[0, 0], &y[0, 0], x.shape[0], x.shape[1], xs, ys, NULL, NULL, eps,
                                       NULL, NULL)


def rms_norm_rows(floating[:, :] x, floating[:, :] y, floating[::1] weight, double eps, floating[::1] rstd):
    cdef Py_ssize_t i
    cdef int status = OK
    with nogil:
        for i in range(x.shape[0]):
            if floating is float:
                status = simdnorm.rms_norm_f32(&x[i, 0], &y[i, 0], 1, x.shape[1], 0, 0, &weight[0], eps, &rstd[i])
            else:
                status = simdnorm.rms_norm_f64(&x[i, 0], &y[i, 0], 1, x.shape[1], 0, 0, &weight[0], eps, &rstd[i])
            if status != simdnorm.SIMDNORM_OK:
                break
    return status


def batch_stats(floating[:, :, ::1] x, double[::1] mean, double[::1] var):
    # x (N, C, HW) channels-first.
    cdef int status
    with nogil:
        if floating is float:
            status = simdnorm.batch_stats_f32(&x[0, 0, 0], x.shape[0], x.shape[1], x.shape[2],
                                            x.shape[1] * x.shape[2], x.shape[2], &mean[0], &var[0])
        else:
            status = simdnorm.batch_stats_f64(&x[0, 0, 0], x.shape[0], x.shape[1], x.shape[2],
                                            x.shape[1] * x.shape[2], x.shape[2], &mean[0], &var[0])
    return status


def batch_stats_rows(floating[:, :] x, double[::1] mean, double[::1] var):
    # x (N, C) channels-last, rows may be strided.
    cdef Py_ssize_t xs = row_stride(x)
    cdef int status
    with nogil:
        if floating is float:
            status = simdnorm.batch_stats_f32(&x[0, 0], x.shape[0], x.shape[1], 1, xs, 1, &mean[0], &var[0])
        else:
            status = simdnorm.batch_stats_f64(&x[0, 0], x.shape[0], x.shape[1], 1, xs, 1, &mean[0], &var[0])
    return status


def scale_shift(floating[:, :, ::1] x, floating[:, :, ::1] y, floating[::1] scale, floating[::1] shift):
    cdef Py_ssize_t n = x.shape[0], c = x.shape[1], hw = x.shape[2]
    cdef int status
    with nogil:
        if floating is float:
            status = simdnorm.scale_shift_f32(&x[0, 0, 0], &y[0, 0, 0], n, c, hw, c * hw, hw, c * hw, hw,
                                            &scale[0], &shift[0])
        else:
            status = simdnorm.scale_shift_f64(&x[0, 0, 0], &y[0, 0, 0], n, c, hw, c * hw, hw, c * hw, hw,
                                            &scale[0], &shift[0])
    return status


def scale_shift_rows(floating[:, :] x, floating[:, :] y, floating[::1] scale, floating[::1] shift):
    cdef Py_ssize_t xs = row_stride(x), ys = row_stride(y)
    cdef int status
    with nogil:
        if floating is float:
            status = simdnorm.scale_shift_f32(&x[0, 0], &y[0, 0], x.shape[0], x.shape[1], 1, xs, 1, ys, 1,
                                            &scale[0], &shift[0])
        else:
            status = simdnorm.scale_shift_f64(&x[0, 0], &y[0, 0], x.shape[0], x.shape[1], 1, xs, 1, ys, 1,
                                            &scale[0], &shift[0])
    return status


def bad_calls():
    # Status of invalid calls; none may crash or write.
    cdef float buf[8]
    cdef double m[4]
    cdef double v[4]
    cdef simdnorm.running_state state
    cdef int i
    for i in range(8):
        buf[i] = 1.0
    out = {}
    out["layer_norm_null"] = simdnorm.layer_norm_f32(NULL, buf, 2, 4, 4, 4, NULL, NULL, 1e-5, NULL, NULL)
    out["layer_norm_eps"] = simdnorm.layer_norm_f32(buf, buf, 2, 4, 4, 4, NULL, NULL, 0.0, NULL, NULL)
    out["layer_norm_nan_eps"] = simdnorm.layer_norm_f32(buf, buf, 2, 4, 4, 4, NULL, NULL, float("nan"), NULL, NULL)
    out["rms_norm_eps"] = simdnorm.rms_norm_f32(buf, buf, 2, 4, 4, 4, NULL, -1.0, NULL)
    out["layer_norm_subnormal_eps"] = simdnorm.layer_norm_f32(buf, buf, 2, 4, 4, 4, NULL, NULL, 1e-39, NULL, NULL)
    out["rms_norm_tiny_eps"] = simdnorm.rms_norm_f32(buf, buf, 2, 4, 4, 4, NULL, 1e-300, NULL)
    out["layer_norm_empty"] = simdnorm.layer_norm_f32(NULL, NULL, 0, 4, 4, 4, NULL, NULL, 1e-5, NULL, NULL)
    out["batch_stats_channels"] = simdnorm.batch_stats_f32(buf, 2, 0, 1, 4, 1, m, v)
    out["batch_stats_layout"] = simdnorm.batch_stats_f32(buf, 2, 4, 1, 4, 2, m, v)
    out["batch_stats_null"] = simdnorm.batch_stats_f32(buf, 2, 4, 1, 4, 1, NULL, v)
    out["scale_shift_null"] = simdnorm.scale_shift_f32(buf, buf, 2, 4, 1, 4, 1, 4, 1, NULL, buf)
    out["init_zero_features"] = simdnorm.running_init(&state, 0, m, v, 0.0, 1e-5, RAISE)
    out["init_null"] = simdnorm.running_init(&state, 4, NULL, v, 0.0, 1e-5, RAISE)
    out["init_momentum"] = simdnorm.running_init(&state, 4, m, v, 1.5, 1e-5, RAISE)
    out["init_eps"] = simdnorm.running_init(&state, 4, m, v, 0.0, 0.0, RAISE)
    out["init_policy"] = simdnorm.running_init(&state, 4, m, v, 0.0, 1e-5, 7)
    out["init_ok"] = simdnorm.running_init(&state, 4, m, v, 0.0, 1e-5, RAISE)
    out["normalize_empty"] = simdnorm.running_normalize_f32(&state, buf, buf, 1, 0, 0)
    out["update_null_x"] = simdnorm.running_update_f32(&state, NULL, 1, 0)
    out["update_null_state"] = simdnorm.running_update_f32(NULL, buf, 1, 0)
    out["update_normalize_null_y"] = simdnorm.running_update_normalize_f32(&state, buf, NULL, 1, 0, 0)
    state.count = -1
    out["update_bad_count"] = simdnorm.running_update_f32(&state, buf, 1, 0)
    state.count = 0
    buf[2] = float("nan")
    out["update_nonfinite"] = simdnorm.running_update_f32(&state, buf, 2, 4)
    out["update_normalize_nonfinite"] = simdnorm.running_update_normalize_f32(&state, buf, buf + 4, 1, 0, 0)
    out["count_after_nonfinite"] = state.count
    out["mean_after_nonfinite"] = [m[0], m[1], m[2], m[3]]
    return out
"""

# `from simdnorm cimport ...`, compiled as C++: the header and the .pxd in a C++ translation unit.
PYX_FROM_CIMPORT = r"""
# cython: language_level=3
# distutils: language = c++
from simdnorm cimport import_simdnorm, rms_norm_f64, active_isa, SIMDNORM_OK

import_simdnorm()


def rms_norm_row(double[::1] x, double[::1] y, double eps):
    cdef int status
    with nogil:
        status = rms_norm_f64(&x[0], &y[0], 1, x.shape[0], 0, 0, NULL, eps, NULL)
    return status == SIMDNORM_OK, active_isa().decode()
"""

SETUP_PY = r"""
from setuptools import Extension, setup
from Cython.Build import cythonize

import simdnorm

extensions = [
    Extension("capi_loops", ["capi_loops.pyx"], include_dirs=[simdnorm.get_include()]),
    Extension("capi_from_cimport", ["capi_from_cimport.pyx"], include_dirs=[simdnorm.get_include()],
              language="c++"),
]
setup(name="simdnorm-capi-test", ext_modules=cythonize(extensions, quiet=True))
"""


def _compiler_missing():
    cc = (sysconfig.get_config_var("CC") or "cc").split()[0]
    return shutil.which(cc) is None and shutil.which("cc") is None and shutil.which("gcc") is None


@pytest.fixture(scope="module")
def ext(tmp_path_factory):
    """Builds the two extensions once and imports them (from a tmp dir, against the installed simdnorm)."""
    try:
        import Cython  # noqa: F401
        import setuptools  # noqa: F401
    except ImportError as e:
        pytest.skip(f"building a Cython extension needs Cython and setuptools (pip install .[test]): {e}")
    if _compiler_missing():
        pytest.skip("no C compiler found (sysconfig CC, cc, gcc): cannot build a Cython extension")
    build = tmp_path_factory.mktemp("capi_ext")
    (build / "capi_loops.pyx").write_text(textwrap.dedent(PYX_LOOPS))
    (build / "capi_from_cimport.pyx").write_text(textwrap.dedent(PYX_FROM_CIMPORT))
    (build / "setup.py").write_text(textwrap.dedent(SETUP_PY))
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)  # the installed simdnorm, not a source tree
    result = subprocess.run(
        [sys.executable, "setup.py", "build_ext", "--inplace"],
        check=False,
        cwd=build,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    if result.returncode != 0:
        pytest.fail(f"building the Cython extension failed:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}")
    sys.path.insert(0, str(build))
    try:
        import capi_from_cimport
        import capi_loops
    finally:
        sys.path.remove(str(build))

    class Ext:
        loops = capi_loops
        from_cimport = capi_from_cimport

    return Ext


DTYPES = [np.float32, np.float64]


def test_table_header_matches_installed_library(ext):
    abi_version, size, compiled_size, compiled_version = ext.loops.table_info()
    assert abi_version == compiled_version == 1
    assert size == compiled_size
    assert simdnorm._core._C_API is not None
    assert os.path.isfile(os.path.join(simdnorm.get_include(), "simdnorm", "capi.h"))
    pxd = os.path.join(os.path.dirname(simdnorm.__file__), "__init__.pxd")
    assert os.path.isfile(pxd)


def test_active_isa_follows_use_isa(ext, isa):
    assert ext.loops.active_isa() == isa == simdnorm.current_isa()
    ok, name = ext.from_cimport.rms_norm_row(np.ones(5), np.empty(5), 1e-6)
    assert ok and name == isa


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("momentum", [None, 0.1])
@pytest.mark.parametrize("features", [1, 7, 16, 33, 256])
def test_stream_update_normalize_matches_running_stats(ext, isa, rng, dtype, momentum, features):
    x = (rng.standard_normal((200, features)) * 3 + 5).astype(dtype)
    y_c = np.full_like(x, np.nan)
    mean, m2 = np.empty(features), np.empty(features)
    status, count, _ = ext.loops.stream(x, y_c, mean, m2, momentum or 0.0, 1e-5, ext.loops.RAISE)
    assert status == ext.loops.OK and count == len(x)

    rs = simdnorm.RunningStats(features, momentum=momentum, eps=1e-5)
    y_py = np.empty_like(x)
    for i in range(len(x)):
        rs.update_normalize(x[i], out=y_py[i])
    # The same C++ loops on the same ISA: identical bits.
    np.testing.assert_array_equal(y_c, y_py)
    np.testing.assert_array_equal(mean, rs.mean)
    var = m2 / count if momentum is None else m2
    np.testing.assert_allclose(var, rs.var, rtol=1e-15, atol=0)
    assert count == rs.count


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("momentum", [None, 0.25])
@pytest.mark.parametrize("batch", [False, True])
def test_update_then_normalize_matches_running_stats(ext, isa, rng, dtype, momentum, batch):
    wide = (rng.standard_normal((50, 24)) + 2).astype(dtype)
    x = wide[:, :17]  # strided rows
    y_c = np.full((50, 17), np.nan, dtype)
    mean, m2 = np.empty(17), np.empty(17)
    status, count = ext.loops.update_then_normalize(x, y_c, mean, m2, momentum or 0.0, 1e-3, ext.loops.RAISE, batch)
    assert status == ext.loops.OK and count == 50

    rs = simdnorm.RunningStats(17, momentum=momentum, eps=1e-3)
    if batch:
        rs.update(x)
    else:
        for row in x:
            rs.update(row)
    np.testing.assert_array_equal(mean, rs.mean)
    np.testing.assert_array_equal(y_c, rs.normalize(x))


@pytest.mark.parametrize("policy", ["ignore", "propagate"])
def test_stream_nonfinite_policies_match(ext, isa, rng, policy):
    x = rng.standard_normal((30, 9)).astype(np.float32)
    x[0, 3] = np.nan  # the very first sample
    x[11, 2] = np.inf
    code = {"ignore": ext.loops.IGNORE, "propagate": ext.loops.PROPAGATE}[policy]
    y_c = np.full_like(x, 7.0)
    mean, m2 = np.empty(9), np.empty(9)
    status, count, _ = ext.loops.stream(x, y_c, mean, m2, 0.0, 1e-5, code)

    rs = simdnorm.RunningStats(9, nonfinite=policy)
    y_py = np.full_like(x, 7.0)
    py_error = None
    for i in range(len(x)):
        try:
            rs.update_normalize(x[i], out=y_py[i])
        except ValueError as e:  # ignore: a skipped first sample leaves no statistics to normalize with
            py_error = e
            break
    if policy == "ignore":
        # Both stop at the first sample: nothing seen yet.
        assert py_error is not None and status == ext.loops.ERR_EMPTY and count == 0
    else:
        assert py_error is None and status == ext.loops.OK and count == rs.count == 30
        np.testing.assert_array_equal(y_c, y_py)
        np.testing.assert_array_equal(mean, rs.mean)


def test_stream_raise_stops_at_nonfinite_sample_unchanged(ext, rng):
    x = rng.standard_normal((10, 5))
    x[6, 4] = np.nan
    mean, m2 = np.empty(5), np.empty(5)
    status, count, stopped = ext.loops.stream(x, np.empty_like(x), mean, m2, 0.0, 1e-5, ext.loops.RAISE)
    assert status == ext.loops.ERR_NONFINITE and count == 6 and stopped == 6
    np.testing.assert_allclose(mean, x[:6].mean(axis=0), rtol=1e-12)
    assert "NaN" in ext.loops.status_message(status)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("cols", [1, 3, 8, 17, 64, 768])
def test_layer_norm_rows_match_python(ext, isa, rng, dtype, cols):
    x = (rng.standard_normal((6, cols)) * 2 + 1).astype(dtype)
    w = np.linspace(0.5, 2.0, cols).astype(dtype)
    b = np.linspace(-1.0, 1.0, cols).astype(dtype)
    y = np.empty_like(x)
    mean, rstd = np.empty(6, dtype), np.empty(6, dtype)
    assert ext.loops.layer_norm_rows(x, y, w, b, 1e-5, mean, rstd) == ext.loops.OK
    want, want_mean, want_rstd = simdnorm.layer_norm(x, w, b, eps=1e-5, return_stats=True)
    np.testing.assert_array_equal(y, want)
    np.testing.assert_array_equal(mean, np.ravel(want_mean))
    np.testing.assert_array_equal(rstd, np.ravel(want_rstd))

    wide = np.concatenate([x, x], axis=1)
    out = np.zeros((6, cols + 5), dtype)
    assert ext.loops.layer_norm_batch(wide[:, :cols], out[:, :cols], 1e-5) == ext.loops.OK
    np.testing.assert_array_equal(out[:, :cols], simdnorm.layer_norm(x, eps=1e-5))
    assert not out[:, cols:].any()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("cols", [1, 5, 16, 33, 1000])
def test_rms_norm_rows_match_python(ext, isa, rng, dtype, cols):
    x = rng.standard_normal((5, cols)).astype(dtype)
    w = np.linspace(0.5, 2.0, cols).astype(dtype)
    y = np.empty_like(x)
    rstd = np.empty(5, dtype)
    assert ext.loops.rms_norm_rows(x, y, w, 1e-6, rstd) == ext.loops.OK
    np.testing.assert_array_equal(y, simdnorm.rms_norm(x, w, eps=1e-6))
    ms = np.mean(x.astype(np.float64) ** 2, axis=1)
    np.testing.assert_allclose(rstd, 1 / np.sqrt(ms + 1e-6), rtol=1e-5 if dtype == np.float32 else 1e-12)


@pytest.mark.parametrize("dtype", DTYPES)
def test_batch_stats_and_scale_shift_match_python(ext, isa, rng, dtype):
    x = (rng.standard_normal((4, 3, 37)) + 3).astype(dtype)  # channels-first
    mean, var = np.empty(3), np.empty(3)
    assert ext.loops.batch_stats(x, mean, var) == ext.loops.OK
    want_mean, want_var, _ = simdnorm.batch_stats(x, axis=1)
    np.testing.assert_array_equal(mean, want_mean)
    np.testing.assert_array_equal(var, want_var)

    rows = (rng.standard_normal((40, 11)) - 1).astype(dtype)  # channels-last, strided rows
    wide = np.concatenate([rows, rows], axis=1)
    mean, var = np.empty(11), np.empty(11)
    assert ext.loops.batch_stats_rows(wide[:, :11], mean, var) == ext.loops.OK
    want_mean, want_var, _ = simdnorm.batch_stats(rows, axis=1)
    np.testing.assert_array_equal(mean, want_mean)
    np.testing.assert_array_equal(var, want_var)

    scale = np.array([0.5, -2.0, 3.0], dtype)
    shift = np.array([1.0, 0.0, -4.0], dtype)
    y = np.empty_like(x)
    assert ext.loops.scale_shift(x, y, scale, shift) == ext.loops.OK
    np.testing.assert_array_equal(y, simdnorm.scale_shift(x, scale, shift, axis=1))

    scale11 = np.linspace(-1, 1, 11).astype(dtype)
    shift11 = np.linspace(2, 3, 11).astype(dtype)
    out = np.zeros((40, 16), dtype)
    assert ext.loops.scale_shift_rows(wide[:, :11], out[:, :11], scale11, shift11) == ext.loops.OK
    np.testing.assert_array_equal(out[:, :11], simdnorm.scale_shift(rows, scale11, shift11, axis=1))
    assert not out[:, 11:].any()


def test_invalid_arguments_return_status_codes(ext):
    m = ext.loops
    got = m.bad_calls()
    assert got["layer_norm_null"] == m.ERR_NULL
    assert got["layer_norm_eps"] == m.ERR_VALUE
    assert got["layer_norm_nan_eps"] == m.ERR_VALUE
    assert got["rms_norm_eps"] == m.ERR_VALUE
    assert got["layer_norm_subnormal_eps"] == m.ERR_VALUE  # below FLT_MIN: acts as 0 in float32
    assert got["rms_norm_tiny_eps"] == m.ERR_VALUE
    assert got["layer_norm_empty"] == m.OK
    assert got["batch_stats_channels"] == m.ERR_SIZE
    assert got["batch_stats_layout"] == m.ERR_LAYOUT
    assert got["batch_stats_null"] == m.ERR_NULL
    assert got["scale_shift_null"] == m.ERR_NULL
    assert got["init_zero_features"] == m.ERR_SIZE
    assert got["init_null"] == m.ERR_NULL
    assert got["init_momentum"] == m.ERR_VALUE
    assert got["init_eps"] == m.ERR_VALUE
    assert got["init_policy"] == m.ERR_VALUE
    assert got["init_ok"] == m.OK
    assert got["normalize_empty"] == m.ERR_EMPTY
    assert got["update_null_x"] == m.ERR_NULL
    assert got["update_null_state"] == m.ERR_NULL
    assert got["update_normalize_null_y"] == m.ERR_NULL
    assert got["update_bad_count"] == m.ERR_VALUE
    assert got["update_nonfinite"] == m.ERR_NONFINITE
    assert got["update_normalize_nonfinite"] == m.ERR_NONFINITE
    assert got["count_after_nonfinite"] == 0
    assert got["mean_after_nonfinite"] == [0.0, 0.0, 0.0, 0.0]
    assert m.status_message(m.ERR_EMPTY) == "no statistics yet (count == 0)"
