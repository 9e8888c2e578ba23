"""The module classes LayerNorm, RMSNorm and BatchNorm.

Against float64 formulas (momentum, cumulative average, unbiased running variance,
track_running_stats=False), the read-only parameter contract (setters / load_state_dict invalidate
the eval cache), PyTorch's state_dict keys and shapes, pickling, and the error contract (a rejected
call or load changes nothing). When PyTorch is importable, step sequences are compared with
torch.nn.LayerNorm / RMSNorm / BatchNorm1d / BatchNorm2d.
"""

import copy
import pickle

import numpy as np
import pytest
import reference
import simdnorm

try:
    import torch
except ImportError:  # optional peer: pip install torch==2.13.0
    torch = None

needs_torch = pytest.mark.skipif(
    torch is None,
    reason="PyTorch not installed (optional peer check; pip install torch==2.13.0)",
)

DTYPES = [np.float32, np.float64]


def _snapshot(m):
    """Everything observable about a module's state (deep copies)."""
    state = {k: np.array(v, copy=True) for k, v in m.state_dict().items()}
    extra = {}
    if isinstance(m, simdnorm.BatchNorm):
        extra = {
            "training": m.training,
            "frozen": m.frozen,
            "eps": m.eps,
            "momentum": m.momentum,
        }
    return state, extra


def _assert_same_state(a, b):
    sa, ea = a
    sb, eb = b
    assert sa.keys() == sb.keys()
    for k in sa:
        assert sa[k].dtype == sb[k].dtype and sa[k].shape == sb[k].shape
        np.testing.assert_array_equal(sa[k], sb[k])
    assert ea == eb


def _bn_reference(x, axis):
    """Per-channel float64 (mean, biased var, unbiased var, count) of x over all axes but `axis`."""
    mean, var, count = reference.batch_stats(x, axis=axis)
    return mean, var, var * count / (count - 1), count


def _bn_apply(x, mean, var, weight, bias, eps, axis):
    x = np.asarray(x, np.float64)
    shape = [1] * x.ndim
    shape[axis % x.ndim] = -1
    y = (x - mean.reshape(shape)) / np.sqrt(var.reshape(shape) + eps)
    if weight is not None:
        y = y * np.asarray(weight, np.float64).reshape(shape)
    if bias is not None:
        y = y + np.asarray(bias, np.float64).reshape(shape)
    return y


# ---- LayerNorm / RMSNorm ------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("normalized_shape", [7, (768,), (3, 5)])
def test_layer_norm_module_matches_reference(isa, rng, dtype, normalized_shape):
    ns = (normalized_shape,) if isinstance(normalized_shape, int) else normalized_shape
    m = simdnorm.LayerNorm(normalized_shape, eps=1e-4, dtype=dtype)
    w = rng.uniform(0.5, 2, ns).astype(dtype)
    b = rng.uniform(-1, 1, ns).astype(dtype)
    m.weight, m.bias = w, b
    x = (rng.standard_normal((4, 2) + ns) * 3 + 1).astype(dtype)
    axis = x.ndim - len(ns)
    expected = reference.layer_norm(x, w, b, eps=1e-4, axis=axis)
    np.testing.assert_allclose(m(x), expected, **reference.tol(dtype))
    out = np.empty_like(x)
    assert m(x, out=out) is out
    np.testing.assert_allclose(out, expected, **reference.tol(dtype))
    # strided input and out take the general path
    xt = np.ascontiguousarray(x[::-1])[::-1]
    np.testing.assert_allclose(m(x[:, ::2]), expected[:, ::2], **reference.tol(dtype))
    np.testing.assert_allclose(m(xt), expected, **reference.tol(dtype))
    # in place
    xc = x.copy()
    assert m(xc, xc) is xc
    np.testing.assert_allclose(xc, expected, **reference.tol(dtype))


def test_layer_norm_module_without_affine_or_bias(rng):
    x = rng.standard_normal((3, 10)).astype(np.float32)
    plain = simdnorm.LayerNorm(10, elementwise_affine=False)
    assert plain.weight is None and plain.bias is None and plain.state_dict() == {}
    np.testing.assert_allclose(
        plain(x), reference.layer_norm(x), **reference.tol(np.float32)
    )
    nobias = simdnorm.LayerNorm(10, bias=False)
    assert nobias.bias is None and list(nobias.state_dict()) == ["weight"]
    nobias.weight = np.full(10, 2.0)
    np.testing.assert_allclose(
        nobias(x), 2 * reference.layer_norm(x), **reference.tol(np.float32)
    )
    with pytest.raises(ValueError, match="bias"):
        nobias.bias = np.zeros(10, np.float32)


@pytest.mark.parametrize("dtype", DTYPES)
def test_rms_norm_module_matches_reference(isa, rng, dtype):
    m = simdnorm.RMSNorm((2, 9), dtype=dtype)
    w = rng.uniform(0.5, 2, (2, 9)).astype(dtype)
    m.weight = w
    x = rng.standard_normal((5, 2, 9)).astype(dtype)
    np.testing.assert_allclose(
        m(x), reference.rms_norm(x, w, eps=1e-6, axis=1), **reference.tol(dtype)
    )
    assert simdnorm.RMSNorm(4, elementwise_affine=False).state_dict() == {}


@pytest.mark.parametrize("dtype", DTYPES)
def test_rms_norm_eps_none_is_machine_epsilon(rng, dtype):
    m = simdnorm.RMSNorm(16, eps=None, dtype=dtype)
    assert m.eps is None
    x = (rng.standard_normal((3, 16)) * 1e-4).astype(dtype)
    expected = reference.rms_norm(x, eps=float(np.finfo(dtype).eps))
    np.testing.assert_allclose(m(x), expected, **reference.tol(dtype))


def test_norm_module_input_checks_change_nothing(rng):
    m = simdnorm.LayerNorm(8)
    x = rng.standard_normal((2, 8)).astype(np.float32)
    before = _snapshot(m)
    with pytest.raises(ValueError, match="normalized_shape"):
        m(np.zeros((2, 7), np.float32))
    with pytest.raises(TypeError, match="dtype"):
        m(x.astype(np.float64))
    with pytest.raises(TypeError, match="dtype"):
        m(x.astype(np.int32))
    with pytest.raises(ValueError, match="shape"):
        m(x, out=np.empty((2, 9), np.float32))
    with pytest.raises(TypeError, match="dtype"):
        m(x, out=np.empty((2, 8), np.float64))
    with pytest.raises(TypeError):
        m(x, nope=1)
    with pytest.raises(TypeError):
        m()
    _assert_same_state(before, _snapshot(m))
    # lists take the module's dtype
    assert m([[float(i) for i in range(8)]]).dtype == np.float32


def test_norm_module_constructor_errors():
    with pytest.raises(ValueError):
        simdnorm.LayerNorm(())
    with pytest.raises(TypeError):
        simdnorm.LayerNorm(8, dtype=np.int32)
    with pytest.raises(ValueError, match="eps"):
        simdnorm.LayerNorm(8, eps=0.0)
    with pytest.raises(TypeError, match="eps"):
        simdnorm.LayerNorm(8, eps=None)
    with pytest.raises(ValueError):
        simdnorm.RMSNorm(-1)


# ---- read-only parameters, setters, state_dict ---------------------------------------------------


@pytest.mark.parametrize(
    "make, names",
    [
        (lambda: simdnorm.LayerNorm(4), ["weight", "bias"]),
        (lambda: simdnorm.RMSNorm(4), ["weight"]),
        (
            lambda: simdnorm.BatchNorm(4),
            ["weight", "bias", "running_mean", "running_var", "num_batches_tracked"],
        ),
    ],
)
def test_parameters_are_read_only_views(make, names):
    m = make()
    for name in names:
        a = getattr(m, name)
        assert not a.flags.writeable
        with pytest.raises(ValueError, match="read-only"):
            a[...] = 1
        with pytest.raises(ValueError):
            a.setflags(write=True)
        with pytest.raises(ValueError):
            np.copyto(a, 1)
        with pytest.raises(ValueError):
            a.view().setflags(write=True)
    # the view stays live: a setter is visible through an earlier reference
    w = m.weight
    m.weight = np.arange(4)
    np.testing.assert_array_equal(w, np.arange(4))
    # state_dict values are writeable copies
    sd = m.state_dict()
    sd["weight"][:] = -1
    np.testing.assert_array_equal(m.weight, np.arange(4))


def test_state_dict_keys_shapes_and_dtypes():
    ln = simdnorm.LayerNorm((3, 4), dtype=np.float64).state_dict()
    assert list(ln) == ["weight", "bias"]
    assert ln["weight"].shape == (3, 4) and ln["weight"].dtype == np.float64
    assert list(simdnorm.RMSNorm(5).state_dict()) == ["weight"]
    bn = simdnorm.BatchNorm(6).state_dict()
    assert list(bn) == [
        "weight",
        "bias",
        "running_mean",
        "running_var",
        "num_batches_tracked",
    ]
    assert all(bn[k].shape == (6,) and bn[k].dtype == np.float32 for k in list(bn)[:4])
    assert (
        bn["num_batches_tracked"].shape == ()
        and bn["num_batches_tracked"].dtype == np.int64
    )
    np.testing.assert_array_equal(bn["running_var"], np.ones(6))
    assert list(simdnorm.BatchNorm(6, affine=False).state_dict()) == [
        "running_mean",
        "running_var",
        "num_batches_tracked",
    ]
    assert list(simdnorm.BatchNorm(6, track_running_stats=False).state_dict()) == [
        "weight",
        "bias",
    ]
    assert (
        simdnorm.BatchNorm(6, affine=False, track_running_stats=False).state_dict()
        == {}
    )


def test_load_state_dict_round_trip_and_missing_num_batches_tracked(rng):
    src = simdnorm.BatchNorm(5, momentum=None)
    for _ in range(3):
        src(rng.standard_normal((8, 5)).astype(np.float32))
    dst = simdnorm.BatchNorm(5, momentum=None)
    dst.load_state_dict(src.state_dict())
    _assert_same_state(_snapshot(src), _snapshot(dst))
    # PyTorch accepts a missing num_batches_tracked and keeps the current value
    sd = src.state_dict()
    del sd["num_batches_tracked"]
    fresh = simdnorm.BatchNorm(5)
    fresh.load_state_dict(sd)
    assert int(fresh.num_batches_tracked) == 0
    np.testing.assert_array_equal(fresh.running_var, src.running_var)
    # other dtypes are converted to the module's dtype
    fresh.load_state_dict(
        {
            k: np.asarray(v, np.float64) if k != "num_batches_tracked" else 7
            for k, v in src.state_dict().items()
        }
    )
    assert (
        int(fresh.num_batches_tracked) == 7 and fresh.running_mean.dtype == np.float32
    )


@pytest.mark.parametrize(
    "bad, error, match",
    [
        (
            {"running_var": np.ones(4, np.float32)},
            ValueError,
            "size mismatch for running_var",
        ),
        (
            {"weight": np.ones((1, 5), np.float32)},
            ValueError,
            "size mismatch for weight",
        ),
        ({"unknown": np.ones(5)}, ValueError, "Unexpected key"),
        ({"num_batches_tracked": np.int64(-1)}, ValueError, "num_batches_tracked"),
        ({"num_batches_tracked": np.zeros(1, np.int64)}, ValueError, "size mismatch"),
        ({"num_batches_tracked": 1.5}, TypeError, "integer"),
        ({"running_var": -np.ones(5)}, ValueError, "running_var"),
        ({"running_mean": np.array(["a"] * 5)}, TypeError, "running_mean"),
        ({"bias": None}, TypeError, "bias"),
    ],
)
def test_load_state_dict_errors_change_nothing(rng, bad, error, match):
    m = simdnorm.BatchNorm(5)
    m(rng.standard_normal((6, 5)).astype(np.float32))
    m.eval()
    x = rng.standard_normal((3, 5)).astype(np.float32)
    y_before = m(x)
    before = _snapshot(m)
    good = {k: v + 1 for k, v in m.state_dict().items()}
    good.update(bad)  # every other key valid: the bad one must stop all of them
    with pytest.raises(error, match=match):
        m.load_state_dict(good)
    _assert_same_state(before, _snapshot(m))
    np.testing.assert_array_equal(m(x), y_before)


def test_load_state_dict_strict_missing_and_non_strict(rng):
    m = simdnorm.LayerNorm(3)
    with pytest.raises(ValueError, match="Missing key"):
        m.load_state_dict({"weight": np.ones(3)})
    assert not np.any(m.bias)
    m.load_state_dict({"weight": np.full(3, 2.0), "extra": 1}, strict=False)
    np.testing.assert_array_equal(m.weight, [2, 2, 2])
    with pytest.raises(TypeError, match="mapping"):
        m.load_state_dict([1, 2])


def test_eval_checks_running_stats_like_the_functional_api():
    m = simdnorm.BatchNorm(3).eval()
    x = np.ones((4, 3), np.float32)
    m.running_var = np.array([np.nan, 1.0, 1.0])  # settable (a NaN-poisoned state round-trips) ...
    with pytest.raises(ValueError, match="running_var must be finite and >= 0, channel 0"):
        m(x)  # ... but eval refuses it, as batch_norm(x, rm, rv) does
    m.running_var = np.ones(3)
    m.running_mean = np.array([0.0, np.inf, 0.0])
    with pytest.raises(ValueError, match="running_mean must be finite, channel 1"):
        m(x)


def test_setter_rejects_values_beyond_the_dtype():
    m = simdnorm.LayerNorm(3)  # float32
    before = m.weight.copy()
    with pytest.raises(ValueError, match="beyond the range of float32"):
        m.weight = np.array([1.0, 1e300, 1.0])
    np.testing.assert_array_equal(m.weight, before)
    m.weight = np.array([1.0, np.inf, 1.0])  # an inf given as inf is the caller's value


def test_setter_errors_change_nothing():
    m = simdnorm.BatchNorm(3, affine=False)
    before = _snapshot(m)
    with pytest.raises(ValueError, match="affine=False"):
        m.weight = np.ones(3)
    m.weight = None  # absent stays absent
    with pytest.raises(ValueError, match="size mismatch"):
        m.running_mean = np.zeros(4)
    with pytest.raises(ValueError, match="None"):
        m.running_var = None
    with pytest.raises(ValueError, match="running_var"):
        m.running_var = np.array([1.0, -1.0, 1.0])
    with pytest.raises(ValueError):
        m.eps = -1.0
    with pytest.raises(ValueError):
        m.momentum = 2.0
    _assert_same_state(before, _snapshot(m))


@pytest.mark.parametrize("dtype", DTYPES)
def test_batch_norm_training_on_a_view_of_its_own_running_mean(isa, rng, dtype):
    # x is a read-only broadcast view of the running mean: y must come from the values before this
    # batch's update (each column is constant, so y is the bias), and the update from the batch.
    c = 768
    m = simdnorm.BatchNorm(c, dtype=dtype)
    m.running_mean = rng.standard_normal(c) * 10
    m.bias = rng.uniform(-1, 1, c)
    old_mean = m.running_mean.astype(np.float64)
    x = np.broadcast_to(m.running_mean, (256, c))
    y = m(x)
    np.testing.assert_array_equal(y, np.broadcast_to(m.bias, (256, c)))
    np.testing.assert_allclose(m.running_mean, old_mean, **reference.tol(dtype))  # its own mean
    np.testing.assert_allclose(m.running_var, np.full(c, 0.9), **reference.tol(dtype))  # 0.9 * 1 + 0.1 * 0


# ---- BatchNorm: training formulas ---------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    "shape, axis", [((16, 5), 1), ((6, 5, 7), 1), ((4, 5, 3, 3), 1), ((4, 3, 5), -1)]
)
@pytest.mark.parametrize("momentum", [0.1, 0.5, None])
def test_batch_norm_training_sequence_matches_formulas(
    isa, rng, dtype, shape, axis, momentum
):
    channels = shape[axis]
    m = simdnorm.BatchNorm(
        channels, eps=1e-3, momentum=momentum, axis=axis, dtype=dtype
    )
    w = rng.uniform(0.5, 2, channels)
    b = rng.uniform(-1, 1, channels)
    m.weight, m.bias = w, b
    w, b = m.weight.astype(np.float64), m.bias.astype(np.float64)
    running_mean, running_var = np.zeros(channels), np.ones(channels)
    for step in range(1, 5):
        x = (rng.standard_normal(shape) * (step + 1) + 3 * step).astype(dtype)
        mean, var, unbiased, _ = _bn_reference(x, axis)
        y = m(x)
        np.testing.assert_allclose(
            y, _bn_apply(x, mean, var, w, b, 1e-3, axis), **reference.tol(dtype)
        )
        f = 1.0 / step if momentum is None else momentum
        running_mean = (1 - f) * running_mean + f * mean
        running_var = (1 - f) * running_var + f * unbiased
        assert int(m.num_batches_tracked) == step
        rtol = 2e-6 if dtype == np.float32 else 1e-13
        np.testing.assert_allclose(m.running_mean, running_mean, rtol=rtol, atol=rtol)
        np.testing.assert_allclose(m.running_var, running_var, rtol=rtol, atol=rtol)
    # eval uses the running statistics
    assert m.eval() is m and not m.training
    x = rng.standard_normal(shape).astype(dtype)
    expected = _bn_apply(
        x,
        m.running_mean.astype(np.float64),
        m.running_var.astype(np.float64),
        w,
        b,
        1e-3,
        axis,
    )
    np.testing.assert_allclose(m(x), expected, **reference.tol(dtype))
    assert int(m.num_batches_tracked) == 4  # eval does not count


def test_batch_norm_cumulative_average_is_the_mean_of_batch_statistics(rng):
    m = simdnorm.BatchNorm(3, momentum=None, dtype=np.float64)
    means, unbiased = [], []
    for _ in range(7):
        x = rng.standard_normal((rng.integers(2, 20), 3)) + rng.uniform(-5, 5)
        mean, _, u, _ = _bn_reference(x, 1)
        means.append(mean)
        unbiased.append(u)
        m(x)
    # running starts at (0, 1) but the first factor is 1/1: the average of the batch statistics
    np.testing.assert_allclose(
        m.running_mean, np.mean(means, axis=0), rtol=1e-12, atol=1e-12
    )
    np.testing.assert_allclose(m.running_var, np.mean(unbiased, axis=0), rtol=1e-12)


@pytest.mark.parametrize("training", [True, False])
def test_batch_norm_without_running_stats_uses_batch_statistics(rng, training):
    m = simdnorm.BatchNorm(4, track_running_stats=False, affine=False).train(training)
    assert (
        m.running_mean is None
        and m.running_var is None
        and m.num_batches_tracked is None
    )
    x = rng.standard_normal((9, 4, 2)).astype(np.float32)
    mean, var, _, _ = _bn_reference(x, 1)
    np.testing.assert_allclose(
        m(x), _bn_apply(x, mean, var, None, None, 1e-5, 1), **reference.tol(np.float32)
    )
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        m(np.ones((1, 4), np.float32))
    with pytest.raises(ValueError, match="track_running_stats=False"):
        m.running_mean = np.zeros(4)


def test_batch_norm_rejected_calls_change_nothing(rng):
    m = simdnorm.BatchNorm(3)
    m(rng.standard_normal((5, 3)).astype(np.float32))
    before = _snapshot(m)
    bad_calls = [
        (
            ValueError,
            "more than 1 value per channel",
            (np.ones((1, 3), np.float32),),
            {},
        ),
        (ValueError, "channels", (np.ones((4, 5), np.float32),), {}),
        (ValueError, "at least 2 dimensions", (np.ones(3, np.float32),), {}),
        (TypeError, "dtype", (np.ones((4, 3)),), {}),
        (
            ValueError,
            "shape",
            (np.ones((4, 3), np.float32),),
            {"out": np.empty((4, 4), np.float32)},
        ),
    ]
    for error, match, args, kwargs in bad_calls:
        with pytest.raises(error, match=match):
            m(*args, **kwargs)
        _assert_same_state(before, _snapshot(m))
    ro = np.empty((4, 3), np.float32)
    ro.setflags(write=False)
    with pytest.raises(ValueError, match="read-only"):
        m(np.ones((4, 3), np.float32), out=ro)
    _assert_same_state(before, _snapshot(m))


def test_batch_norm_empty_batch_counts_like_torch():
    m = simdnorm.BatchNorm(3)
    y = m(np.zeros((0, 3), np.float32))
    assert y.shape == (0, 3)
    assert (
        int(m.num_batches_tracked) == 1
    )  # PyTorch increments before looking at the data
    np.testing.assert_array_equal(m.running_mean, 0)
    np.testing.assert_array_equal(m.running_var, 1)


# ---- BatchNorm: eval cache ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "change",
    [
        lambda m, rng: setattr(m, "running_mean", rng.standard_normal(4)),
        lambda m, rng: setattr(m, "running_var", rng.uniform(0.1, 3, 4)),
        lambda m, rng: setattr(m, "weight", rng.uniform(0.5, 2, 4)),
        lambda m, rng: setattr(m, "bias", rng.standard_normal(4)),
        lambda m, rng: setattr(m, "eps", 0.5),
        lambda m, rng: m.load_state_dict(
            {**m.state_dict(), "running_var": rng.uniform(0.1, 3, 4)}
        ),
        lambda m, rng: (
            m.train()(rng.standard_normal((8, 4)).astype(np.float32)) is None
            or m.eval()
        ),
        lambda m, rng: m.reset_running_stats(),
        lambda m, rng: m.reset_parameters(),
    ],
)
def test_eval_cache_is_invalidated_by_every_change(rng, change):
    m = simdnorm.BatchNorm(4)
    m(rng.standard_normal((10, 4)).astype(np.float32))
    m.weight = rng.uniform(0.5, 2, 4)
    m.bias = rng.standard_normal(4)
    m.eval()
    x = rng.standard_normal((6, 4)).astype(np.float32)
    m(x)  # fills the cache
    change(m, rng)
    m.eval()
    f64 = lambda a: None if a is None else np.asarray(a, np.float64)
    expected = _bn_apply(
        x, f64(m.running_mean), f64(m.running_var), f64(m.weight), f64(m.bias), m.eps, 1
    )
    np.testing.assert_allclose(m(x), expected, **reference.tol(np.float32))


def test_eval_keeps_precision_with_a_large_running_mean(rng):
    m = simdnorm.BatchNorm(2).eval()
    m.running_mean = np.array([1e6, -3e5])
    m.running_var = np.array([4.0, 0.25])
    x = (np.array([1e6, -3e5]) + rng.standard_normal((50, 2))).astype(np.float32)
    expected = _bn_apply(
        x, np.array([1e6, -3e5]), np.array([4.0, 0.25]), None, None, 1e-5, 1
    )
    np.testing.assert_allclose(m(x), expected, rtol=1e-4, atol=1e-4)


# ---- frozen modules -----------------------------------------------------------------------------


def test_as_frozen_is_an_independent_inference_copy(rng):
    m = simdnorm.BatchNorm(3)
    m(rng.standard_normal((8, 3)).astype(np.float32))
    frozen = m.as_frozen()
    assert frozen.frozen and not frozen.training and m.training and not m.frozen
    assert "frozen=True" in repr(frozen)
    with pytest.raises(RuntimeError, match="frozen"):
        frozen.train()
    with pytest.raises(RuntimeError, match="frozen"):
        frozen.training = True
    assert frozen.eval() is frozen and frozen.train(False) is frozen
    x = rng.standard_normal((4, 3)).astype(np.float32)
    y = frozen(x)
    m(
        rng.standard_normal((8, 3)).astype(np.float32)
    )  # training the original does not touch the copy
    np.testing.assert_array_equal(frozen(x), y)
    _assert_same_state(_snapshot(pickle.loads(pickle.dumps(frozen))), _snapshot(frozen))
    assert pickle.loads(pickle.dumps(frozen)).frozen
    with pytest.raises(ValueError, match="track_running_stats"):
        simdnorm.BatchNorm(3, track_running_stats=False).as_frozen()


class _Stats:
    """Duck-typed stand-in for simdnorm.RunningStats (mean, var, count)."""

    def __init__(self, x):
        self.mean, self.var, self.count = x.mean(0), x.var(0), len(x)


@pytest.mark.parametrize("use_running_stats", [True, False])
def test_from_running_stats(rng, use_running_stats):
    data = rng.standard_normal((40, 6)) * 3 + 10
    if use_running_stats:
        stats = simdnorm.RunningStats(6)
        stats.update(data)
    else:
        stats = _Stats(data)
    w = rng.uniform(0.5, 2, 6)
    m = simdnorm.BatchNorm.from_running_stats(stats, weight=w, axis=-1)
    assert m.frozen and not m.training and m.axis == -1
    np.testing.assert_allclose(m.running_mean, data.mean(0), rtol=1e-6)
    np.testing.assert_allclose(m.running_var, data.var(0), rtol=1e-6)
    np.testing.assert_array_equal(m.bias, 0)
    x = (rng.standard_normal((5, 6)) * 3 + 10).astype(np.float32)
    expected = _bn_apply(x, data.mean(0), data.var(0), w, None, 1e-5, -1)
    np.testing.assert_allclose(m(x), expected, rtol=1e-4, atol=1e-4)
    if use_running_stats:
        np.testing.assert_allclose(
            m(x), stats.normalize(x) * w.astype(np.float32), rtol=1e-4, atol=1e-4
        )
    with pytest.raises(RuntimeError):
        m.train()
    plain = simdnorm.BatchNorm.from_running_stats(stats, dtype=np.float64)
    assert plain.weight is None and plain.dtype == np.float64


def test_from_running_stats_rejects_empty_statistics():
    with pytest.raises(ValueError, match="count"):
        simdnorm.BatchNorm.from_running_stats(simdnorm.RunningStats(3))


# ---- pickling and repr --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "make",
    [
        lambda: simdnorm.LayerNorm((2, 3), eps=1e-3, dtype=np.float64),
        lambda: simdnorm.LayerNorm(4, bias=False),
        lambda: simdnorm.LayerNorm(4, elementwise_affine=False),
        lambda: simdnorm.RMSNorm(5, eps=None),
        lambda: simdnorm.BatchNorm(3, momentum=None, axis=-1),
        lambda: simdnorm.BatchNorm(
            3, affine=False, track_running_stats=False, dtype=np.float64
        ),
    ],
)
@pytest.mark.parametrize("how", ["pickle", "deepcopy"])
def test_modules_pickle_bit_exactly(rng, make, how):
    m = make()
    state = m.state_dict()
    if state:
        m.load_state_dict(
            {
                k: (v + rng.standard_normal(v.shape) if v.dtype.kind == "f" else v + 3)
                for k, v in state.items()
            }
        )
    if isinstance(m, simdnorm.BatchNorm):
        m(rng.standard_normal((6, 3)).astype(m.dtype))
        m.eval()
    clone = pickle.loads(pickle.dumps(m)) if how == "pickle" else copy.deepcopy(m)
    assert type(clone) is type(m) and repr(clone) == repr(m)
    _assert_same_state(_snapshot(m), _snapshot(clone))
    if isinstance(m, (simdnorm.LayerNorm, simdnorm.RMSNorm)):
        x = rng.standard_normal((2,) + m.normalized_shape).astype(m.dtype)
    else:
        x = rng.standard_normal((4, 3)).astype(m.dtype)
    np.testing.assert_array_equal(m(x), clone(x))


def test_reprs_follow_pytorch():
    assert (
        repr(simdnorm.LayerNorm(768))
        == "LayerNorm((768,), eps=1e-05, elementwise_affine=True, bias=True)"
    )
    assert (
        repr(simdnorm.RMSNorm(8, eps=None))
        == "RMSNorm((8,), eps=None, elementwise_affine=True)"
    )
    assert (
        repr(simdnorm.BatchNorm(16))
        == "BatchNorm(16, eps=1e-05, momentum=0.1, affine=True, bias=True, track_running_stats=True)"
    )
    assert repr(
        simdnorm.BatchNorm(4, momentum=None, axis=-1, dtype=np.float64)
    ).endswith(
        "momentum=None, affine=True, bias=True, track_running_stats=True, axis=-1, dtype=float64)"
    )


# ---- PyTorch step sequences ---------------------------------------------------------------------


def _torch_state(module):
    return {k: v.detach().numpy().copy() for k, v in module.state_dict().items()}


@needs_torch
@pytest.mark.parametrize("ns", [(768,), (4, 6)])
def test_layer_norm_matches_torch(isa, rng, ns):
    tm = torch.nn.LayerNorm(ns, eps=1e-5)
    with torch.no_grad():
        tm.weight.uniform_(0.5, 2)
        tm.bias.uniform_(-1, 1)
    m = simdnorm.LayerNorm(ns)
    m.load_state_dict(_torch_state(tm))
    x = rng.standard_normal((3,) + ns).astype(np.float32) * 2 + 1
    expected = tm(torch.from_numpy(x)).detach().numpy()
    np.testing.assert_allclose(m(x), expected, rtol=1e-5, atol=1e-5)


@needs_torch
@pytest.mark.parametrize("eps", [None, 1e-6])
def test_rms_norm_matches_torch(isa, rng, eps):
    tm = torch.nn.RMSNorm(32, eps=eps)
    with torch.no_grad():
        tm.weight.uniform_(0.5, 2)
    m = simdnorm.RMSNorm(32, eps=eps)
    m.load_state_dict(_torch_state(tm))
    x = rng.standard_normal((5, 32)).astype(np.float32) * 1e-3
    np.testing.assert_allclose(
        m(x), tm(torch.from_numpy(x)).detach().numpy(), rtol=1e-5, atol=1e-5
    )


@needs_torch
@pytest.mark.parametrize("momentum", [0.1, None])
@pytest.mark.parametrize("affine", [True, False])
@pytest.mark.parametrize("track", [True, False])
@pytest.mark.parametrize("shape", [(8, 5), (4, 5, 6), (3, 5, 4, 4)])
def test_batch_norm_step_sequence_matches_torch(
    isa, rng, momentum, affine, track, shape
):
    channels = shape[1]
    tm = torch.nn.BatchNorm1d(
        channels, momentum=momentum, affine=affine, track_running_stats=track
    )
    if len(shape) == 4:
        tm = torch.nn.BatchNorm2d(
            channels, momentum=momentum, affine=affine, track_running_stats=track
        )
    if affine:
        with torch.no_grad():
            tm.weight.uniform_(0.5, 2)
            tm.bias.uniform_(-1, 1)
    m = simdnorm.BatchNorm(
        channels, momentum=momentum, affine=affine, track_running_stats=track
    )
    m.load_state_dict(_torch_state(tm))
    # train, train, eval, train, eval: outputs and buffers after every step
    for step, training in enumerate([True, True, False, True, False, True]):
        tm.train(training)
        m.train(training)
        x = (rng.standard_normal(shape) * (step + 1) + step).astype(np.float32)
        expected = tm(torch.from_numpy(x)).detach().numpy()
        np.testing.assert_allclose(m(x), expected, rtol=2e-5, atol=2e-5)
        ours, theirs = m.state_dict(), _torch_state(tm)
        assert list(ours) == list(theirs)
        for k in theirs:
            assert (
                ours[k].shape == theirs[k].shape and ours[k].dtype == theirs[k].dtype
            ), k
            np.testing.assert_allclose(ours[k], theirs[k], rtol=2e-6, atol=2e-6)


@needs_torch
def test_torch_checkpoint_loads_and_gives_the_same_eval_output(rng):
    tm = torch.nn.BatchNorm2d(6)
    for _ in range(3):
        tm(torch.randn(4, 6, 5, 5) * 2 + 1)
    tm.eval()
    sd = _torch_state(tm)
    m = simdnorm.BatchNorm(6).eval()
    m.load_state_dict(sd)
    x = rng.standard_normal((2, 6, 5, 5)).astype(np.float32)
    np.testing.assert_allclose(
        m(x), tm(torch.from_numpy(x)).detach().numpy(), rtol=1e-5, atol=1e-5
    )
    # torch tensors themselves load too (numpy.asarray on CPU tensors)
    m2 = simdnorm.BatchNorm(6).eval()
    m2.load_state_dict(tm.state_dict())
    np.testing.assert_array_equal(m2(x), m(x))
