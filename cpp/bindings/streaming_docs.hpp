// NumPy-style docstrings of simdnorm.RunningStats (kept apart so the binding code stays short).
#pragma once

namespace simdnorm::bindings::docs {

inline constexpr const char* running_stats = R"doc(RunningStats(num_features, *, momentum=None, eps=1e-5, nonfinite="raise")

Per-feature running mean and variance of a stream, updated and applied one sample at a time.

Parameters
----------
num_features : int
    F, the length of one sample (>= 1).
momentum : float or None
    None: exact statistics of everything seen (Welford per sample, Chan's combination for a
    batch, so a batch equals its samples fed one at a time up to rounding). A float ``a`` with
    ``0 < a <= 1``: exponentially weighted statistics, ``a`` weighting the NEW sample (PyTorch's
    convention). The first sample sets ``mean = x, var = 0``; each next one does
    ``d = x - mean; mean += a*d; var = (1-a)*(var + a*d*d)`` (never negative); a batch is B
    such steps in row order.
eps : float
    Default eps of :meth:`normalize`; finite and > 0.
nonfinite : {"raise", "ignore", "propagate"}
    What a NaN / Inf in an update does. "raise" (default): ValueError naming the first bad value,
    nothing changes (the whole batch is checked first). "ignore": every sample (row) holding a
    non-finite value is skipped, the others are used. "propagate": the values enter the
    statistics (which become NaN / Inf, as in PyTorch).

Notes
-----
State: ``count`` (int64) and ``mean`` / M2 (or the variance in momentum mode) in float64,
whatever the input dtype; outputs keep the input dtype (float32 or float64, other dtypes raise
TypeError, never converted silently). Samples are ``(F,)``, batches ``(B, F)``.

Every method is bound in C++; ``update``, ``normalize`` and ``update_normalize`` are vectorcall
(METH_FASTCALL) method descriptors that skip pybind11's generic dispatcher, so one call costs
less than an empty pybind11 method. Per sample, ``update_normalize(x, out=out)`` allocates nothing;
without ``out``, a result below 128 KiB may be the array an earlier call returned, rewritten: the
object keeps its last result and reuses it only once nothing else references it.
Calls are thread-safe: each object has a lock; small calls keep the GIL, batches of 4096 values
or more release it while they hold the object's lock, and property reads take the lock too, so
concurrent updates lose nothing and reads see a consistent state.

Pickling and ``copy.deepcopy`` restore the object bit for bit (state, configuration, frozen flag),
as ``load_state_dict(state_dict())`` does.
)doc";

inline constexpr const char* update = R"doc(update(x)

Adds one sample ``(F,)`` or a batch ``(B, F)`` (float32 or float64) to the statistics.

Does nothing while frozen. Raises ValueError (wrong ndim, wrong feature count, NaN / Inf with
nonfinite="raise") or TypeError (dtype) and then leaves the statistics untouched.
)doc";

inline constexpr const char* normalize = R"doc(normalize(x, out=None, *, eps=None)

``(x - mean) / sqrt(var + eps)`` with the current population variance; ``eps=None`` means the
constructor's eps. x is ``(F,)`` or ``(B, F)``; ``out`` has x's shape and dtype and may be x.
Computed in double from the float64 statistics, rounded once to x's dtype.

Raises ValueError when ``count == 0`` (no statistics yet). NaN / Inf in x propagate to their own
outputs (normalize never updates, so ``nonfinite`` does not apply).
)doc";

inline constexpr const char* update_normalize = R"doc(update_normalize(x, out=None)

``update(x)`` then ``normalize(x, out)`` with the updated statistics (river's ``learn_one`` +
``transform_one``, scikit-learn's ``partial_fit`` + ``transform``). One call, one pass over x for a
single sample, no allocation when ``out`` is given. While frozen it only normalizes.

The first sample of a stream normalizes to 0 (its variance is 0). Errors are checked before
anything changes: a rejected call leaves the statistics and ``out`` untouched.
)doc";

inline constexpr const char* merge = R"doc(merge(other)

Adds the statistics of ``other``, a RunningStats over disjoint data with the same num_features
(Chan's parallel combination), so per-worker statistics merge into those of the whole stream.
``other`` is not changed; ``rs.merge(rs)`` counts every sample twice.

Raises ValueError in momentum mode (either object: an exponentially weighted state has no exact
combination), on a feature-count mismatch, or when this object is frozen; TypeError when other
is not a RunningStats. Nothing changes on error.
)doc";

inline constexpr const char* state_dict = R"doc(state_dict() -> dict

Everything needed to restore this object exactly: ``num_features`` (int), ``momentum`` (float or
None), ``eps`` (float), ``nonfinite`` (str), ``frozen`` (bool), ``count`` (int), ``mean`` (float64
array (F,)) and, in exact mode, ``m2`` (float64 (F,), the sum of squared deviations) or, in
momentum mode, ``var`` (float64 (F,)). Arrays are copies.
)doc";

inline constexpr const char* load_state_dict = R"doc(load_state_dict(state)

Restores a :meth:`state_dict`. ``count``, ``mean`` and ``m2`` / ``var`` are required; the
configuration keys are optional (absent ones keep this object's values) and replace it when
present; ``num_features`` must equal this object's. The whole dict is validated first (types,
unknown keys, shapes, count >= 0, non-negative m2 / var, all zeros when count == 0, finite values
unless nonfinite="propagate"): on any error it raises (TypeError / ValueError) and nothing changes.
)doc";

}  // namespace simdnorm::bindings::docs
