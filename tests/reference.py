"""Plain float64 NumPy references for every simdnorm operation.

No tricks: every function converts its inputs to float64, computes the textbook formula and
returns float64 results. NaN / Inf follow IEEE arithmetic (warnings silenced).
"""

import numpy as np

# Tolerances for outputs of unit scale (normalized values times weights around 1).
TOL = {
    np.dtype(np.float32): dict(rtol=2e-5, atol=2e-5),
    np.dtype(np.float64): dict(rtol=1e-12, atol=1e-12),
}


def tol(dtype):
    return TOL[np.dtype(dtype)]


def _f64(a):
    return None if a is None else np.asarray(a, dtype=np.float64)


def norm_axes(ndim, axis):
    """Axes reduced by layer_norm / rms_norm: int k -> k..ndim-1, tuple -> exactly those."""
    if isinstance(axis, (tuple, list)):
        return tuple(sorted(int(a) % ndim for a in axis))
    return tuple(range(int(axis) % ndim, ndim))


def _param_view(param, shape, axes):
    """Reshape a weight of shape x.shape[axes] (increasing axis order) to broadcast against x."""
    return param.reshape(tuple(shape[a] if a in axes else 1 for a in range(len(shape))))


def layer_norm(x, weight=None, bias=None, eps=1e-5, axis=-1, return_stats=False):
    x = _f64(x)
    axes = norm_axes(x.ndim, axis)
    with np.errstate(all="ignore"):
        count = int(np.prod([x.shape[a] for a in axes]))
        if count == 0:
            mean = np.full(tuple(1 if a in axes else s for a, s in enumerate(x.shape)), np.nan)
            var = mean.copy()
        else:
            mean = x.sum(axis=axes, keepdims=True) / count
            var = ((x - mean) ** 2).sum(axis=axes, keepdims=True) / count
        rstd = 1.0 / np.sqrt(var + eps)
        y = (x - mean) * rstd
        if weight is not None:
            y = y * _param_view(_f64(weight), x.shape, axes)
        if bias is not None:
            y = y + _param_view(_f64(bias), x.shape, axes)
    if return_stats:
        return y, mean, rstd
    return y


def rms_norm(x, weight=None, eps=1e-6, axis=-1):
    x = _f64(x)
    axes = norm_axes(x.ndim, axis)
    with np.errstate(all="ignore"):
        count = int(np.prod([x.shape[a] for a in axes]))
        ms = (x * x).sum(axis=axes, keepdims=True) / max(count, 1)
        y = x / np.sqrt(ms + eps)
        if weight is not None:
            y = y * _param_view(_f64(weight), x.shape, axes)
    return y


def _channel_view(param, ndim, axis):
    shape = [1] * ndim
    shape[axis % ndim] = -1
    return param.reshape(shape)


def batch_stats(x, axis=1):
    """Per-channel (mean, biased var, count) over every axis except `axis`."""
    x = _f64(x)
    c = axis % x.ndim
    reduce = tuple(a for a in range(x.ndim) if a != c)
    count = int(np.prod([x.shape[a] for a in reduce]))
    with np.errstate(all="ignore"):
        mean = x.sum(axis=reduce) / count if count else np.full(x.shape[c], np.nan)
        d = x - _channel_view(mean, x.ndim, c)
        var = (d * d).sum(axis=reduce) / count if count else np.full(x.shape[c], np.nan)
    return mean, var, count


def batch_norm(x, running_mean=None, running_var=None, weight=None, bias=None, training=False,
               momentum=0.1, eps=1e-5, axis=1):
    """torch.nn.functional.batch_norm in float64.

    Returns (y, new_running_mean, new_running_var); the running arrays are new float64 arrays
    (None when not given) and the inputs are never modified.
    """
    x = _f64(x)
    c = axis % x.ndim
    rm, rv = _f64(running_mean), _f64(running_var)
    with np.errstate(all="ignore"):
        if training:
            mean, var, count = batch_stats(x, axis=c)
            if rm is not None:
                rm = (1.0 - momentum) * rm + momentum * mean
            if rv is not None:
                rv = (1.0 - momentum) * rv + momentum * (var * count / (count - 1))
        else:
            mean, var = rm, rv
        y = (x - _channel_view(mean, x.ndim, c)) / np.sqrt(_channel_view(var, x.ndim, c) + eps)
        if weight is not None:
            y = y * _channel_view(_f64(weight), x.ndim, c)
        if bias is not None:
            y = y + _channel_view(_f64(bias), x.ndim, c)
    return y, rm, rv


def fold_batch_norm(running_mean, running_var, weight=None, bias=None, eps=1e-5):
    rm, rv = _f64(running_mean), _f64(running_var)
    w = np.ones_like(rm) if weight is None else _f64(weight)
    b = np.zeros_like(rm) if bias is None else _f64(bias)
    scale = w / np.sqrt(rv + eps)
    return scale, b - rm * scale


def scale_shift(x, scale, shift, axis=1):
    x = _f64(x)
    with np.errstate(all="ignore"):
        return x * _channel_view(_f64(scale), x.ndim, axis) + _channel_view(_f64(shift), x.ndim, axis)
