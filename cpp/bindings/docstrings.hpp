// NumPy-style docstrings of the public functions (kept apart so the binding code stays short).
#pragma once

namespace simdnorm::bindings::docs {

inline constexpr const char* layer_norm = R"doc(layer_norm(x, weight=None, bias=None, *, eps=1e-5, axis=-1, out=None, return_stats=False)

Layer normalization: ``(x - mean) / sqrt(var + eps) * weight + bias`` over the normalized axes.

Parameters
----------
x : ndarray of float32 or float64
    Input. Any strides (transposed, sliced, negative); it is copied only when its layout cannot
    be read directly. Other dtypes raise ``TypeError``.
weight, bias : ndarray, optional
    Shape of x's normalized axes (in axis order), dtype of x.
eps : float
    Added to the (biased) variance; must be finite and at least the smallest normal number of x's
    dtype (``np.finfo(x.dtype).tiny``: 1.2e-38 for float32), below which it would act as 0.
axis : int or tuple of ints
    An int ``k`` normalizes over axes ``k .. x.ndim-1`` (PyTorch's ``normalized_shape ==
    x.shape[k:]``, ONNX LayerNormalization's ``axis``). A tuple normalizes over exactly those axes:
    ``axis=(1,)`` on NCHW is the channels-first LayerNorm of ConvNeXt. Note that ``axis=1`` and
    ``axis=(1,)`` differ on arrays with more than two dimensions.
out : ndarray, optional
    Destination with x's shape and dtype; may be ``x`` itself (in place), and may hold the weight
    or bias (they are then read from a copy).
return_stats : bool
    Also return ``mean`` and ``rstd = 1 / sqrt(var + eps)``, shaped like x with the normalized
    axes kept as size 1 (ONNX's Mean / InvStdDev, ``torch.native_layer_norm``).

Returns
-------
y : ndarray, or (y, mean, rstd) when return_stats

Notes
-----
Statistics are accumulated in double with a corrected two-pass scheme, so float32 rows with a
large common offset (c + N(0, 1), c up to 1e6) keep ~1e-6 absolute accuracy, and a constant row
gives exactly ``bias``. NaN / Inf in x propagate to their own rows only. The GIL is released for
inputs above a few thousand elements; large inputs are split across ``get_num_threads()`` threads.
Without ``out``, a result below 128 KiB may be the array of an earlier call of any simdnorm function
that the caller has dropped (nothing references it any more), rewritten: no allocation per call.
)doc";

inline constexpr const char* rms_norm = R"doc(rms_norm(x, weight=None, *, eps=1e-6, axis=-1, out=None)

RMS normalization: ``x / sqrt(mean(x**2) + eps) * weight`` over the normalized axes.

Parameters
----------
x : ndarray of float32 or float64
weight : ndarray, optional
    Shape of x's normalized axes, dtype of x.
eps : float or None
    Finite and at least ``np.finfo(x.dtype).tiny``. The default 1e-6 is Llama's and Keras';
    ONNX RMSNormalization uses 1e-5; ``None`` means the dtype's machine epsilon
    (``np.finfo(x.dtype).eps``), which is PyTorch's default for ``torch.nn.RMSNorm(eps=None)``.
axis : int or tuple of ints
    As in :func:`layer_norm`.
out : ndarray, optional
    Destination with x's shape and dtype; may be ``x`` itself, and may hold the weight.

Returns
-------
y : ndarray
)doc";

inline constexpr const char* batch_norm = R"doc(batch_norm(x, running_mean=None, running_var=None, weight=None, bias=None, *, training=False, momentum=0.1, eps=1e-5, axis=1, out=None)

Batch normalization with ``torch.nn.functional.batch_norm`` semantics.

Parameters
----------
x : ndarray of float32 or float64, at least 2-D
    ``(N, C, *spatial)`` with ``axis=1`` (channels-first), or ``(N, *spatial, C)`` / ``(N, F)``
    with ``axis=-1`` (channels-last).
running_mean, running_var : ndarray, optional
    Shape ``(C,)``, both float32 or both float64. Required when ``training=False``. When
    training, they are updated in place: ``running = (1 - momentum) * running + momentum *
    batch``, with the **unbiased** batch variance for ``running_var`` (as PyTorch).
weight, bias : ndarray, optional
    Shape ``(C,)``, dtype of x.
training : bool
    True: normalize with this batch's mean and biased variance. False: with the running ones.
momentum : float
    In [0, 1]. For PyTorch's cumulative average (``momentum=None``), pass
    ``1 / num_batches_tracked``.
eps : float
    Finite and at least ``np.finfo(x.dtype).tiny``.
axis : int
    The channel axis.
out : ndarray, optional
    Destination with x's shape and dtype; may be ``x``.

Raises
------
ValueError
    Training with one value per channel ("Expected more than 1 value per channel when
    training"; use streaming statistics for one sample at a time), eval without running
    statistics, non-finite or negative running statistics in eval, bad shapes, eps or momentum.
    A rejected call changes nothing, running arrays included.
TypeError
    Arrays of the wrong dtype (weight / bias other than x's, running statistics of two dtypes).

Notes
-----
Training reads x twice (statistics in L1-sized chunks, then the normalization) and writes it
once. NaN / Inf in x propagate to their channel, running statistics included, as in PyTorch.
Eval folds the running statistics, weight and bias into one scale and offset per channel; each
thread remembers its last fold (up to 4096 channels), keyed by the arrays' contents, so repeated
calls with equal arrays skip it and arrays changed in place are seen.
)doc";

inline constexpr const char* batch_stats = R"doc(batch_stats(x, *, axis=1)

Per-channel batch statistics over every axis except ``axis``.

Returns
-------
mean, var : ndarray of float64, shape (C,)
    Accumulated in double whatever x's dtype; ``var`` is the biased (population) variance.
count : int
    Values per channel.
)doc";

inline constexpr const char* fold_batch_norm = R"doc(fold_batch_norm(running_mean, running_var, weight=None, bias=None, *, eps=1e-5)

Fold frozen BatchNorm statistics into one per-channel scale and shift for :func:`scale_shift`:
``scale = weight / sqrt(running_var + eps)``, ``shift = bias - running_mean * scale``, in the dtype
of running_mean. Note that ``x * scale + shift`` loses precision when x and running_mean carry a
large common offset; :func:`batch_norm` with ``training=False`` subtracts the mean first.
)doc";

inline constexpr const char* scale_shift = R"doc(scale_shift(x, scale, shift, *, axis=1, out=None)

Per-channel ``x * scale + shift`` along the channel ``axis`` (frozen-inference BatchNorm with the
statistics folded by :func:`fold_batch_norm`). scale and shift have shape ``(C,)`` and x's dtype.
)doc";

inline constexpr const char* set_output_cache_limit = R"doc(set_output_cache_limit(nbytes)

Set how many bytes of unused output memory simdnorm may keep for reuse (process-wide).

Outputs of 1 MiB or more that simdnorm allocates itself (no ``out=``) come from a cache of
2 MiB-aligned blocks: when such an array and all its views are gone, its block is kept for the
next large output of a fitting size (at least its size, at most twice it) instead of being
returned to the operating system, which would make the next call page-fault and zero the whole
output again. This limit bounds the blocks kept while unused (oldest dropped first); blocks in
use are not counted. Smaller outputs and ``out=`` arrays never involve the cache.

Parameters
----------
nbytes : int
    Limit in bytes, >= 0. ``0`` disables the cache and frees every unused block now; lowering
    the limit frees the oldest unused blocks beyond it now. Default 256 MiB, or
    ``SIMDNORM_OUTPUT_CACHE_BYTES`` at import.

Returns
-------
previous : int
    The limit before the call.

Notes
-----
A cached output is an ordinary writeable ndarray whose ``base`` is a capsule owning the block
(``flags.owndata`` is False, so ``ndarray.resize`` refuses it; ``np.resize`` works).
)doc";

inline constexpr const char* get_output_cache_limit = R"doc(get_output_cache_limit() -> int

Bytes of unused output memory simdnorm may keep for reuse; 0 = disabled. See
:func:`set_output_cache_limit`.
)doc";

}  // namespace simdnorm::bindings::docs
