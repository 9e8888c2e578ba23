// Streaming statistics: Welford / Chan (exact) and exponentially weighted (momentum) updates.
// Baseline flags; the per-feature loops are written so the compiler vectorizes them (no
// reductions across features, no branches inside them).
#include "simdnorm/running_stats.hpp"

#include "simdnorm/isa.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

namespace simdnorm {
namespace baseline {
#include "running_stats_steps.inl"
}  // namespace baseline
#if SIMDNORM_HAVE_AVX2
namespace avx2 {
void running_welford_f32(const float*, float*, double*, double*, std::size_t, std::int64_t, double) noexcept;
void running_welford_f64(const double*, double*, double*, double*, std::size_t, std::int64_t, double) noexcept;
void running_momentum_f32(const float*, float*, double*, double*, std::size_t, double, double) noexcept;
void running_momentum_f64(const double*, double*, double*, double*, std::size_t, double, double) noexcept;
}  // namespace avx2
#endif

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// x - x is 0 for finite values and NaN for NaN / Inf; the comparison vectorizes.
template <class T>
bool all_finite(const T* __restrict x, std::size_t n) noexcept {
    int ok = 1;
    for (std::size_t j = 0; j < n; ++j) ok &= (x[j] - x[j] == T(0));
    return ok != 0;
}

template <class T>
bool find_nonfinite(const T* x, std::size_t rows, std::ptrdiff_t row_stride, std::size_t n,
                    NonFiniteHit* hit) noexcept {
    for (std::size_t r = 0; r < rows; ++r) {
        const T* row = x + static_cast<std::ptrdiff_t>(r) * row_stride;
        if (all_finite(row, n)) continue;
        for (std::size_t j = 0; j < n; ++j) {
            if (!std::isfinite(row[j])) {
                if (hit) *hit = NonFiniteHit{true, r, j, static_cast<double>(row[j])};
                return true;
            }
        }
    }
    return false;
}

// One sample through the active ISA's loops (AVX2 on AVX2 / AVX-512 machines, the baseline build
// otherwise; SIMDNORM_ISA / use_isa() apply). y == nullptr: update only.
#if SIMDNORM_HAVE_AVX2
bool use_avx2() noexcept {
    const Isa isa = active_isa();
    return isa == Isa::avx2 || isa == Isa::avx512;
}
#endif

void welford_step(const float* x, float* y, double* mean, double* m2, std::size_t n, std::int64_t c, double eps) noexcept {
#if SIMDNORM_HAVE_AVX2
    if (use_avx2()) return avx2::running_welford_f32(x, y, mean, m2, n, c, eps);
#endif
    baseline::running_welford_f32(x, y, mean, m2, n, c, eps);
}
void welford_step(const double* x, double* y, double* mean, double* m2, std::size_t n, std::int64_t c, double eps) noexcept {
#if SIMDNORM_HAVE_AVX2
    if (use_avx2()) return avx2::running_welford_f64(x, y, mean, m2, n, c, eps);
#endif
    baseline::running_welford_f64(x, y, mean, m2, n, c, eps);
}
void momentum_step(const float* x, float* y, double* mean, double* var, std::size_t n, double a, double eps) noexcept {
#if SIMDNORM_HAVE_AVX2
    if (use_avx2()) return avx2::running_momentum_f32(x, y, mean, var, n, a, eps);
#endif
    baseline::running_momentum_f32(x, y, mean, var, n, a, eps);
}
void momentum_step(const double* x, double* y, double* mean, double* var, std::size_t n, double a, double eps) noexcept {
#if SIMDNORM_HAVE_AVX2
    if (use_avx2()) return avx2::running_momentum_f64(x, y, mean, var, n, a, eps);
#endif
    baseline::running_momentum_f64(x, y, mean, var, n, a, eps);
}

// The first sample of momentum mode: mean = x, var = 0 (its normalized value is 0).
template <class T>
void momentum_first(const T* __restrict x, double* __restrict mean, double* __restrict var, std::size_t n) noexcept {
    for (std::size_t j = 0; j < n; ++j) {
        mean[j] = static_cast<double>(x[j]);
        var[j] = 0.0;
    }
}

// Normalizes the rows with rstd computed per block of features (same formula as fill_rstd, so the
// bits match a cached rstd).
constexpr std::size_t kRstdBlock = 256;

template <class T>
void normalize_rows(const T* x, T* y, std::size_t rows, std::ptrdiff_t x_row_stride, std::ptrdiff_t y_row_stride,
                    std::size_t n, const double* __restrict mean, const double* __restrict rstd) noexcept {
    for (std::size_t r = 0; r < rows; ++r) {
        const T* row = x + static_cast<std::ptrdiff_t>(r) * x_row_stride;
        T* out = y + static_cast<std::ptrdiff_t>(r) * y_row_stride;
        // Same-index reads and writes: in-place (row == out) is safe.
        for (std::size_t j = 0; j < n; ++j) out[j] = static_cast<T>((static_cast<double>(row[j]) - mean[j]) * rstd[j]);
    }
}

void rstd_block(const double* __restrict second, double scale, double eps, double* __restrict rstd,
                std::size_t n) noexcept {
    for (std::size_t j = 0; j < n; ++j) rstd[j] = 1.0 / std::sqrt(second[j] * scale + eps);
}

double var_scale(const RunningStatsRef& s) noexcept {
    return s.exact() ? 1.0 / static_cast<double>(*s.count) : 1.0;
}

}  // namespace

const char* nonfinite_name(NonFinite policy) noexcept {
    switch (policy) {
        case NonFinite::raise: return "raise";
        case NonFinite::ignore: return "ignore";
        case NonFinite::propagate: return "propagate";
    }
    return "raise";
}

bool parse_nonfinite(const std::string& name, NonFinite* policy) noexcept {
    if (name == "raise") *policy = NonFinite::raise;
    else if (name == "ignore") *policy = NonFinite::ignore;
    else if (name == "propagate") *policy = NonFinite::propagate;
    else return false;
    return true;
}

namespace running {

void merge(const RunningStatsRef& s, std::int64_t other_count, const double* other_mean,
           const double* other_m2) noexcept {
    if (other_count <= 0) return;
    const std::size_t n = s.num_features;
    if (*s.count == 0) {
        std::copy(other_mean, other_mean + n, s.mean);
        std::copy(other_m2, other_m2 + n, s.second);
        *s.count = other_count;
        return;
    }
    const double na = static_cast<double>(*s.count), nb = static_cast<double>(other_count);
    const double total = na + nb;
    const double weight_b = nb / total, cross = na * nb / total;
    double* __restrict mean = s.mean;
    double* __restrict m2 = s.second;
    for (std::size_t j = 0; j < n; ++j) {
        const double delta = other_mean[j] - mean[j];
        mean[j] += delta * weight_b;
        m2[j] += other_m2[j] + delta * delta * cross;
    }
    *s.count += other_count;
}

namespace {

template <class T>
std::size_t update_batch_exact(const RunningStatsRef& s, const T* x, std::size_t rows, std::ptrdiff_t row_stride,
                               double* scratch) noexcept {
    const std::size_t n = s.num_features;
    const bool skip_bad = s.policy == NonFinite::ignore;
    double* __restrict bmean = scratch;
    double* __restrict bm2 = scratch + n;
    double* __restrict corr = scratch + 2 * n;
    std::fill(scratch, scratch + 3 * n, 0.0);
    std::size_t used = 0;
    for (std::size_t r = 0; r < rows; ++r) {
        const T* __restrict row = x + static_cast<std::ptrdiff_t>(r) * row_stride;
        if (skip_bad && !all_finite(row, n)) continue;
        ++used;
        for (std::size_t j = 0; j < n; ++j) bmean[j] += static_cast<double>(row[j]);
    }
    if (used == 0) return 0;
    const double nb = static_cast<double>(used);
    for (std::size_t j = 0; j < n; ++j) bmean[j] /= nb;
    for (std::size_t r = 0; r < rows; ++r) {
        const T* __restrict row = x + static_cast<std::ptrdiff_t>(r) * row_stride;
        if (skip_bad && !all_finite(row, n)) continue;
        for (std::size_t j = 0; j < n; ++j) {
            const double d = static_cast<double>(row[j]) - bmean[j];
            corr[j] += d;
            bm2[j] += d * d;
        }
    }
    for (std::size_t j = 0; j < n; ++j) bm2[j] = std::max(bm2[j] - corr[j] * corr[j] / nb, 0.0);
    merge(s, static_cast<std::int64_t>(used), bmean, bm2);
    return used;
}

}  // namespace

template <class T>
std::size_t update(const RunningStatsRef& s, const T* x, std::size_t rows, std::ptrdiff_t row_stride,
                   NonFiniteHit* hit, double* scratch) noexcept {
    if (hit) *hit = NonFiniteHit{};
    if (rows == 0) return 0;
    const std::size_t n = s.num_features;
    if (s.policy == NonFinite::raise && find_nonfinite(x, rows, row_stride, n, hit)) return 0;
    if (s.exact() && rows > 1 && scratch) return update_batch_exact(s, x, rows, row_stride, scratch);
    std::size_t used = 0;
    for (std::size_t r = 0; r < rows; ++r) {
        const T* row = x + static_cast<std::ptrdiff_t>(r) * row_stride;
        if (s.policy == NonFinite::ignore && !all_finite(row, n)) continue;
        ++used;
        if (s.exact()) {
            welford_step(row, static_cast<T*>(nullptr), s.mean, s.second, n, *s.count + 1, 0.0);
        } else if (*s.count == 0) {
            momentum_first(row, s.mean, s.second, n);
        } else {
            momentum_step(row, static_cast<T*>(nullptr), s.mean, s.second, n, s.momentum, 0.0);
        }
        ++*s.count;
    }
    return used;
}

void fill_rstd(const RunningStatsRef& s, double eps, double* rstd) noexcept {
    rstd_block(s.second, var_scale(s), eps, rstd, s.num_features);
}

template <class T>
void normalize(const RunningStatsRef& s, const T* x, T* y, std::size_t rows, std::ptrdiff_t x_row_stride,
               std::ptrdiff_t y_row_stride, double eps, const double* rstd) noexcept {
    if (*s.count == 0) return;
    const std::size_t n = s.num_features;
    if (rstd) return normalize_rows(x, y, rows, x_row_stride, y_row_stride, n, s.mean, rstd);
    if (eps <= 0.0) eps = s.eps;
    const double scale = var_scale(s);
    double block[kRstdBlock];
    for (std::size_t first = 0; first < n; first += kRstdBlock) {
        const std::size_t count = std::min(kRstdBlock, n - first);
        rstd_block(s.second + first, scale, eps, block, count);
        normalize_rows(x + first, y + first, rows, x_row_stride, y_row_stride, count, s.mean + first, block);
    }
}

template <class T>
bool update_normalize(const RunningStatsRef& s, const T* x, T* y, std::size_t rows, std::ptrdiff_t x_row_stride,
                      std::ptrdiff_t y_row_stride, NonFiniteHit* hit, double* scratch) noexcept {
    const std::size_t n = s.num_features;
    const bool fused = rows == 1 && *s.count > 0 && (s.policy != NonFinite::ignore || all_finite(x, n));
    if (!fused) {
        NonFiniteHit local;
        update(s, x, rows, x_row_stride, &local, scratch);
        if (hit) *hit = local;
        if (local.found || *s.count == 0) return false;
        normalize(s, x, y, rows, x_row_stride, y_row_stride, s.eps, nullptr);
        return true;
    }
    if (hit) *hit = NonFiniteHit{};
    if (s.policy == NonFinite::raise && find_nonfinite(x, 1, x_row_stride, n, hit)) return false;
    if (s.exact()) {
        welford_step(x, y, s.mean, s.second, n, *s.count + 1, s.eps);
    } else {
        momentum_step(x, y, s.mean, s.second, n, s.momentum, s.eps);
    }
    ++*s.count;
    return true;
}

}  // namespace running

RunningStats::RunningStats(std::size_t num_features, double momentum, double eps, NonFinite policy)
    : mean_(num_features, 0.0), second_(num_features, 0.0), scratch_(3 * num_features, 0.0),
      rstd_(num_features, 0.0), momentum_(momentum > 0.0 ? momentum : 0.0), eps_(eps), policy_(policy) {}

double RunningStats::var(std::size_t j) const noexcept {
    if (count_ == 0) return kNaN;
    return exact() ? second_[j] / static_cast<double>(count_) : second_[j];
}

template <class T>
std::size_t RunningStats::update(const T* x, std::size_t rows, std::ptrdiff_t row_stride, NonFiniteHit* hit) noexcept {
    if (frozen_) {
        if (hit) *hit = NonFiniteHit{};
        return 0;
    }
    const std::size_t used = running::update(ref(), x, rows, row_stride, hit, scratch_.data());
    if (used) rstd_valid_ = false;
    return used;
}

void RunningStats::merge(std::int64_t other_count, const double* other_mean, const double* other_m2) noexcept {
    if (other_count <= 0) return;
    rstd_valid_ = false;
    running::merge(ref(), other_count, other_mean, other_m2);
}

void RunningStats::refresh_rstd(double eps) noexcept {
    if (rstd_valid_ && rstd_eps_ == eps) return;
    running::fill_rstd(ref(), eps, rstd_.data());
    rstd_eps_ = eps;
    rstd_valid_ = true;
}

template <class T>
void RunningStats::normalize(const T* x, T* y, std::size_t rows, std::ptrdiff_t x_row_stride,
                             std::ptrdiff_t y_row_stride, double eps) noexcept {
    if (count_ == 0) return;
    refresh_rstd(eps > 0.0 ? eps : eps_);
    running::normalize(ref(), x, y, rows, x_row_stride, y_row_stride, rstd_eps_, rstd_.data());
}

template <class T>
bool RunningStats::update_normalize(const T* x, T* y, std::size_t rows, std::ptrdiff_t x_row_stride,
                                    std::ptrdiff_t y_row_stride, NonFiniteHit* hit) noexcept {
    if (rows == 1 && !frozen_) {  // one sample: the fused step (or update + normalize when it cannot fuse)
        const std::int64_t before = count_;
        const bool done = running::update_normalize(ref(), x, y, rows, x_row_stride, y_row_stride, hit, scratch_.data());
        if (count_ != before) rstd_valid_ = false;
        return done;
    }
    NonFiniteHit local;
    update(x, rows, x_row_stride, &local);
    if (hit) *hit = local;
    if (local.found || count_ == 0) return false;
    normalize(x, y, rows, x_row_stride, y_row_stride, 0.0);
    return true;
}

void RunningStats::reset() noexcept {
    std::fill(mean_.begin(), mean_.end(), 0.0);
    std::fill(second_.begin(), second_.end(), 0.0);
    count_ = 0;
    rstd_valid_ = false;
}

std::string RunningStats::check_state(std::size_t num_features, bool exact, NonFinite policy, std::int64_t count,
                                      const double* mean, const double* second) {
    if (count < 0) return "count must be >= 0, got " + std::to_string(count);
    const char* second_name = exact ? "m2" : "var";
    for (std::size_t j = 0; j < num_features; ++j) {
        if (count == 0 && (mean[j] != 0.0 || second[j] != 0.0)) {
            return std::string("count is 0 but mean / ") + second_name + " are not all 0 (feature " +
                   std::to_string(j) + ")";
        }
        if (std::isnan(second[j]) || std::isnan(mean[j]) || std::isinf(second[j]) || std::isinf(mean[j])) {
            if (policy != NonFinite::propagate) {
                return std::string("mean / ") + second_name + " hold a non-finite value at feature " +
                       std::to_string(j) + " (only possible with nonfinite='propagate')";
            }
            continue;
        }
        if (second[j] < 0.0) {
            return std::string(second_name) + " must be >= 0, got " + std::to_string(second[j]) + " at feature " +
                   std::to_string(j);
        }
    }
    return "";
}

void RunningStats::set_config(double momentum, double eps, NonFinite policy) noexcept {
    momentum_ = momentum > 0.0 ? momentum : 0.0;
    eps_ = eps;
    policy_ = policy;
    rstd_valid_ = false;
}

void RunningStats::set_state(std::int64_t count, const double* mean, const double* second) noexcept {
    std::copy(mean, mean + num_features(), mean_.begin());
    std::copy(second, second + num_features(), second_.begin());
    count_ = count;
    rstd_valid_ = false;
}

#define SIMDNORM_INSTANTIATE(T)                                                                                 \
    template std::size_t RunningStats::update<T>(const T*, std::size_t, std::ptrdiff_t, NonFiniteHit*) noexcept; \
    template void RunningStats::normalize<T>(const T*, T*, std::size_t, std::ptrdiff_t, std::ptrdiff_t,         \
                                             double) noexcept;                                                  \
    template bool RunningStats::update_normalize<T>(const T*, T*, std::size_t, std::ptrdiff_t, std::ptrdiff_t,  \
                                                    NonFiniteHit*) noexcept;
SIMDNORM_INSTANTIATE(float)
SIMDNORM_INSTANTIATE(double)
#undef SIMDNORM_INSTANTIATE

#define SIMDNORM_INSTANTIATE(T)                                                                                    \
    template std::size_t running::update<T>(const RunningStatsRef&, const T*, std::size_t, std::ptrdiff_t,        \
                                            NonFiniteHit*, double*) noexcept;                                     \
    template void running::normalize<T>(const RunningStatsRef&, const T*, T*, std::size_t, std::ptrdiff_t,        \
                                        std::ptrdiff_t, double, const double*) noexcept;                          \
    template bool running::update_normalize<T>(const RunningStatsRef&, const T*, T*, std::size_t, std::ptrdiff_t, \
                                               std::ptrdiff_t, NonFiniteHit*, double*) noexcept;
SIMDNORM_INSTANTIATE(float)
SIMDNORM_INSTANTIATE(double)
#undef SIMDNORM_INSTANTIATE

}  // namespace simdnorm
