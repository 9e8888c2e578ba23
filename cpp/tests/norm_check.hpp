// One LayerNorm / RMSNorm case run on every runnable variant and checked against the float64
// reference, against scalar, for untouched gaps and statistics slots, and for in-place equality.
#pragma once

#include <algorithm>
#include <cfloat>
#include <cstring>
#include <sstream>
#include <string>

#include "support.hpp"

namespace simdnorm_test {

struct NormShape {
    std::size_t outer, mid, inner;
    std::size_t mid_pad = 0, outer_pad = 0;  // extra elements between mid / outer steps
    bool reversed = false;                   // negative strides
};

struct NormOptions {
    bool weight = false, bias = false, stats = false;
    double offset = 0.0;       // common offset added to every x
    bool constant = false;     // every x equals offset
    bool in_place = false;     // also run with y == x and require identical bits
    bool stream = false;       // NormArgs::stream_output (non-temporal stores)
    bool wide_rows = false;    // NormArgs::interleave_wide_rows (Intel's path for 4-16 KiB rows)
    double eps = 1e-5;
};

inline std::string describe(const NormShape& s, const NormOptions& o) {
    std::ostringstream out;
    out << "outer=" << s.outer << " mid=" << s.mid << " inner=" << s.inner << " mid_pad=" << s.mid_pad
        << " outer_pad=" << s.outer_pad << (s.reversed ? " reversed" : "") << (o.weight ? " weight" : "")
        << (o.bias ? " bias" : "") << (o.stats ? " stats" : "") << " offset=" << o.offset
        << (o.constant ? " constant" : "") << (o.in_place ? " in_place" : "") << (o.stream ? " stream" : "")
        << (o.wide_rows ? " wide_rows" : "");
    return out.str();
}

template <class T>
struct NormRun {
    std::vector<double> y, mean, rstd;
};

// Runs one variant's kernel on freshly built buffers and checks what it must not touch.
template <class T>
NormRun<T> run_norm(void (*kernel)(const NormArgs<T>&) noexcept, const NormShape& s,
                    const NormOptions& o, const std::vector<T>& x_values, const std::vector<T>& weight,
                    const std::vector<T>& bias) {
    const T nan = std::numeric_limits<T>::quiet_NaN();
    const T sentinel = T(kUnwritten);
    // NaN in x's gaps: a kernel that reads past a row poisons its statistics.
    Strided<T> x = make_strided<T>(s.outer, s.mid, s.inner, s.mid_pad, s.outer_pad, s.reversed, nan);
    fill_view(x, x_values);
    Strided<T> y = make_strided<T>(s.outer, s.mid, s.inner, s.mid_pad + 1, s.outer_pad + 2, s.reversed, sentinel);
    const std::size_t stats_size = s.outer * s.inner;
    std::vector<T> mean(stats_size + 1, sentinel), rstd(stats_size + 1, sentinel);

    NormArgs<T> a;
    a.x = x.base;
    a.y = y.base;
    a.weight = o.weight ? weight.data() : nullptr;
    a.bias = o.bias ? bias.data() : nullptr;
    a.mean = o.stats ? mean.data() : nullptr;
    a.rstd = o.stats ? rstd.data() : nullptr;
    a.outer = s.outer;
    a.mid = s.mid;
    a.inner = s.inner;
    a.x_outer_stride = x.outer_stride;
    a.x_mid_stride = x.mid_stride;
    a.y_outer_stride = y.outer_stride;
    a.y_mid_stride = y.mid_stride;
    a.eps = o.eps;
    a.stream_output = o.stream;
    a.interleave_wide_rows = o.wide_rows;
    kernel(a);

    NormRun<T> run;
    run.y = gather(y);
    CHECK_MESSAGE(touched_gaps(y, sentinel) == 0, "kernel wrote outside y's view");
    CHECK_MESSAGE(touched_gaps(x, nan) == 0, "kernel wrote into x's gaps");
    CHECK_MESSAGE(gather(x) == std::vector<double>(x_values.begin(), x_values.end()), "kernel modified x");
    CHECK_MESSAGE(mean[stats_size] == sentinel, "kernel wrote past mean");
    CHECK_MESSAGE(rstd[stats_size] == sentinel, "kernel wrote past rstd");
    if (o.stats) {
        run.mean.assign(mean.begin(), mean.begin() + static_cast<std::ptrdiff_t>(stats_size));
        run.rstd.assign(rstd.begin(), rstd.begin() + static_cast<std::ptrdiff_t>(stats_size));
    }

    if (o.in_place) {  // same strides for y and x: rewrite x's buffer through the kernel
        NormArgs<T> in_place = a;
        in_place.y = x.base;
        in_place.y_outer_stride = x.outer_stride;
        in_place.y_mid_stride = x.mid_stride;
        in_place.mean = nullptr;
        in_place.rstd = nullptr;
        kernel(in_place);
        const std::vector<double> y_in_place = gather(x);
        CHECK_MESSAGE(std::memcmp(y_in_place.data(), run.y.data(), run.y.size() * sizeof(double)) == 0,
                      "in-place result differs from out-of-place");
        CHECK_MESSAGE(touched_gaps(x, nan) == 0, "in-place kernel wrote into x's gaps");
    }
    return run;
}

// Relative error that a large common offset leaves in float64 statistics: the mean is only known
// to an ulp of |mean|, which shifts x - mean by that much (relative to the spread 1/rstd) and
// Chan's merge of chunks (> 4096 elements, > 128 strided rows) carries it into the variance.
inline double offset_error(double mean, double rstd) { return 8.0 * DBL_EPSILON * std::fabs(mean) * rstd; }

// Allowed error of each normalized output: norm_tolerance<T>() relative to the value, plus the
// offset term above on both the shift and the scale.
template <class T>
std::vector<double> norm_allowance(const NormArgs<T>& a, const NormReference& ref, double factor) {
    std::vector<double> allowed(ref.y.size());
    for (std::size_t o = 0; o < a.outer; ++o) {
        for (std::size_t m = 0; m < a.mid; ++m) {
            const double w = a.weight ? std::fabs(static_cast<double>(a.weight[m])) : 1.0;
            for (std::size_t i = 0; i < a.inner; ++i) {
                const std::size_t k = (o * a.mid + m) * a.inner + i;
                const std::size_t s = o * a.inner + i;
                allowed[k] = factor * (norm_tolerance<T>() * (1.0 + std::fabs(ref.y[k]) + w) +
                                       offset_error(ref.mean[s], ref.rstd[s]) * (w + std::fabs(ref.y[k])));
            }
        }
    }
    return allowed;
}

// Runs the case on every runnable variant. Returns the largest |y - reference| over variants.
template <class T>
double check_norm(bool centered, const NormShape& s, const NormOptions& options, std::uint64_t seed) {
    NormOptions o = options;
    if (!centered) o.bias = false;  // see affine_combinations()
    const std::string context = type_name<T>() + (centered ? " layer_norm " : " rms_norm ") + describe(s, o);
    INFO(context);
    const std::size_t n = s.outer * s.mid * s.inner;
    const std::vector<T> x_values = o.constant ? std::vector<T>(n, static_cast<T>(o.offset))
                                               : normal_values<T>(n, seed, o.offset, 1.0);
    const std::vector<T> weight = normal_values<T>(s.mid, seed + 1, 1.0, 0.5);
    const std::vector<T> bias = normal_values<T>(s.mid, seed + 2, 0.0, 1.0);

    // The reference reads the same kind of view the kernels get.
    Strided<T> x_view = make_strided<T>(s.outer, s.mid, s.inner, s.mid_pad, s.outer_pad, s.reversed, T(0));
    fill_view(x_view, x_values);
    NormArgs<T> ref_args;
    ref_args.x = x_view.base;
    ref_args.weight = o.weight ? weight.data() : nullptr;
    ref_args.bias = o.bias ? bias.data() : nullptr;
    ref_args.outer = s.outer;
    ref_args.mid = s.mid;
    ref_args.inner = s.inner;
    ref_args.x_outer_stride = x_view.outer_stride;
    ref_args.x_mid_stride = x_view.mid_stride;
    ref_args.eps = o.eps;
    const NormReference ref = reference_norm(ref_args, centered);
    const std::vector<double> allowed = norm_allowance(ref_args, ref, 1.0);
    const std::vector<double> allowed_vs_scalar = norm_allowance(ref_args, ref, 2.0);

    auto kernel_of = [&](const Variant& v) {
        return centered ? v.get<T>().layer_norm : v.get<T>().rms_norm;
    };
    const NormRun<T> scalar = run_norm<T>(kernel_of(scalar_variant()), s, o, x_values, weight, bias);
    double worst = 0.0;
    for (const Variant& v : runnable_variants()) {
        INFO("variant " << std::string(v.name()));
        const NormRun<T> run = v.isa == Isa::scalar ? scalar : run_norm<T>(kernel_of(v), s, o, x_values, weight, bias);
        check_within("y vs float64 reference", run.y, ref.y, allowed);
        if (v.isa != Isa::scalar) check_within("y vs scalar", run.y, scalar.y, allowed_vs_scalar);
        worst = std::max(worst, max_abs_error(run.y, ref.y));
        if (o.constant && centered) {  // (x - mean) is exactly 0, so y is exactly bias (or 0)
            std::vector<double> expected(n);
            for (std::size_t k = 0; k < n; ++k) {
                const std::size_t m = (k / s.inner) % s.mid;
                expected[k] = o.bias ? static_cast<double>(bias[m]) : 0.0;
            }
            CHECK_MESSAGE(run.y == expected, "constant rows must map exactly to bias");
        }
        if (o.stats) {
            std::vector<double> mean_allowed(ref.mean.size()), rstd_allowed(ref.rstd.size());
            for (std::size_t k = 0; k < ref.mean.size(); ++k) {
                // The mean output is the float64 mean rounded to T: half an ulp, plus the
                // statistics' own error relative to the standard deviation.
                mean_allowed[k] = 4.0 * std::numeric_limits<T>::epsilon() * std::fabs(ref.mean[k]) +
                                  norm_tolerance<T>() / ref.rstd[k];
                rstd_allowed[k] = (norm_tolerance<T>() + offset_error(ref.mean[k], ref.rstd[k])) * ref.rstd[k];
            }
            if (centered) {
                check_within("mean vs float64 reference", run.mean, ref.mean, mean_allowed);
            } else {
                CHECK_MESSAGE(run.mean == std::vector<double>(run.mean.size(), kUnwritten), "rms_norm wrote mean");
            }
            check_within("rstd vs float64 reference", run.rstd, ref.rstd, rstd_allowed);
        }
    }
    return worst;
}

// Every combination of weight / bias. rms_norm ignores bias (kernels.hpp), so it gets none here;
// test_rms_norm.cpp checks separately that a non-null bias is ignored.
inline std::vector<NormOptions> affine_combinations(bool centered) {
    std::vector<NormOptions> result;
    for (int w = 0; w < 2; ++w) {
        for (int b = 0; b < (centered ? 2 : 1); ++b) {
            NormOptions o;
            o.weight = w != 0;
            o.bias = b != 0;
            o.stats = w == b;  // statistics outputs on some combinations, null pointers on others
            result.push_back(o);
        }
    }
    return result;
}

// Sizes that straddle every vector width (1..70), then multi-chunk rows past kRowChunk (4096).
inline std::vector<std::size_t> row_lengths() {
    std::vector<std::size_t> sizes;
    for (std::size_t n = 1; n <= 70; ++n) sizes.push_back(n);
    for (std::size_t n : {257, 1000, 4097, 9000}) sizes.push_back(n);
    return sizes;
}

}  // namespace simdnorm_test

namespace simdnorm_test {

// The cases shared by layer_norm and rms_norm (test_layer_norm.cpp / test_rms_norm.cpp).

template <class T>
void norm_rows_all_sizes(bool centered) {
    std::uint64_t seed = 100;
    for (std::size_t mid : row_lengths()) {
        for (const NormOptions& o : affine_combinations(centered)) check_norm<T>(centered, {3, mid, 1}, o, ++seed);
    }
}

// stream_output changes where the stores go (and, for LayerNorm rows, the loop order: the next
// row's statistics inside this row's normalization), never the bits: every variant, every row
// length, padded and reversed rows, in place, and a row whose first elements sit far from its mean
// (the one-pass pivot is rejected). NaN rows: tests/test_large_paths.py (run_norm compares x with ==).
template <class T>
void norm_streamed_equals_cached(bool centered) {
    std::vector<std::size_t> lengths = row_lengths();
    lengths.push_back(4096);
    std::uint64_t seed = 500;
    for (const Variant& v : runnable_variants()) {
        INFO("variant " << std::string(v.name()));
        auto kernel = centered ? v.get<T>().layer_norm : v.get<T>().rms_norm;
        for (std::size_t mid : lengths) {
            for (bool reversed : {false, true}) {
                const NormShape s{5, mid, 1, 0, reversed ? 3u : 0u, reversed};
                std::vector<T> x = normal_values<T>(s.outer * mid, ++seed, 0.0, 1.0);
                for (std::size_t k = 0; k < std::min<std::size_t>(mid, 16); ++k) x[mid + k] += T(50);
                const std::vector<T> weight = normal_values<T>(mid, seed + 1, 1.0, 0.5);
                const std::vector<T> bias = normal_values<T>(mid, seed + 2, 0.0, 1.0);
                for (NormOptions o : affine_combinations(centered)) {
                    o.in_place = true;
                    INFO(describe(s, o));
                    const NormRun<T> cached = run_norm<T>(kernel, s, o, x, weight, bias);
                    o.stream = true;
                    const NormRun<T> streamed = run_norm<T>(kernel, s, o, x, weight, bias);
                    auto same_bits = [](const std::vector<double>& p, const std::vector<double>& q) {
                        // memcmp must not see the null data() of an empty vector (UBSan), even for 0 bytes
                        return p.size() == q.size() &&
                               (p.empty() || std::memcmp(p.data(), q.data(), p.size() * sizeof(double)) == 0);
                    };
                    CHECK_MESSAGE(same_bits(streamed.y, cached.y), "streamed y differs from cached");
                    CHECK_MESSAGE(same_bits(streamed.mean, cached.mean), "streamed mean differs");
                    CHECK_MESSAGE(same_bits(streamed.rstd, cached.rstd), "streamed rstd differs");
                }
            }
        }
    }
}

// A row's bits do not depend on the rows around it: in a batch, LayerNorm rows go through blocks
// (row_blocks.inl: the statistics of several rows per vector, a partial last block), alone through
// the direct path. Every variant; rows far from their pivot (rejected), constant, offset by 1e6;
// short rows in blocks, wider ones on the row groups or the interleaved loop (rows of 4-16 KiB take
// either, by NormArgs::interleave_wide_rows: both run here). NaN rows: tests/test_layer_norm.py
// (run_norm compares x with ==).
template <class T>
void norm_row_in_batch_equals_row_alone(bool centered) {
    std::uint64_t seed = 700;
    for (const Variant& v : runnable_variants()) {
        INFO("variant " << std::string(v.name()));
        auto kernel = centered ? v.get<T>().layer_norm : v.get<T>().rms_norm;
        for (std::size_t mid : {1, 3, 16, 17, 64, 100, 256, 257, 768, 1000, 2048, 3001, 4096}) {
            const std::size_t outer = 39;  // row groups of 4, then a pair, then a single row
            std::vector<T> x = normal_values<T>(outer * mid, ++seed, 0.0, 1.0);
            for (std::size_t k = 0; k < std::min<std::size_t>(mid, 16); ++k) x[3 * mid + k] += T(50);
            std::fill(x.begin() + 5 * static_cast<std::ptrdiff_t>(mid), x.begin() + 6 * static_cast<std::ptrdiff_t>(mid), T(1.5));
            for (std::size_t k = 0; k < mid; ++k) x[17 * mid + k] += T(1e6);
            const std::vector<T> weight = normal_values<T>(mid, seed + 1, 1.0, 0.5);
            const std::vector<T> bias = normal_values<T>(mid, seed + 2, 0.0, 1.0);
            for (NormOptions o : affine_combinations(centered)) {
                for (const bool wide_rows : {false, true}) {
                    if (wide_rows && mid * sizeof(T) <= 4096) continue;  // the choice concerns wider rows only
                    o.stats = true;
                    o.wide_rows = wide_rows;
                    const NormRun<T> batch = run_norm<T>(kernel, {outer, mid, 1}, o, x, weight, bias);
                    for (std::size_t r = 0; r < outer; ++r) {
                        INFO("mid=" << mid << " row " << r << " " << describe({outer, mid, 1}, o));
                        const auto row = x.begin() + static_cast<std::ptrdiff_t>(r * mid);
                        const std::vector<T> row_alone(row, row + static_cast<std::ptrdiff_t>(mid));
                        const NormRun<T> alone = run_norm<T>(kernel, {1, mid, 1}, o, row_alone, weight, bias);
                        CHECK(std::memcmp(alone.y.data(), batch.y.data() + r * mid, mid * sizeof(double)) == 0);
                        CHECK(std::memcmp(&alone.mean[0], &batch.mean[r], sizeof(double)) == 0);
                        CHECK(std::memcmp(&alone.rstd[0], &batch.rstd[r], sizeof(double)) == 0);
                    }
                }
            }
        }
    }
}

template <class T>
void norm_rows_strided(bool centered) {
    std::uint64_t seed = 200;
    for (std::size_t mid : {1, 3, 7, 16, 33, 65, 1000, 4097}) {
        for (bool reversed : {false, true}) {
            NormOptions o;
            o.weight = o.bias = o.stats = true;
            check_norm<T>(centered, {4, mid, 1, 0, 5, reversed}, o, ++seed);
        }
    }
}

template <class T>
void norm_columns(bool centered) {
    std::uint64_t seed = 300;
    NormOptions all;
    all.weight = all.bias = all.stats = true;
    for (std::size_t inner = 2; inner <= 70; ++inner) check_norm<T>(centered, {2, 5, inner, 3, 1, false}, all, ++seed);
    // mid around kColumnChunk (128) exercises the per-lane chunk merge; inner past a 64-lane tile.
    for (std::size_t inner : {3, 33, 65, 129}) {
        for (std::size_t mid : {1, 2, 127, 128, 129, 300}) {
            for (const NormOptions& o : affine_combinations(centered)) {
                check_norm<T>(centered, {2, mid, inner, 2, 3, mid % 2 == 1}, o, ++seed);
            }
        }
    }
}

// x = 1e6 + N(0, 1): float32 outputs must stay within 4e-6 of the float64 reference.
template <class T>
void norm_large_offset(bool centered) {
    std::uint64_t seed = 400;
    NormOptions o;
    o.offset = 1e6;
    o.stats = true;
    const NormShape shapes[] = {{3, 7, 1}, {3, 100, 1}, {2, 4097, 1}, {2, 9000, 1, 0, 7, true},
                                {2, 300, 37, 1, 1, false}, {1, 129, 70, 0, 0, true}};
    for (const NormShape& s : shapes) {
        const double worst = check_norm<T>(centered, s, o, ++seed);
        // RMSNorm divides by the root mean square (~1e6), so its outputs are ~1: same bound.
        if (sizeof(T) == sizeof(float)) CHECK(worst <= 4e-6);
    }
}

// LayerNorm of a constant row must give exactly bias (y = 0 * rstd * w + b); RMSNorm only has to
// match the references there (its output is x * rstd * w).
template <class T>
void norm_constant_rows(bool centered) {
    std::uint64_t seed = 500;
    for (double value : {3.7, -2.5, 1e6 + 0.3, 0.0}) {
        for (std::size_t mid : {1, 2, 5, 8, 17, 33, 64, 65, 4097, 9000}) {
            NormOptions o;
            o.constant = true;
            o.offset = value;
            o.weight = o.bias = o.stats = true;
            check_norm<T>(centered, {2, mid, 1}, o, ++seed);
            check_norm<T>(centered, {2, mid % 130, 19, 1, 0, false}, o, ++seed);
        }
    }
}

template <class T>
void norm_in_place(bool centered) {
    std::uint64_t seed = 600;
    NormOptions o;
    o.weight = o.bias = true;
    o.in_place = true;
    for (std::size_t mid : {1, 9, 31, 64, 1000, 4097}) check_norm<T>(centered, {3, mid, 1, 0, 2, false}, o, ++seed);
    for (std::size_t inner : {2, 17, 64, 70}) check_norm<T>(centered, {2, 9, inner, 1, 1, true}, o, ++seed);
}

}  // namespace simdnorm_test
