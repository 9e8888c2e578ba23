import numpy as np
import pytest

import reference
import simdnorm

DTYPES = [np.float32, np.float64]
COLS = [1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64, 65, 127, 128, 129, 1000]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("cols", COLS)
def test_rms_norm_matches_float64_reference(isa, dtype, cols):
    x = np.random.default_rng(cols).standard_normal((4, cols)).astype(dtype)
    w = np.linspace(0.5, 2.0, cols, dtype=dtype)
    got = simdnorm.rms_norm(x, w, eps=1e-5)
    assert got.dtype == dtype and got.shape == x.shape
    np.testing.assert_allclose(got, reference.rms_norm(x, w, 1e-5), **reference.tol(dtype))


@pytest.mark.parametrize("dtype", DTYPES)
def test_rms_norm_default_eps_is_1e_6(isa, rng, dtype):
    x = (1e-3 * rng.standard_normal((3, 24))).astype(dtype)
    got = simdnorm.rms_norm(x)
    np.testing.assert_allclose(got, reference.rms_norm(x, eps=1e-6), **reference.tol(dtype))
    assert not np.allclose(got, reference.rms_norm(x, eps=1e-5), rtol=1e-3, atol=0)


@pytest.mark.parametrize("dtype", DTYPES)
def test_rms_norm_eps_none_is_machine_epsilon(isa, rng, dtype):
    # Tiny values so that eps matters: mean(x^2) is comparable to finfo.eps.
    scale = np.sqrt(np.finfo(dtype).eps)
    x = (scale * rng.standard_normal((5, 40))).astype(dtype)
    got = simdnorm.rms_norm(x, eps=None)
    np.testing.assert_allclose(got, reference.rms_norm(x, eps=float(np.finfo(dtype).eps)), **reference.tol(dtype))


@pytest.mark.parametrize("dtype", DTYPES)
def test_rms_norm_without_weight(isa, rng, dtype):
    x = rng.standard_normal((7, 50)).astype(dtype)
    got = simdnorm.rms_norm(x)
    np.testing.assert_allclose(got, reference.rms_norm(x), **reference.tol(dtype))


@pytest.mark.parametrize("dtype", DTYPES)
def test_rms_norm_1d(isa, rng, dtype):
    x = rng.standard_normal(130).astype(dtype)
    w = rng.uniform(0.5, 2, 130).astype(dtype)
    np.testing.assert_allclose(simdnorm.rms_norm(x, w), reference.rms_norm(x, w), **reference.tol(dtype))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("axis", [0, 1, 2, -1, -2, -3, (1,), (0,), (2,), (-2,), (1, 2), (0, 1), (0, 2), (2, 0)])
def test_rms_norm_axes(isa, rng, dtype, axis):
    x = rng.standard_normal((4, 6, 11)).astype(dtype)
    axes = reference.norm_axes(3, axis)
    w = rng.uniform(0.5, 2.0, tuple(x.shape[a] for a in axes)).astype(dtype)
    got = simdnorm.rms_norm(x, w, axis=axis)
    np.testing.assert_allclose(got, reference.rms_norm(x, w, axis=axis), **reference.tol(dtype))


@pytest.mark.parametrize("dtype", DTYPES)
def test_rms_norm_out_and_in_place(isa, rng, dtype):
    x = rng.standard_normal((5, 23)).astype(dtype)
    w = rng.uniform(0.5, 2.0, 23).astype(dtype)
    expected = simdnorm.rms_norm(x, w)
    out = np.full_like(x, np.nan)
    got = simdnorm.rms_norm(x, w, out=out)
    np.testing.assert_array_equal(out, expected)
    np.testing.assert_array_equal(got, expected)
    simdnorm.rms_norm(x, w, out=x)
    np.testing.assert_array_equal(x, expected)


@pytest.mark.parametrize("dtype", DTYPES)
def test_rms_norm_in_place_channels_first(isa, rng, dtype):
    x = rng.standard_normal((2, 9, 4, 5)).astype(dtype)
    expected = reference.rms_norm(x, axis=(1,))
    simdnorm.rms_norm(x, axis=(1,), out=x)
    np.testing.assert_allclose(x, expected, **reference.tol(dtype))


@pytest.mark.parametrize("dtype", DTYPES)
def test_rms_norm_zero_row_is_zero(isa, dtype):
    x = np.zeros((3, 17), dtype)
    got = simdnorm.rms_norm(x)
    np.testing.assert_array_equal(got, np.zeros_like(x))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape, axis", [((0, 8), -1), ((4, 0), -1), ((0, 3, 5), (1,))])
def test_rms_norm_zero_size(isa, dtype, shape, axis):
    got = simdnorm.rms_norm(np.zeros(shape, dtype), axis=axis)
    assert got.shape == shape and got.dtype == dtype


@pytest.mark.parametrize("dtype", DTYPES)
def test_rms_norm_does_not_modify_inputs(isa, rng, dtype):
    x = rng.standard_normal((3, 40)).astype(dtype)
    w = rng.uniform(0.5, 2.0, 40).astype(dtype)
    copies = (x.copy(), w.copy())
    simdnorm.rms_norm(x, w)
    np.testing.assert_array_equal(x, copies[0])
    np.testing.assert_array_equal(w, copies[1])
