"""Paths taken only by large inputs: one long row split across threads, streaming (non-temporal)
stores for outputs past the last-level cache. Same results as the small-input paths."""

import numpy as np
import pytest

import reference
import simdnorm

LONG = 200003  # past the long-row split threshold (2**17 elements), not a multiple of 4096


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_long_row_matches_reference(isa, dtype):
    rng = np.random.default_rng(5)
    # float32: a large common offset (the accuracy contract); float64 keeps the reference's 1e-12
    x = (rng.standard_normal((2, LONG)) + (1e6 if dtype == np.float32 else 3.0)).astype(dtype)
    w, b = rng.uniform(0.5, 2, LONG).astype(dtype), rng.uniform(-1, 1, LONG).astype(dtype)
    y, mean, rstd = simdnorm.layer_norm(x, w, b, return_stats=True)
    np.testing.assert_allclose(y, reference.layer_norm(x, w, b), **reference.tol(dtype))
    np.testing.assert_allclose(np.ravel(mean), x.astype(np.float64).mean(axis=1), rtol=1e-6)
    np.testing.assert_allclose(simdnorm.rms_norm(x, w), reference.rms_norm(x, w), **reference.tol(dtype))
    if dtype == np.float32:  # the contract: max abs error <= 4e-6 at offsets up to 1e6, std 1
        assert np.abs(simdnorm.layer_norm(x) - reference.layer_norm(x)).max() <= 4e-6


def test_long_row_constant_gives_bias_and_nan_stays_in_its_row(isa):
    rng = np.random.default_rng(6)
    b = rng.standard_normal(LONG).astype(np.float32)
    x = np.full((2, LONG), 3.25, np.float32)
    assert np.array_equal(simdnorm.layer_norm(x, None, b), np.broadcast_to(b, x.shape))
    x = rng.standard_normal((2, LONG)).astype(np.float32)
    x[1, 150000] = np.nan
    y = simdnorm.layer_norm(x)
    assert np.isnan(y[1]).all() and not np.isnan(y[0]).any()
    y = simdnorm.rms_norm(x)
    assert np.isnan(y[1]).all() and not np.isnan(y[0]).any()


@pytest.mark.parametrize("offset", [0, 1, 3])  # out= vector-aligned or not
def test_streamed_output_matches_small_calls(isa, offset):
    """A 17 MiB output is streamed; rows are independent, so each row equals a one-row call."""
    rng = np.random.default_rng(7)
    rows, cols = 4352, 1024
    x = rng.standard_normal((rows, cols)).astype(np.float32)
    w, b = rng.uniform(0.5, 2, cols).astype(np.float32), rng.uniform(-1, 1, cols).astype(np.float32)
    out = np.empty(rows * cols + offset, np.float32)[offset:].reshape(rows, cols)
    pick = [0, 1, 2047, rows - 1]
    simdnorm.layer_norm(x, w, b, out=out)
    for r in pick:
        assert np.array_equal(out[r], simdnorm.layer_norm(x[r : r + 1], w, b)[0])
    simdnorm.rms_norm(x, w, out=out)
    for r in pick:
        assert np.array_equal(out[r], simdnorm.rms_norm(x[r : r + 1], w)[0])
    x4 = x.reshape(17, 256, 32, 32)
    rm, rv = rng.standard_normal(256).astype(np.float32), rng.uniform(0.5, 2, 256).astype(np.float32)
    y4 = simdnorm.batch_norm(x4, rm, rv, w[:256], b[:256])
    np.testing.assert_array_equal(y4[3:4], simdnorm.batch_norm(x4[3:4], rm, rv, w[:256], b[:256]))
