"""simdnorm.RunningStats: exact and momentum statistics, persistence, threads and the error contract."""

import copy
import pickle
import threading

import numpy as np
import pytest

import simdnorm
from simdnorm import RunningStats

DTYPES = [np.float32, np.float64]
TOL = {np.float32: dict(rtol=2e-5, atol=2e-5), np.float64: dict(rtol=1e-10, atol=1e-10)}


def stream(n, features, offset=0.0, dtype=np.float64, seed=0):
    rng = np.random.default_rng(seed)
    scales = np.logspace(-2, 2, features)
    return (offset + rng.standard_normal((n, features)) * scales).astype(dtype)


def two_pass(x):
    x = np.asarray(x, np.float64)
    mean = x.mean(axis=0)
    var = ((x - mean) ** 2).mean(axis=0)
    return mean, var


def state(rs):
    """Everything observable, for 'unchanged' assertions (bit-exact)."""
    d = rs.state_dict()
    return {k: (v.tobytes() if isinstance(v, np.ndarray) else v) for k, v in d.items()}


def exact_momentum(x, a):
    mean = x[0].astype(np.float64)
    var = np.zeros_like(mean)
    for row in x[1:].astype(np.float64):
        d = row - mean
        mean = mean + a * d
        var = (1 - a) * (var + a * d * d)
    return mean, var


# ---- exact mode ---------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("features", [1, 3, 7, 16, 33, 256])
@pytest.mark.parametrize("offset", [0.0, 1e3, 1e6])
def test_exact_matches_two_pass(dtype, features, offset):
    x = stream(300, features, offset, dtype, seed=features)
    mean, var = two_pass(x)
    one = RunningStats(features)
    for row in x:
        one.update(row)
    batch = RunningStats(features)
    batch.update(x)
    halves_a, halves_b = RunningStats(features), RunningStats(features)
    halves_a.update(x[:117])
    halves_b.update(x[117:])
    halves_a.merge(halves_b)
    chunks = RunningStats(features)
    for chunk in np.array_split(x, 7):
        chunks.update(chunk)
    for rs in (one, batch, halves_a, chunks):
        assert rs.count == 300
        np.testing.assert_allclose(rs.mean, mean, rtol=1e-12, atol=1e-12 * max(offset, 1))
        # streaming in double: absolute variance error ~ eps64 * offset * std
        rtol = 1e-9 if offset <= 1e3 else 1e-7
        np.testing.assert_allclose(rs.var, var, rtol=rtol, atol=1e-12)
        np.testing.assert_allclose(rs.std, np.sqrt(var), rtol=rtol, atol=1e-12)
        np.testing.assert_allclose(rs.var_unbiased, var * 300 / 299, rtol=rtol, atol=1e-12)
        assert rs.mean.dtype == np.float64 and rs.var.dtype == np.float64


@pytest.mark.parametrize("dtype", DTYPES)
def test_normalize_and_update_normalize(dtype):
    features = 24
    x = stream(50, features, 1e6 if dtype == np.float64 else 1e4, dtype, seed=3)
    rs = RunningStats(features, eps=1e-3)
    ref = RunningStats(features, eps=1e-3)
    tol = TOL[dtype] if dtype == np.float32 else dict(rtol=1e-7, atol=1e-7)
    out = np.empty(features, dtype)
    for i, row in enumerate(x):
        got = rs.update_normalize(row, out=out)
        assert got is out
        mean, var = two_pass(x[: i + 1])
        expected = (row.astype(np.float64) - mean) / np.sqrt(var + 1e-3)
        # offset 1e6 over scales down to 0.01: double streaming keeps ~1e-16 * 1e6 / 0.01 absolute
        np.testing.assert_allclose(out, expected, **tol)
        ref.update(row)
        np.testing.assert_array_equal(ref.normalize(row), ref.normalize(row.copy()))
    assert rs.count == 50
    y = rs.normalize(x)
    assert y.dtype == dtype and y.shape == x.shape
    mean, var = two_pass(x)
    np.testing.assert_allclose(y, (x - mean) / np.sqrt(var + 1e-3), **tol)
    y2 = rs.normalize(x, eps=0.5)
    np.testing.assert_allclose(y2, (x - mean) / np.sqrt(var + 0.5), **tol)
    # batch update_normalize: update with the whole batch, then normalize it
    b = RunningStats(features)
    yb = b.update_normalize(x)
    mean, var = two_pass(x)
    np.testing.assert_allclose(yb, (x - mean) / np.sqrt(var + 1e-5), **tol)


def test_first_sample_normalizes_to_zero_and_count_zero_raises():
    rs = RunningStats(4)
    with pytest.raises(ValueError, match="count == 0"):
        rs.normalize(np.ones(4))
    assert rs.count == 0
    y = rs.update_normalize(np.array([1.0, 2.0, 3.0, 4.0]))
    np.testing.assert_array_equal(y, 0.0)
    assert rs.count == 1
    np.testing.assert_array_equal(rs.var, 0.0)
    assert np.isnan(rs.var_unbiased).all()


def test_empty_state_properties_are_nan():
    rs = RunningStats(3)
    assert rs.count == 0
    for arr in (rs.mean, rs.var, rs.std, rs.var_unbiased):
        assert arr.shape == (3,) and np.isnan(arr).all()


def test_in_place_and_strided():
    x = stream(20, 8, 5.0, np.float32)
    rs, ref = RunningStats(8), RunningStats(8)
    for row in x:
        expected = ref.update_normalize(row.copy())
        buf = row.copy()
        got = rs.update_normalize(buf, out=buf)
        assert got is buf
        np.testing.assert_array_equal(buf, expected)
    # strided (every other column of a wider array) is copied once, results identical
    wide = np.zeros((5, 16), np.float64)
    wide[:, ::2] = stream(5, 8, 1.0)
    a, b = RunningStats(8), RunningStats(8)
    a.update(wide[:, ::2])
    b.update(np.ascontiguousarray(wide[:, ::2]))
    assert state(a) == state(b)
    out = np.zeros((5, 16))
    a.normalize(wide[:, ::2], out=out[:, ::2])
    np.testing.assert_array_equal(out[:, ::2], b.normalize(wide[:, ::2]))
    np.testing.assert_array_equal(out[:, 1::2], 0.0)
    # reversed rows, list input
    c = RunningStats(8)
    c.update(np.ascontiguousarray(wide[:, ::2])[::-1])
    np.testing.assert_allclose(c.mean, b.mean, rtol=1e-14)
    d = RunningStats(2)
    d.update([[1.0, 2.0], [3.0, 4.0]])
    np.testing.assert_array_equal(d.mean, [2.0, 3.0])


def test_partially_overlapping_out():
    base = np.arange(12, dtype=np.float64).reshape(4, 3) * 1.5
    rs = RunningStats(3)
    rs.update(base)
    expected = rs.normalize(base[:3].copy())
    buf = np.concatenate([base.ravel(), np.zeros(3)])
    x = buf[:9].reshape(3, 3)
    out = buf[3:12].reshape(3, 3)
    rs.normalize(x, out=out)
    np.testing.assert_array_equal(out, expected)


# ---- momentum mode ------------------------------------------------------------------------------


@pytest.mark.parametrize("a", [0.01, 0.1, 0.5, 1.0])
@pytest.mark.parametrize("dtype", DTYPES)
def test_momentum_formula(a, dtype):
    x = stream(200, 6, 100.0, dtype, seed=1)
    mean, var = exact_momentum(x, a)
    one, batch = RunningStats(6, momentum=a), RunningStats(6, momentum=a)
    for row in x:
        one.update(row)
    batch.update(x)
    for rs in (one, batch):
        assert rs.count == 200
        np.testing.assert_allclose(rs.mean, mean, rtol=1e-13)
        np.testing.assert_allclose(rs.var, var, rtol=1e-10, atol=1e-300)
        assert (rs.var >= 0).all()
    assert state(one) == state(batch)
    out = np.empty(6, dtype)
    row = x[0] + 1
    one.update_normalize(row, out=out)
    d = row.astype(np.float64) - mean
    m = mean + a * d
    v = (1 - a) * (var + a * d * d)
    np.testing.assert_allclose(out, (row - m) / np.sqrt(v + 1e-5), **TOL[dtype])


def test_momentum_restrictions():
    rs = RunningStats(3, momentum=0.1)
    rs.update(np.ones((4, 3)))
    assert rs.momentum == 0.1
    with pytest.raises(ValueError, match="exact mode"):
        rs.var_unbiased
    before = state(rs)
    with pytest.raises(ValueError, match="momentum"):
        rs.merge(RunningStats(3, momentum=0.1))
    exact = RunningStats(3)
    exact.update(np.ones(3))
    with pytest.raises(ValueError, match="momentum"):
        rs.merge(exact)
    with pytest.raises(ValueError, match="momentum"):
        exact.merge(rs)
    assert state(rs) == before


# ---- merge / freeze / reset ---------------------------------------------------------------------


def test_merge_across_workers_and_self():
    x = stream(1000, 5, 1e6, seed=4)
    workers = [RunningStats(5) for _ in range(4)]
    for i, chunk in enumerate(np.array_split(x, 4)):
        for row in chunk:
            workers[i].update(row)
    total = RunningStats(5)
    for w in workers:
        total.merge(w)
    mean, var = two_pass(x)
    np.testing.assert_allclose(total.mean, mean, rtol=1e-14)
    np.testing.assert_allclose(total.var, var, rtol=1e-7)  # offset 1e6 over scales down to 0.01
    twice = RunningStats(5)
    twice.update(x)
    twice.merge(twice)
    assert twice.count == 2000
    np.testing.assert_allclose(twice.var, var, rtol=1e-7)
    empty = RunningStats(5)
    before = state(total)
    total.merge(empty)
    assert state(total) == before
    with pytest.raises(ValueError, match="features"):
        total.merge(RunningStats(4))
    with pytest.raises(TypeError):
        total.merge(object())
    assert state(total) == before


def test_merge_refuses_a_count_beyond_int64_and_changes_nothing():
    big = RunningStats(2)
    big.update(np.ones((3, 2)))
    sd = big.state_dict()
    sd["count"] = 2**62
    big.load_state_dict(sd)
    before = state(big)
    with pytest.raises(ValueError, match=r"combined count would exceed 2\*\*63 - 1"):
        big.merge(big)
    assert state(big) == before
    big.load_state_dict(big.state_dict())  # still a valid state


def test_freeze_respected_by_every_update_path():
    rs = RunningStats(4)
    rs.update(stream(10, 4))
    rs.freeze()
    assert rs.frozen
    before = state(rs)
    rs.update(np.ones(4))
    rs.update(np.ones((3, 4)))
    y = rs.update_normalize(np.full(4, 2.0))
    assert state(rs) == before
    np.testing.assert_array_equal(y, rs.normalize(np.full(4, 2.0)))
    with pytest.raises(ValueError, match="frozen"):
        rs.merge(rs)
    assert state(rs) == before
    rs.unfreeze()
    rs.update(np.ones(4))
    assert rs.count == 11


def test_reset():
    rs = RunningStats(3, eps=1e-2, nonfinite="ignore")
    rs.update(stream(5, 3))
    rs.freeze()
    rs.reset()
    assert rs.count == 0 and rs.frozen and rs.eps == 1e-2 and rs.nonfinite == "ignore"
    assert np.isnan(rs.mean).all()
    rs.unfreeze()
    rs.update(np.ones(3))
    np.testing.assert_array_equal(rs.mean, 1.0)


# ---- persistence --------------------------------------------------------------------------------


@pytest.mark.parametrize("momentum", [None, 0.05])
def test_pickle_and_state_round_trips_bit_exact(momentum):
    rs = RunningStats(7, momentum=momentum, eps=3e-4, nonfinite="ignore")
    rs.update(stream(33, 7, 1e6, seed=9))
    rs.freeze()
    for clone in (pickle.loads(pickle.dumps(rs)), copy.deepcopy(rs), copy.copy(rs)):
        assert type(clone) is RunningStats
        assert state(clone) == state(rs)
        assert clone.frozen and clone.momentum == momentum and clone.eps == 3e-4 and clone.nonfinite == "ignore"
    fresh = RunningStats(7)
    fresh.load_state_dict(rs.state_dict())
    assert state(fresh) == state(rs)
    rs.unfreeze()
    fresh.unfreeze()
    row = stream(1, 7, 1e6, seed=10)[0]
    np.testing.assert_array_equal(rs.update_normalize(row), fresh.update_normalize(row))
    assert state(fresh) == state(rs)
    keys = set(rs.state_dict())
    assert keys == {"num_features", "momentum", "eps", "nonfinite", "frozen", "count", "mean",
                    "m2" if momentum is None else "var"}


BAD_STATES = [
    ({"count": -1}, ValueError),
    ({"count": 1.5}, TypeError),
    ({"count": True}, TypeError),
    ({"mean": np.zeros(4)}, ValueError),
    ({"mean": np.zeros((1, 5))}, ValueError),
    ({"mean": "abc"}, TypeError),
    ({"m2": -np.ones(5)}, ValueError),
    ({"m2": np.full(5, np.nan)}, ValueError),
    ({"mean": np.full(5, np.inf)}, ValueError),
    ({"num_features": 6}, ValueError),
    ({"momentum": 1.5}, ValueError),
    ({"momentum": 0.1}, ValueError),  # momentum mode expects 'var', state has 'm2'
    ({"eps": 0.0}, ValueError),
    ({"nonfinite": "skip"}, ValueError),
    ({"frozen": 1}, TypeError),
    ({"extra": 1}, ValueError),
    ({"count": 0}, ValueError),  # count 0 with non-zero mean
]


@pytest.mark.parametrize("change,error", BAD_STATES)
def test_malformed_state_raises_and_changes_nothing(change, error):
    src = RunningStats(5)
    src.update(stream(10, 5))
    good = src.state_dict()
    target = RunningStats(5, eps=1e-3)
    target.update(stream(4, 5, seed=2))
    before = state(target)
    bad = dict(good, **change)
    with pytest.raises(error):
        target.load_state_dict(bad)
    assert state(target) == before
    for key in ("count", "mean", "m2"):
        missing = {k: v for k, v in good.items() if k != key}
        with pytest.raises(ValueError, match="missing"):
            target.load_state_dict(missing)
        assert state(target) == before
    with pytest.raises(TypeError):
        target.load_state_dict([("count", 1)])
    assert state(target) == before


def test_state_dict_arrays_are_copies():
    rs = RunningStats(3)
    rs.update(np.ones((2, 3)))
    d = rs.state_dict()
    d["mean"][:] = 99
    rs.mean[:] = 99
    np.testing.assert_array_equal(rs.mean, 1.0)


# ---- bad input ----------------------------------------------------------------------------------


def bad_inputs(features):
    good_row = np.ones(features)
    nan_batch = np.ones((4, features))
    nan_batch[3, features - 1] = np.nan
    inf_row = good_row.copy()
    inf_row[0] = np.inf
    return [
        (np.ones(features + 1), ValueError, "features"),
        (np.ones((2, features - 1)), ValueError, "features"),
        (np.ones((2, 2, features)), ValueError, "shape"),
        (np.float64(1.0), ValueError, "shape"),
        (np.ones(features, np.int64), TypeError, "float32 or float64"),
        (np.ones(features, np.float16), TypeError, "float32 or float64"),
        (np.ones(features, ">f8"), TypeError, "byte order"),
        ("abc", TypeError, None),
        (nan_batch, ValueError, r"x\[3, 4\] is nan"),
        (inf_row, ValueError, r"x\[0\] is inf"),
    ]


@pytest.mark.parametrize("momentum", [None, 0.2])
@pytest.mark.parametrize("case", range(10))
def test_bad_input_leaves_state_untouched(momentum, case):
    features = 5
    x, error, match = bad_inputs(features)[case]
    rs = RunningStats(features, momentum=momentum)
    rs.update(stream(8, features))
    before = state(rs)
    with pytest.raises(error, match=match):
        rs.update(x)
    assert state(rs) == before
    out = np.full(np.shape(x) if np.ndim(x) in (1, 2) else features, 7.0)
    with pytest.raises(error, match=match):
        rs.update_normalize(x, out=out)
    assert state(rs) == before
    np.testing.assert_array_equal(out, 7.0)  # out untouched too
    if match is None or ("nan" not in match and "inf" not in match):
        with pytest.raises(error, match=match):
            rs.normalize(x)
    assert state(rs) == before


def test_bad_out_leaves_state_untouched():
    rs = RunningStats(4)
    rs.update(stream(3, 4))
    before = state(rs)
    x = np.ones(4)
    for out, error in [
        (np.empty(4, np.float32), TypeError),
        (np.empty(5), ValueError),
        (np.empty((1, 4)), ValueError),
        ([0.0] * 4, TypeError),
    ]:
        with pytest.raises(error):
            rs.update_normalize(x, out=out)
        assert state(rs) == before
    ro = np.empty(4)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        rs.update_normalize(x, out=ro)
    with pytest.raises(ValueError, match="eps"):
        rs.normalize(x, eps=-1.0)
    assert state(rs) == before


def test_constructor_validation():
    with pytest.raises(ValueError):
        RunningStats(0)
    with pytest.raises(TypeError):
        RunningStats(2.0)
    for m in (0.0, -0.1, 1.1, float("nan")):
        with pytest.raises(ValueError):
            RunningStats(3, momentum=m)
    with pytest.raises(ValueError):
        RunningStats(3, eps=0.0)
    with pytest.raises(ValueError):
        RunningStats(3, nonfinite="skip")
    with pytest.raises(TypeError):
        RunningStats(3, 0.1)  # momentum is keyword-only


def test_nonfinite_ignore_and_propagate():
    x = stream(40, 3, seed=5)
    bad = x.copy()
    bad[[3, 17], [0, 2]] = [np.nan, -np.inf]
    clean = np.delete(x, [3, 17], axis=0)
    for momentum in (None, 0.1):
        ign_batch = RunningStats(3, momentum=momentum, nonfinite="ignore")
        ign_batch.update(bad)
        ign_rows = RunningStats(3, momentum=momentum, nonfinite="ignore")
        for row in bad:
            ign_rows.update_normalize(row)
        ref = RunningStats(3, momentum=momentum)
        ref.update(clean)
        for rs in (ign_batch, ign_rows):
            assert rs.count == 38
            np.testing.assert_allclose(rs.mean, ref.mean, rtol=1e-12)
            np.testing.assert_allclose(rs.var, ref.var, rtol=1e-10)
    prop = RunningStats(3, nonfinite="propagate")
    prop.update(bad)
    assert prop.count == 40 and np.isnan(prop.mean[0]) and not np.isfinite(prop.mean[2])
    assert np.isfinite(prop.mean[1])
    clone = pickle.loads(pickle.dumps(prop))  # non-finite state is valid under 'propagate'
    assert state(clone) == state(prop)
    with pytest.raises(ValueError, match="non-finite"):
        RunningStats(3).load_state_dict(dict(prop.state_dict(), nonfinite="raise"))
    # normalize never checks: NaN in x propagates to its own output only
    y = ref.normalize(np.array([np.nan, 1.0, 2.0]))
    assert np.isnan(y[0]) and np.isfinite(y[1:]).all()


# ---- threads ------------------------------------------------------------------------------------


@pytest.mark.parametrize("batch_rows", [1, 2000])
def test_concurrent_updates_lose_nothing(batch_rows):
    threads, per_thread, features = 4, 40, 8
    data = [stream(per_thread * batch_rows, features, 1e3, seed=100 + t) for t in range(threads)]
    rs = RunningStats(features)
    reads = []
    barrier = threading.Barrier(threads + 1)

    def work(x):
        barrier.wait()
        for chunk in np.split(x, per_thread):
            rs.update(chunk if batch_rows > 1 else chunk[0])

    def reader():
        barrier.wait()
        for _ in range(200):
            d = rs.state_dict()
            reads.append((d["count"], d["mean"].copy()))

    pool = [threading.Thread(target=work, args=(x,)) for x in data] + [threading.Thread(target=reader)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    everything = np.concatenate(data)
    assert rs.count == len(everything)
    mean, var = two_pass(everything)
    np.testing.assert_allclose(rs.mean, mean, rtol=1e-12)
    np.testing.assert_allclose(rs.var, var, rtol=1e-9)
    assert all(count % batch_rows == 0 for count, _ in reads)  # no torn batch was ever seen


def test_concurrent_update_normalize_and_normalize():
    rs = RunningStats(64)
    rs.update(stream(10, 64))
    errors = []

    def work(seed):
        try:
            out = np.empty(64, np.float32)
            for row in stream(300, 64, seed=seed).astype(np.float32):
                rs.update_normalize(row, out=out)
                rs.normalize(row, out=out)
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    pool = [threading.Thread(target=work, args=(s,)) for s in range(4)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    assert not errors
    assert rs.count == 10 + 4 * 300


# ---- other libraries ----------------------------------------------------------------------------


def test_matches_sklearn_standard_scaler_partial_fit():
    preprocessing = pytest.importorskip(
        "sklearn.preprocessing", reason="scikit-learn not installed (optional test extra: pip install scikit-learn)"
    )
    x = stream(500, 6, 1e4, seed=11)
    scaler = preprocessing.StandardScaler()
    rs = RunningStats(6, eps=1e-300)
    for chunk in np.array_split(x, 13):
        scaler.partial_fit(chunk)
        rs.update(chunk)
        assert rs.count == scaler.n_samples_seen_
        np.testing.assert_allclose(rs.mean, scaler.mean_, rtol=1e-12)
        np.testing.assert_allclose(rs.var, scaler.var_, rtol=1e-9)
    np.testing.assert_allclose(rs.normalize(x), scaler.transform(x), rtol=1e-8, atol=1e-8)


def test_exported_and_documented():
    assert simdnorm.RunningStats is simdnorm._core.RunningStats
    assert "RunningStats" in simdnorm.__all__
    for name in ("update", "normalize", "update_normalize", "merge", "state_dict", "load_state_dict"):
        assert getattr(RunningStats, name).__doc__
    assert "nonfinite" in RunningStats.__doc__
    assert repr(RunningStats(3)).startswith("RunningStats(num_features=3")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("momentum", [None, 0.1])
def test_every_isa_matches_reference(isa, dtype, momentum):
    """The per-sample loops have an AVX2 build chosen by the active ISA; every variant agrees."""
    features = 37
    x = stream(60, features, 1e3, dtype, seed=21)
    rs = RunningStats(features, momentum=momentum)
    out = np.empty(features, dtype)
    for i, row in enumerate(x):
        rs.update_normalize(row, out=out)
    if momentum is None:
        mean, var = two_pass(x)
    else:
        mean, var = exact_momentum(x, momentum)
    np.testing.assert_allclose(rs.mean, mean, rtol=1e-12)
    np.testing.assert_allclose(rs.var, var, rtol=1e-9)
    expected = (x[-1].astype(np.float64) - mean) / np.sqrt(var + 1e-5)
    np.testing.assert_allclose(out, expected, **TOL[dtype])
