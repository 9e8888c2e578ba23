"""How batch_norm folds per-channel statistics: the per-thread workspace (kept up to 4096 channels,
fresh above), the memo of the last eval fold (keyed by the bytes of the inputs), the running
statistics' dtype and strides, and the check of the running statistics."""

import threading
from typing import ClassVar

import numpy as np
import pytest

import reference
import simdnorm

DTYPES = [np.float32, np.float64]
KEPT_CHANNELS = 32768  # channel_workspace.hpp: WorkspaceLease::kKeptChannels


def _stats(rng, c, dtype, offset=0.0):
    return (
        (rng.standard_normal(c) + offset).astype(dtype),  # running_mean
        rng.uniform(0.5, 2.0, c).astype(dtype),  # running_var
        rng.uniform(0.5, 2.0, c).astype(dtype),  # weight
        rng.uniform(-1.0, 1.0, c).astype(dtype),  # bias
    )


def _module(c, dtype, rm, rv, w, b, axis=1):
    m = simdnorm.BatchNorm(c, axis=axis, dtype=dtype)
    m.load_state_dict({"running_mean": rm, "running_var": rv, "weight": w, "bias": b}, strict=False)
    return m


# ---- workspace sizes ------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("c", [KEPT_CHANNELS - 1, KEPT_CHANNELS, KEPT_CHANNELS + 1, 3 * KEPT_CHANNELS])
@pytest.mark.parametrize("offset", [0.0, 1e3])  # 1e3: |mean * scale| > 16, the centered fold
def test_eval_around_the_kept_workspace_size(isa, rng, dtype, c, offset):
    x = (rng.standard_normal((3, c)) + offset).astype(dtype)
    rm, rv, w, b = _stats(rng, c, dtype, offset)
    y = simdnorm.batch_norm(x, rm, rv, w, b)
    tol = dict(rtol=1e-4, atol=1e-4) if dtype == np.float32 and offset else reference.tol(dtype)
    np.testing.assert_allclose(y, reference.batch_norm(x, rm, rv, w, b)[0], **tol)
    np.testing.assert_array_equal(y, _module(c, dtype, rm, rv, w, b).eval()(x))
    np.testing.assert_array_equal(simdnorm.batch_norm(x, rm, rv, w, b), y)  # again: the memo (or not, above)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("c", [KEPT_CHANNELS - 1, KEPT_CHANNELS, KEPT_CHANNELS + 1])
def test_training_around_the_kept_workspace_size(isa, rng, dtype, c):
    x = rng.standard_normal((4, c)).astype(dtype)
    rm, rv, w, b = _stats(rng, c, dtype)
    m = _module(c, dtype, rm, rv, w, b).train()
    y = simdnorm.batch_norm(x, rm, rv, w, b, training=True)
    ry, rrm, rrv = reference.batch_norm(x, m.running_mean, m.running_var, w, b, training=True)
    np.testing.assert_allclose(y, ry, **reference.tol(dtype))
    np.testing.assert_allclose(rm, rrm, **reference.tol(dtype))
    np.testing.assert_allclose(rv, rrv, **reference.tol(dtype))
    np.testing.assert_array_equal(y, m(x))
    np.testing.assert_array_equal(rm, m.running_mean)
    np.testing.assert_array_equal(rv, m.running_var)


# ---- running statistics: dtype and strides --------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("stats_dtype", DTYPES)
@pytest.mark.parametrize("affine", [True, False])
def test_eval_with_running_stats_of_either_dtype(isa, rng, dtype, stats_dtype, affine):
    x = rng.standard_normal((5, 37, 3)).astype(dtype)
    rm, rv, w, b = _stats(rng, 37, stats_dtype)
    w, b = (w.astype(dtype), b.astype(dtype)) if affine else (None, None)
    y = simdnorm.batch_norm(x, rm, rv, w, b)
    assert y.dtype == dtype
    np.testing.assert_allclose(y, reference.batch_norm(x, rm, rv, w, b)[0], **reference.tol(dtype))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("stats_dtype", DTYPES)
def test_training_updates_running_stats_in_their_own_dtype(isa, rng, dtype, stats_dtype):
    x = rng.standard_normal((6, 9, 4)).astype(dtype)
    rm, rv, _, _ = _stats(rng, 9, stats_dtype)
    ry, rrm, rrv = reference.batch_norm(x, rm, rv, training=True, momentum=0.3)
    y = simdnorm.batch_norm(x, rm, rv, training=True, momentum=0.3)
    assert rm.dtype == stats_dtype and rv.dtype == stats_dtype
    np.testing.assert_allclose(y, ry, **reference.tol(dtype))
    stat_tol = reference.tol(np.float32 if np.float32 in (dtype, stats_dtype) else np.float64)
    np.testing.assert_allclose(rm, rrm, **stat_tol)
    np.testing.assert_allclose(rv, rrv, **stat_tol)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("step", [2, -1, -3])
def test_eval_with_strided_running_stats_matches_contiguous(isa, rng, dtype, step):
    c = 19
    x = rng.standard_normal((4, c)).astype(dtype)
    rm, rv, w, b = _stats(rng, c, dtype)
    expected = simdnorm.batch_norm(x, rm, rv, w, b)
    base_m = np.zeros(c * abs(step), dtype)
    base_v = np.zeros(c * abs(step), dtype)
    view = slice(None, None, step)
    base_m[view] = rm
    base_v[view] = rv
    assert not base_m[view].flags.c_contiguous
    np.testing.assert_array_equal(simdnorm.batch_norm(x, base_m[view], base_v[view], w, b), expected)


# ---- the check of the running statistics -----------------------------------------------------------


@pytest.mark.parametrize("stats_dtype", DTYPES)
@pytest.mark.parametrize("c", [1, 7, 768])
@pytest.mark.parametrize(
    "name, value, message",
    [
        ("running_mean", np.nan, "running_mean must be finite"),
        ("running_mean", -np.inf, "running_mean must be finite"),
        ("running_var", np.inf, "running_var must be finite and >= 0"),
        ("running_var", np.nan, "running_var must be finite and >= 0"),
        ("running_var", -1.0, "running_var must be finite and >= 0"),
    ],
)
def test_bad_running_stats_name_the_first_bad_channel(stats_dtype, c, name, value, message):
    x = np.ones((2, c), np.float32)
    arrays = {"running_mean": np.zeros(c, stats_dtype), "running_var": np.ones(c, stats_dtype)}
    bad = c // 2
    arrays[name][bad] = value
    if c > 2:
        arrays[name][-1] = value  # a later bad channel is not the one named
    out = np.full_like(x, 42.0)
    with pytest.raises(ValueError, match=rf"{message}, channel {bad} is not"):
        simdnorm.batch_norm(x, **arrays, out=out)
    np.testing.assert_array_equal(out, 42.0)


def test_tiny_negative_float64_variance_is_rejected():
    # Rounds to -0.0 in float32: the vectorized pre-check must still flag it.
    rv = np.ones(9)
    rv[4] = -1e-300
    with pytest.raises(ValueError, match="running_var must be finite and >= 0, channel 4 is not"):
        simdnorm.batch_norm(np.ones((2, 9), np.float32), np.zeros(9), rv)


@pytest.mark.parametrize("dtype", DTYPES)
def test_valid_extremes_pass_the_check(isa, dtype):
    # -0.0 and 0.0 variances, and float64 statistics beyond float32's range, are valid (the
    # vectorized pre-check flags them, the exact check lets them through). |mean| / std stays
    # below 16 so that no channel needs the center (float32 cannot hold a center of 1e39).
    x = np.array([[1.0, 2.0, 3.0, 4.0], [-1.0, 0.5, 2.0, 8.0]], dtype)
    rm = np.array([0.25, 1e39, -1e39, 0.25])
    rv = np.array([-0.0, 6.4e75, 6.4e75, 0.0])
    y = simdnorm.batch_norm(x, rm, rv, eps=1e-3)
    np.testing.assert_allclose(y, reference.batch_norm(x, rm, rv, eps=1e-3)[0], **reference.tol(dtype))


# ---- the memo of the last eval fold -------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("change", ["running_mean", "running_var", "weight", "bias"])
def test_in_place_changes_between_calls_are_seen(isa, rng, dtype, change):
    x = rng.standard_normal((3, 24)).astype(dtype)
    arrays = dict(zip(["running_mean", "running_var", "weight", "bias"], _stats(rng, 24, dtype)))
    first = simdnorm.batch_norm(x, **arrays)
    arrays[change][5] *= 1.5
    arrays[change][-1] += 0.25
    second = simdnorm.batch_norm(x, **arrays)
    np.testing.assert_allclose(second, reference.batch_norm(x, **arrays)[0], **reference.tol(dtype))
    fresh = simdnorm.batch_norm(x, **{k: v.copy() for k, v in arrays.items()})
    np.testing.assert_array_equal(second, fresh)
    assert not np.array_equal(first, second)


@pytest.mark.parametrize("dtype", DTYPES)
def test_every_key_part_is_seen(isa, rng, dtype):
    """Calls that differ from the previous one in one input only: eps, an absent weight or bias
    (same other bytes), the statistics' dtype, x's dtype."""
    c = 16
    x = rng.standard_normal((2, c)).astype(dtype)
    rm, rv, w, b = _stats(rng, c, dtype)
    other = np.float64 if dtype == np.float32 else np.float32
    calls = [
        dict(running_mean=rm, running_var=rv, weight=w, bias=b),
        dict(running_mean=rm, running_var=rv, weight=w, bias=b, eps=1e-2),
        dict(running_mean=rm, running_var=rv, weight=None, bias=b),
        dict(running_mean=rm, running_var=rv, weight=w, bias=None),
        dict(running_mean=rm, running_var=rv),
        dict(running_mean=rm.astype(other), running_var=rv.astype(other), weight=w, bias=b),
        dict(running_mean=rm, running_var=rv, weight=w, bias=b),
    ]
    for kwargs in calls + calls[::-1]:
        y = simdnorm.batch_norm(x, **kwargs)
        np.testing.assert_allclose(y, reference.batch_norm(x, **kwargs)[0], **reference.tol(dtype))
    # x's dtype: the same float64 statistics with float32 and float64 x.
    rm64, rv64 = rm.astype(np.float64), rv.astype(np.float64)
    for x_dtype in [np.float32, np.float64, np.float32]:
        xx = x.astype(x_dtype)
        y = simdnorm.batch_norm(xx, rm64, rv64)
        assert y.dtype == x_dtype
        np.testing.assert_allclose(y, reference.batch_norm(xx, rm64, rv64)[0], **reference.tol(x_dtype))


def test_a_bad_call_after_a_good_one_raises_and_the_next_good_one_works(rng):
    x = rng.standard_normal((2, 8)).astype(np.float32)
    rm, rv, w, b = _stats(rng, 8, np.float32)
    good = simdnorm.batch_norm(x, rm, rv, w, b)
    rv[3] = -rv[3]
    out = np.full_like(x, 42.0)
    with pytest.raises(ValueError, match="running_var must be finite and >= 0, channel 3 is not"):
        simdnorm.batch_norm(x, rm, rv, w, b, out=out)
    np.testing.assert_array_equal(out, 42.0)
    rv[3] = -rv[3]
    np.testing.assert_array_equal(simdnorm.batch_norm(x, rm, rv, w, b), good)


def test_training_calls_between_eval_calls(isa, rng):
    # Training uses the workspace's other buffers: the remembered eval fold stays right.
    x = rng.standard_normal((6, 10)).astype(np.float32)
    rm, rv, w, b = _stats(rng, 10, np.float32)
    expected = simdnorm.batch_norm(x, rm.copy(), rv.copy(), w, b)
    for _ in range(2):
        simdnorm.batch_norm(x * 3 + 1, None, None, w, b, training=True)
        np.testing.assert_array_equal(simdnorm.batch_norm(x, rm, rv, w, b), expected)


def test_threads_keep_their_own_fold(rng):
    # 80 x 64 elements: the kernel runs without the GIL, so other threads' calls overlap it.
    n_threads, c = 4, 64
    x = rng.standard_normal((80, c)).astype(np.float32)
    cases = [_stats(rng, c, np.float32) for _ in range(n_threads)]
    expected = [simdnorm.batch_norm(x, *arrays) for arrays in cases]
    failures = []
    start = threading.Barrier(n_threads)

    def run(i):
        start.wait()
        for _ in range(200):
            if not np.array_equal(simdnorm.batch_norm(x, *cases[i]), expected[i]):
                failures.append(i)
                return

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []


class _ReenteringArray(np.ndarray):
    """Calls batch_norm with other statistics whenever NumPy makes a new array of this type (as
    empty_like does for a strided x's output, in the middle of the outer batch_norm call)."""

    inner = None
    inner_results: ClassVar[list] = []

    def __array_finalize__(self, obj):
        if _ReenteringArray.inner is not None:
            x, arrays = _ReenteringArray.inner
            _ReenteringArray.inner = None  # once
            _ReenteringArray.inner_results.append(simdnorm.batch_norm(x, *arrays))


def test_a_call_reentering_from_numpy_gets_its_own_workspace(rng):
    c = 12
    outer_arrays = _stats(rng, c, np.float32)
    inner_arrays = _stats(rng, c, np.float32, offset=5.0)
    x = rng.standard_normal((3, c * 2)).astype(np.float32)[:, ::2]  # strided: output via empty_like
    inner_x = rng.standard_normal((2, c)).astype(np.float32)
    expected_outer = simdnorm.batch_norm(x.copy(), *outer_arrays)
    expected_inner = simdnorm.batch_norm(inner_x, *inner_arrays)

    sub = x.view(_ReenteringArray)
    _ReenteringArray.inner_results.clear()
    _ReenteringArray.inner = (inner_x, inner_arrays)
    got = simdnorm.batch_norm(sub, *outer_arrays)
    assert len(_ReenteringArray.inner_results) == 1, "the outer call made no array of x's type"
    np.testing.assert_array_equal(_ReenteringArray.inner_results[0], expected_inner)
    np.testing.assert_array_equal(np.asarray(got), expected_outer)


# ---- out= overlapping the per-channel arrays ------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("c", [5, 16, 256])
def test_scale_shift_out_overlapping_scale_and_shift(isa, rng, dtype, c):
    # The kernel reads copies: writing out must not change the scale and shift it applies.
    x = rng.standard_normal((2, c)).astype(dtype)
    buffer = np.empty((2, c), dtype)
    scale, shift = buffer[0], buffer[1]
    scale[:] = rng.uniform(0.5, 2.0, c)
    shift[:] = rng.uniform(-1.0, 1.0, c)
    expected = reference.scale_shift(x, scale.copy(), shift.copy(), axis=1)
    got = simdnorm.scale_shift(x, scale, shift, out=buffer)
    assert got is buffer
    np.testing.assert_allclose(buffer, expected, **reference.tol(dtype))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("training", [False, True])
def test_batch_norm_out_overlapping_its_per_channel_arrays(isa, rng, dtype, training):
    c = 9
    x = rng.standard_normal((4, c)).astype(dtype)
    buffer = np.empty((4, c), dtype)
    rm, rv, w, b = buffer  # every per-channel array is a row of out
    rm[:], rv[:], w[:], b[:] = _stats(rng, c, dtype)
    expected, erm, erv = reference.batch_norm(x, rm.copy(), rv.copy(), w.copy(), b.copy(), training=training)
    simdnorm.batch_norm(x, rm, rv, w, b, training=training, out=buffer)
    if training:  # the running statistics are written last: rows 0 and 1 hold them, rows 2, 3 the output
        np.testing.assert_allclose(buffer[0], erm, **reference.tol(dtype))
        np.testing.assert_allclose(buffer[1], erv, **reference.tol(dtype))
        np.testing.assert_allclose(buffer[2:], expected[2:], **reference.tol(dtype))
    else:
        np.testing.assert_allclose(buffer, expected, **reference.tol(dtype))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("shared", ["running_mean is a row of x", "weight is running_mean", "bias is running_var"])
def test_batch_norm_training_running_stats_shared_with_an_input(isa, rng, dtype, threads, shared):
    # Running statistics no input shares are updated by the statistics' tasks; shared ones after
    # the call, so the output still comes from the inputs as they were. 256 x 768 splits the
    # statistics by channels at 2 threads, and the far channel needs the center: the fold of every
    # channel is redone after the tasks, reading the weight and bias again.
    n, c = 256, 768
    x = rng.standard_normal((n, c)).astype(dtype)
    x[:, -1] += 100.0  # 100 std from zero
    rm, rv, w, b = _stats(rng, c, dtype)
    if shared == "running_mean is a row of x":
        rm = x[3]
    elif shared == "weight is running_mean":
        w = rm
    else:
        b = rv
    expected, erm, erv = reference.batch_norm(x.copy(), rm.copy(), rv.copy(), w.copy(), b.copy(), training=True)
    before = simdnorm.get_num_threads()
    simdnorm.set_num_threads(threads)
    try:
        got = simdnorm.batch_norm(x, rm, rv, w, b, training=True)
    finally:
        simdnorm.set_num_threads(before)
    np.testing.assert_allclose(got, expected, **reference.tol(dtype))
    np.testing.assert_allclose(rm, erm, **reference.tol(dtype))
    np.testing.assert_allclose(rv, erv, **reference.tol(dtype))
