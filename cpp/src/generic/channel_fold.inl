// Folds per-channel statistics and the optional weight / bias into the (center, scale, offset)
// arguments of channel_affine, one pass over the channels written so that it vectorizes. Included
// inside a namespace of its own by each user: the ISA variants' kernels.cpp (fold_batch_moments,
// the training path, vectorized at the variant's width) and the bindings (channel_fold.hpp: the
// eval path's running statistics, SSE2 on x86-64). No FMA contraction on either side (the core
// and the bindings build with -ffp-contract=off), so both round alike. No inline library function
// here (std::fabs, std::isfinite): compiled into the AVX translation units too, its one linked copy
// could be the AVX one. Needs <cmath> (std::sqrt: a libm call, no such copy) and <cstddef>.

// Folding the mean into the offset (y = x * scale + offset, one FMA, no center) costs about
// |mean * scale| ulps of the output; up to this many output units that stays below ~1e-6 for
// float32, so only inputs whose mean sits far from zero in units of their std need the center.
constexpr double kFoldableShift = 16.0;

// Running statistics of dtype S (float32 or float64, whatever x's dtype), contiguous.
template <class S>
struct RunningStatsSource {
    const S* mean;
    const S* var;
    double eps;
    double mean_at(std::size_t c) const { return double(mean[c]); }
    double inv_std_at(std::size_t c) const { return 1.0 / std::sqrt(double(var[c]) + eps); }
};

#include "generic/count_division.inl"

// Batch moments from batch_stats: mean and M2 of `count` values per channel (biased variance).
// ByInverse: `divisor` holds 1 / count, exact (CountDivisor), and m2 / count is a multiply with the
// divide's bits; the choice is a template flag so that the fold's loop stays one vectorized loop.
template <bool ByInverse>
struct BatchMomentsSource {
    const double* mean;
    const double* m2;
    double divisor;  // count, or 1 / count when ByInverse
    double eps;
    double mean_at(std::size_t c) const { return mean[c]; }
    double inv_std_at(std::size_t c) const {
        return 1.0 / std::sqrt((ByInverse ? m2[c] * divisor : m2[c] / divisor) + eps);
    }
};

namespace detail {

// scale = inv_std * weight, offset = bias - mean * scale, all in double, rounded once to T; center
// zero. Absent weight / bias are template flags rather than per-channel branches, which keeps the
// loop vectorizable (`* 1.0` and `0.0 - shift` round like the general formula). Returns whether
// some channel may need the center: |float(mean * scale)| >= kFoldableShift flags a superset of
// |mean * scale| > kFoldableShift (and NaN), since rounding to float is monotonic (IEEE: out-of-range
// values become inf); a float-lane compare-and-or vectorizes with SSE2, a double-lane one does not.
template <class T, bool HasWeight, bool HasBias, class Source>
bool fold_uncentered(std::size_t channels, const Source& source, const T* weight, const T* bias, T* __restrict center,
                     T* __restrict scale, T* __restrict offset) {
    int maybe_far = 0;
    for (std::size_t c = 0; c < channels; ++c) {
        const double m = source.mean_at(c);
        const double s = source.inv_std_at(c) * (HasWeight ? double(weight[c]) : 1.0);
        const double shift = m * s;
        const float shift_f = static_cast<float>(shift);  // no std::fabs: see the top of this file
        const float distance = shift_f < 0.0f ? -shift_f : shift_f;  // NaN stays NaN
        maybe_far |= !(distance < static_cast<float>(kFoldableShift));
        center[c] = T(0);
        scale[c] = static_cast<T>(s);
        offset[c] = static_cast<T>((HasBias ? double(bias[c]) : 0.0) - shift);
    }
    return maybe_far != 0;
}

// The exact rule, run only when fold_uncentered flagged a channel: some |mean * scale| above
// kFoldableShift, or NaN.
template <class T, bool HasWeight, class Source>
bool needs_center(std::size_t channels, const Source& source, const T* weight) {
    for (std::size_t c = 0; c < channels; ++c) {
        const double s = source.inv_std_at(c) * (HasWeight ? double(weight[c]) : 1.0);
        const double shift = source.mean_at(c) * s;
        if (!(shift <= kFoldableShift && shift >= -kFoldableShift)) return true;
    }
    return false;
}

// center = mean rounded to T; its rounding remainder goes into the offset, times the scale as
// fold_uncentered rounded it. The remainder is at most half an ulp of the mean, so the scale's own
// rounding moves that product by a few ulps of it, far below the offset's ulp; this pass then needs
// no second inverse square root (all of the fold's cost when the batch is small, e.g. 2 rows, where
// some channel almost always needs the center).
template <class T, bool HasBias, class Source>
void center_folded(std::size_t channels, const Source& source, const T* bias, const T* __restrict scale,
                   T* __restrict center, T* __restrict offset) {
    for (std::size_t c = 0; c < channels; ++c) {
        const double m = source.mean_at(c);
        center[c] = static_cast<T>(m);
        offset[c] = static_cast<T>((HasBias ? double(bias[c]) : 0.0) - (m - double(center[c])) * double(scale[c]));
    }
}

template <class T, bool HasWeight, bool HasBias, class Source>
bool fold(std::size_t channels, const Source& source, const T* weight, const T* bias, T* center, T* scale, T* offset) {
    if (!fold_uncentered<T, HasWeight, HasBias>(channels, source, weight, bias, center, scale, offset)) return false;
    if (!needs_center<T, HasWeight>(channels, source, weight)) return false;
    center_folded<T, HasBias>(channels, source, bias, scale, center, offset);
    return true;
}

}  // namespace detail

// Writes center, scale, offset (length `channels` each) for y = (x - center) * scale + offset.
// Returns whether the center is needed. If not, center is all zeros and offset = bias - mean *
// scale (callers may then pass nullptr as channel_affine's center; this still writes the zeros).
// If it is (some |mean * scale| above kFoldableShift, or NaN), center is the mean rounded to T and
// the rounding remainder goes into the offset, keeping full precision for large means. weight and bias may be null; the outputs must
// not overlap the inputs.
template <class T, class Source>
bool fold_channels(std::size_t channels, const Source& source, const T* weight, const T* bias, T* center, T* scale,
                   T* offset) {
    if (weight && bias) return detail::fold<T, true, true>(channels, source, weight, bias, center, scale, offset);
    if (weight) return detail::fold<T, true, false>(channels, source, weight, bias, center, scale, offset);
    if (bias) return detail::fold<T, false, true>(channels, source, weight, bias, center, scale, offset);
    return detail::fold<T, false, false>(channels, source, weight, bias, center, scale, offset);
}
