"""Calls without out= hand back an earlier small result once the caller has dropped it.

A module, a RunningStats and the functions (one slot for all of them) keep the small array they
returned last (cpp/bindings/recycled_output.hpp) and write the next result of the same shape into it
only when nothing else can see it: no variable, view, memoryview, weak reference, and still the
C-contiguous, writeable, owning ndarray it made. Each test holds or alters a result in one such way
and checks the next call leaves it alone and is itself right.
"""

import gc
import pickle
import sys
import threading
import warnings
import weakref

import numpy as np
import pytest
import reference
import simdnorm

F = 96  # features: small outputs (every shape below stays under the 128 KiB limit)


def _modules():
    """(name, module, float64 reference of module(x)) for each module kind, default parameters."""
    bn = simdnorm.BatchNorm(F, axis=-1).eval()
    return [
        ("LayerNorm", simdnorm.LayerNorm(F), lambda x: reference.layer_norm(x, eps=1e-5)),
        ("RMSNorm", simdnorm.RMSNorm(F), lambda x: reference.rms_norm(x, eps=np.finfo(np.float32).eps)),
        ("BatchNorm eval", bn, lambda x: np.asarray(x, np.float64) / np.sqrt(1.0 + 1e-5)),
        ("BatchNorm frozen", bn.as_frozen(), lambda x: np.asarray(x, np.float64) / np.sqrt(1.0 + 1e-5)),
    ]


MODULES = _modules()


@pytest.fixture(params=MODULES, ids=[name for name, _, _ in MODULES])
def module(request):
    return request.param[1], request.param[2]


def _check(y, x, expected):
    assert isinstance(y, np.ndarray) and type(y) is np.ndarray
    assert y.shape == x.shape and y.dtype == np.float32
    assert y.flags.c_contiguous and y.flags.writeable and y.flags.owndata
    np.testing.assert_allclose(y, expected(x), rtol=0, atol=2e-5)


def _inputs(rng, rows=2):
    return [rng.standard_normal((rows, F)).astype(np.float32) for _ in range(3)]


def test_a_dropped_result_is_reused_with_new_values(module, rng):
    m, expected = module
    x1, x2, _ = _inputs(rng)
    first_id = id(m(x1))  # dropped at once
    y = m(x2)
    assert id(y) == first_id  # the same array object, written again
    _check(y, x2, expected)


def _values(holder):
    return np.array(holder[0] if isinstance(holder, list) else holder, copy=True)


@pytest.mark.parametrize(
    "hold",
    [
        pytest.param(lambda y: y, id="variable"),
        pytest.param(lambda y: y[0], id="view"),
        pytest.param(lambda y: y.reshape(-1), id="reshaped view"),
        pytest.param(memoryview, id="memoryview"),
        pytest.param(lambda y: [y], id="container"),
    ],
)
def test_a_result_still_referenced_is_left_alone(module, rng, hold):
    m, expected = module
    x1, x2, _ = _inputs(rng)
    holder = hold(m(x1))
    before = _values(holder)
    y2 = m(x2)
    _check(y2, x2, expected)
    np.testing.assert_array_equal(_values(holder), before)


def test_a_weakly_referenced_result_is_never_rewritten(module, rng):
    m, expected = module
    x1, x2, _ = _inputs(rng)
    ref = weakref.ref(m(x1))
    snapshot = ref().copy()  # alive: the module holds it
    y2 = m(x2)
    _check(y2, x2, expected)
    gc.collect()
    assert ref() is None or np.array_equal(ref(), snapshot)
    assert ref() is not y2


def _set_strides(y, strides):
    with warnings.catch_warnings():  # deprecated in NumPy 2.4, still possible
        warnings.simplefilter("ignore", DeprecationWarning)
        y.strides = strides


@pytest.mark.parametrize(
    "alter",
    [
        pytest.param(lambda y: setattr(y, "shape", (y.size,)), id="shape"),
        pytest.param(lambda y: setattr(y, "dtype", np.int32), id="dtype"),
        pytest.param(lambda y: setattr(y.flags, "writeable", False), id="read-only"),
        pytest.param(lambda y: y.resize((y.shape[0] + 1, F), refcheck=False), id="resized"),
        pytest.param(lambda y: _set_strides(y, (4, y.shape[0] * 4)), id="strides"),
    ],
)
def test_an_altered_result_is_not_taken_back(module, rng, alter):
    m, expected = module
    x1, x2, _ = _inputs(rng)
    y = m(x1)
    alter(y)
    del y
    y2 = m(x2)
    _check(y2, x2, expected)


def test_shapes_and_dtypes_that_change_between_calls(rng):
    for dtype in (np.float32, np.float64):
        m = simdnorm.LayerNorm(F, dtype=dtype)
        for rows in (1, 3, 1, 3, 40, 1):
            x = rng.standard_normal((rows, F)).astype(dtype)
            y = m(x)
            assert y.shape == x.shape and y.dtype == dtype
            np.testing.assert_allclose(y, reference.layer_norm(x, eps=1e-5), rtol=0, atol=2e-5)
        x3 = rng.standard_normal((2, 3, F)).astype(dtype)  # more dimensions, same element count
        assert m(x3).shape == (2, 3, F)


def test_a_large_result_is_not_kept(rng):
    m = simdnorm.LayerNorm(1024)
    big = rng.standard_normal((64, 1024)).astype(np.float32)  # 256 KiB
    first_id = id(m(big))
    y = m(big)
    assert y.flags.c_contiguous
    np.testing.assert_allclose(y, reference.layer_norm(big, eps=1e-5), rtol=0, atol=2e-5)
    del first_id  # ids of freed arrays may repeat; only the values and flags are promised


def test_out_and_in_place_calls_do_not_touch_the_held_result(rng):
    m = simdnorm.LayerNorm(F)
    x1, x2, x3 = _inputs(rng)
    y1 = m(x1)
    out = np.empty_like(x2)
    assert m(x2, out=out) is out
    m(x3, out=x3)  # in place
    np.testing.assert_allclose(y1, reference.layer_norm(x1, eps=1e-5), rtol=0, atol=2e-5)
    np.testing.assert_allclose(m(m(x1)), reference.layer_norm(reference.layer_norm(x1, eps=1e-5), eps=1e-5),
                               rtol=0, atol=5e-5)


def test_batch_norm_training_results_are_recycled_too(rng):
    m = simdnorm.BatchNorm(F, axis=-1)
    x1, x2, _ = _inputs(rng, rows=16)
    first_id = id(m(x1))
    y = m(x2)
    assert id(y) == first_id
    mean, var, _ = reference.batch_stats(x2, axis=-1)
    np.testing.assert_allclose(y, (x2 - mean) / np.sqrt(var + 1e-5), rtol=0, atol=2e-5)


def test_pickled_and_copied_modules_start_without_a_result(rng):
    m = simdnorm.LayerNorm(F)
    x1, x2, _ = _inputs(rng)
    y1 = m(x1)
    clone = pickle.loads(pickle.dumps(m))
    y2 = clone(x2)
    assert y2 is not y1
    np.testing.assert_allclose(y1, reference.layer_norm(x1, eps=1e-5), rtol=0, atol=2e-5)
    np.testing.assert_allclose(y2, reference.layer_norm(x2, eps=1e-5), rtol=0, atol=2e-5)


def _run_threads(worker, count):
    """worker(k) for k < count on as many threads, the GIL switching as often as possible."""
    before = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        threads = [threading.Thread(target=worker, args=(k,)) for k in range(count)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        sys.setswitchinterval(before)


def test_threads_sharing_one_module_never_share_a_result(rng):
    # 64 rows of 96: above the size from which the call releases the GIL during the kernel.
    m = simdnorm.LayerNorm(F)
    inputs = [rng.standard_normal((64, F)).astype(np.float32) for _ in range(8)]
    expected = [reference.layer_norm(x, eps=1e-5) for x in inputs]
    failures = []

    def worker(k):
        for _ in range(200):
            y = m(inputs[k])
            if not np.allclose(y, expected[k], rtol=0, atol=2e-5):
                failures.append(k)
                return

    _run_threads(worker, len(inputs))
    assert failures == []


# ---- RunningStats.normalize / update_normalize -----------------------------------------------------


def _stats_reference(history, x):
    h = np.asarray(history, np.float64)
    return (np.asarray(x, np.float64) - h.mean(axis=0)) / np.sqrt(h.var(axis=0) + 1e-5)


@pytest.mark.parametrize("method", ["normalize", "update_normalize"])
def test_running_stats_results_are_recycled_only_when_dropped(rng, method):
    stats = simdnorm.RunningStats(F)
    history = [rng.standard_normal(F).astype(np.float32) for _ in range(4)]
    for sample in history:
        stats.update(sample)
    call = getattr(stats, method)
    samples = [rng.standard_normal(F).astype(np.float32) for _ in range(3)]

    def expected(k):
        return _stats_reference(history + samples[: k + 1] if method == "update_normalize" else history, samples[k])

    first_id = id(call(samples[0]))  # dropped at once
    y1 = call(samples[1])
    assert id(y1) == first_id and y1.shape == (F,) and y1.flags.owndata
    np.testing.assert_allclose(y1, expected(1), rtol=0, atol=2e-5)
    before = y1.copy()
    y2 = call(samples[2])  # y1 is held: a new array
    assert y2 is not y1
    np.testing.assert_array_equal(y1, before)
    np.testing.assert_allclose(y2, expected(2), rtol=0, atol=2e-5)


def test_running_stats_pickles_and_merges_without_the_held_result(rng):
    stats = simdnorm.RunningStats(F)
    for _ in range(5):
        stats.update(rng.standard_normal(F).astype(np.float32))
    y = stats.normalize(rng.standard_normal(F).astype(np.float32))
    clone = pickle.loads(pickle.dumps(stats))
    assert clone.normalize(y) is not y
    other = simdnorm.RunningStats(F)
    other.update(rng.standard_normal(F).astype(np.float32))
    stats.merge(other)
    np.testing.assert_array_equal(clone.mean, pickle.loads(pickle.dumps(clone)).mean)


# ---- The functions ------------------------------------------------------------------------------------

W = np.linspace(0.5, 1.5, F, dtype=np.float32)
B = np.linspace(-1.0, 1.0, F, dtype=np.float32)
RM, RV = np.linspace(-0.2, 0.2, F, dtype=np.float32), np.linspace(0.5, 2.0, F, dtype=np.float32)

FUNCTIONS = [
    ("layer_norm", lambda x: simdnorm.layer_norm(x, W, B), lambda x: reference.layer_norm(x, W, B, eps=1e-5)),
    ("rms_norm", lambda x: simdnorm.rms_norm(x, W), lambda x: reference.rms_norm(x, W, eps=1e-6)),
    (
        "batch_norm eval",
        lambda x: simdnorm.batch_norm(x, RM, RV, W, B, axis=-1),
        lambda x: reference.batch_norm(x, RM, RV, W, B, axis=-1)[0],
    ),
    (
        "scale_shift",
        lambda x: simdnorm.scale_shift(x, W, B, axis=-1),
        lambda x: np.asarray(x, np.float64) * W + B,
    ),
]


@pytest.mark.parametrize("call,expected", [f[1:] for f in FUNCTIONS], ids=[f[0] for f in FUNCTIONS])
def test_functions_reuse_a_dropped_result_and_leave_a_held_one(rng, call, expected):
    x1, x2, x3 = _inputs(rng)
    first_id = id(call(x1))
    y2 = call(x2)
    assert id(y2) == first_id  # the slot's array, written again
    _check(y2, x2, expected)
    before = y2.copy()
    view = y2[1]
    y3 = call(x3)  # y2 is held
    assert y3 is not y2
    np.testing.assert_array_equal(y2, before)
    np.testing.assert_array_equal(view, before[1])
    _check(y3, x3, expected)


def test_functions_share_one_slot_across_functions_and_strided_inputs(rng):
    x1, x2, _ = _inputs(rng, rows=4)
    first_id = id(simdnorm.layer_norm(x1, W, B))
    y = simdnorm.rms_norm(x2, W)  # another function, same shape: the same slot
    assert id(y) == first_id
    _check(y, x2, lambda x: reference.rms_norm(x, W, eps=1e-6))
    del y
    # A transposed input takes the general layout path (a temporary, then a copy into the result).
    xt = rng.standard_normal((F, 4)).astype(np.float32).T
    for _ in range(3):
        np.testing.assert_allclose(simdnorm.layer_norm(xt, W, B), reference.layer_norm(xt, W, B, eps=1e-5),
                                   rtol=0, atol=2e-5)


def test_functions_results_inside_a_returned_tuple_are_held(rng):
    x1, x2, _ = _inputs(rng)
    y1, mean1, rstd1 = simdnorm.layer_norm(x1, W, B, return_stats=True)
    before = y1.copy()
    result = simdnorm.layer_norm(x2, W, B, return_stats=True)
    assert result[0] is not y1
    np.testing.assert_array_equal(y1, before)
    np.testing.assert_allclose(result[0], reference.layer_norm(x2, W, B, eps=1e-5), rtol=0, atol=2e-5)


def test_functions_nested_calls(rng):
    x1, _, _ = _inputs(rng)
    twice = simdnorm.layer_norm(simdnorm.layer_norm(x1))
    np.testing.assert_allclose(twice, reference.layer_norm(reference.layer_norm(x1)), rtol=0, atol=5e-5)


def test_functions_from_many_threads(rng):
    inputs = [rng.standard_normal((64, F)).astype(np.float32) for _ in range(8)]
    expected = [reference.layer_norm(x, W, B, eps=1e-5) for x in inputs]
    failures = []

    def worker(k):
        for _ in range(200):
            if not np.allclose(simdnorm.layer_norm(inputs[k], W, B), expected[k], rtol=0, atol=2e-5):
                failures.append(k)
                return

    _run_threads(worker, len(inputs))
    assert failures == []
