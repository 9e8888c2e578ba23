// Per-sample streaming-statistics loops, included once per ISA namespace (running_stats.cpp for the
// baseline, <isa>/running_stats.cpp with that ISA's flags). No STL, nothing shared across ISAs: every
// symbol lives in the including namespace. See simdnorm/running_stats.hpp for the semantics.
// Expects <cmath>, <cstddef>, <cstdint>.

namespace {

// One exact (Welford) step; y (optional) receives the sample normalized with the new statistics.
// y may be x (each element is read before it is written), so neither is __restrict.
template <class T, bool kWrite>
void welford_step(const T* x, T* y, double* __restrict mean, double* __restrict m2,
                  std::size_t n, std::int64_t new_count, double eps) noexcept {
    const double inv = 1.0 / static_cast<double>(new_count);
    for (std::size_t j = 0; j < n; ++j) {
        const double xd = static_cast<double>(x[j]);
        const double d = xd - mean[j];
        const double m = mean[j] + d * inv;
        const double centered = xd - m;
        const double s = m2[j] + d * centered;
        mean[j] = m;
        m2[j] = s;
        if constexpr (kWrite) {
            if constexpr (sizeof(T) == 4) {
                // float32 output: one float sqrt and divide (a few ulp) instead of double ones (~2x the cost)
                y[j] = static_cast<float>(centered) / std::sqrt(static_cast<float>(s * inv + eps));
            } else {
                y[j] = static_cast<T>(centered / std::sqrt(s * inv + eps));
            }
        }
    }
}

// One exponentially weighted step (count > 0 before it).
template <class T, bool kWrite>
void momentum_step(const T* x, T* y, double* __restrict mean, double* __restrict var,
                   std::size_t n, double a, double eps) noexcept {
    const double keep = 1.0 - a;
    for (std::size_t j = 0; j < n; ++j) {
        const double xd = static_cast<double>(x[j]);
        const double d = xd - mean[j];
        const double m = mean[j] + a * d;
        const double v = keep * (var[j] + a * d * d);
        mean[j] = m;
        var[j] = v;
        if constexpr (kWrite) {
            const double centered = xd - m;
            if constexpr (sizeof(T) == 4) {
                y[j] = static_cast<float>(centered) / std::sqrt(static_cast<float>(v + eps));
            } else {
                y[j] = static_cast<T>(centered / std::sqrt(v + eps));
            }
        }
    }
}

}  // namespace

// Entry points (one sample; y == nullptr: update only). y may equal x.
void running_welford_f32(const float* x, float* y, double* mean, double* m2, std::size_t n, std::int64_t new_count,
                         double eps) noexcept {
    if (y) welford_step<float, true>(x, y, mean, m2, n, new_count, eps);
    else welford_step<float, false>(x, y, mean, m2, n, new_count, eps);
}
void running_welford_f64(const double* x, double* y, double* mean, double* m2, std::size_t n,
                         std::int64_t new_count, double eps) noexcept {
    if (y) welford_step<double, true>(x, y, mean, m2, n, new_count, eps);
    else welford_step<double, false>(x, y, mean, m2, n, new_count, eps);
}
void running_momentum_f32(const float* x, float* y, double* mean, double* var, std::size_t n, double a,
                          double eps) noexcept {
    if (y) momentum_step<float, true>(x, y, mean, var, n, a, eps);
    else momentum_step<float, false>(x, y, mean, var, n, a, eps);
}
void running_momentum_f64(const double* x, double* y, double* mean, double* var, std::size_t n, double a,
                          double eps) noexcept {
    if (y) momentum_step<double, true>(x, y, mean, var, n, a, eps);
    else momentum_step<double, false>(x, y, mean, var, n, a, eps);
}
