// Streaming per-feature statistics (the state behind Python's simdnorm.RunningStats).
//
// Pure C++: no Python, no locking, no allocation after construction. A binding (pybind11 today,
// Cython later) owns one RunningStats per Python object and serializes access to it.
//
// State: count (int64, samples seen), mean and a second moment, both float64 whatever the input:
//   exact mode (momentum unset):  second = M2 = sum((x - mean)^2); var = M2 / count.
//                                 One sample: Welford. A batch: its two-pass mean / M2 in double,
//                                 then Chan's combination, so a batch equals its samples fed one by
//                                 one up to rounding, and merge() combines disjoint streams.
//   momentum mode (0 < a <= 1):   second = var, exponentially weighted, a weighting the NEW sample
//                                 (PyTorch's convention). A batch is B sequential steps; the first
//                                 sample sets mean = x, var = 0; then
//                                   d = x - mean; mean += a*d; var = (1-a)*(var + a*d*d)
//                                 which can never go negative.
// Non-finite inputs: NonFinite::raise rejects the whole call before any state changes (update()
// reports where), ignore skips every sample (row) holding a NaN / Inf, propagate lets them in.
// Normalization: y = (x - mean) / sqrt(var + eps), computed in double from the float64 state and
// rounded once to the input type (float32 rows with offsets ~1e6 keep full precision).
// Loops are plain C++ that the compiler auto-vectorizes. The per-sample update loops
// (cpp/src/running_stats_steps.inl) are built twice, at baseline flags and in
// cpp/src/avx2/running_stats.cpp with AVX2+FMA, the latter used while the active ISA (isa.hpp) is
// avx2 or avx512; batch statistics and normalize() loops are baseline only.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace simdnorm {

enum class NonFinite { raise, ignore, propagate };

const char* nonfinite_name(NonFinite policy) noexcept;
// "raise" / "ignore" / "propagate"; false for anything else.
bool parse_nonfinite(const std::string& name, NonFinite* policy) noexcept;

// Where update() found a rejected value (policy raise), for the error message.
struct NonFiniteHit {
    bool found = false;
    std::size_t row = 0, feature = 0;
    double value = 0.0;
};

// The same statistics on caller-owned storage (the C API's state, capi.h). RunningStats below runs
// these functions on its own vectors, so both share every formula. Nothing is checked here: the
// caller guarantees num_features >= 1, non-null arrays, 0 <= momentum <= 1, eps > 0, count >= 0.
struct RunningStatsRef {
    std::size_t num_features = 0;
    std::int64_t* count = nullptr;
    double* mean = nullptr;                // num_features
    double* second = nullptr;              // num_features: M2 (exact mode) or the variance (momentum)
    double momentum = 0.0;                 // <= 0: exact mode
    double eps = 1e-5;                     // > 0, used by update_normalize and normalize(eps <= 0)
    NonFinite policy = NonFinite::raise;
    bool exact() const noexcept { return momentum <= 0.0; }
};

namespace running {
// RunningStats::update / normalize / update_normalize / merge on `state`. `scratch` holds
// 3 * num_features doubles and is needed only by exact-mode batches (rows > 1); when it is null such
// a batch is fed sample by sample (Welford), equal up to rounding. `rstd`, when not null, holds
// 1 / sqrt(var + eps) for this eps (fill_rstd); otherwise normalize() computes it as it goes.
template <class T>
std::size_t update(const RunningStatsRef& state, const T* x, std::size_t rows, std::ptrdiff_t row_stride,
                   NonFiniteHit* hit, double* scratch) noexcept;
template <class T>
void normalize(const RunningStatsRef& state, const T* x, T* y, std::size_t rows, std::ptrdiff_t x_row_stride,
               std::ptrdiff_t y_row_stride, double eps, const double* rstd) noexcept;
template <class T>
bool update_normalize(const RunningStatsRef& state, const T* x, T* y, std::size_t rows, std::ptrdiff_t x_row_stride,
                      std::ptrdiff_t y_row_stride, NonFiniteHit* hit, double* scratch) noexcept;
void merge(const RunningStatsRef& state, std::int64_t other_count, const double* other_mean,
           const double* other_m2) noexcept;
// rstd[j] = 1 / sqrt(var_j + eps) (count > 0).
void fill_rstd(const RunningStatsRef& state, double eps, double* rstd) noexcept;
}  // namespace running

class RunningStats {
public:
    // momentum <= 0 selects exact mode; otherwise 0 < momentum <= 1. eps > 0 and finite. Arguments are
    // not checked here (the binding does); num_features >= 1.
    RunningStats(std::size_t num_features, double momentum, double eps, NonFinite policy);

    std::size_t num_features() const noexcept { return mean_.size(); }
    bool exact() const noexcept { return momentum_ <= 0.0; }
    double momentum() const noexcept { return momentum_; }  // 0 in exact mode
    double eps() const noexcept { return eps_; }
    NonFinite policy() const noexcept { return policy_; }
    bool frozen() const noexcept { return frozen_; }
    void set_frozen(bool frozen) noexcept { frozen_ = frozen; }

    std::int64_t count() const noexcept { return count_; }
    const double* mean() const noexcept { return mean_.data(); }
    // Exact mode: M2 = sum of squared deviations. Momentum mode: the variance itself.
    const double* second() const noexcept { return second_.data(); }
    // Population variance of feature j (NaN when count == 0).
    double var(std::size_t j) const noexcept;

    // Feeds `rows` samples x[r * row_stride + j] (j < num_features, row_stride in elements).
    // With policy raise and a non-finite value anywhere, returns it in `hit` and changes nothing.
    // A frozen object changes nothing (and checks nothing). Returns the number of samples used.
    template <class T>
    std::size_t update(const T* x, std::size_t rows, std::ptrdiff_t row_stride, NonFiniteHit* hit) noexcept;

    // y = (x - mean) / sqrt(var + eps) for `rows` samples; requires count() > 0. x and y may be the
    // same memory. eps <= 0 means the constructor's eps.
    template <class T>
    void normalize(const T* x, T* y, std::size_t rows, std::ptrdiff_t x_row_stride, std::ptrdiff_t y_row_stride,
                   double eps) noexcept;

    // update(x) then normalize(x) with the updated statistics, fused for one sample. Returns false
    // (nothing changed, nothing written) when `hit` reports a rejected value or count stays 0.
    template <class T>
    bool update_normalize(const T* x, T* y, std::size_t rows, std::ptrdiff_t x_row_stride,
                          std::ptrdiff_t y_row_stride, NonFiniteHit* hit) noexcept;

    // Chan's combination with the statistics of a disjoint stream (exact mode, same num_features:
    // the caller checks). other_mean / other_m2 have num_features elements.
    void merge(std::int64_t other_count, const double* other_mean, const double* other_m2) noexcept;

    // Empty statistics (count 0, mean 0, second 0); configuration and the frozen flag are kept.
    void reset() noexcept;

    // Replaces the whole state. check_state() first: it returns "" when the state is valid for this
    // configuration (momentum / policy as given), else a message naming the problem.
    static std::string check_state(std::size_t num_features, bool exact, NonFinite policy, std::int64_t count,
                                   const double* mean, const double* second);
    void set_config(double momentum, double eps, NonFinite policy) noexcept;
    void set_state(std::int64_t count, const double* mean, const double* second) noexcept;

private:
    RunningStatsRef ref() noexcept {
        return RunningStatsRef{mean_.size(), &count_, mean_.data(), second_.data(), momentum_, eps_, policy_};
    }
    void refresh_rstd(double eps) noexcept;

    std::vector<double> mean_, second_;
    std::vector<double> scratch_;  // 3 * num_features: batch sums / mean, M2, corrections; rstd cache
    std::vector<double> rstd_;     // 1 / sqrt(var + rstd_eps_) while rstd_valid_
    double momentum_, eps_;
    double rstd_eps_ = 0.0;
    std::int64_t count_ = 0;
    NonFinite policy_;
    bool frozen_ = false;
    bool rstd_valid_ = false;
};

}  // namespace simdnorm
