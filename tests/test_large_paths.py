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


def _interleaved_rows_case(rows, cols, dtype, seed):
    """x with the rows that exercise every branch of the interleaved LayerNorm loop (streamed or
    cached): ordinary rows, a row whose first elements are far from its mean (the one-pass pivot
    is rejected), a constant row, a NaN row, a row at a large offset."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((rows, cols)).astype(dtype)
    x[5, :16] += 50.0  # pivot from the first 16 elements sits far from the row mean
    x[6] = 2.5
    x[7, cols // 2] = np.nan
    x[8] += 1e6 if dtype == np.float32 else 1e9
    x[rows - 2] = np.sort(x[rows - 2])  # drifting values: the pivot is the row minimum
    return x


@pytest.mark.parametrize(
    "cols, dtype",
    [(1024, np.float32), (1000, np.float32), (4096, np.float32), (768, np.float32), (515, np.float64)],
)
@pytest.mark.parametrize("affine", ["wb", "w", "b", "none"])
def test_streamed_layer_norm_rows_equal_cached_calls_bitwise(isa, cols, dtype, affine):
    """The streamed LayerNorm loop takes row o + 1's statistics while writing row o: every row,
    its mean and rstd must have the bits of the cached (not streamed) path, one block of rows at a
    time below the streaming threshold."""
    itemsize = np.dtype(dtype).itemsize
    rows = (17 << 20) // (cols * itemsize) + 3  # a little over the 16 MiB streaming threshold
    x = _interleaved_rows_case(rows, cols, dtype, seed=cols)
    rng = np.random.default_rng(1)
    w = rng.uniform(0.5, 2, cols).astype(dtype) if affine in ("wb", "w") else None
    b = rng.uniform(-1, 1, cols).astype(dtype) if affine in ("wb", "b") else None
    for shift in (0, 1, 5):  # out= at, and off, vector alignment
        out = np.empty(rows * cols + shift, dtype)[shift:].reshape(rows, cols)
        y, mean, rstd = simdnorm.layer_norm(x, w, b, out=out, return_stats=True)
        assert y is out
        block = (4 << 20) // (cols * itemsize)  # 4 MiB of output: not streamed
        for start in range(0, rows, block):
            part = slice(start, start + block)
            y_part, mean_part, rstd_part = simdnorm.layer_norm(x[part], w, b, return_stats=True)
            np.testing.assert_array_equal(out[part], y_part)
            np.testing.assert_array_equal(mean[part], mean_part)
            np.testing.assert_array_equal(rstd[part], rstd_part)
    assert np.isnan(out[7]).all() and not np.isnan(out[8]).any()


@pytest.mark.parametrize(
    "cols, dtype",
    [(257, np.float32), (768, np.float32), (1000, np.float32), (1024, np.float32), (509, np.float64)],
)
@pytest.mark.parametrize("affine", ["wb", "w", "b", "none"])
@pytest.mark.parametrize("threads", [1, 2])
def test_cached_rows_beyond_l1_equal_each_row_alone_bitwise(isa, cols, dtype, affine, threads):
    """Batches of wide rows, more x than L1 holds, at 1 thread (one task) and 2 (tasks of about
    128 KiB): these rows take the loop that sums row o + 1 while writing row o
    (interleaved_cached_rows_apply). Every row, its mean and rstd must have the bits of the same
    row normalized alone (the single-row path), in place too, for the rows that take every branch
    of that loop."""
    _check_layer_norm_rows_equal_each_row_alone(cols, dtype, affine, threads)


# Rows of 4-16 KiB take the interleaved loop or the groups of four rows by the CPU's make
# (simdnorm::Tuning); both choices run here on every ISA.
# 4097 float32: just past 16 KiB (row groups either way); 2048 float64: exactly 16 KiB.
WIDE_ROWS = [(2048, np.float32), (3001, np.float32), (4096, np.float32), (4097, np.float32), (1536, np.float64),
             (2048, np.float64)]


@pytest.mark.parametrize("cols, dtype", WIDE_ROWS)
@pytest.mark.parametrize("affine", ["wb", "none"])
@pytest.mark.parametrize("threads", [1, 2])
def test_wide_cached_rows_equal_each_row_alone_bitwise(isa, wide_rows_tuning, cols, dtype, affine, threads):
    _check_layer_norm_rows_equal_each_row_alone(cols, dtype, affine, threads)


@pytest.mark.parametrize("cols, dtype", WIDE_ROWS)
@pytest.mark.parametrize("weighted", [True, False])
@pytest.mark.parametrize("threads", [1, 2])
def test_wide_cached_rms_norm_rows_equal_each_row_alone_bitwise(isa, wide_rows_tuning, cols, dtype, weighted, threads):
    _check_rms_norm_rows_equal_each_row_alone(cols, dtype, weighted, threads)


def _check_layer_norm_rows_equal_each_row_alone(cols, dtype, affine, threads):
    itemsize = np.dtype(dtype).itemsize
    rows = (300 << 10) // (cols * itemsize) + 11
    x = _interleaved_rows_case(rows, cols, dtype, seed=cols + 7)
    rng = np.random.default_rng(2)
    w = rng.uniform(0.5, 2, cols).astype(dtype) if affine in ("wb", "w") else None
    b = rng.uniform(-1, 1, cols).astype(dtype) if affine in ("wb", "b") else None
    before = simdnorm.get_num_threads()
    simdnorm.set_num_threads(threads)
    try:
        y, mean, rstd = simdnorm.layer_norm(x, w, b, return_stats=True)
        in_place = x.copy()
        assert simdnorm.layer_norm(in_place, w, b, out=in_place) is in_place
    finally:
        simdnorm.set_num_threads(before)
    for r in range(rows):
        y_row, mean_row, rstd_row = simdnorm.layer_norm(x[r : r + 1], w, b, return_stats=True)
        np.testing.assert_array_equal(y[r : r + 1], y_row)
        np.testing.assert_array_equal(mean[r : r + 1], mean_row)
        np.testing.assert_array_equal(rstd[r : r + 1], rstd_row)
    assert np.isnan(y[7]).all() and not np.isnan(y[8]).any()
    np.testing.assert_array_equal(in_place, y)
    np.testing.assert_allclose(
        y[~np.isnan(y).any(axis=1)],
        reference.layer_norm(x, w, b)[~np.isnan(y).any(axis=1)],
        rtol=0,
        atol=2e-5 if dtype == np.float32 else 1e-6,  # float64: row 8 sits at 1e9
    )


@pytest.mark.parametrize(
    "cols, dtype",
    [(257, np.float32), (768, np.float32), (1000, np.float32), (1024, np.float32), (509, np.float64)],
)
@pytest.mark.parametrize("weighted", [True, False])
@pytest.mark.parametrize("threads", [1, 2])
def test_cached_rms_norm_rows_beyond_l1_equal_each_row_alone_bitwise(isa, cols, dtype, weighted, threads):
    """RMSNorm's counterpart of the test above (rms_norm_rows_interleaved): every row equals the row
    alone, in place too; a row of huge values whose float squares overflow takes the double fallback
    of the sum of squares, a zero row gives zeros."""
    _check_rms_norm_rows_equal_each_row_alone(cols, dtype, weighted, threads)


def _check_rms_norm_rows_equal_each_row_alone(cols, dtype, weighted, threads):
    itemsize = np.dtype(dtype).itemsize
    rows = (300 << 10) // (cols * itemsize) + 11
    rng = np.random.default_rng(cols + 3)
    x = rng.standard_normal((rows, cols)).astype(dtype)
    x[5] *= 1e25 if dtype == np.float32 else 1e160  # squares overflow the T-precision partial sums
    x[6] = 0.0
    x[7, cols // 2] = np.nan
    x[8] += 1e6
    w = rng.uniform(0.5, 2, cols).astype(dtype) if weighted else None
    before = simdnorm.get_num_threads()
    simdnorm.set_num_threads(threads)
    try:
        y = simdnorm.rms_norm(x, w)
        in_place = x.copy()
        assert simdnorm.rms_norm(in_place, w, out=in_place) is in_place
    finally:
        simdnorm.set_num_threads(before)
    for r in range(rows):
        np.testing.assert_array_equal(y[r : r + 1], simdnorm.rms_norm(x[r : r + 1], w))
    np.testing.assert_array_equal(in_place, y)
    assert np.isnan(y[7]).all() and not np.isnan(y[5]).any() and (y[6] == 0).all()
    finite = ~np.isnan(y).any(axis=1)
    np.testing.assert_allclose(
        y[finite], reference.rms_norm(x, w)[finite], rtol=1e-5 if dtype == np.float32 else 1e-12, atol=1e-6
    )


@pytest.mark.parametrize("cols, dtype", [(1000, np.float32), (1024, np.float32), (515, np.float64)])
def test_streamed_rms_norm_rows_equal_cached_calls_bitwise(isa, cols, dtype):
    """Streamed rows write the partial vectors at each end with element-wise non-temporal stores:
    every row equals the cached path's, rows of 1000 floats alternating their line alignment."""
    itemsize = np.dtype(dtype).itemsize
    rows = (17 << 20) // (cols * itemsize) + 3
    rng = np.random.default_rng(cols)
    x = rng.standard_normal((rows, cols)).astype(dtype)
    w = rng.uniform(0.5, 2, cols).astype(dtype)
    for shift in (0, 1, 3, 5):
        out = np.empty(rows * cols + shift, dtype)[shift:].reshape(rows, cols)
        assert simdnorm.rms_norm(x, w, out=out) is out
        block = (4 << 20) // (cols * itemsize)  # 4 MiB of output: not streamed
        for start in range(0, rows, block):
            part = slice(start, start + block)
            np.testing.assert_array_equal(out[part], simdnorm.rms_norm(x[part], w))


def test_streamed_layer_norm_in_place(isa):
    """out=x: each row is written after its statistics and before nothing else reads it."""
    x = _interleaved_rows_case(4400, 1024, np.float32, seed=3)
    expected = simdnorm.layer_norm(x)
    simdnorm.layer_norm(x, out=x)
    np.testing.assert_array_equal(x, expected)


@pytest.mark.parametrize("channels", [64, 3, 100])
@pytest.mark.parametrize("offset", [0, 1, 4])  # out= line-aligned or not
def test_streamed_channels_last_rows_equal_small_calls(isa, channels, offset):
    """Channels-last rows back to back run as one flat loop whose vectors span rows, streamed past
    16 MiB: every sample equals a call on that sample alone (cached, same flat loop), whatever
    out='s alignment; BatchNorm training output matches the float64 reference."""
    rng = np.random.default_rng(channels + offset)
    pixels = (17 << 20) // (4 * channels) // 16 + 1
    x = rng.standard_normal((16, pixels, channels)).astype(np.float32)
    scale, shift = rng.uniform(0.5, 2, channels).astype(np.float32), rng.standard_normal(channels).astype(np.float32)
    out = np.empty(x.size + offset, np.float32)[offset:].reshape(x.shape)
    simdnorm.scale_shift(x, scale, shift, axis=-1, out=out)
    for n in (0, 7, 15):
        np.testing.assert_array_equal(out[n], simdnorm.scale_shift(x[n : n + 1], scale, shift, axis=-1)[0])
    np.testing.assert_allclose(out, reference.scale_shift(x, scale, shift, axis=-1), rtol=1e-6, atol=1e-6)
    rm, rv = np.zeros(channels, np.float32), np.ones(channels, np.float32)
    simdnorm.batch_norm(x, rm, rv, scale, shift, training=True, axis=-1, out=out)
    expected, exp_rm, exp_rv = reference.batch_norm(x, np.zeros(channels), np.ones(channels), scale, shift,
                                                    training=True, axis=-1)
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=2e-5)
    np.testing.assert_allclose(rm, exp_rm, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(rv, exp_rv, rtol=1e-5)


def _at_page_offset(shape, dtype, offset):
    """An empty C-contiguous array whose data starts `offset` bytes into a 4 KiB page."""
    itemsize = np.dtype(dtype).itemsize
    raw = np.empty(int(np.prod(shape)) * itemsize + 2 * 4096, np.uint8)
    start = (offset - raw.ctypes.data) % 4096
    return raw[start : start + int(np.prod(shape)) * itemsize].view(dtype).reshape(shape)


# Rows of 4-16 KiB take the row groups here whatever the CPU's make (conftest.py, wide_rows_tuning).
@pytest.mark.parametrize("wide_rows_tuning", [False], ids=["row-groups"], indirect=True)
@pytest.mark.parametrize(
    "cols, dtype",
    [(4096, np.float32), (2000, np.float32), (1100, np.float32), (1024, np.float64), (1030, np.float64)],
)
@pytest.mark.parametrize("y_ahead", [-48, 0, 48, 256, 1500])
@pytest.mark.parametrize("op", ["layer_norm", "rms_norm"])
def test_row_groups_walking_either_way_match_each_row_alone_bitwise(
    isa, wide_rows_tuning, cols, dtype, y_ahead, op
):
    """Groups of rows walk from the end when more of y's rows sit a little ahead of x's rows,
    weight or bias modulo 4 KiB than behind them (normalize_row_group, 4K aliasing), else from the
    start. Placed both ways (y_ahead 48 and 256 walk back), every row, and
    the rows of 1, 2 and 3 left after the groups of four, must have the bits of the row alone and
    stay within the float64 reference's tolerance. Rows whose byte length is not a multiple of the
    64-byte line (1100 float32, 1030 float64) go one at a time instead (rows_may_share_passes):
    the same bits too."""
    rng = np.random.default_rng(cols + y_ahead)
    rows = 11  # two groups of four, a pair, a single row
    x = _at_page_offset((rows, cols), dtype, 16)
    x[...] = rng.standard_normal((rows, cols)) * 2 + 3
    if dtype == np.float32:  # one row far off (float64's reference tolerance is for std-1 data)
        x[3] += 1e4
    w = _at_page_offset((cols,), dtype, 16 + 24)
    w[...] = rng.uniform(0.5, 2, cols)
    b = _at_page_offset((cols,), dtype, 16 - 40)
    b[...] = rng.uniform(-1, 1, cols)
    out = _at_page_offset((rows, cols), dtype, 16 + y_ahead)
    if op == "layer_norm":
        run = lambda data, y=None: simdnorm.layer_norm(data, w, b, out=y)  # noqa: E731
        expected = reference.layer_norm(x, w, b)
    else:
        run = lambda data, y=None: simdnorm.rms_norm(data, w, out=y)  # noqa: E731
        expected = reference.rms_norm(x, w)
    assert run(x, out) is out
    np.testing.assert_allclose(out, expected, **reference.tol(dtype))
    for r in range(rows):
        np.testing.assert_array_equal(out[r], run(x[r : r + 1])[0])


@pytest.mark.parametrize("channels, dtype", [(256, np.float32), (100, np.float32), (1024, np.float32), (256, np.float64)])
@pytest.mark.parametrize("param_offset", [0, 8, 40])  # bytes into a line; x sits 16 bytes in
@pytest.mark.parametrize("y_offset", [16, 2048, 2080, None])  # None: in place
def test_channels_last_rows_with_parameters_off_y_line_offset_match_co_aligned_ones_bitwise(
    isa, channels, dtype, param_offset, y_offset
):
    """Channels-last rows (scale_shift, BatchNorm eval and training over the last axis) with enough
    rows copy per-channel vectors that sit elsewhere in their cache line than y's rows to y's place
    (channel_affine_co_aligned): same bits as parameters placed there by the caller, and the float64
    reference's values, out of place and in place."""
    rng = np.random.default_rng(channels + param_offset)
    rows = 300
    x0 = (rng.standard_normal((rows, channels)) * 2 + 1).astype(dtype)

    def params(offset):
        arrays = [_at_page_offset((channels,), dtype, 64 * k + offset) for k in (5, 20, 40, 60)]
        for a, values in zip(arrays, (rng.uniform(0.5, 2, channels), rng.uniform(-1, 1, channels),
                                      rng.uniform(-0.2, 0.2, channels), rng.uniform(0.5, 1.5, channels))):
            a[...] = values
        return arrays

    off_line, co_aligned = params(param_offset), params(16 if y_offset is None else y_offset % 64)
    for p, q in zip(off_line, co_aligned):
        q[...] = p

    def run(op, ps):
        x = _at_page_offset((rows, channels), dtype, 16)
        x[...] = x0
        out = x if y_offset is None else _at_page_offset((rows, channels), dtype, y_offset)
        scale, shift, rm, rv = ps
        if op == "scale_shift":
            result = simdnorm.scale_shift(x, scale, shift, axis=-1, out=out)
        else:
            rm, rv = rm.copy(), rv.copy()
            result = simdnorm.batch_norm(x, rm, rv, scale, shift, training=op == "train", axis=-1, out=out)
        assert result is out
        return out.copy(), rm, rv

    for op in ("scale_shift", "eval", "train"):
        got, got_rm, got_rv = run(op, off_line)
        want, want_rm, want_rv = run(op, co_aligned)
        np.testing.assert_array_equal(got, want)
        np.testing.assert_array_equal(got_rm, want_rm)
        np.testing.assert_array_equal(got_rv, want_rv)
        scale, shift, rm, rv = off_line
        if op == "scale_shift":
            expected = x0.astype(np.float64) * scale + shift
        else:
            expected = reference.batch_norm(x0, rm, rv, scale, shift, training=op == "train", axis=-1)[0]
        np.testing.assert_allclose(got, expected, **reference.tol(dtype))
