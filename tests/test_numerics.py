"""Precision and special values: large offsets, constant rows, NaN / Inf, awkward sizes."""

import numpy as np
import pytest

import reference
import simdnorm

DTYPES = [np.float32, np.float64]
OFFSETS = [0.0, 1e3, 1e6]
# Normalized float32 outputs (no weight / bias) must be this close to the float64 reference of
# the same float32 input, whatever the common offset (kernels.hpp: m rounded to T plus remainder).
OFFSET_ATOL = 4e-6


def _offset_rows(rng, shape, c):
    return (c + rng.standard_normal(shape)).astype(np.float32)


@pytest.mark.parametrize("c", OFFSETS)
@pytest.mark.parametrize("cols", [2, 7, 16, 33, 64, 100, 1000, 4097])
def test_layer_norm_large_offset_rows_float32(isa, rng, c, cols):
    x = _offset_rows(rng, (8, cols), c)
    got = simdnorm.layer_norm(x)
    err = np.abs(got.astype(np.float64) - reference.layer_norm(x)).max()
    assert err <= OFFSET_ATOL, f"max abs error {err:.3g} for offset {c}"


@pytest.mark.parametrize("c", OFFSETS)
@pytest.mark.parametrize("channels, hw", [(3, (5, 7)), (16, (4, 4)), (33, (3, 11)), (64, (1, 1)), (200, (2, 3))])
def test_layer_norm_large_offset_channels_first_float32(isa, rng, c, channels, hw):
    x = _offset_rows(rng, (2, channels) + hw, c)
    got = simdnorm.layer_norm(x, axis=(1,))
    err = np.abs(got.astype(np.float64) - reference.layer_norm(x, axis=(1,))).max()
    assert err <= OFFSET_ATOL, f"max abs error {err:.3g} for offset {c}"


@pytest.mark.parametrize("c", OFFSETS)
@pytest.mark.parametrize("cols", [3, 16, 65, 1000])
def test_rms_norm_large_offset_float32(isa, rng, c, cols):
    x = _offset_rows(rng, (6, cols), c)
    got = simdnorm.rms_norm(x)
    err = np.abs(got.astype(np.float64) - reference.rms_norm(x)).max()
    assert err <= OFFSET_ATOL, f"max abs error {err:.3g} for offset {c}"


@pytest.mark.parametrize("c", OFFSETS)
@pytest.mark.parametrize("shape, axis", [((16, 5, 6, 7), 1), ((16, 6, 7, 5), -1), ((300, 17), -1), ((8, 33, 20), 1)])
def test_batch_norm_training_large_offset_float32(isa, rng, c, shape, axis):
    x = _offset_rows(rng, shape, c)
    got = simdnorm.batch_norm(x, training=True, axis=axis)
    err = np.abs(got.astype(np.float64) - reference.batch_norm(x, training=True, axis=axis)[0]).max()
    assert err <= OFFSET_ATOL, f"max abs error {err:.3g} for offset {c}"


@pytest.mark.parametrize("c", OFFSETS)
def test_batch_stats_large_offset_float32(isa, rng, c):
    x = _offset_rows(rng, (64, 5, 9, 9), c)
    mean, var, _ = simdnorm.batch_stats(x, axis=1)
    emean, evar, _ = reference.batch_stats(x, axis=1)
    # d = x - pivot is formed in float32 (exact only near the mean): ~1e-9 absolute at unit spread.
    np.testing.assert_allclose(mean, emean, rtol=1e-7 if mean.dtype == np.float32 else 1e-12, atol=1e-8)
    np.testing.assert_allclose(var, evar, rtol=1e-5, atol=0)


# ---- constant rows -----------------------------------------------------------------------------


# The statistics take one pass around a pivot estimated from the first 16 elements / rows and
# fall back to a corrected two-pass when that pivot is more than one standard deviation off the
# mean. These inputs force the fallback (the first elements sit far from the rest, or the data
# drift), at large offsets, so both paths are held to the same bound.
def _skewed(rng, shape, axis, c, start):
    x = c + rng.standard_normal(shape)
    lead = [slice(None)] * len(shape)
    lead[axis] = slice(0, 16)
    x[tuple(lead)] += start  # the pivot sample sits `start` standard deviations away
    return x.astype(np.float32)


@pytest.mark.parametrize("start", [0.5, 3.0, 50.0])
@pytest.mark.parametrize("c", [0.0, 1e6])
@pytest.mark.parametrize("cols", [20, 200, 5000])
def test_layer_norm_rows_when_the_pivot_is_off(isa, rng, start, c, cols):
    x = _skewed(rng, (4, cols), 1, c, start)
    err = np.abs(simdnorm.layer_norm(x).astype(np.float64) - reference.layer_norm(x)).max()
    assert err <= OFFSET_ATOL, f"max abs error {err:.3g}"


@pytest.mark.parametrize("start", [0.5, 3.0, 50.0])
@pytest.mark.parametrize("c", [0.0, 1e6])
def test_layer_norm_columns_when_the_pivot_is_off(isa, rng, start, c):
    x = _skewed(rng, (2, 40, 3, 7), 1, c, start)
    got = simdnorm.layer_norm(x, axis=(1,))
    err = np.abs(got.astype(np.float64) - reference.layer_norm(x, axis=(1,))).max()
    assert err <= OFFSET_ATOL, f"max abs error {err:.3g}"


@pytest.mark.parametrize("start", [0.5, 3.0, 50.0])
@pytest.mark.parametrize("c", [0.0, 1e6])
@pytest.mark.parametrize("shape, axis, lead_axis", [((300, 130), -1, 0), ((40, 5, 30), 1, 2), ((4, 3, 9, 9), 1, 2)])
def test_batch_norm_training_when_the_pivot_is_off(isa, rng, start, c, shape, axis, lead_axis):
    x = _skewed(rng, shape, lead_axis, c, start)
    got = simdnorm.batch_norm(x, training=True, axis=axis)
    err = np.abs(got.astype(np.float64) - reference.batch_norm(x, training=True, axis=axis)[0]).max()
    assert err <= OFFSET_ATOL, f"max abs error {err:.3g}"


@pytest.mark.parametrize("dtype", DTYPES)
def test_drifting_data_statistics(isa, dtype):
    # Sorted data: every pivot sample is far from its mean.
    x = np.linspace(-1e3, 5e3, 64 * 300).reshape(64, 300).astype(dtype)
    for got, want in [(simdnorm.layer_norm(x), reference.layer_norm(x)),
                      (simdnorm.batch_norm(x, training=True, axis=-1),
                       reference.batch_norm(x, training=True, axis=-1)[0]),
                      (simdnorm.batch_norm(x.T.copy(), training=True, axis=-1),
                       reference.batch_norm(x.T.copy(), training=True, axis=-1)[0])]:
        np.testing.assert_allclose(got, want, **reference.tol(dtype))


def _constant_values(dtype, n):
    # float32 constants are exact after widening; float64 ones must sum exactly (dyadic values).
    if dtype == np.float32:
        return np.array([0.1, -7.3, 1e6 + 0.5, 3.0, 123.456, -1e-3][:n] + [2.5] * max(0, n - 6), dtype)
    return np.array([0.375, -7.25, 1e6 + 0.5, 3.0, 123.5, -0.0625][:n] + [2.5] * max(0, n - 6), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("cols", [1, 2, 7, 8, 16, 17, 33, 100, 1000])
def test_layer_norm_constant_rows_give_exactly_bias(isa, rng, dtype, cols):
    x = np.repeat(_constant_values(dtype, 6)[:, None], cols, axis=1)
    w = rng.uniform(0.5, 2.0, cols).astype(dtype)
    b = rng.uniform(-1.0, 1.0, cols).astype(dtype)
    got = simdnorm.layer_norm(x, w, b)
    np.testing.assert_array_equal(got, np.broadcast_to(b, x.shape))
    np.testing.assert_array_equal(simdnorm.layer_norm(x), np.zeros_like(x))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("channels, hw", [(1, (3, 3)), (5, (4, 4)), (17, (3, 7)), (64, (1, 40))])
def test_layer_norm_channels_first_constant_gives_exactly_bias(isa, rng, dtype, channels, hw):
    values = _constant_values(dtype, 6)[:4]
    x = np.empty((2, channels) + hw, dtype)
    x[0] = values[0]
    x[1] = values[2]
    x[1, :, 0] = values[3]
    b = rng.uniform(-1.0, 1.0, channels).astype(dtype)
    got = simdnorm.layer_norm(x, None, b, axis=(1,))
    np.testing.assert_array_equal(got, np.broadcast_to(b[None, :, None, None], x.shape))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape, axis", [((4, 6, 5, 5), 1), ((4, 5, 5, 6), -1), ((30, 6), 1)])
def test_batch_norm_training_constant_channels_give_exactly_bias(isa, rng, dtype, shape, axis):
    values = _constant_values(dtype, 6)
    view = [1] * len(shape)
    view[axis] = 6
    x = np.broadcast_to(values.reshape(view), shape).copy()
    w = rng.uniform(0.5, 2.0, 6).astype(dtype)
    b = rng.uniform(-1.0, 1.0, 6).astype(dtype)
    got = simdnorm.batch_norm(x, None, None, w, b, training=True, axis=axis)
    np.testing.assert_array_equal(got, np.broadcast_to(b.reshape(view), shape))


# ---- NaN / Inf ---------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("cols", [1, 5, 16, 33, 1000])
@pytest.mark.parametrize("op", ["layer_norm", "rms_norm"])
def test_norm_nonfinite_stays_in_its_row(isa, rng, dtype, bad, cols, op):
    x = rng.standard_normal((6, cols)).astype(dtype)
    x[2, cols // 2] = bad
    x[4, -1] = bad
    got = getattr(simdnorm, op)(x)
    expected = getattr(reference, op)(x)
    clean = [0, 1, 3, 5]
    assert np.isfinite(got[clean]).all()
    np.testing.assert_allclose(got[clean], expected[clean], **reference.tol(dtype))
    for row in (2, 4):
        assert not np.isfinite(got[row]).all()
        # Same NaN pattern (and values) as IEEE arithmetic on the formula.
        np.testing.assert_allclose(got[row], expected[row], **reference.tol(dtype))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("bad", [np.nan, np.inf])
@pytest.mark.parametrize("inner", [1, 3, 8, 17, 40])
def test_layer_norm_channels_first_nonfinite_stays_in_its_column(isa, rng, dtype, bad, inner):
    x = rng.standard_normal((3, 7, inner)).astype(dtype)
    x[1, 4, inner - 1] = bad
    got = simdnorm.layer_norm(x, axis=(1,))
    affected = np.zeros((3, 7, inner), bool)
    affected[1, :, inner - 1] = True
    assert np.isnan(got[affected]).all()
    np.testing.assert_allclose(got[~affected], reference.layer_norm(x, axis=(1,))[~affected], **reference.tol(dtype))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("shape, axis", [((4, 5, 3, 3), 1), ((4, 3, 3, 5), -1), ((10, 5), 1), ((2, 5, 40), 1)])
def test_batch_norm_training_nonfinite_stays_in_its_channel(isa, rng, dtype, bad, shape, axis):
    x = rng.standard_normal(shape).astype(dtype)
    idx = [0] * len(shape)
    idx[axis] = 2
    idx[0] = 1
    x[tuple(idx)] = bad
    rm, rv = np.zeros(5, dtype), np.ones(5, dtype)
    expected, erm, erv = reference.batch_norm(x, rm, rv, training=True, axis=axis)
    got = simdnorm.batch_norm(x, rm, rv, training=True, axis=axis)
    channel = [slice(None)] * len(shape)
    channel[axis] = 2
    others = [slice(None)] * len(shape)
    others[axis] = [0, 1, 3, 4]
    assert np.isnan(got[tuple(channel)]).all()
    assert np.isfinite(got[tuple(others)]).all()
    np.testing.assert_allclose(got[tuple(others)], expected[tuple(others)], **reference.tol(dtype))
    assert not np.isfinite(rm[2]) and not np.isfinite(rv[2])
    keep = [0, 1, 3, 4]
    assert np.isfinite(rm[keep]).all() and np.isfinite(rv[keep]).all()
    np.testing.assert_allclose(rm[keep], erm[keep], rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(rv[keep], erv[keep], rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape, axis", [((6, 4, 5), 1), ((6, 4), 1), ((6, 5, 4), -1), ((4, 6), 0), ((1, 4, 5), 1)])
def test_batch_stats_nonfinite_stays_in_its_channel(isa, rng, dtype, shape, axis):
    x = rng.standard_normal(shape).astype(dtype)
    xc = np.moveaxis(x, axis, 0)  # view: channel first
    xc[1][(0,) * (x.ndim - 1)] = np.nan
    xc[3][(-1,) * (x.ndim - 1)] = np.inf
    mean, var, _ = simdnorm.batch_stats(x, axis=axis)
    assert np.isnan(mean[1]) and np.isnan(var[1]), (mean, var)
    assert not np.isfinite(mean[3]) and not np.isfinite(var[3]), (mean, var)
    emean, evar, _ = reference.batch_stats(x, axis=axis)
    # The mean to 1e-6 of the spread: what a normalized output can see.
    np.testing.assert_allclose(mean[[0, 2]], emean[[0, 2]], rtol=1e-6, atol=1e-6 * float(np.sqrt(evar[[0, 2]]).max()))
    np.testing.assert_allclose(var[[0, 2]], evar[[0, 2]], rtol=1e-5)


def _inf_data(rng, shape, dtype, channel_axis):
    """Channel 0 gets a -inf, channel 1 a +inf and a -inf, channel 2 two +inf, the rest finite."""
    x = rng.standard_normal(shape).astype(dtype)
    xc = np.moveaxis(x, channel_axis, 0)  # a view: .flat writes through
    xc[0].flat[1] = -np.inf
    xc[1].flat[0], xc[1].flat[-1] = np.inf, -np.inf
    xc[2].flat[2], xc[2].flat[-2] = np.inf, np.inf
    assert np.isinf(x).sum() == 5
    return x


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(4, 8), (5, 768), (3, 5000), (3, 300000)])  # short, chunked, split rows
def test_layer_norm_stats_with_inf_are_numpys(isa, rng, dtype, shape):
    """A row holding ±inf has mean ±inf (NaN with both signs), as NumPy and PyTorch report it."""
    x = _inf_data(rng, shape, dtype, 0)
    with np.errstate(invalid="ignore"):
        expected = x.astype(np.float64).mean(axis=-1)
    _, mean, rstd = simdnorm.layer_norm(x, return_stats=True)
    np.testing.assert_allclose(mean.ravel(), expected, rtol=1e-6, atol=1e-6)  # inf == inf, NaN == NaN
    assert np.isnan(rstd.ravel()[:3]).all()


@pytest.mark.parametrize("shape, axis", [((8, 5, 7, 7), 1), ((8, 7, 7, 5), -1), ((256, 5), -1), ((64, 5, 100), 1),
                                         ((4, 5, 50000), 1)])
def test_batch_statistics_with_inf_are_pytorchs(isa, rng, shape, axis):
    """batch_stats' mean and the running mean of training BatchNorm keep ±inf as PyTorch does; the
    variances are NaN; the finite channels are untouched by their neighbours."""
    x = _inf_data(rng, shape, np.float32, axis % len(shape))
    other = tuple(i for i in range(x.ndim) if i != axis % x.ndim)
    with np.errstate(invalid="ignore"):
        expected = x.astype(np.float64).mean(axis=other)
    mean, var, _ = simdnorm.batch_stats(x, axis=axis)
    np.testing.assert_allclose(mean, expected, rtol=1e-6, atol=1e-6)
    assert np.isnan(var[:3]).all() and np.isfinite(var[3:]).all()
    c = x.shape[axis]
    rm, rv = np.zeros(c, np.float32), np.ones(c, np.float32)
    simdnorm.batch_norm(x, rm, rv, training=True, axis=axis)
    assert rm[0] == -np.inf and np.isnan(rm[1]) and rm[2] == np.inf  # torch: -inf, nan, inf
    assert np.isnan(rv[:3]).all() and np.isfinite(rm[3:]).all() and np.isfinite(rv[3:]).all()


@pytest.mark.parametrize("dtype", DTYPES)
def test_batch_norm_eval_nonfinite_is_elementwise(isa, rng, dtype):
    x = rng.standard_normal((4, 5, 6)).astype(dtype)
    x[1, 2, 3] = np.nan
    x[2, 0, 0] = np.inf
    rm, rv = np.zeros(5, dtype), np.ones(5, dtype)
    got = simdnorm.batch_norm(x, rm, rv)
    expected = reference.batch_norm(x, rm, rv)[0]
    assert np.isnan(got[1, 2, 3]) and got[2, 0, 0] == np.inf
    assert np.isfinite(got).sum() == x.size - 2
    np.testing.assert_allclose(got, expected, **reference.tol(dtype))


@pytest.mark.parametrize("big", [1e20, 1e30])
@pytest.mark.parametrize("cols", [4, 40])
def test_huge_float32_values_use_double_statistics(isa, big, cols):
    # kernels.hpp: statistics accumulate in double, so squares of float32 values beyond ~1.8e19
    # must not overflow; rstd ~ 1/big is still a normal float32.
    x = np.resize(np.array([big, -big, big / 2, 0.0], np.float32), (2, cols))
    t = reference.tol(np.float32)
    np.testing.assert_allclose(simdnorm.layer_norm(x), reference.layer_norm(x), **t)
    np.testing.assert_allclose(simdnorm.rms_norm(x), reference.rms_norm(x), **t)
    y, _, rstd = simdnorm.layer_norm(x, return_stats=True)
    np.testing.assert_allclose(rstd, reference.layer_norm(x, return_stats=True)[2], rtol=1e-5)


# ---- sizes -------------------------------------------------------------------------------------

SIZES = list(range(1, 71)) + [1000, 4097, 9000]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", SIZES)
def test_every_size_rows(isa, dtype, n):
    rng = np.random.default_rng(n)
    x = (rng.standard_normal((3, n)) + 0.5).astype(dtype)
    w = rng.uniform(0.5, 2.0, n).astype(dtype)
    b = rng.uniform(-1.0, 1.0, n).astype(dtype)
    t = reference.tol(dtype)
    np.testing.assert_allclose(simdnorm.layer_norm(x, w, b), reference.layer_norm(x, w, b), **t)
    np.testing.assert_allclose(simdnorm.rms_norm(x, w), reference.rms_norm(x, w), **t)
    # (N, F) BatchNorm: F channels along the contiguous axis.
    rm, rv = np.zeros(n, dtype), np.ones(n, dtype)
    ey, erm, erv = reference.batch_norm(x, rm, rv, w, b, training=True, axis=-1)
    np.testing.assert_allclose(simdnorm.batch_norm(x, rm, rv, w, b, training=True, axis=-1), ey, **t)
    np.testing.assert_allclose(rv, erv, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(simdnorm.scale_shift(x, w, b, axis=-1), reference.scale_shift(x, w, b, axis=-1), **t)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", SIZES)
def test_every_size_columns(isa, dtype, n):
    rng = np.random.default_rng(1000 + n)
    x = (rng.standard_normal((2, 5, n)) - 0.5).astype(dtype)
    w = rng.uniform(0.5, 2.0, 5).astype(dtype)
    b = rng.uniform(-1.0, 1.0, 5).astype(dtype)
    t = reference.tol(dtype)
    np.testing.assert_allclose(simdnorm.layer_norm(x, w, b, axis=(1,)), reference.layer_norm(x, w, b, axis=(1,)), **t)
    np.testing.assert_allclose(simdnorm.rms_norm(x, w, axis=(1,)), reference.rms_norm(x, w, axis=(1,)), **t)
    # NCL BatchNorm: channels strided, vectors along L.
    ey, _, _ = reference.batch_norm(x, None, None, w, b, training=True, axis=1)
    np.testing.assert_allclose(simdnorm.batch_norm(x, None, None, w, b, training=True, axis=1), ey, **t)
    np.testing.assert_allclose(simdnorm.scale_shift(x, w, b, axis=1), reference.scale_shift(x, w, b, axis=1), **t)
    mean, var, count = simdnorm.batch_stats(x, axis=1)
    emean, evar, _ = reference.batch_stats(x, axis=1)
    assert count == 2 * n
    np.testing.assert_allclose(mean, emean, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(var, evar, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("rows, cols", [(16384, 64), (4096, 40), (64, 4096)])
def test_channels_last_statistics_with_a_far_pivot_take_the_two_pass(isa, rng, rows, cols):
    """The per-column pivot is the mean of the first 16 rows; where those sit far from the rest (more
    than a standard deviation from the column's mean) the shifted sums cancel, and each such column
    must take the corrected two-pass: the float64 reference's mean and variance to ~1 ulp."""
    x = rng.standard_normal((rows, cols)).astype(np.float32)
    first = min(16, rows // 2)
    x[:first, ::2] += 1000.0  # even columns: a far pivot; odd columns: the shifted sums hold
    mean, var, _ = simdnorm.batch_stats(x, axis=-1)
    x64 = x.astype(np.float64)
    np.testing.assert_allclose(mean, x64.mean(axis=0), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(var, x64.var(axis=0), rtol=1e-6)  # the shifted sums: 1e-5 to 1e-4 off
