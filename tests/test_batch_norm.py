import numpy as np
import pytest

import reference
import simdnorm

DTYPES = [np.float32, np.float64]

# (shape, channel axis): NC, NCL, NCHW, NHWC, (N, F), NCDHW, channels in the middle of NLC.
LAYOUTS = [
    ((16, 5), 1),
    ((8, 33), -1),
    ((4, 7, 19), 1),
    ((3, 6, 5, 7), 1),
    ((3, 5, 7, 6), -1),
    ((3, 5, 7, 6), 3),
    ((2, 17, 4, 4), 1),
    ((2, 3, 2, 3, 4), 1),
    ((4, 9, 3), 2),
    ((6, 40), 0),
]


def _channel_params(rng, c, dtype):
    return (
        rng.standard_normal(c).astype(dtype),  # running_mean
        rng.uniform(0.5, 2.0, c).astype(dtype),  # running_var
        rng.uniform(0.5, 2.0, c).astype(dtype),  # weight
        rng.uniform(-1.0, 1.0, c).astype(dtype),  # bias
    )


def _stat_tol(dtype):
    return dict(rtol=1e-6, atol=1e-6) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape, axis", LAYOUTS)
def test_batch_norm_training_matches_reference(isa, rng, dtype, shape, axis):
    x = (rng.standard_normal(shape) * 2 + 0.5).astype(dtype)
    c = shape[axis]
    rm, rv, w, b = _channel_params(rng, c, dtype)
    ry, rrm, rrv = reference.batch_norm(x, rm, rv, w, b, training=True, momentum=0.1, axis=axis)
    y = simdnorm.batch_norm(x, rm, rv, w, b, training=True, momentum=0.1, axis=axis)
    assert y.dtype == dtype and y.shape == x.shape
    np.testing.assert_allclose(y, ry, **reference.tol(dtype))
    assert rm.dtype == dtype and rv.dtype == dtype
    np.testing.assert_allclose(rm, rrm, **_stat_tol(dtype))
    np.testing.assert_allclose(rv, rrv, **_stat_tol(dtype))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape, axis", LAYOUTS)
def test_batch_norm_eval_matches_reference(isa, rng, dtype, shape, axis):
    x = rng.standard_normal(shape).astype(dtype)
    rm, rv, w, b = _channel_params(rng, shape[axis], dtype)
    copies = (rm.copy(), rv.copy())
    y = simdnorm.batch_norm(x, rm, rv, w, b, training=False, axis=axis)
    ry, _, _ = reference.batch_norm(x, rm, rv, w, b, training=False, axis=axis)
    np.testing.assert_allclose(y, ry, **reference.tol(dtype))
    np.testing.assert_array_equal(rm, copies[0])
    np.testing.assert_array_equal(rv, copies[1])


@pytest.mark.parametrize("dtype", DTYPES)
def test_batch_norm_default_is_eval_on_channel_axis_1(isa, rng, dtype):
    x = rng.standard_normal((4, 3, 5)).astype(dtype)
    rm, rv, w, b = _channel_params(rng, 3, dtype)
    y = simdnorm.batch_norm(x, rm, rv, w, b)
    np.testing.assert_allclose(y, reference.batch_norm(x, rm, rv, w, b, axis=1)[0], **reference.tol(dtype))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("momentum", [0.0, 0.1, 0.5, 1.0])
def test_batch_norm_momentum_formula(isa, rng, dtype, momentum):
    x = (rng.standard_normal((10, 4, 3)) * 3 + 1).astype(dtype)
    rm = np.array([0.5, -1.0, 2.0, 0.0], dtype)
    rv = np.array([1.0, 2.0, 0.25, 4.0], dtype)
    rm0, rv0 = rm.astype(np.float64), rv.astype(np.float64)
    simdnorm.batch_norm(x, rm, rv, training=True, momentum=momentum)
    mean, var, n = reference.batch_stats(x, axis=1)
    assert n == 30
    np.testing.assert_allclose(rm, (1 - momentum) * rm0 + momentum * mean, **_stat_tol(dtype))
    np.testing.assert_allclose(rv, (1 - momentum) * rv0 + momentum * var * n / (n - 1), **_stat_tol(dtype))
    if momentum == 0.0:
        np.testing.assert_array_equal(rm, rm0.astype(dtype))
        np.testing.assert_array_equal(rv, rv0.astype(dtype))


@pytest.mark.parametrize("dtype", DTYPES)
def test_batch_norm_running_var_is_unbiased_but_output_uses_biased(isa, dtype):
    # Two samples per channel: biased var = 1, unbiased var = 2.
    x = np.array([[1.0, 10.0], [3.0, 14.0]], dtype)
    rm = np.zeros(2, dtype)
    rv = np.zeros(2, dtype)
    y = simdnorm.batch_norm(x, rm, rv, training=True, momentum=1.0, eps=0.0 + 1e-12)
    np.testing.assert_allclose(rm, [2.0, 12.0], rtol=1e-7)
    np.testing.assert_allclose(rv, [2.0, 8.0], rtol=1e-7)
    np.testing.assert_allclose(y, [[-1.0, -1.0], [1.0, 1.0]], rtol=1e-5)


@pytest.mark.parametrize("dtype", DTYPES)
def test_batch_norm_repeated_training_steps(isa, rng, dtype):
    rm = np.zeros(6, dtype)
    rv = np.ones(6, dtype)
    erm, erv = rm.astype(np.float64), rv.astype(np.float64)
    for step in range(5):
        x = (rng.standard_normal((8, 6, 5)) + step).astype(dtype)
        simdnorm.batch_norm(x, rm, rv, training=True, momentum=0.2)
        _, erm, erv = reference.batch_norm(x, erm, erv, training=True, momentum=0.2)
    np.testing.assert_allclose(rm, erm, **_stat_tol(dtype))
    np.testing.assert_allclose(rv, erv, **_stat_tol(dtype))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape, axis", [((16, 5), 1), ((3, 6, 5, 7), 1), ((3, 5, 7, 6), -1)])
def test_batch_norm_training_without_running_stats(isa, rng, dtype, shape, axis):
    x = rng.standard_normal(shape).astype(dtype)
    y = simdnorm.batch_norm(x, training=True, axis=axis)
    np.testing.assert_allclose(y, reference.batch_norm(x, training=True, axis=axis)[0], **reference.tol(dtype))


@pytest.mark.parametrize("dtype", DTYPES)
def test_batch_norm_training_without_affine(isa, rng, dtype):
    x = rng.standard_normal((5, 3, 4, 4)).astype(dtype)
    rm, rv, _, _ = _channel_params(rng, 3, dtype)
    erm, erv = rm.copy(), rv.copy()
    y = simdnorm.batch_norm(x, rm, rv, training=True)
    ry, erm, erv = reference.batch_norm(x, erm, erv, training=True)
    np.testing.assert_allclose(y, ry, **reference.tol(dtype))
    np.testing.assert_allclose(rm, erm, **_stat_tol(dtype))
    np.testing.assert_allclose(rv, erv, **_stat_tol(dtype))
    # Normalized channels: mean 0, biased variance 1 (up to eps).
    np.testing.assert_allclose(y.mean(axis=(0, 2, 3)), 0, atol=1e-5)
    np.testing.assert_allclose(y.var(axis=(0, 2, 3)), 1, atol=1e-3)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("eps", [1e-8, 1e-3, 1.0])
def test_batch_norm_eps(isa, rng, dtype, eps):
    x = (0.05 * rng.standard_normal((6, 4, 3))).astype(dtype)
    rm, rv, w, b = _channel_params(rng, 4, dtype)
    rv = (rv * 1e-3).astype(dtype)
    np.testing.assert_allclose(simdnorm.batch_norm(x, rm, rv, w, b, eps=eps),
                               reference.batch_norm(x, rm, rv, w, b, eps=eps)[0], **reference.tol(dtype))
    np.testing.assert_allclose(simdnorm.batch_norm(x, None, None, w, b, training=True, eps=eps),
                               reference.batch_norm(x, None, None, w, b, training=True, eps=eps)[0],
                               **reference.tol(dtype))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("training", [False, True])
@pytest.mark.parametrize("shape, axis", [((4, 6, 3, 5), 1), ((4, 3, 5, 6), -1)])
def test_batch_norm_out_and_in_place(isa, rng, dtype, training, shape, axis):
    x = rng.standard_normal(shape).astype(dtype)
    rm, rv, w, b = _channel_params(rng, 6, dtype)
    expected = simdnorm.batch_norm(x, rm.copy(), rv.copy(), w, b, training=training, axis=axis)
    out = np.full_like(x, np.nan)
    rm1, rv1 = rm.copy(), rv.copy()
    got = simdnorm.batch_norm(x, rm1, rv1, w, b, training=training, axis=axis, out=out)
    np.testing.assert_array_equal(out, expected)
    np.testing.assert_array_equal(got, expected)
    rm2, rv2 = rm.copy(), rv.copy()
    simdnorm.batch_norm(x, rm2, rv2, w, b, training=training, axis=axis, out=x)
    np.testing.assert_array_equal(x, expected)
    np.testing.assert_array_equal(rm1, rm2)
    np.testing.assert_array_equal(rv1, rv2)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(1, 4), (1, 4, 1), (1, 3, 1, 1), (1, 1, 1, 5)])
def test_batch_norm_training_single_value_per_channel_raises(isa, dtype, shape):
    axis = -1 if shape == (1, 1, 1, 5) else 1
    x = np.arange(np.prod(shape), dtype=dtype).reshape(shape)
    c = shape[axis]
    rm, rv = np.zeros(c, dtype), np.ones(c, dtype)
    with pytest.raises(ValueError, match="Expected more than 1 value per channel when training"):
        simdnorm.batch_norm(x, rm, rv, training=True, axis=axis)
    np.testing.assert_array_equal(rm, np.zeros(c, dtype))
    np.testing.assert_array_equal(rv, np.ones(c, dtype))
    # Eval mode is fine with a single sample.
    y = simdnorm.batch_norm(x, rm, rv, training=False, axis=axis)
    np.testing.assert_allclose(y, reference.batch_norm(x, rm, rv, axis=axis)[0], **reference.tol(dtype))


@pytest.mark.parametrize("dtype", DTYPES)
def test_batch_norm_training_single_sample_with_spatial_is_fine(isa, rng, dtype):
    x = rng.standard_normal((1, 3, 2, 2)).astype(dtype)
    rm, rv = np.zeros(3, dtype), np.ones(3, dtype)
    y = simdnorm.batch_norm(x, rm, rv, training=True)
    ry, erm, erv = reference.batch_norm(x, np.zeros(3), np.ones(3), training=True)
    np.testing.assert_allclose(y, ry, **reference.tol(dtype))
    np.testing.assert_allclose(rv, erv, **_stat_tol(dtype))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape, axis", [((0, 3), 1), ((0, 3, 4, 4), 1), ((2, 0, 4), 1), ((0, 4, 4, 3), -1)])
def test_batch_norm_eval_zero_size(isa, dtype, shape, axis):
    c = shape[axis]
    x = np.zeros(shape, dtype)
    y = simdnorm.batch_norm(x, np.zeros(c, dtype), np.ones(c, dtype), axis=axis)
    assert y.shape == shape and y.dtype == dtype


# ---- batch_stats -------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape, axis", LAYOUTS + [((300, 7, 50), 1), ((64, 8, 32, 32), 1), ((2000, 70), -1)])
def test_batch_stats(isa, rng, dtype, shape, axis):
    x = (rng.standard_normal(shape) * 1.5 + 3).astype(dtype)
    mean, var, count = simdnorm.batch_stats(x, axis=axis)
    rmean, rvar, rcount = reference.batch_stats(x, axis=axis)
    assert isinstance(count, (int, np.integer)) and count == rcount
    assert mean.shape == (shape[axis],) and var.shape == (shape[axis],)
    assert mean.dtype in (np.dtype(dtype), np.dtype(np.float64))
    assert var.dtype in (np.dtype(dtype), np.dtype(np.float64))
    np.testing.assert_allclose(mean, rmean, **_stat_tol(dtype))
    np.testing.assert_allclose(var, rvar, **_stat_tol(dtype))


@pytest.mark.parametrize("dtype", DTYPES)
def test_batch_stats_default_axis_is_1(isa, rng, dtype):
    x = rng.standard_normal((5, 4, 6)).astype(dtype)
    mean, var, count = simdnorm.batch_stats(x)
    rmean, rvar, rcount = reference.batch_stats(x, axis=1)
    assert count == 30
    np.testing.assert_allclose(mean, rmean, **_stat_tol(dtype))
    np.testing.assert_allclose(var, rvar, **_stat_tol(dtype))


@pytest.mark.parametrize("dtype", DTYPES)
def test_batch_stats_constant_channel_has_zero_variance(isa, dtype):
    # float32 values are widened to double, so any constant has an exact mean; float64 constants
    # are exact only when k * value is, hence dyadic values there.
    values = np.array([0.1, -3.3, 1e4] if dtype == np.float32 else [0.375, -3.25, 1e4], dtype)
    x = np.broadcast_to(values[None, :, None], (7, 3, 9)).copy()
    mean, var, count = simdnorm.batch_stats(x, axis=1)
    np.testing.assert_array_equal(mean, values.astype(mean.dtype))
    np.testing.assert_array_equal(var, np.zeros(3))
    assert count == 63


# ---- fold_batch_norm / scale_shift --------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("c", [1, 3, 8, 17, 64])
def test_fold_batch_norm(rng, dtype, c):
    rm, rv, w, b = _channel_params(rng, c, dtype)
    scale, shift = simdnorm.fold_batch_norm(rm, rv, w, b, eps=1e-3)
    es, eb = reference.fold_batch_norm(rm, rv, w, b, eps=1e-3)
    assert scale.shape == (c,) and shift.shape == (c,)
    assert scale.dtype == dtype and shift.dtype == dtype
    np.testing.assert_allclose(scale, es, **reference.tol(dtype))
    np.testing.assert_allclose(shift, eb, **reference.tol(dtype))


@pytest.mark.parametrize("dtype", DTYPES)
def test_fold_batch_norm_defaults(rng, dtype):
    rm, rv, _, _ = _channel_params(rng, 9, dtype)
    scale, shift = simdnorm.fold_batch_norm(rm, rv)
    es, eb = reference.fold_batch_norm(rm, rv, eps=1e-5)
    np.testing.assert_allclose(scale, es, **reference.tol(dtype))
    np.testing.assert_allclose(shift, eb, **reference.tol(dtype))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape, axis", LAYOUTS)
def test_fold_then_scale_shift_equals_eval_batch_norm(isa, rng, dtype, shape, axis):
    x = rng.standard_normal(shape).astype(dtype)
    rm, rv, w, b = _channel_params(rng, shape[axis], dtype)
    scale, shift = simdnorm.fold_batch_norm(rm, rv, w, b)
    y = simdnorm.scale_shift(x, scale, shift, axis=axis)
    np.testing.assert_allclose(y, reference.batch_norm(x, rm, rv, w, b, axis=axis)[0], **reference.tol(dtype))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape, axis", LAYOUTS + [((1, 37, 50), 1), ((1, 3, 1000), 1)])
def test_scale_shift(isa, rng, dtype, shape, axis):
    x = rng.standard_normal(shape).astype(dtype)
    c = shape[axis]
    scale = rng.uniform(-2, 2, c).astype(dtype)
    shift = rng.uniform(-1, 1, c).astype(dtype)
    got = simdnorm.scale_shift(x, scale, shift, axis=axis)
    assert got.dtype == dtype and got.shape == x.shape
    np.testing.assert_allclose(got, reference.scale_shift(x, scale, shift, axis=axis), **reference.tol(dtype))


@pytest.mark.parametrize("dtype", DTYPES)
def test_scale_shift_default_axis_out_and_in_place(isa, rng, dtype):
    x = rng.standard_normal((3, 5, 4, 4)).astype(dtype)
    scale = rng.uniform(-2, 2, 5).astype(dtype)
    shift = rng.uniform(-1, 1, 5).astype(dtype)
    expected = simdnorm.scale_shift(x, scale, shift)
    np.testing.assert_allclose(expected, reference.scale_shift(x, scale, shift, axis=1), **reference.tol(dtype))
    out = np.empty_like(x)
    got = simdnorm.scale_shift(x, scale, shift, out=out)
    np.testing.assert_array_equal(out, expected)
    np.testing.assert_array_equal(got, expected)
    simdnorm.scale_shift(x, scale, shift, out=x)
    np.testing.assert_array_equal(x, expected)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape, axis", [((0, 3), 1), ((0, 3, 4, 4), 1), ((2, 0, 4), 1), ((4, 4, 0), -1)])
def test_scale_shift_zero_size(isa, dtype, shape, axis):
    c = shape[axis]
    got = simdnorm.scale_shift(np.zeros(shape, dtype), np.ones(c, dtype), np.zeros(c, dtype), axis=axis)
    assert got.shape == shape and got.dtype == dtype


@pytest.mark.parametrize("dtype", DTYPES)
def test_batch_stats_zero_channels(isa, dtype):
    mean, var, count = simdnorm.batch_stats(np.zeros((5, 0, 3), dtype), axis=1)
    assert mean.shape == (0,) and var.shape == (0,) and isinstance(count, (int, np.integer))
    assert count == 15  # values per channel: the other axes' sizes, channels or not
    assert simdnorm.batch_stats(np.zeros((7, 0), dtype), axis=-1)[2] == 7


# Channels-first training takes one fused sweep per channel (statistics, then the normalization
# while the channel is in cache) when a channel holds at most 512 KiB, else statistics and an
# affine pass. Shapes on both sides of that limit, strided views and in place must all agree with
# the reference and with each other.
FUSED_LIMIT_BYTES = 512 * 1024


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("per_channel_delta", [-1, 0, 1])
def test_batch_norm_training_at_the_fused_channel_limit(isa, rng, dtype, per_channel_delta):
    per_channel = FUSED_LIMIT_BYTES // np.dtype(dtype).itemsize + per_channel_delta
    x = (3.0 + rng.standard_normal((1, 3, per_channel))).astype(dtype)
    rm, rv, w, b = _channel_params(rng, 3, dtype)
    erm, erv = rm.astype(np.float64), rv.astype(np.float64)
    got = simdnorm.batch_norm(x, rm, rv, w, b, training=True, momentum=0.3)
    want, erm, erv = reference.batch_norm(x, erm, erv, w, b, training=True, momentum=0.3)
    np.testing.assert_allclose(got, want, **reference.tol(dtype))
    np.testing.assert_allclose(rm, erm, **_stat_tol(dtype))
    np.testing.assert_allclose(rv, erv, **_stat_tol(dtype))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("with_affine", [False, True])
def test_batch_norm_training_channels_first_views_and_in_place(isa, rng, dtype, with_affine):
    base = (1e3 + rng.standard_normal((6, 10, 9, 14))).astype(dtype)
    x = base[::2, 1::2, :, ::-1]  # negative and padded strides: read in place, no copy
    w, b = (_channel_params(rng, 5, dtype)[2:] if with_affine else (None, None))
    want = reference.batch_norm(x, None, None, w, b, training=True)[0]
    got = simdnorm.batch_norm(x, None, None, w, b, training=True)
    np.testing.assert_allclose(got, want, **reference.tol(dtype))
    y = np.ascontiguousarray(x)
    simdnorm.batch_norm(y, None, None, w, b, training=True, out=y)
    np.testing.assert_array_equal(y, simdnorm.batch_norm(np.ascontiguousarray(x), None, None, w, b, training=True))


# The fused kernel's paths for channels-first training, by shape (cpp/src/generic/channel_blocks.inl):
# tiny channels in blocks of 16 and a partial block; 4-8 KiB channels (pipelined where the vector
# registers allow); runs taken by run (many short ones; with 16 vector registers also from 2 runs
# of up to 4 KiB), in one statistics chunk and in several merged.
FUSED_PATH_SHAPES = [
    (1, 37, 7, 7),
    (2, 19, 4, 4),
    (8, 20, 14, 14),
    (3, 18, 16, 16),
    (8, 17, 28, 28),
    (32, 21, 4, 4),
    (20, 5, 3, 11),
    (600, 3, 4, 4),
    (130, 4, 8, 8),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", FUSED_PATH_SHAPES)
@pytest.mark.parametrize("offset", [0.0, 1e3])
def test_batch_norm_training_fused_paths(isa, rng, dtype, shape, offset):
    x = (offset + rng.standard_normal(shape) * 2).astype(dtype)
    x[:, ::3] += np.asarray(50.0, dtype) * (np.arange(shape[0]) == 0)[:, None, None, None]  # far pivots
    rm, rv, w, b = _channel_params(rng, shape[1], dtype)
    erm, erv = rm.astype(np.float64), rv.astype(np.float64)
    got = simdnorm.batch_norm(x, rm, rv, w, b, training=True, momentum=0.2)
    want, erm, erv = reference.batch_norm(x, erm, erv, w, b, training=True, momentum=0.2)
    # The mean is taken in float64: a few of its ulps, scaled by weight / std (std >= ~2).
    tol = dict(reference.tol(dtype))
    tol["atol"] = tol["atol"] + 16 * np.finfo(np.float64).eps * offset * np.abs(w).max() / 2
    np.testing.assert_allclose(got, want, **tol)
    np.testing.assert_allclose(rm, erm, **_stat_tol(dtype))
    np.testing.assert_allclose(rv, erv, **_stat_tol(dtype))
    in_place = x.copy()
    simdnorm.batch_norm(in_place, None, None, w, b, training=True, out=in_place)
    np.testing.assert_array_equal(in_place, simdnorm.batch_norm(x, None, None, w, b, training=True))


@pytest.mark.parametrize("dtype", DTYPES)
def test_batch_norm_training_module_and_function_agree_bitwise(isa, rng, dtype):
    x = rng.standard_normal((4, 6, 7, 7)).astype(dtype)
    rm, rv, w, b = _channel_params(rng, 6, dtype)
    module = simdnorm.BatchNorm(6, dtype=dtype)
    module.weight = w
    module.bias = b
    np.testing.assert_array_equal(module(x), simdnorm.batch_norm(x, None, None, w, b, training=True))
