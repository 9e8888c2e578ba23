"""Argument parsing of the METH_FASTCALL entry points (raw_call.cpp): every parameter by keyword,
and keyword names that only resemble a parameter's."""

import numpy as np
import pytest

import reference
import simdnorm


class _Str(str):
    pass


def _bn_inputs():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 6)).astype(np.float32)
    return x, np.zeros(6, np.float32), np.ones(6, np.float32), np.full(6, 2.0, np.float32), np.ones(6, np.float32)


def test_batch_norm_every_parameter_by_keyword():
    x, rm, rv, w, b = _bn_inputs()
    out = np.empty_like(x)
    got = simdnorm.batch_norm(
        x=x, running_mean=rm, running_var=rv, weight=w, bias=b, training=False, momentum=0.1, eps=1e-3, axis=1, out=out
    )
    assert got is out
    np.testing.assert_allclose(out, reference.batch_norm(x, rm, rv, w, b, eps=1e-3)[0], **reference.tol(np.float32))
    np.testing.assert_array_equal(simdnorm.batch_norm(x, rm, rv, w, b, eps=1e-3), out)


def test_keyword_given_as_a_str_subclass_and_in_any_order():
    x, rm, rv, w, b = _bn_inputs()
    expected = simdnorm.batch_norm(x, rm, rv, w, b, eps=1e-3)
    kwargs = {_Str("eps"): 1e-3, "bias": b, _Str("weight"): w}
    np.testing.assert_array_equal(simdnorm.batch_norm(x, rm, rv, **kwargs), expected)


@pytest.mark.parametrize("name", ["ep", "epsx", "ep\x00s", "eps\x00", "\x00", "", "EPS", "épsilon", "eps\u00e9"])
def test_keyword_that_only_resembles_a_parameter_is_rejected(name):
    x, rm, rv, _, _ = _bn_inputs()
    with pytest.raises(TypeError, match="unexpected keyword argument"):
        simdnorm.batch_norm(x, rm, rv, **{name: 1e-3})
    with pytest.raises(TypeError, match="unexpected keyword argument"):
        simdnorm.layer_norm(x, **{name: 1e-3})


def test_keyword_repeating_a_positional_argument():
    x, rm, rv, _, _ = _bn_inputs()
    with pytest.raises(TypeError, match="multiple values for argument 'running_mean'"):
        simdnorm.batch_norm(x, rm, running_mean=rm, running_var=rv)


@pytest.mark.parametrize(
    "call",
    [
        lambda x: simdnorm.layer_norm(x=x, weight=None, bias=None, eps=1e-5, axis=-1, out=None, return_stats=False),
        lambda x: simdnorm.rms_norm(x=x, weight=None, eps=1e-6, axis=-1, out=None),
        lambda x: simdnorm.scale_shift(x=x, scale=np.ones(6, np.float32), shift=np.zeros(6, np.float32), axis=1, out=None),
    ],
)
def test_other_entry_points_take_every_parameter_by_keyword(call):
    x = _bn_inputs()[0]
    assert call(x).shape == x.shape


# ---- Module calls: instances are vectorcall objects (register_modules.cpp, install_call_slots) ----

MODULES = [
    lambda: simdnorm.LayerNorm(6),
    lambda: simdnorm.RMSNorm(6),
    lambda: simdnorm.BatchNorm(6, axis=-1).eval(),
]


@pytest.mark.parametrize("make", MODULES, ids=["LayerNorm", "RMSNorm", "BatchNorm"])
def test_module_call_arguments_every_way(make):
    m = make()
    x = _bn_inputs()[0]
    expected = m(x)
    out = np.empty_like(x)
    for call in (
        lambda: m(x, out),
        lambda: m(x, out=out),
        lambda: m(out=out, x=x),
        lambda: m(x=x, out=out),
        lambda: m(x, **{_Str("out"): out}),
        lambda: m(*(x,), **{"out": out}),
        lambda: type(m).__call__(m, x, out=out),  # the bound pybind11 method, same C++ call
        lambda: m.forward(x, out=out),
    ):
        out.fill(np.nan)
        assert call() is out
        np.testing.assert_array_equal(out, expected)
    np.testing.assert_array_equal(m(x=x), expected)
    np.testing.assert_array_equal(m(x, None), expected)


@pytest.mark.parametrize("make", MODULES, ids=["LayerNorm", "RMSNorm", "BatchNorm"])
def test_module_call_argument_errors(make):
    m = make()
    x = _bn_inputs()[0]
    with pytest.raises(TypeError, match=r"takes at most 2 positional arguments \(3 given\)"):
        m(x, None, None)
    with pytest.raises(TypeError, match="missing required argument 'x'"):
        m()
    with pytest.raises(TypeError, match="missing required argument 'x'"):
        m(out=None)
    with pytest.raises(TypeError, match="multiple values for argument 'x'"):
        m(x, x=x)
    with pytest.raises(TypeError, match="multiple values for argument 'out'"):
        m(x, None, out=None)
    for name in ("ou", "outx", "OUT", "out\x00", "y"):
        with pytest.raises(TypeError, match="unexpected keyword argument"):
            m(x, **{name: None})


def test_module_subclasses_call_and_may_override_the_call():
    # A Python subclass takes the bound pybind11 __call__ (CPython's slot_tp_call finds it first in
    # the MRO): slower, same C++ call, pybind11's own argument errors.
    class Plain(simdnorm.LayerNorm):
        pass

    class Wrapped(simdnorm.LayerNorm):
        def __call__(self, x, out=None):
            return 2 * super().__call__(x, out=out)

    x = _bn_inputs()[0]
    expected = simdnorm.LayerNorm(6)(x)
    np.testing.assert_array_equal(Plain(6)(x), expected)
    np.testing.assert_array_equal(Plain(6)(x=x), expected)
    with pytest.raises(TypeError):
        Plain(6)(x, x=x)
    np.testing.assert_array_equal(Wrapped(6)(x), 2 * expected)
    out = np.empty_like(x)
    np.testing.assert_array_equal(Wrapped(6)(x, out=out), 2 * expected)


def test_module_call_before_init_raises():
    m = simdnorm.LayerNorm.__new__(simdnorm.LayerNorm)
    with pytest.raises(TypeError, match="__init__ was not called"):
        m(_bn_inputs()[0])


# ---- The functions' contiguous fast path (register_norms.cpp): default axis, C-contiguous x ----


@pytest.mark.parametrize("fn", ["layer_norm", "rms_norm"])
@pytest.mark.parametrize("shape", [(1, 7), (3, 768), (2, 3, 40), (5,)])
def test_default_axis_fast_path_matches_the_general_path(fn, shape):
    rng = np.random.default_rng(len(shape))
    x = rng.standard_normal(shape).astype(np.float32)
    w = rng.standard_normal(shape[-1]).astype(np.float32)
    f = getattr(simdnorm, fn)
    params = (w, w[::-1].copy()) if fn == "layer_norm" else (w,)
    general = f(x, *params, axis=-1)  # an explicit axis takes the general layout
    np.testing.assert_array_equal(f(x, *params), general)
    out = np.empty_like(x)
    assert f(x, *params, out=out) is out
    np.testing.assert_array_equal(out, general)
    inplace = x.copy()
    assert f(inplace, *params, out=inplace) is inplace
    np.testing.assert_array_equal(inplace, general)
    # out holding the weight (read from a copy first), and a strided out (written through a temporary)
    both = np.empty((2,) + shape, np.float32)
    both[1] = x
    weight_in_out = both[0].reshape(-1)[: shape[-1]]
    weight_in_out[:] = w
    expected = f(x, weight_in_out.copy(), *params[1:], axis=-1)
    f(x, weight_in_out, *params[1:], out=both[0])
    np.testing.assert_array_equal(both[0], expected)
    strided = np.empty(shape[:-1] + (2 * shape[-1],), np.float32)[..., ::2]
    f(x, *params, out=strided)
    np.testing.assert_array_equal(strided, general)


@pytest.mark.parametrize("fn", ["layer_norm", "rms_norm"])
def test_default_axis_fast_path_errors(fn):
    x = np.ones((2, 6), np.float32)
    f = getattr(simdnorm, fn)
    with pytest.raises(ValueError, match=r"weight must have shape \(6,\)"):
        f(x, np.ones(5, np.float32))
    with pytest.raises(TypeError, match="weight must have the dtype of x"):
        f(x, np.ones(6, np.float64))
    with pytest.raises(ValueError, match="out"):
        f(x, out=np.empty((2, 5), np.float32))
    with pytest.raises(ValueError):
        f(x, out=np.empty((1, 6), np.float32))
    read_only = np.empty_like(x)
    read_only.flags.writeable = False
    with pytest.raises(ValueError):
        f(x, out=read_only)
    with pytest.raises(ValueError):
        f(np.float32(1.0))  # 0-d: no axis to normalize


def test_module_call_in_the_tuple_and_dict_form():
    # PyObject_Call, as C extensions call: CPython converts the dict to the vectorcall form.
    import ctypes

    call = ctypes.pythonapi.PyObject_Call
    call.restype = ctypes.py_object
    call.argtypes = [ctypes.py_object, ctypes.py_object, ctypes.py_object]
    m = simdnorm.LayerNorm(6)
    x = _bn_inputs()[0]
    out = np.empty_like(x)
    assert call(m, (x,), {"out": out}) is out
    np.testing.assert_array_equal(out, m(x))
    with pytest.raises(TypeError, match="unexpected keyword argument"):
        call(m, (x,), {"y": None})
