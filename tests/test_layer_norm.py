import numpy as np
import pytest

import reference
import simdnorm

DTYPES = [np.float32, np.float64]
# Straddle every vector width (4/8 doubles, 8/16 floats) and the unrolled loops.
COLS = [1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64, 65, 127, 128, 129, 1000]


def _params(rng, n, dtype):
    w = rng.uniform(0.5, 2.0, n).astype(dtype)
    b = rng.uniform(-1.0, 1.0, n).astype(dtype)
    return w, b


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("cols", COLS)
def test_layer_norm_rows_match_reference(isa, rng, dtype, cols):
    x = rng.standard_normal((5, cols)).astype(dtype)
    w, b = _params(rng, cols, dtype)
    got = simdnorm.layer_norm(x, w, b)
    assert got.dtype == dtype and got.shape == x.shape
    np.testing.assert_allclose(got, reference.layer_norm(x, w, b), **reference.tol(dtype))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("with_weight, with_bias", [(False, False), (True, False), (False, True)])
def test_layer_norm_optional_affine(isa, rng, dtype, with_weight, with_bias):
    x = rng.standard_normal((6, 37)).astype(dtype)
    w, b = _params(rng, 37, dtype)
    w = w if with_weight else None
    b = b if with_bias else None
    got = simdnorm.layer_norm(x, w, b)
    np.testing.assert_allclose(got, reference.layer_norm(x, w, b), **reference.tol(dtype))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("eps", [1e-12, 1e-5, 0.5, 10.0])
def test_layer_norm_eps(isa, rng, dtype, eps):
    x = (0.1 * rng.standard_normal((4, 19))).astype(dtype)
    got = simdnorm.layer_norm(x, eps=eps)
    np.testing.assert_allclose(got, reference.layer_norm(x, eps=eps), **reference.tol(dtype))


@pytest.mark.parametrize("dtype", DTYPES)
def test_layer_norm_1d(isa, rng, dtype):
    x = rng.standard_normal(77).astype(dtype)
    w, b = _params(rng, 77, dtype)
    got = simdnorm.layer_norm(x, w, b)
    assert got.shape == (77,)
    np.testing.assert_allclose(got, reference.layer_norm(x, w, b), **reference.tol(dtype))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("axis", [0, 1, 2, 3, -1, -2, -3, -4])
def test_layer_norm_int_axis_normalizes_trailing_axes(isa, rng, dtype, axis):
    x = rng.standard_normal((2, 3, 4, 5)).astype(dtype)
    w, b = _params(rng, int(np.prod(x.shape[axis % 4:])), dtype)
    w, b = w.reshape(x.shape[axis % 4:]), b.reshape(x.shape[axis % 4:])
    got = simdnorm.layer_norm(x, w, b, axis=axis)
    np.testing.assert_allclose(got, reference.layer_norm(x, w, b, axis=axis), **reference.tol(dtype))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    "axis",
    [(1,), (-3,), (0,), (3,), (-1,), (2, 3), (1, 2), (1, 2, 3), (0, 1), (0, 1, 2, 3), (3, 2), (1, 3), (0, 2), (0, 3)],
)
def test_layer_norm_tuple_axis(isa, rng, dtype, axis):
    x = rng.standard_normal((3, 6, 5, 9)).astype(dtype)
    axes = reference.norm_axes(4, axis)
    pshape = tuple(x.shape[a] for a in axes)
    w = rng.uniform(0.5, 2.0, pshape).astype(dtype)
    b = rng.uniform(-1.0, 1.0, pshape).astype(dtype)
    got = simdnorm.layer_norm(x, w, b, axis=axis)
    assert got.shape == x.shape and got.dtype == dtype
    np.testing.assert_allclose(got, reference.layer_norm(x, w, b, axis=axis), **reference.tol(dtype))


@pytest.mark.parametrize("channels", [1, 3, 8, 16, 17])
@pytest.mark.parametrize("hw", [(1, 1), (1, 7), (3, 5), (4, 4), (8, 9)])
def test_layer_norm_channels_first_differs_from_int_axis(isa, rng, channels, hw):
    x = rng.standard_normal((2, channels) + hw)
    w, b = _params(rng, channels, np.float64)
    got = simdnorm.layer_norm(x, w, b, axis=(1,))
    np.testing.assert_allclose(got, reference.layer_norm(x, w, b, axis=(1,)), **reference.tol(np.float64))
    if channels > 1 and hw != (1, 1):
        whole = simdnorm.layer_norm(x, axis=1)
        assert not np.allclose(whole, simdnorm.layer_norm(x, axis=(1,)))


@pytest.mark.parametrize("dtype", DTYPES)
def test_layer_norm_last_axis_int_equals_tuple(isa, rng, dtype):
    x = rng.standard_normal((4, 3, 33)).astype(dtype)
    w, b = _params(rng, 33, dtype)
    a = simdnorm.layer_norm(x, w, b, axis=-1)
    np.testing.assert_array_equal(a, simdnorm.layer_norm(x, w, b, axis=(2,)))
    np.testing.assert_array_equal(a, simdnorm.layer_norm(x, w, b, axis=(-1,)))
    np.testing.assert_array_equal(a, simdnorm.layer_norm(x, w, b))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape, axis", [((5, 33), -1), ((2, 4, 6, 3), (1,)), ((2, 4, 6, 3), 2), ((7, 9), (0,)),
                                         ((3, 4, 5), (0, 2))])
def test_layer_norm_return_stats(isa, rng, dtype, shape, axis):
    x = (rng.standard_normal(shape) * 3 + 2).astype(dtype)
    y, mean, rstd = simdnorm.layer_norm(x, axis=axis, return_stats=True)
    ry, rmean, rrstd = reference.layer_norm(x, axis=axis, return_stats=True)
    assert y.shape == x.shape
    assert mean.shape == rmean.shape and rstd.shape == rrstd.shape
    assert mean.dtype == dtype and rstd.dtype == dtype
    np.testing.assert_allclose(y, ry, **reference.tol(dtype))
    np.testing.assert_allclose(mean, rmean, **reference.tol(dtype))
    np.testing.assert_allclose(rstd, rrstd, **reference.tol(dtype))


@pytest.mark.parametrize("dtype", DTYPES)
def test_layer_norm_out_argument(isa, rng, dtype):
    x = rng.standard_normal((6, 21)).astype(dtype)
    w, b = _params(rng, 21, dtype)
    out = np.full_like(x, 7.0)
    got = simdnorm.layer_norm(x, w, b, out=out)
    np.testing.assert_allclose(out, reference.layer_norm(x, w, b), **reference.tol(dtype))
    np.testing.assert_array_equal(got, out)
    assert np.shares_memory(got, out)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape, axis", [((6, 21), -1), ((2, 5, 3, 4), (1,)), ((2, 5, 3, 4), 1)])
def test_layer_norm_in_place(isa, rng, dtype, shape, axis):
    x = rng.standard_normal(shape).astype(dtype)
    expected = simdnorm.layer_norm(x, axis=axis)
    got = simdnorm.layer_norm(x, axis=axis, out=x)
    np.testing.assert_array_equal(x, expected)
    np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("dtype", DTYPES)
def test_out_holding_the_weight_or_bias(isa, rng, dtype):
    """out= may hold the parameters (NumPy ufuncs allow it): every row still reads their values
    from before the call, though earlier rows are written first."""
    x = rng.standard_normal((4, 24)).astype(dtype)
    expected_ln = simdnorm.layer_norm(x, x[0].copy(), x[1].copy())
    expected_rms = simdnorm.rms_norm(x, x[2].copy())
    xi = x.copy()
    simdnorm.layer_norm(xi, xi[0], xi[1], out=xi)  # in place, parameters are rows of x
    np.testing.assert_array_equal(xi, expected_ln)
    xi = x.copy()
    simdnorm.rms_norm(xi, xi[2], out=xi)
    np.testing.assert_array_equal(xi, expected_rms)
    buf = np.zeros_like(x)  # a separate out whose last row is the bias
    buf[3] = x[1]
    simdnorm.layer_norm(x, x[0], buf[3], out=buf)
    np.testing.assert_array_equal(buf, expected_ln)


@pytest.mark.parametrize("dtype", DTYPES)
def test_layer_norm_strided_out(isa, rng, dtype):
    x = rng.standard_normal((4, 10)).astype(dtype)
    big = np.zeros((8, 20), dtype)
    out = big[::2, ::2]
    simdnorm.layer_norm(x, out=out)
    np.testing.assert_allclose(out, reference.layer_norm(x), **reference.tol(dtype))
    assert not big[1::2].any() and not big[:, 1::2].any()


@pytest.mark.parametrize("dtype", DTYPES)
def test_layer_norm_does_not_modify_inputs(isa, rng, dtype):
    x = rng.standard_normal((3, 40)).astype(dtype)
    w, b = _params(rng, 40, dtype)
    copies = [a.copy() for a in (x, w, b)]
    simdnorm.layer_norm(x, w, b)
    for a, c in zip((x, w, b), copies):
        np.testing.assert_array_equal(a, c)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape, axis", [((0, 8), -1), ((0,), -1), ((3, 0, 4), (0,)), ((2, 3, 0), 1), ((0, 3, 4), (1,))])
def test_layer_norm_zero_size(isa, dtype, shape, axis):
    x = np.zeros(shape, dtype)
    got = simdnorm.layer_norm(x, axis=axis)
    assert got.shape == shape and got.dtype == dtype and got.size == 0


@pytest.mark.parametrize("dtype", DTYPES)
def test_layer_norm_zero_size_return_stats_shapes(isa, dtype):
    x = np.zeros((0, 5, 3), dtype)
    y, mean, rstd = simdnorm.layer_norm(x, axis=(1,), return_stats=True)
    assert y.shape == (0, 5, 3)
    assert mean.shape == (0, 1, 3) and rstd.shape == (0, 1, 3)


@pytest.mark.parametrize("dtype", DTYPES)
def test_layer_norm_big_rows(isa, rng, dtype):
    x = rng.standard_normal((3, 5000)).astype(dtype) * 10 - 4
    got = simdnorm.layer_norm(x)
    np.testing.assert_allclose(got, reference.layer_norm(x), **reference.tol(dtype))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("cols", [1, 16, 33, 64, 100, 128, 256, 257, 768, 1000, 4096])
@pytest.mark.parametrize("affine", ["wb", "w", "b", "none"])
def test_layer_norm_row_in_a_batch_equals_row_alone_bitwise(isa, dtype, cols, affine):
    """Batches take their rows' statistics in blocks, several rows per vector (row_blocks.inl); a
    row alone does not. Same bits either way, statistics included, in full and partial blocks,
    also for a row whose first elements sit far from its mean (the one-pass pivot is rejected), a
    constant row, a row offset by 1e6 and a row holding NaN."""
    rng = np.random.default_rng(cols)
    x = rng.standard_normal((37, cols)).astype(dtype)
    x[3, : min(cols, 16)] += 50.0
    x[5] = 1.5
    x[17] += 1e6
    x[20, cols // 2] = np.nan
    w = rng.uniform(0.5, 2, cols).astype(dtype) if affine in ("wb", "w") else None
    b = rng.uniform(-1, 1, cols).astype(dtype) if affine in ("wb", "b") else None
    y, mean, rstd = simdnorm.layer_norm(x, w, b, return_stats=True)
    for r in range(x.shape[0]):
        y_r, mean_r, rstd_r = simdnorm.layer_norm(x[r : r + 1], w, b, return_stats=True)
        np.testing.assert_array_equal(y[r], y_r[0])
        np.testing.assert_array_equal(mean[r], mean_r[0])
        np.testing.assert_array_equal(rstd[r], rstd_r[0])
