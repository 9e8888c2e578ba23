// NumPy-style docstrings of the module classes (LayerNorm, RMSNorm, BatchNorm).
#pragma once

namespace simdnorm::bindings::docs {

#define SIMDNORM_PARAMETER_STATE_NOTE                                                                          \
    "Parameters and buffers\n"                                                                                  \
    "----------------------\n"                                                                                  \
    "The arrays returned by the attributes are **read-only views** of the module's own memory (their\n"        \
    "``writeable`` flag is off and cannot be turned back on), so an in-place write such as\n"                  \
    "``m.weight[:] = w`` raises instead of leaving a stale result. Change them through the property\n"         \
    "setters (``m.weight = w``) or :meth:`load_state_dict`; both validate every value first, copy it into\n"  \
    "the module (converting to the module's dtype) and invalidate anything cached, and a rejected value\n"     \
    "changes nothing. The views stay valid and show later updates (training steps, setters).\n"               \
    "``state_dict()`` returns writeable copies with PyTorch's key names and shapes.\n"                         \
    "\n"                                                                                                        \
    "A module may be called from several threads at once; changing its parameters while another thread is\n"  \
    "calling it is not supported (as in PyTorch).\n"

inline constexpr const char* layer_norm_module =
    "LayerNorm(normalized_shape, eps=1e-5, elementwise_affine=True, bias=True, dtype=numpy.float32)\n"
    "\n"
    "Layer normalization over the trailing ``normalized_shape`` axes, as ``torch.nn.LayerNorm``.\n"
    "\n"
    "Call it as ``m(x, out=None)``: ``x`` has the module's dtype (other float arrays raise ``TypeError``;\n"
    "lists are converted) and ``x.shape[-len(normalized_shape):] == normalized_shape``. The call is bound\n"
    "directly in C++ and runs :func:`simdnorm.layer_norm`'s kernels.\n"
    "\n"
    "Attributes\n"
    "----------\n"
    "weight, bias : ndarray or None\n"
    "    Shape ``normalized_shape`` (ones and zeros initially); None when ``elementwise_affine=False``\n"
    "    (``bias`` also when ``bias=False``).\n"
    "\n" SIMDNORM_PARAMETER_STATE_NOTE;

inline constexpr const char* rms_norm_module =
    "RMSNorm(normalized_shape, eps=1e-6, elementwise_affine=True, dtype=numpy.float32)\n"
    "\n"
    "RMS normalization over the trailing ``normalized_shape`` axes, as ``torch.nn.RMSNorm``:\n"
    "``x / sqrt(mean(x**2) + eps) * weight``. ``eps=None`` means the dtype's machine epsilon\n"
    "(PyTorch's default).\n"
    "\n"
    "Call it as ``m(x, out=None)`` (bound directly in C++, :func:`simdnorm.rms_norm`'s kernels).\n"
    "\n"
    "Attributes\n"
    "----------\n"
    "weight : ndarray or None\n"
    "    Shape ``normalized_shape``, ones initially; None when ``elementwise_affine=False``.\n"
    "\n" SIMDNORM_PARAMETER_STATE_NOTE;

inline constexpr const char* batch_norm_module =
    "BatchNorm(num_features, eps=1e-5, momentum=0.1, affine=True, track_running_stats=True, axis=1,\n"
    "          dtype=numpy.float32, *, bias=True)\n"
    "\n"
    "Batch normalization over every axis except the channel ``axis``, following\n"
    "``torch.nn.BatchNorm1d/2d/3d`` step for step (``axis=1``: ``(N, C)``, ``(N, C, L)``,\n"
    "``(N, C, H, W)``; ``axis=-1``: channels-last).\n"
    "\n"
    "Training mode (the initial mode, ``train()``): normalizes with the batch mean and biased variance;\n"
    "with ``track_running_stats`` it increments ``num_batches_tracked`` and updates\n"
    "``running = (1 - f) * running + f * batch`` with the **unbiased** batch variance for ``running_var``,\n"
    "where ``f = momentum``, or ``f = 1 / num_batches_tracked`` (cumulative moving average) when\n"
    "``momentum=None``. Eval mode (``eval()``): normalizes with the running statistics, folded once into a\n"
    "per-channel scale and shift that is cached until a parameter, statistic or ``eps`` changes. With\n"
    "``track_running_stats=False`` there are no running statistics (``running_mean`` etc. are None) and\n"
    "batch statistics are used in eval mode too.\n"
    "\n"
    "Call it as ``m(x, out=None)`` (bound directly in C++). A rejected call (wrong dtype or channel\n"
    "count, one value per channel when using batch statistics, bad ``out``) changes nothing.\n"
    "\n"
    ":meth:`as_frozen` and :meth:`from_running_stats` give a *frozen* inference-only BatchNorm\n"
    "(``frozen`` is True; ``train()`` raises ``RuntimeError``).\n"
    "\n"
    "Attributes\n"
    "----------\n"
    "weight, bias : ndarray or None\n"
    "    Shape ``(num_features,)``; None when ``affine=False`` (``bias`` also when ``bias=False``).\n"
    "running_mean, running_var : ndarray or None\n"
    "    Shape ``(num_features,)`` in the module's dtype (zeros and ones initially); None when\n"
    "    ``track_running_stats=False``.\n"
    "num_batches_tracked : ndarray or None\n"
    "    0-d int64 array.\n"
    "\n" SIMDNORM_PARAMETER_STATE_NOTE;

#undef SIMDNORM_PARAMETER_STATE_NOTE

inline constexpr const char* module_call = R"doc(__call__(x, out=None)

Normalizes x. ``out``: optional destination with x's shape and dtype (may be x itself).

Without ``out``, a small result (below 128 KiB) may be the array this module returned before,
rewritten: the module keeps its last result and reuses it only once nothing else references it.
)doc";

inline constexpr const char* state_dict = R"doc(state_dict() -> dict[str, ndarray]

Copies of the parameters and buffers under PyTorch's key names and shapes (buffers that are None
are left out, as in PyTorch).
)doc";

inline constexpr const char* load_state_dict = R"doc(load_state_dict(state_dict, strict=True)

Loads arrays (NumPy arrays, or anything ``numpy.asarray`` accepts such as CPU torch tensors) under
PyTorch's key names. Values are converted to the module's dtype; shapes must match exactly. A
missing ``num_batches_tracked`` keeps the current value (as PyTorch). With ``strict=True`` missing
or unexpected keys raise ``ValueError``; with ``strict=False`` they are ignored. Every value is
validated before anything is written: on any error the module is unchanged.
)doc";

inline constexpr const char* as_frozen = R"doc(as_frozen() -> BatchNorm

A new frozen, inference-only copy (eval mode; ``train()`` raises) with copies of this module's
parameters and running statistics. Requires ``track_running_stats=True``.
)doc";

inline constexpr const char* from_running_stats = R"doc(from_running_stats(stats, weight=None, bias=None, eps=None, axis=1, dtype=numpy.float32) -> BatchNorm

A frozen inference BatchNorm from streaming statistics (``simdnorm.RunningStats`` or any object with
``mean``, ``var`` (population variance) and ``count``): ``running_mean = stats.mean``,
``running_var = stats.var``, so ``m(x)`` equals ``stats.normalize(x) * weight + bias``. ``eps=None``
takes ``stats.eps`` when it exists, else 1e-5. The module is affine when weight or bias is given
(the other one defaults to ones / zeros). Raises ``ValueError`` when ``stats.count == 0``.
)doc";

}  // namespace simdnorm::bindings::docs
