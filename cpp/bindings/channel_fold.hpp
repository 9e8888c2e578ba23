// Folding of running statistics for the eval path (generic/channel_fold.inl holds the loops; the
// training path folds through simdnorm::fold_batch_moments at the active variant's width), and
// the running statistics' validity checks. Shared by the functional batch_norm and the BatchNorm
// module, so that both give the same bits.
#pragma once

#include <pybind11/pybind11.h>

#include <cfloat>
#include <cmath>
#include <cstddef>
#include <string>

namespace simdnorm::bindings {

#include "generic/channel_fold.inl"  // the fold loops, in this namespace

// True when every running mean is finite and every running variance finite and >= 0, tested on
// the values rounded to float: float-lane compares vectorize with SSE2 (double-lane ones do not,
// and a scalar loop costs ~0.5 us at 768 float64 channels). The test is conservative: it may
// answer false for valid extremes (float64 values beyond float's range, a -0.0 variance), and
// callers then run the exact per-channel check, which also names the channel.
template <class S>
bool running_stats_plainly_valid(std::size_t channels, const S* mean, const S* var) {
    int flagged = 0;
    for (std::size_t c = 0; c < channels; ++c) {
        const float m = static_cast<float>(mean[c]), v = static_cast<float>(var[c]);
        flagged |= !(std::fabs(m) <= FLT_MAX) | !(v <= FLT_MAX) | std::signbit(v);  // NaN fails <=
    }
    return flagged == 0;
}

// ValueError naming the first channel whose running mean is not finite or whose running variance
// is not finite and >= 0 (eval reads them: functional batch_norm and the BatchNorm module alike).
template <class S>
void check_running_stats(std::size_t channels, const S* mean, const S* var) {
    if (running_stats_plainly_valid(channels, mean, var)) return;
    for (std::size_t c = 0; c < channels; ++c) {
        if (!std::isfinite(mean[c])) throw pybind11::value_error("running_mean must be finite, channel " + std::to_string(c) + " is not");
        if (!std::isfinite(var[c]) || var[c] < S(0)) {
            throw pybind11::value_error("running_var must be finite and >= 0, channel " + std::to_string(c) + " is not");
        }
    }
}

}  // namespace simdnorm::bindings
