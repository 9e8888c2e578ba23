"""Random shapes, axes, strides, transposes and negative strides (hypothesis).

Each example enters simdnorm.use_isa(...) inside the body (a fixture would not be re-entered per
example). Every result is compared with the float64 reference computed on a contiguous copy.
"""

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from hypothesis.extra import numpy as hnp

import reference
import simdnorm

SETTINGS = settings(max_examples=60, deadline=None, database=None)
DTYPES = st.sampled_from([np.dtype(np.float32), np.dtype(np.float64)])
ISAS = st.sampled_from(simdnorm.available_isas())


@st.composite
def strided_views(draw, dtype, min_dims=1, max_dims=4, max_side=9, min_side=1):
    """A view with arbitrary steps (negative too), a transpose and a non-zero start offset."""
    base_shape = draw(hnp.array_shapes(min_dims=min_dims, max_dims=max_dims, min_side=min_side, max_side=max_side))
    ndim = len(base_shape)
    steps = draw(st.lists(st.sampled_from([1, 1, 1, 2, 3, -1, -2]), min_size=ndim, max_size=ndim))
    perm = draw(st.permutations(range(ndim)))
    offset = draw(st.integers(0, 3))
    seed = draw(st.integers(0, 2**32 - 1))
    loc = draw(st.sampled_from([0.0, 1.0, -5.0, 100.0]))
    scale = draw(st.sampled_from([1.0, 0.01, 30.0]))
    big_shape = tuple(s * abs(k) for s, k in zip(base_shape, steps))
    size = int(np.prod(big_shape))
    flat = np.empty(size + offset, dtype)
    big = flat[offset:].reshape(big_shape)
    big[...] = np.random.default_rng(seed).standard_normal(big_shape) * scale + loc
    view = big[tuple(slice(None, None, k) for k in steps)].transpose(perm)
    return view


def param_array(rng, shape, dtype, low, high, strided):
    """A weight-like array of `shape`; when `strided`, a reversed non-contiguous view."""
    values = rng.uniform(low, high, shape).astype(dtype)
    if not strided or values.size == 0:
        return values
    holder = np.zeros(tuple(2 * s for s in shape), dtype)
    view = holder[tuple(slice(None, None, -2) for _ in shape)]
    view[...] = values
    return view


def out_array(data, x):
    """None, a fresh array, a strided view or (for in place) x itself."""
    kind = data.draw(st.sampled_from(["none", "fresh", "strided", "inplace"]))
    if kind == "none":
        return kind, None
    if kind == "fresh":
        return kind, np.full(x.shape, np.nan, x.dtype)
    if kind == "strided":
        holder = np.full(tuple(2 * s for s in x.shape), np.nan, x.dtype)
        return kind, holder[tuple(slice(None, None, -2) for _ in x.shape)]
    return kind, x


def norm_axis(ndim):
    return st.one_of(st.integers(-ndim, ndim - 1), hnp.valid_tuple_axes(ndim, min_size=1))


def centered_atol(x, axes, dtype, weight_max=1.0):
    """Absolute tolerance for outputs of (x - mean) * rstd.

    float64 has no wider type for the mean, so x - mean carries ~eps * max|x| of rounding, which
    rstd amplifies for tightly clustered values (offset 100, spread 0.01). float32 inputs get
    exact differences (kernels.hpp), so their tolerance stays flat.
    """
    base = reference.tol(dtype)["atol"]
    if dtype == np.float32:
        return base
    x = np.asarray(x, np.float64)
    amax = np.abs(x).max(axis=axes, keepdims=True)
    var = ((x - x.mean(axis=axes, keepdims=True)) ** 2).mean(axis=axes, keepdims=True)
    return base + 32 * np.finfo(np.float64).eps * amax / np.sqrt(var + 1e-5) * weight_max


def check_result(got, out_kind, out, x_ref, expected, dtype, atol=None):
    assert got.shape == x_ref.shape and got.dtype == dtype
    t = reference.tol(dtype)
    atol = t["atol"] if atol is None else atol
    bound = atol + t["rtol"] * np.abs(expected)
    assert (np.abs(got - expected) <= bound).all(), f"max excess {np.max(np.abs(got - expected) - bound):.3g}"
    if out_kind != "none":
        np.testing.assert_array_equal(out, got)


@SETTINGS
@given(data=st.data())
def test_layer_norm_any_layout(data):
    isa, dtype = data.draw(ISAS), data.draw(DTYPES)
    x = data.draw(strided_views(dtype))
    axis = data.draw(norm_axis(x.ndim))
    axes = reference.norm_axes(x.ndim, axis)
    pshape = tuple(x.shape[a] for a in axes)
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    w = param_array(rng, pshape, dtype, 0.5, 2.0, data.draw(st.booleans())) if data.draw(st.booleans()) else None
    b = param_array(rng, pshape, dtype, -1.0, 1.0, data.draw(st.booleans())) if data.draw(st.booleans()) else None
    x_ref = x.copy()
    out_kind, out = out_array(data, x)
    expected = reference.layer_norm(x_ref, w, b, axis=axis)
    with simdnorm.use_isa(isa):
        got = simdnorm.layer_norm(x, w, b, axis=axis, out=out)
    check_result(got, out_kind, out, x_ref, expected, dtype, centered_atol(x_ref, axes, dtype, 2.0))
    if out_kind != "inplace":
        np.testing.assert_array_equal(x, x_ref)


@SETTINGS
@given(data=st.data())
def test_layer_norm_stats_any_layout(data):
    isa, dtype = data.draw(ISAS), data.draw(DTYPES)
    x = data.draw(strided_views(dtype))
    axis = data.draw(norm_axis(x.ndim))
    ey, emean, erstd = reference.layer_norm(x, axis=axis, return_stats=True)
    with simdnorm.use_isa(isa):
        y, mean, rstd = simdnorm.layer_norm(x, axis=axis, return_stats=True)
    check_result(y, "none", None, x, ey, dtype, centered_atol(x, reference.norm_axes(x.ndim, axis), dtype))
    assert mean.shape == emean.shape and rstd.shape == erstd.shape
    np.testing.assert_allclose(mean, emean, **reference.tol(dtype))
    # rstd can be as large as 1/sqrt(eps) ~ 316 for rows of one element.
    np.testing.assert_allclose(rstd, erstd, rtol=reference.tol(dtype)["rtol"], atol=0)


@SETTINGS
@given(data=st.data())
def test_rms_norm_any_layout(data):
    isa, dtype = data.draw(ISAS), data.draw(DTYPES)
    x = data.draw(strided_views(dtype))
    axis = data.draw(norm_axis(x.ndim))
    pshape = tuple(x.shape[a] for a in reference.norm_axes(x.ndim, axis))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    w = param_array(rng, pshape, dtype, 0.5, 2.0, data.draw(st.booleans())) if data.draw(st.booleans()) else None
    x_ref = x.copy()
    out_kind, out = out_array(data, x)
    expected = reference.rms_norm(x_ref, w, axis=axis)
    with simdnorm.use_isa(isa):
        got = simdnorm.rms_norm(x, w, axis=axis, out=out)
    check_result(got, out_kind, out, x_ref, expected, dtype)


@SETTINGS
@given(data=st.data())
def test_batch_norm_any_layout(data):
    isa, dtype = data.draw(ISAS), data.draw(DTYPES)
    x = data.draw(strided_views(dtype, min_dims=2))
    axis = data.draw(st.integers(-x.ndim, x.ndim - 1))
    c = x.shape[axis]
    training = data.draw(st.booleans())
    momentum = data.draw(st.sampled_from([0.1, 0.5, 1.0]))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    stats_dtype = data.draw(DTYPES)  # running statistics of either dtype, whatever x's
    rm = param_array(rng, (c,), stats_dtype, -1.0, 1.0, False)
    rv = param_array(rng, (c,), stats_dtype, 0.5, 2.0, False)
    w = param_array(rng, (c,), dtype, 0.5, 2.0, data.draw(st.booleans())) if data.draw(st.booleans()) else None
    b = param_array(rng, (c,), dtype, -1.0, 1.0, data.draw(st.booleans())) if data.draw(st.booleans()) else None
    x_ref = x.copy()
    if training and x.size // c <= 1:
        rm0, rv0 = rm.copy(), rv.copy()
        with simdnorm.use_isa(isa), pytest.raises(ValueError, match="Expected more than 1 value per channel"):
            simdnorm.batch_norm(x, rm, rv, w, b, training=True, axis=axis)
        np.testing.assert_array_equal(rm, rm0)
        np.testing.assert_array_equal(rv, rv0)
        return
    out_kind, out = out_array(data, x)
    expected, erm, erv = reference.batch_norm(x_ref, rm, rv, w, b, training=training, momentum=momentum, axis=axis)
    with simdnorm.use_isa(isa):
        got = simdnorm.batch_norm(x, rm, rv, w, b, training=training, momentum=momentum, axis=axis, out=out)
    reduce = tuple(a for a in range(x.ndim) if a != axis % x.ndim)
    atol = centered_atol(x_ref, reduce, dtype, 2.0) if training else None
    check_result(got, out_kind, out, x_ref, expected, dtype, atol)
    single = np.float32 in (dtype, stats_dtype)
    stat_tol = dict(rtol=1e-5, atol=1e-5) if single else dict(rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(rm, erm, **stat_tol)
    np.testing.assert_allclose(rv, erv, **stat_tol)


@SETTINGS
@given(data=st.data())
def test_batch_stats_any_layout(data):
    isa, dtype = data.draw(ISAS), data.draw(DTYPES)
    x = data.draw(strided_views(dtype, min_dims=2))
    axis = data.draw(st.integers(-x.ndim, x.ndim - 1))
    emean, evar, ecount = reference.batch_stats(x, axis=axis)
    with simdnorm.use_isa(isa):
        mean, var, count = simdnorm.batch_stats(x, axis=axis)
    assert count == ecount
    scale = max(1.0, float(np.abs(emean).max()))
    atol = (1e-5 if dtype == np.float32 else 1e-12) * scale
    np.testing.assert_allclose(mean, emean, rtol=1e-6, atol=atol)
    np.testing.assert_allclose(var, evar, rtol=1e-5 if dtype == np.float32 else 1e-11, atol=atol * scale)


@SETTINGS
@given(data=st.data())
def test_scale_shift_any_layout(data):
    isa, dtype = data.draw(ISAS), data.draw(DTYPES)
    x = data.draw(strided_views(dtype, min_dims=2))
    axis = data.draw(st.integers(-x.ndim, x.ndim - 1))
    c = x.shape[axis]
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    scale = param_array(rng, (c,), dtype, -2.0, 2.0, data.draw(st.booleans()))
    shift = param_array(rng, (c,), dtype, -1.0, 1.0, data.draw(st.booleans()))
    x_ref = x.copy()
    out_kind, out = out_array(data, x)
    expected = reference.scale_shift(x_ref, scale, shift, axis=axis)
    with simdnorm.use_isa(isa):
        got = simdnorm.scale_shift(x, scale, shift, axis=axis, out=out)
    # Inputs reach |x| ~ 3000: compare relative to the output magnitude.
    mag = max(1.0, float(np.abs(expected).max()))
    t = reference.tol(dtype)
    np.testing.assert_allclose(got, expected, rtol=t["rtol"], atol=t["atol"] * mag)
    if out_kind != "none":
        np.testing.assert_array_equal(out, got)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_batch_norm_eval_strided_running_stats(isa, rng, dtype):
    x = rng.standard_normal((6, 5, 4)).astype(dtype)
    holder_m = rng.standard_normal(10).astype(dtype)
    holder_v = rng.uniform(0.5, 2.0, 10).astype(dtype)
    rm, rv = holder_m[::-2], holder_v[::2]
    y = simdnorm.batch_norm(x, rm, rv)
    np.testing.assert_allclose(y, reference.batch_norm(x, rm, rv)[0], **reference.tol(dtype))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_batch_norm_training_strided_running_stats(isa, rng, dtype):
    """Non-contiguous running arrays are updated in place, or rejected up front (never a silent
    update of a temporary copy)."""
    x = rng.standard_normal((6, 5, 4)).astype(dtype)
    holder_m = np.zeros(10, dtype)
    holder_v = np.ones(10, dtype)
    rm, rv = holder_m[::-2], holder_v[::2]
    expected, erm, erv = reference.batch_norm(x, rm, rv, training=True, momentum=0.3)
    try:
        y = simdnorm.batch_norm(x, rm, rv, training=True, momentum=0.3)
    except ValueError as e:
        assert "running_mean" in str(e) or "running_var" in str(e)
        np.testing.assert_array_equal(holder_m, 0)
        np.testing.assert_array_equal(holder_v, 1)
        return
    np.testing.assert_allclose(y, expected, **reference.tol(dtype))
    np.testing.assert_allclose(rm, erm, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(rv, erv, rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(holder_m[-2::-2], 0)  # the skipped slots are untouched
    np.testing.assert_array_equal(holder_v[1::2], 1)


def _placed(shape, dtype, lead):
    """A C-contiguous array `lead` elements past a 64-byte boundary."""
    size = int(np.prod(shape))
    raw = np.empty(size + lead + 64, dtype)
    start = (-raw.ctypes.data % 64) // raw.itemsize + lead
    return raw[start : start + size].reshape(shape)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("channels", [1, 5, 16, 64, 100])
@pytest.mark.parametrize("leads", [(0, 0), (1, 1), (3, 3), (0, 1), (2, 0)])  # x, out
def test_channels_last_rows_any_placement(isa, rng, dtype, channels, leads):
    """Channels-last rows back to back (one flat loop when x and out are equally off alignment, a
    loop per row otherwise): same values for every placement of x and out, in place too."""
    x = _placed((70, channels), dtype, leads[0])
    x[...] = rng.standard_normal(x.shape)
    scale, shift = rng.uniform(0.5, 2, channels).astype(dtype), rng.standard_normal(channels).astype(dtype)
    out = _placed(x.shape, dtype, leads[1])
    expected = reference.scale_shift(x, scale, shift, axis=-1)
    t = reference.tol(dtype)
    np.testing.assert_allclose(simdnorm.scale_shift(x, scale, shift, axis=-1, out=out), expected, **t)
    np.testing.assert_array_equal(out, simdnorm.scale_shift(np.ascontiguousarray(x), scale, shift, axis=-1))
    simdnorm.scale_shift(x, scale, shift, axis=-1, out=x)
    np.testing.assert_array_equal(x, out)
