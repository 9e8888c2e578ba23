"""Bad inputs: the right exception, naming the argument, and nothing modified."""

import numpy as np
import pytest

import reference
import simdnorm

BAD_DTYPES = [np.float16, np.int32, np.int64, np.complex64, np.complex128, np.bool_, np.uint8]


def _snapshot(*arrays):
    return [None if a is None else a.copy() for a in arrays]


def _assert_unchanged(arrays, snapshots):
    for a, s in zip(arrays, snapshots):
        if a is not None:
            np.testing.assert_array_equal(a, s)


def _bn_arrays(c, dtype=np.float64):
    rng = np.random.default_rng(c)
    return (
        rng.standard_normal(c).astype(dtype),
        rng.uniform(0.5, 2.0, c).astype(dtype),
        rng.uniform(0.5, 2.0, c).astype(dtype),
        rng.uniform(-1.0, 1.0, c).astype(dtype),
    )


# ---- dtype ------------------------------------------------------------------------------------

CALLS_ON_X = {
    "layer_norm": lambda x: simdnorm.layer_norm(x),
    "rms_norm": lambda x: simdnorm.rms_norm(x),
    "batch_norm_train": lambda x: simdnorm.batch_norm(x, training=True),
    "batch_norm_eval": lambda x: simdnorm.batch_norm(x, np.zeros(3), np.ones(3)),
    "batch_stats": lambda x: simdnorm.batch_stats(x),
    "scale_shift": lambda x: simdnorm.scale_shift(x, np.ones(3), np.zeros(3)),
}


@pytest.mark.parametrize("dtype", BAD_DTYPES)
@pytest.mark.parametrize("op", sorted(CALLS_ON_X))
def test_unsupported_x_dtype_raises_type_error_naming_x(op, dtype):
    x = np.ones((4, 3), dtype)
    before = x.copy()
    with pytest.raises(TypeError, match=r"\bx\b"):
        CALLS_ON_X[op](x)
    np.testing.assert_array_equal(x, before)


@pytest.mark.parametrize("op", sorted(CALLS_ON_X))
def test_python_list_x_is_not_silently_converted_to_a_bad_dtype(op):
    # Integer lists would need a silent conversion: rejected like integer arrays.
    with pytest.raises(TypeError, match=r"\bx\b"):
        CALLS_ON_X[op]([[1, 2, 3], [4, 5, 6]])


# ---- out --------------------------------------------------------------------------------------


def _out_calls(x, out):
    c = x.shape[1]
    rm, rv, w, b = _bn_arrays(c, x.dtype)
    return {
        "layer_norm": lambda: simdnorm.layer_norm(x, out=out),
        "rms_norm": lambda: simdnorm.rms_norm(x, out=out),
        "batch_norm_train": lambda: simdnorm.batch_norm(x, rm, rv, w, b, training=True, out=out),
        "batch_norm_eval": lambda: simdnorm.batch_norm(x, rm, rv, w, b, out=out),
        "scale_shift": lambda: simdnorm.scale_shift(x, w, b, out=out),
    }, (rm, rv, w, b)


OUT_OPS = ["layer_norm", "rms_norm", "batch_norm_train", "batch_norm_eval", "scale_shift"]


@pytest.mark.parametrize("out_shape", [(4, 5), (5, 6), (30,), (1, 6, 5), (6,)])
@pytest.mark.parametrize("op", OUT_OPS)
def test_out_wrong_shape(op, out_shape):
    x = np.random.default_rng(0).standard_normal((6, 5))
    out = np.full(out_shape, 42.0)
    calls, params = _out_calls(x, out)
    snaps = _snapshot(x, out, *params)
    with pytest.raises(ValueError, match=r"\bout\b"):
        calls[op]()
    _assert_unchanged((x, out) + params, snaps)


@pytest.mark.parametrize("out_dtype", [np.float32, np.float16, np.int64, np.complex128])
@pytest.mark.parametrize("op", OUT_OPS)
def test_out_wrong_dtype(op, out_dtype):
    x = np.random.default_rng(0).standard_normal((6, 5))
    out = np.full((6, 5), 3, out_dtype)
    calls, params = _out_calls(x, out)
    snaps = _snapshot(x, out, *params)
    with pytest.raises((TypeError, ValueError), match=r"\bout\b"):
        calls[op]()
    _assert_unchanged((x, out) + params, snaps)


@pytest.mark.parametrize("op", OUT_OPS)
def test_out_read_only(op):
    x = np.random.default_rng(0).standard_normal((6, 5))
    out = np.full((6, 5), 42.0)
    out.flags.writeable = False
    calls, params = _out_calls(x, out)
    snaps = _snapshot(x, out, *params)
    with pytest.raises((TypeError, ValueError), match=r"\bout\b"):
        calls[op]()
    _assert_unchanged((x, out) + params, snaps)


# ---- weight / bias / per-channel arrays ----------------------------------------------------------


@pytest.mark.parametrize("name", ["weight", "bias"])
@pytest.mark.parametrize("shape, axis, bad", [
    ((4, 8), -1, (7,)),
    ((4, 8), -1, (9,)),
    ((4, 8), -1, (1, 8)),
    ((4, 8), -1, ()),
    ((2, 3, 8), 1, (3,)),        # int axis: needs (3, 8)
    ((2, 3, 8), 1, (8, 3)),
    ((2, 3, 4, 5), (1,), (3, 4)),  # channels-first: needs (3,)
    ((2, 3, 4, 5), (1,), (5,)),
])
def test_layer_norm_wrong_param_shape(name, shape, axis, bad):
    x = np.random.default_rng(1).standard_normal(shape)
    good = np.ones(tuple(x.shape[a] for a in reference.norm_axes(x.ndim, axis)))
    params = {"weight": good.copy(), "bias": good.copy()}
    params[name] = np.ones(bad)
    out = np.full_like(x, 42.0)
    snaps = _snapshot(x, out, params["weight"], params["bias"])
    with pytest.raises(ValueError, match=rf"\b{name}\b"):
        simdnorm.layer_norm(x, params["weight"], params["bias"], axis=axis, out=out)
    _assert_unchanged((x, out, params["weight"], params["bias"]), snaps)


@pytest.mark.parametrize("bad", [(7,), (9,), (1, 8), (8, 1)])
def test_rms_norm_wrong_weight_shape(bad):
    x = np.random.default_rng(1).standard_normal((4, 8))
    w = np.ones(bad)
    out = np.full_like(x, 42.0)
    snaps = _snapshot(x, out, w)
    with pytest.raises(ValueError, match=r"\bweight\b"):
        simdnorm.rms_norm(x, w, out=out)
    _assert_unchanged((x, out, w), snaps)


@pytest.mark.parametrize("weight_dtype", [np.float32, np.int64])
def test_weight_dtype_mismatch_names_weight(weight_dtype):
    x = np.random.default_rng(1).standard_normal((4, 8))
    with pytest.raises((TypeError, ValueError), match=r"\bweight\b"):
        simdnorm.layer_norm(x, np.ones(8, weight_dtype))
    with pytest.raises((TypeError, ValueError), match=r"\bweight\b"):
        simdnorm.rms_norm(x, np.ones(8, weight_dtype))


BN_NAMES = ["running_mean", "running_var", "weight", "bias"]


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("name", BN_NAMES)
@pytest.mark.parametrize("bad", [(4,), (6,), (1, 5), ()])
def test_batch_norm_wrong_channel_array_shape(training, name, bad):
    x = np.random.default_rng(2).standard_normal((6, 5, 3))
    arrays = dict(zip(BN_NAMES, _bn_arrays(5)))
    arrays[name] = np.ones(bad)
    out = np.full_like(x, 42.0)
    snaps = _snapshot(x, out, *arrays.values())
    with pytest.raises(ValueError, match=rf"\b{name}\b"):
        simdnorm.batch_norm(x, **arrays, training=training, out=out)
    _assert_unchanged((x, out, *arrays.values()), snaps)


@pytest.mark.parametrize("name", ["weight", "bias"])
def test_batch_norm_affine_dtype_mismatch(name):
    x = np.random.default_rng(2).standard_normal((6, 5, 3)).astype(np.float32)
    arrays = dict(zip(BN_NAMES, _bn_arrays(5, np.float32)))
    arrays[name] = arrays[name].astype(np.float64)
    snaps = _snapshot(x, *arrays.values())
    with pytest.raises((TypeError, ValueError), match=rf"\b{name}\b"):
        simdnorm.batch_norm(x, **arrays, training=True)
    _assert_unchanged((x, *arrays.values()), snaps)


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("x_dtype", [np.float32, np.float64])
def test_batch_norm_running_arrays_of_different_dtypes(training, x_dtype):
    # Each may be float32 or float64, but both the same: eval once read a float64 running_var as
    # float32 values (a silent wrong answer).
    x = np.random.default_rng(2).standard_normal((6, 5)).astype(x_dtype)
    arrays = dict(zip(BN_NAMES, _bn_arrays(5, x_dtype)))
    arrays["running_mean"] = arrays["running_mean"].astype(np.float32)
    arrays["running_var"] = arrays["running_var"].astype(np.float64)
    out = np.full_like(x, 42.0)
    snaps = _snapshot(x, out, *arrays.values())
    with pytest.raises(TypeError, match=r"running_mean and running_var must have the same dtype, got float32 and float64"):
        simdnorm.batch_norm(x, **arrays, training=training, out=out)
    _assert_unchanged((x, out, *arrays.values()), snaps)


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("name", ["running_mean", "running_var"])
def test_batch_norm_read_only_running_array(training, name):
    x = np.random.default_rng(2).standard_normal((6, 5))
    arrays = dict(zip(BN_NAMES, _bn_arrays(5)))
    for a in arrays.values():
        a.flags.writeable = False
    if not training:
        # Eval mode only reads them.
        y = simdnorm.batch_norm(x, **arrays)
        assert y.shape == x.shape
        return
    snaps = _snapshot(x, *arrays.values())
    with pytest.raises((TypeError, ValueError), match=r"running_(mean|var)"):
        simdnorm.batch_norm(x, **arrays, training=True)
    _assert_unchanged((x, *arrays.values()), snaps)


@pytest.mark.parametrize("name", ["scale", "shift"])
@pytest.mark.parametrize("bad", [(4,), (6,), (1, 5)])
def test_scale_shift_wrong_shape(name, bad):
    x = np.random.default_rng(3).standard_normal((6, 5, 2))
    params = {"scale": np.ones(5), "shift": np.zeros(5)}
    params[name] = np.ones(bad)
    out = np.full_like(x, 42.0)
    snaps = _snapshot(x, out)
    with pytest.raises(ValueError, match=rf"\b{name}\b"):
        simdnorm.scale_shift(x, params["scale"], params["shift"], out=out)
    _assert_unchanged((x, out), snaps)


@pytest.mark.parametrize("name", ["running_var", "weight", "bias"])
def test_fold_batch_norm_mismatched_shapes(name):
    arrays = dict(zip(BN_NAMES, _bn_arrays(5)))
    arrays[name] = np.ones(4)
    snaps = _snapshot(*arrays.values())
    with pytest.raises(ValueError, match=rf"\b{name}\b"):
        simdnorm.fold_batch_norm(**arrays)
    _assert_unchanged(arrays.values(), snaps)


# ---- axis -------------------------------------------------------------------------------------


@pytest.mark.parametrize("axis", [2, -3, 5, (2,), (-3,), (0, 0), (1, -1), (0, 2)])
@pytest.mark.parametrize("op", ["layer_norm", "rms_norm"])
def test_norm_bad_axis(op, axis):
    x = np.random.default_rng(4).standard_normal((3, 4))
    out = np.full_like(x, 42.0)
    snaps = _snapshot(x, out)
    with pytest.raises(ValueError, match=r"\baxis\b"):
        getattr(simdnorm, op)(x, axis=axis, out=out)
    _assert_unchanged((x, out), snaps)


@pytest.mark.parametrize("axis", [1.5, "1", None])
@pytest.mark.parametrize("op", ["layer_norm", "rms_norm"])
def test_norm_axis_of_wrong_type(op, axis):
    x = np.random.default_rng(4).standard_normal((3, 4))
    with pytest.raises((TypeError, ValueError), match=r"\baxis\b"):
        getattr(simdnorm, op)(x, axis=axis)


def test_layer_norm_empty_axis_tuple():
    x = np.random.default_rng(4).standard_normal((3, 4))
    with pytest.raises(ValueError, match=r"\baxis\b"):
        simdnorm.layer_norm(x, axis=())


@pytest.mark.parametrize("axis", [3, -4, 10])
def test_channel_ops_bad_axis(axis):
    x = np.random.default_rng(5).standard_normal((4, 3, 2))
    rm, rv, w, b = _bn_arrays(3)
    out = np.full_like(x, 42.0)
    snaps = _snapshot(x, out, rm, rv)
    with pytest.raises(ValueError, match=r"\baxis\b"):
        simdnorm.batch_norm(x, rm, rv, w, b, training=True, axis=axis, out=out)
    with pytest.raises(ValueError, match=r"\baxis\b"):
        simdnorm.batch_norm(x, rm, rv, w, b, axis=axis, out=out)
    with pytest.raises(ValueError, match=r"\baxis\b"):
        simdnorm.batch_stats(x, axis=axis)
    with pytest.raises(ValueError, match=r"\baxis\b"):
        simdnorm.scale_shift(x, w, b, axis=axis, out=out)
    _assert_unchanged((x, out, rm, rv), snaps)


def test_zero_dim_x_rejected():
    x = np.array(1.0)
    with pytest.raises(ValueError, match=r"\b(x|axis)\b"):
        simdnorm.layer_norm(x)
    with pytest.raises(ValueError, match=r"\b(x|axis)\b"):
        simdnorm.batch_stats(x, axis=0)


# ---- eps --------------------------------------------------------------------------------------

BAD_EPS = [0.0, -1e-5, float("nan"), float("inf"), -float("inf")]


@pytest.mark.parametrize("eps", BAD_EPS)
def test_layer_norm_bad_eps_in_place_untouched(eps):
    x = np.random.default_rng(6).standard_normal((3, 9))
    snaps = _snapshot(x)
    with pytest.raises(ValueError, match=r"\beps\b"):
        simdnorm.layer_norm(x, eps=eps, out=x)
    _assert_unchanged((x,), snaps)


@pytest.mark.parametrize("eps", BAD_EPS)
def test_rms_norm_bad_eps(eps):
    x = np.random.default_rng(6).standard_normal((3, 9)).astype(np.float32)
    out = np.full_like(x, 42.0)
    snaps = _snapshot(x, out)
    with pytest.raises(ValueError, match=r"\beps\b"):
        simdnorm.rms_norm(x, eps=eps, out=out)
    _assert_unchanged((x, out), snaps)


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("eps", BAD_EPS)
def test_batch_norm_bad_eps_running_stats_untouched(training, eps):
    x = np.random.default_rng(7).standard_normal((6, 4, 3))
    rm, rv, w, b = _bn_arrays(4)
    snaps = _snapshot(x, rm, rv)
    with pytest.raises(ValueError, match=r"\beps\b"):
        simdnorm.batch_norm(x, rm, rv, w, b, training=training, eps=eps, out=x)
    _assert_unchanged((x, rm, rv), snaps)


@pytest.mark.parametrize("eps", BAD_EPS)
def test_fold_batch_norm_bad_eps(eps):
    rm, rv, w, b = _bn_arrays(4)
    with pytest.raises(ValueError, match=r"\beps\b"):
        simdnorm.fold_batch_norm(rm, rv, w, b, eps=eps)


# An eps below the dtype's smallest normal number acts as 0 there (a constant row gave NaN).
@pytest.mark.parametrize("dtype, eps", [(np.float32, 1e-39), (np.float32, 1e-300), (np.float64, 1e-310)])
def test_eps_below_the_dtypes_normal_range(dtype, eps):
    x = np.full((2, 8), 3.0, dtype)
    rm, rv, w, b = _bn_arrays(8, dtype)
    snaps = _snapshot(x, rm, rv)
    for call in (
        lambda: simdnorm.layer_norm(x, eps=eps, out=x),
        lambda: simdnorm.rms_norm(x, eps=eps, out=x),
        lambda: simdnorm.batch_norm(x, rm, rv, w, b, training=True, eps=eps, axis=-1, out=x),
        lambda: simdnorm.fold_batch_norm(rm, rv, w, b, eps=eps),
        lambda: simdnorm.LayerNorm(8, eps=eps, dtype=dtype),
        lambda: simdnorm.BatchNorm(8, eps=eps, dtype=dtype),
    ):
        with pytest.raises(ValueError, match=r"eps must be at least the smallest normal"):
            call()
    _assert_unchanged((x, rm, rv), snaps)
    smallest = float(np.finfo(dtype).tiny)  # accepted: a constant row still gives exactly the bias
    np.testing.assert_array_equal(simdnorm.layer_norm(x, eps=smallest), np.zeros_like(x))


# ---- Python ints beyond 64 bits: ValueError naming the argument, not pybind11's RuntimeError ----


@pytest.mark.parametrize("axis", [2**63, -(2**63) - 1, (2**63,), 2**100])
def test_axis_beyond_int64(axis):
    x = np.ones((4, 6), np.float32)
    w = np.ones(6, np.float32)
    calls = [lambda: simdnorm.layer_norm(x, axis=axis), lambda: simdnorm.rms_norm(x, axis=axis)]
    if not isinstance(axis, tuple):  # the channel ops take one axis
        calls += [
            lambda: simdnorm.batch_stats(x, axis=axis),
            lambda: simdnorm.batch_norm(x, training=True, axis=axis),
            lambda: simdnorm.scale_shift(x, w, w, axis=axis),
        ]
    for call in calls:
        with pytest.raises(ValueError, match=r"axis -?\d+ is out of bounds"):
            call()


def test_sizes_and_counts_beyond_int64():
    for make, name in (
        (lambda: simdnorm.RunningStats(2**70), "num_features"),
        (lambda: simdnorm.LayerNorm(2**70), "normalized_shape"),
        (lambda: simdnorm.BatchNorm(2**70), "num_features"),
    ):
        with pytest.raises(ValueError, match=name + r" \d+ is out of range"):
            make()
    stats = simdnorm.RunningStats(3)
    stats.update(np.ones((2, 3)))
    state = stats.state_dict()
    state["count"] = 2**70
    with pytest.raises(ValueError, match=r"count \d+ is out of range"):
        stats.load_state_dict(state)
    assert stats.count == 2


def test_numbers_beyond_float_range():
    x = np.ones((2, 4))
    with pytest.raises(OverflowError):
        simdnorm.layer_norm(x, eps=10**400)
    with pytest.raises(OverflowError):
        simdnorm.batch_norm(x, np.zeros(4), np.ones(4), training=True, axis=-1, momentum=10**400)


# ---- batch norm mode rules --------------------------------------------------------------------


@pytest.mark.parametrize("given", ["none", "mean_only", "var_only"])
def test_batch_norm_eval_requires_running_stats(given):
    x = np.random.default_rng(8).standard_normal((6, 4))
    rm, rv, w, b = _bn_arrays(4)
    rm = rm if given == "mean_only" else None
    rv = rv if given == "var_only" else None
    out = np.full_like(x, 42.0)
    snaps = _snapshot(x, out, rm, rv)
    with pytest.raises(ValueError, match=r"running_(mean|var)"):
        simdnorm.batch_norm(x, rm, rv, w, b, training=False, out=out)
    _assert_unchanged((x, out, rm, rv), snaps)


@pytest.mark.parametrize("shape, axis", [((1, 4), 1), ((1, 4, 1, 1), 1), ((1, 1, 4), -1)])
def test_batch_norm_training_one_value_per_channel(shape, axis):
    x = np.random.default_rng(9).standard_normal(shape)
    rm, rv, w, b = _bn_arrays(4)
    out = np.full_like(x, 42.0)
    snaps = _snapshot(x, out, rm, rv)
    with pytest.raises(ValueError, match="Expected more than 1 value per channel when training"):
        simdnorm.batch_norm(x, rm, rv, w, b, training=True, axis=axis, out=out)
    _assert_unchanged((x, out, rm, rv), snaps)


# ---- threads ----------------------------------------------------------------------------------


@pytest.mark.parametrize("n", [0, -1, -8])
def test_set_num_threads_below_one(n):
    before = simdnorm.get_num_threads()
    with pytest.raises(ValueError):
        simdnorm.set_num_threads(n)
    assert simdnorm.get_num_threads() == before


# ---- isa --------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["bogus", "", "sse2", "AVX1024"])
def test_use_isa_unknown(name):
    before = simdnorm.current_isa()
    with pytest.raises(ValueError):
        with simdnorm.use_isa(name):
            pass
    assert simdnorm.current_isa() == before
