// Shared test helpers: the table of runnable variants, strided buffers with sentinels, seeded
// data, float64 references and tolerance checks that report the worst element.
#pragma once

#include <doctest/doctest.h>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "simdnorm/simdnorm.hpp"

namespace simdnorm_test {

using simdnorm::BatchNormTrainArgs;
using simdnorm::BatchStatsArgs;
using simdnorm::ChannelAffineArgs;
using simdnorm::Isa;
using simdnorm::NormArgs;

// ---- Variants -------------------------------------------------------------------------------

template <class T>
struct KernelSet {
    void (*layer_norm)(const NormArgs<T>&) noexcept;
    void (*rms_norm)(const NormArgs<T>&) noexcept;
    void (*batch_stats)(const BatchStatsArgs<T>&) noexcept;
    void (*channel_affine)(const ChannelAffineArgs<T>&) noexcept;
    void (*batch_norm_train)(const BatchNormTrainArgs<T>&) noexcept;
};

struct Variant {
    Isa isa;
    KernelSet<float> f32;
    KernelSet<double> f64;

    const char* name() const { return simdnorm::isa_name(isa); }
    template <class T>
    const KernelSet<T>& get() const {
        if constexpr (sizeof(T) == sizeof(float)) {
            return f32;
        } else {
            return f64;
        }
    }
};

#define SIMDNORM_TEST_VARIANT(ns)                                                                              \
    Variant {                                                                                                  \
        Isa::ns,                                                                                               \
            {&simdnorm::ns::layer_norm<float>, &simdnorm::ns::rms_norm<float>, &simdnorm::ns::batch_stats<float>, \
             &simdnorm::ns::channel_affine<float>, &simdnorm::ns::batch_norm_train<float>},                   \
            {&simdnorm::ns::layer_norm<double>, &simdnorm::ns::rms_norm<double>,                               \
             &simdnorm::ns::batch_stats<double>, &simdnorm::ns::channel_affine<double>,                        \
             &simdnorm::ns::batch_norm_train<double>}                                                          \
    }

// Every compiled variant, called directly (not through dispatch), guarded by the build defines.
inline const std::vector<Variant>& compiled_variants() {
    static const std::vector<Variant> variants = {
#if SIMDNORM_HAVE_AVX512
        SIMDNORM_TEST_VARIANT(avx512),
#endif
#if SIMDNORM_HAVE_AVX2
        SIMDNORM_TEST_VARIANT(avx2),
#endif
#if SIMDNORM_HAVE_NEON
        SIMDNORM_TEST_VARIANT(neon),
#endif
        SIMDNORM_TEST_VARIANT(scalar),
    };
    return variants;
}
#undef SIMDNORM_TEST_VARIANT

inline const Variant& scalar_variant() { return compiled_variants().back(); }

// Compiled variants this CPU can run, scalar last; the others are skipped with a message once.
inline const std::vector<Variant>& runnable_variants() {
    static const std::vector<Variant> variants = [] {
        std::vector<Variant> result;
        for (const Variant& v : compiled_variants()) {
            if (simdnorm::isa_supported(v.isa)) {
                result.push_back(v);
            } else {
                MESSAGE("skipping variant '" << std::string(v.name()) << "': compiled but not supported by this CPU");
            }
        }
        return result;
    }();
    return variants;
}

// Restores the active variant and thread count when a test case ends, even on failure.
class StateGuard {
  public:
    StateGuard() : isa_(simdnorm::active_isa()), threads_(simdnorm::get_num_threads()) {}
    ~StateGuard() {
        simdnorm::set_active_isa(isa_);
        simdnorm::set_num_threads(threads_);
    }
    StateGuard(const StateGuard&) = delete;
    StateGuard& operator=(const StateGuard&) = delete;

  private:
    Isa isa_;
    int threads_;
};

// run() through the public (dispatched) operations with variant v active on `threads` threads;
// the caller holds a StateGuard.
template <class Run>
auto run_on(const Variant& v, int threads, Run&& run) {
    simdnorm::set_active_isa(v.isa);
    simdnorm::set_num_threads(threads);
    REQUIRE(simdnorm::get_num_threads() == threads);
    return run();
}

// Fill value of output slots a kernel must not write (exact in float32 and float64).
constexpr double kUnwritten = -777.25;

// ---- Data -----------------------------------------------------------------------------------

// N(offset, scale^2) samples from a fixed seed (Box-Muller over mt19937_64, so the values do not
// depend on the standard library's normal_distribution).
template <class T>
std::vector<T> normal_values(std::size_t n, std::uint64_t seed, double offset = 0.0, double scale = 1.0) {
    std::mt19937_64 engine(seed);
    const double to_unit = 1.0 / 18446744073709551616.0;  // 2^-64
    std::vector<T> values(n);
    for (std::size_t i = 0; i < n; i += 2) {
        const double u1 = (static_cast<double>(engine()) + 1.0) * to_unit;  // (0, 1]
        const double u2 = static_cast<double>(engine()) * to_unit;
        const double radius = std::sqrt(-2.0 * std::log(u1));
        values[i] = static_cast<T>(offset + scale * radius * std::cos(6.283185307179586 * u2));
        if (i + 1 < n) values[i + 1] = static_cast<T>(offset + scale * radius * std::sin(6.283185307179586 * u2));
    }
    return values;
}

// An (outer, mid, inner) view inside a larger buffer whose gaps hold `fill`. mid_pad / outer_pad
// widen the strides; `reversed` makes the outer stride (and the mid stride when inner > 1)
// negative, with base pointing at element (0, 0, 0).
template <class T>
struct Strided {
    std::vector<T> storage;
    T* base = nullptr;
    std::size_t outer = 0, mid = 0, inner = 1;
    std::ptrdiff_t outer_stride = 0, mid_stride = 1;

    T& at(std::size_t o, std::size_t m, std::size_t i) {
        return base[static_cast<std::ptrdiff_t>(o) * outer_stride + static_cast<std::ptrdiff_t>(m) * mid_stride +
                    static_cast<std::ptrdiff_t>(i)];
    }
    std::size_t size() const { return outer * mid * inner; }
};

// `lead` elements of storage before the view shift its alignment (and are checked as gaps).
template <class T>
Strided<T> make_strided(std::size_t outer, std::size_t mid, std::size_t inner, std::size_t mid_pad,
                        std::size_t outer_pad, bool reversed, T fill, std::size_t lead = 0) {
    Strided<T> s;
    s.outer = outer;
    s.mid = mid;
    s.inner = inner;
    const std::size_t mid_stride = inner == 1 ? 1 : inner + mid_pad;  // rows layout needs mid stride 1
    const std::size_t outer_stride = mid * mid_stride + outer_pad;
    s.storage.assign(lead + outer * outer_stride + 1, fill);
    s.mid_stride = static_cast<std::ptrdiff_t>(mid_stride);
    s.outer_stride = static_cast<std::ptrdiff_t>(outer_stride);
    std::size_t first = lead;
    if (reversed) {
        first += (outer - 1) * outer_stride;
        s.outer_stride = -s.outer_stride;
        if (inner > 1) {
            first += (mid - 1) * mid_stride;
            s.mid_stride = -s.mid_stride;
        }
    }
    s.base = s.storage.data() + first;
    return s;
}

// The x / y pointers, shape and strides of an args struct that maps view x into view y (or into x
// itself, in place): ChannelAffineArgs, BatchNormTrainArgs and the like.
template <class Args, class T>
void set_views(Args& a, Strided<T>& x, Strided<T>& y, bool in_place) {
    a.x = x.base;
    a.y = in_place ? x.base : y.base;
    a.outer = x.outer;
    a.mid = x.mid;
    a.inner = x.inner;
    a.x_outer_stride = x.outer_stride;
    a.x_mid_stride = x.mid_stride;
    a.y_outer_stride = in_place ? x.outer_stride : y.outer_stride;
    a.y_mid_stride = in_place ? x.mid_stride : y.mid_stride;
}

// Fills the view's elements (in (o, m, i) order) from `values`.
template <class T>
void fill_view(Strided<T>& s, const std::vector<T>& values) {
    std::size_t k = 0;
    for (std::size_t o = 0; o < s.outer; ++o)
        for (std::size_t m = 0; m < s.mid; ++m)
            for (std::size_t i = 0; i < s.inner; ++i) s.at(o, m, i) = values[k++];
}

// The view's elements in (o, m, i) order, as doubles.
template <class T>
std::vector<double> gather(Strided<T>& s) {
    std::vector<double> out;
    out.reserve(s.size());
    for (std::size_t o = 0; o < s.outer; ++o)
        for (std::size_t m = 0; m < s.mid; ++m)
            for (std::size_t i = 0; i < s.inner; ++i) out.push_back(static_cast<double>(s.at(o, m, i)));
    return out;
}

// Number of storage slots outside the view that no longer hold `fill` (a kernel wrote a gap).
template <class T>
std::size_t touched_gaps(Strided<T>& s, T fill) {
    std::vector<char> in_view(s.storage.size(), 0);
    for (std::size_t o = 0; o < s.outer; ++o)
        for (std::size_t m = 0; m < s.mid; ++m)
            for (std::size_t i = 0; i < s.inner; ++i) in_view[static_cast<std::size_t>(&s.at(o, m, i) - s.storage.data())] = 1;
    std::size_t touched = 0;
    for (std::size_t k = 0; k < s.storage.size(); ++k) {
        if (!in_view[k] && !(s.storage[k] == fill || (std::isnan(s.storage[k]) && std::isnan(fill)))) ++touched;
    }
    return touched;
}

// ---- float64 references ---------------------------------------------------------------------

// Neumaier's compensated sum: the reference must be far more accurate than the kernels.
class CompensatedSum {
  public:
    void add(double v) {
        const double t = sum_ + v;
        compensation_ += std::fabs(sum_) >= std::fabs(v) ? (sum_ - t) + v : (v - t) + sum_;
        sum_ = t;
    }
    double value() const { return sum_ + compensation_; }

  private:
    double sum_ = 0.0, compensation_ = 0.0;
};

struct Moments {
    double mean, m2;
};

inline Moments reference_moments(const std::vector<double>& v) {
    CompensatedSum sum;
    for (double x : v) sum.add(x);
    const double mean = sum.value() / static_cast<double>(v.size());
    CompensatedSum squares;
    for (double x : v) squares.add((x - mean) * (x - mean));
    return {mean, squares.value()};
}

// LayerNorm (centered) or RMSNorm of a NormArgs view; y dense (outer, mid, inner), mean / rstd
// dense (outer, inner).
struct NormReference {
    std::vector<double> y, mean, rstd;
};

template <class T>
NormReference reference_norm(const NormArgs<T>& a, bool centered) {
    NormReference r;
    r.y.assign(a.outer * a.mid * a.inner, 0.0);
    r.mean.assign(a.outer * a.inner, 0.0);
    r.rstd.assign(a.outer * a.inner, 0.0);
    std::vector<double> column(a.mid);
    for (std::size_t o = 0; o < a.outer; ++o) {
        for (std::size_t i = 0; i < a.inner; ++i) {
            for (std::size_t m = 0; m < a.mid; ++m) {
                column[m] = static_cast<double>(a.x[static_cast<std::ptrdiff_t>(o) * a.x_outer_stride +
                                                    static_cast<std::ptrdiff_t>(m) * a.x_mid_stride +
                                                    static_cast<std::ptrdiff_t>(i)]);
            }
            double mean = 0.0, sum_squares = 0.0;
            if (centered) {
                const Moments mo = reference_moments(column);
                mean = mo.mean;
                sum_squares = mo.m2;
            } else {
                CompensatedSum s;
                for (double x : column) s.add(x * x);
                sum_squares = s.value();
            }
            const double rstd = 1.0 / std::sqrt(sum_squares / static_cast<double>(a.mid) + a.eps);
            r.mean[o * a.inner + i] = mean;
            r.rstd[o * a.inner + i] = rstd;
            for (std::size_t m = 0; m < a.mid; ++m) {
                double y = (column[m] - mean) * rstd;
                if (a.weight) y *= static_cast<double>(a.weight[m]);
                if (centered && a.bias) y += static_cast<double>(a.bias[m]);
                r.y[(o * a.mid + m) * a.inner + i] = y;
            }
        }
    }
    return r;
}

// ---- Tolerances -----------------------------------------------------------------------------

// Relative tolerance of a normalized output: a few roundings of T (rstd, the product, the affine).
template <class T>
constexpr double norm_tolerance() {
    return sizeof(T) == sizeof(float) ? 2e-6 : 1e-13;
}

// Element-wise |got - expected| <= allowed[k]; one doctest check per array, naming the worst
// element, so a failing size reports one line instead of thousands.
inline void check_within(const char* what, const std::vector<double>& got, const std::vector<double>& expected,
                         const std::vector<double>& allowed) {
    REQUIRE(got.size() == expected.size());
    std::size_t worst = 0, failures = 0;
    double worst_ratio = 0.0;
    for (std::size_t k = 0; k < got.size(); ++k) {
        const double error = std::fabs(got[k] - expected[k]);
        const bool ok = error <= allowed[k] || (std::isnan(got[k]) && std::isnan(expected[k])) ||
                        (std::isinf(expected[k]) && got[k] == expected[k]);
        if (!ok) ++failures;
        const double ratio = std::isnan(error) ? std::numeric_limits<double>::infinity() : error / allowed[k];
        if (ratio > worst_ratio || (!ok && failures == 1)) {
            worst_ratio = ratio;
            worst = k;
        }
    }
    INFO(std::string(what) << ": " << failures << " of " << got.size() << " elements out of tolerance; worst at " << worst
              << ": got " << (got.empty() ? 0.0 : got[worst]) << ", expected " << (expected.empty() ? 0.0 : expected[worst])
              << ", allowed " << (allowed.empty() ? 0.0 : allowed[worst]));
    CHECK(failures == 0);
}

// Largest |got - expected|.
inline double max_abs_error(const std::vector<double>& got, const std::vector<double>& expected) {
    double worst = 0.0;
    for (std::size_t k = 0; k < got.size(); ++k) {
        const double e = std::fabs(got[k] - expected[k]);
        if (!(e <= worst)) worst = e;  // NaN sticks
    }
    return worst;
}

// Returned as std::string: doctest's INFO prints a const char* as a pointer.
template <class T>
std::string type_name() {
    return sizeof(T) == sizeof(float) ? "float32" : "float64";
}

}  // namespace simdnorm_test
