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
