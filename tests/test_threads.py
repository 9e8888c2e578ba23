"""Thread count never changes results: bit-identical for 1 and 2 threads on large inputs."""

import numpy as np
import pytest

import reference
import simdnorm

DTYPES = [np.float32, np.float64]


@pytest.fixture
def restore_threads():
    before = simdnorm.get_num_threads()
    yield
    simdnorm.set_num_threads(before)
    assert simdnorm.get_num_threads() == before


def _run_with_threads(n, fn):
    simdnorm.set_num_threads(n)
    assert simdnorm.get_num_threads() == n
    return fn()


def _bn_params(rng, c, dtype):
    return (rng.standard_normal(c).astype(dtype), rng.uniform(0.5, 2, c).astype(dtype),
            rng.uniform(0.5, 2, c).astype(dtype), rng.uniform(-1, 1, c).astype(dtype))


def _cases(rng, dtype):
    """name -> callable returning a tuple of arrays; every input is large (>= 2**16 elements)."""
    rows = (rng.standard_normal((512, 768)) + 3).astype(dtype)
    wide = rng.standard_normal((3, 40000)).astype(dtype)
    long_rows = (rng.standard_normal((2, 200003)) + 1e3).astype(dtype)  # each row split across threads
    w_long, b_long = rng.uniform(0.5, 2, 200003).astype(dtype), rng.uniform(-1, 1, 200003).astype(dtype)
    nchw = (rng.standard_normal((64, 8, 32, 32)) * 2 - 1).astype(dtype)
    single = rng.standard_normal((1, 64, 4096)).astype(dtype)
    nhwc = rng.standard_normal((32, 16, 16, 24)).astype(dtype)
    nf = rng.standard_normal((20000, 7)).astype(dtype)
    # Channels-last statistics split by columns: 128 channels (two one-strip tasks), 768 within L2
    # (two-strip tasks), 1000 (a short last task), 768 past 1 MiB (one-strip tasks).
    nf128 = rng.standard_normal((600, 128)).astype(dtype)
    nf768 = rng.standard_normal((96, 768)).astype(dtype)
    nf1000 = rng.standard_normal((70, 1000)).astype(dtype)
    nf768_large = rng.standard_normal((400, 768)).astype(dtype)
    # Narrow rows: 32K elements, split by their rows' fixed cost (operations.cpp, run_norm).
    narrow = (rng.standard_normal((1024, 32)) + 5).astype(dtype)
    w768, b768 = rng.uniform(0.5, 2, 768).astype(dtype), rng.uniform(-1, 1, 768).astype(dtype)
    rm8, rv8, w8, b8 = _bn_params(rng, 8, dtype)
    rm24, rv24, w24, b24 = _bn_params(rng, 24, dtype)
    rm64, rv64, w64, b64 = _bn_params(rng, 64, dtype)

    def bn_train(x, rm, rv, w, b, axis):
        rm, rv = rm.copy(), rv.copy()
        y = simdnorm.batch_norm(x, rm, rv, w, b, training=True, axis=axis)
        return y, rm, rv

    def in_place(fn, x):
        x = x.copy()
        fn(x)
        return (x,)

    return {
        "layer_norm_rows": lambda: simdnorm.layer_norm(rows, w768, b768, return_stats=True),
        "layer_norm_wide_rows": lambda: (simdnorm.layer_norm(wide),),
        "layer_norm_long_rows": lambda: simdnorm.layer_norm(long_rows, w_long, b_long, return_stats=True),
        "rms_norm_long_rows": lambda: (simdnorm.rms_norm(long_rows, w_long),),
        "layer_norm_channels_first": lambda: simdnorm.layer_norm(nchw, w8, b8, axis=(1,), return_stats=True),
        "layer_norm_single_sample_columns": lambda: simdnorm.layer_norm(single, w64, b64, axis=(1,),
                                                                         return_stats=True),
        "layer_norm_int_axis": lambda: (simdnorm.layer_norm(nchw, axis=2),),
        "layer_norm_in_place": lambda: in_place(lambda x: simdnorm.layer_norm(x, out=x), rows),
        "rms_norm_rows": lambda: (simdnorm.rms_norm(rows, w768),),
        "layer_norm_narrow_rows": lambda: simdnorm.layer_norm(narrow, return_stats=True),
        "rms_norm_narrow_rows": lambda: (simdnorm.rms_norm(narrow),),
        "rms_norm_channels_first": lambda: (simdnorm.rms_norm(nchw, w8, axis=(1,)),),
        "rms_norm_single_sample_columns": lambda: (simdnorm.rms_norm(single, axis=(1,)),),
        "batch_norm_train_nchw": lambda: bn_train(nchw, rm8, rv8, w8, b8, 1),
        "batch_norm_train_nhwc": lambda: bn_train(nhwc, rm24, rv24, w24, b24, -1),
        "batch_norm_train_nf": lambda: bn_train(nf, rm8[:7], rv8[:7], w8[:7], b8[:7], 1),
        "batch_norm_train_single_sample": lambda: bn_train(single, rm64, rv64, w64, b64, 1),
        "batch_norm_eval_nchw": lambda: (simdnorm.batch_norm(nchw, rm8, rv8, w8, b8),),
        "batch_norm_eval_nhwc": lambda: (simdnorm.batch_norm(nhwc, rm24, rv24, w24, b24, axis=-1),),
        "batch_stats_nchw": lambda: simdnorm.batch_stats(nchw, axis=1)[:2],
        "batch_stats_nhwc": lambda: simdnorm.batch_stats(nhwc, axis=-1)[:2],
        "batch_stats_nf": lambda: simdnorm.batch_stats(nf, axis=1)[:2],
        "batch_stats_nf_column_tasks": lambda: tuple(
            a for x in (nf128, nf768, nf1000, nf768_large) for a in simdnorm.batch_stats(x, axis=-1)[:2]),
        "batch_stats_single_sample": lambda: simdnorm.batch_stats(single, axis=1)[:2],
        "scale_shift_nchw": lambda: (simdnorm.scale_shift(nchw, w8, b8),),
        "scale_shift_single_sample": lambda: (simdnorm.scale_shift(single, w64, b64),),
        "scale_shift_nhwc": lambda: (simdnorm.scale_shift(nhwc, w24, b24, axis=-1),),
    }


CASE_NAMES = sorted(_cases(np.random.default_rng(0), np.float32))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CASE_NAMES)
def test_bit_identical_for_1_and_2_threads(isa, restore_threads, dtype, case):
    fn = _cases(np.random.default_rng(42), dtype)[case]
    one = _run_with_threads(1, fn)
    two = _run_with_threads(2, fn)
    again = _run_with_threads(2, fn)
    assert len(one) == len(two)
    for a, b, c in zip(one, two, again):
        assert a.dtype == b.dtype and a.shape == b.shape
        assert a.tobytes() == b.tobytes(), f"{case}: 1 vs 2 threads differ"
        assert b.tobytes() == c.tobytes(), f"{case}: 2-thread runs differ"


@pytest.mark.parametrize("dtype", DTYPES)
def test_multithreaded_results_are_correct(restore_threads, dtype):
    rng = np.random.default_rng(3)
    simdnorm.set_num_threads(2)
    x = rng.standard_normal((64, 8, 32, 32)).astype(dtype)
    t = reference.tol(dtype)
    np.testing.assert_allclose(simdnorm.layer_norm(x, axis=(1,)), reference.layer_norm(x, axis=(1,)), **t)
    np.testing.assert_allclose(simdnorm.batch_norm(x, training=True), reference.batch_norm(x, training=True)[0], **t)
    mean, var, count = simdnorm.batch_stats(x)
    emean, evar, ecount = reference.batch_stats(x)
    assert count == ecount
    np.testing.assert_allclose(mean, emean, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(var, evar, rtol=1e-6)


@pytest.mark.parametrize("n", [1, 2, 3, 7])
def test_set_get_num_threads(restore_threads, n):
    simdnorm.set_num_threads(n)
    assert simdnorm.get_num_threads() == n
    x = np.random.default_rng(n).standard_normal((300, 400))
    np.testing.assert_allclose(simdnorm.layer_norm(x), reference.layer_norm(x), **reference.tol(np.float64))


def test_default_num_threads_is_positive():
    assert simdnorm.get_num_threads() >= 1


@pytest.mark.parametrize("n", [0, -1, 2**31, 2**70, -(2**70)])
def test_set_num_threads_invalid_keeps_value(restore_threads, n):
    simdnorm.set_num_threads(2)
    with pytest.raises(ValueError, match="set_num_threads: n must be between 1 and 2147483647"):
        simdnorm.set_num_threads(n)
    assert simdnorm.get_num_threads() == 2


@pytest.mark.parametrize("n", [2.0, "2", None, True])
def test_set_num_threads_non_int_keeps_value(restore_threads, n):
    simdnorm.set_num_threads(2)
    with pytest.raises(TypeError, match="set_num_threads: n must be an int"):
        simdnorm.set_num_threads(n)
    assert simdnorm.get_num_threads() == 2


def test_set_num_threads_accepts_integer_likes(restore_threads):
    simdnorm.set_num_threads(np.int64(3))
    assert simdnorm.get_num_threads() == 3


def test_thread_count_past_the_pool_limit(restore_threads):
    """More threads than one operation uses (64): the result is still right and bit-identical."""
    x = np.random.default_rng(5).standard_normal((512, 1024)).astype(np.float32)
    simdnorm.set_num_threads(1)
    one = simdnorm.layer_norm(x)
    simdnorm.set_num_threads(1000)
    assert simdnorm.get_num_threads() == 1000
    many = simdnorm.layer_norm(x)
    assert many.tobytes() == one.tobytes()


def _concurrent_cases(rng):
    """name -> (call(out_or_None) -> tuple of arrays, output shape and dtype or None if no out=)."""
    rows = rng.standard_normal((512, 768)).astype(np.float32)  # GIL released
    big = rng.standard_normal((1024, 1024)).astype(np.float32)  # 4 MiB outputs: the output cache
    one = rng.standard_normal((1, 768)).astype(np.float32)  # GIL kept
    w = rng.uniform(0.5, 2, 768).astype(np.float32)
    nchw = rng.standard_normal((8, 64, 14, 14)).astype(np.float32)
    nhwc = np.ascontiguousarray(nchw.transpose(0, 2, 3, 1))
    rm, rv = rng.standard_normal(64).astype(np.float32), rng.uniform(0.5, 2, 64).astype(np.float32)

    def train(x, axis):  # fresh running statistics per call: each thread updates its own
        def run(out):
            m, v = rm.copy(), rv.copy()
            return simdnorm.batch_norm(x, m, v, training=True, axis=axis, out=out), m, v
        return run

    return {
        "layer_norm 512x768": (lambda out: (simdnorm.layer_norm(rows, w, w, out=out),), rows),
        "layer_norm 1024x1024": (lambda out: (simdnorm.layer_norm(big, out=out),), big),
        "rms_norm 1x768": (lambda out: (simdnorm.rms_norm(one, w, out=out),), one),
        "batch_norm train NCHW": (train(nchw, 1), nchw),
        "batch_norm train NHWC": (train(nhwc, -1), nhwc),
        "batch_norm eval NCHW": (lambda out: (simdnorm.batch_norm(nchw, rm, rv, out=out),), nchw),
        "batch_stats NHWC": (lambda out: simdnorm.batch_stats(nhwc, axis=-1)[:2], None),
    }


def test_concurrent_python_threads_give_the_sequential_bits(restore_threads):
    """An inference service calls from many Python threads while the GIL is released: every result,
    kept alive while other threads allocate, equals the one-thread result bit for bit, also while
    another thread changes the thread count and the output cache limit."""
    import threading

    cases = _concurrent_cases(np.random.default_rng(12))
    simdnorm.set_num_threads(1)
    expected = {name: tuple(a.copy() for a in call(None)) for name, (call, _) in cases.items()}
    simdnorm.set_num_threads(2)
    names = sorted(cases)
    mismatches, stop = [], threading.Event()
    cache_limit = simdnorm.get_output_cache_limit()

    def worker(seed):
        pick = np.random.default_rng(seed)
        kept = []
        for _ in range(30):
            name = names[pick.integers(len(names))]
            call, like = cases[name]
            out = np.empty_like(like) if like is not None and pick.random() < 0.3 else None
            result = call(out)
            kept.append((name, result))
            for kept_name, kept_result in kept[-4:]:  # results stay intact while others are made
                if any(not np.array_equal(a, b) for a, b in zip(kept_result, expected[kept_name])):
                    mismatches.append(kept_name)

    def disturb():
        pick = np.random.default_rng(99)
        while not stop.is_set():
            simdnorm.set_num_threads(int(pick.integers(1, 4)))
            simdnorm.set_output_cache_limit(int(pick.choice([0, 1 << 20, 64 << 20])))
            stop.wait(0.001)

    threads = [threading.Thread(target=worker, args=(seed,)) for seed in range(6)]
    disturber = threading.Thread(target=disturb)
    try:
        disturber.start()
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
    finally:
        stop.set()
        disturber.join(10)
        simdnorm.set_output_cache_limit(cache_limit)
    assert not any(t.is_alive() for t in threads)
    assert mismatches == []
