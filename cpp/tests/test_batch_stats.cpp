// Batch statistics (per-channel mean and M2): every variant vs scalar and the float64 reference,
// channels-first (inner > 1, contiguous runs merged) and channels-last (inner == 1, per-lane
// column reduction over the outer rows).
#include <algorithm>
#include <cfloat>
#include <cstdlib>
#include <cstring>

#include <sstream>

#include "support.hpp"

namespace count_division {  // the kernels' helper (cpp/src/generic), self-contained
#include "generic/count_division.inl"
}  // namespace count_division

using namespace simdnorm_test;

namespace {

struct StatsCase {
    std::size_t outer, mid, inner;
    std::size_t mid_pad = 0, outer_pad = 0;
    bool reversed = false;
    double offset = 0.0;
    bool constant = false;
    // Through the dispatched simdnorm::batch_stats (its routing by shape, operations.cpp), at 1 and
    // 2 threads with equal bits, instead of each variant's kernel.
    bool dispatched = false;
};

template <class T>
void check_batch_stats(const StatsCase& c, std::uint64_t seed) {
    std::ostringstream context;  // a std::string for INFO: doctest prints a const char* as a pointer
    context << type_name<T>() << " outer=" << c.outer << " mid=" << c.mid << " inner=" << c.inner << " mid_pad=" << c.mid_pad
                        << " outer_pad=" << c.outer_pad << (c.reversed ? " reversed" : "") << " offset=" << c.offset
                        << (c.constant ? " constant" : "");
    INFO(context.str());
    const std::size_t n = c.outer * c.mid * c.inner;
    const std::vector<T> values = c.constant ? std::vector<T>(n, static_cast<T>(c.offset))
                                             : normal_values<T>(n, seed, c.offset, 1.0);
    // NaN gaps: reading outside the view would poison a channel's statistics.
    Strided<T> x = make_strided<T>(c.outer, c.mid, c.inner, c.mid_pad, c.outer_pad, c.reversed,
                                   std::numeric_limits<T>::quiet_NaN());
    fill_view(x, values);

    std::vector<double> ref_mean(c.mid), ref_m2(c.mid), mean_allowed(c.mid), m2_allowed(c.mid);
    const double count = static_cast<double>(c.outer * c.inner);
    for (std::size_t m = 0; m < c.mid; ++m) {
        std::vector<double> channel;
        for (std::size_t o = 0; o < c.outer; ++o)
            for (std::size_t i = 0; i < c.inner; ++i) channel.push_back(static_cast<double>(x.at(o, m, i)));
        const Moments mo = reference_moments(channel);
        ref_mean[m] = mo.mean;
        ref_m2[m] = mo.m2;
        const double tol = sizeof(T) == sizeof(float) ? 2e-6 : 1e-13;
        const double spread = std::sqrt(mo.m2 / count);
        mean_allowed[m] = tol * spread + 8.0 * DBL_EPSILON * std::fabs(mo.mean);
        // Constant data: the pivot may sit an ulp of T away, leaving a rounding-level residue.
        const double pivot_ulp = std::numeric_limits<T>::epsilon() * std::fabs(mo.mean);
        // With a large offset, Chan's merge of chunks sees each chunk mean only to an ulp of |mean|.
        const double offset_error = spread > 0.0 ? 8.0 * DBL_EPSILON * std::fabs(mo.mean) / spread : 0.0;
        m2_allowed[m] = (tol + offset_error) * mo.m2 + count * pivot_ulp * pivot_ulp;
    }

    auto run = [&](const Variant& v, std::vector<double>& mean, std::vector<double>& m2) {
        mean.assign(c.mid + 1, kUnwritten);
        m2.assign(c.mid + 1, kUnwritten);
        BatchStatsArgs<T> a;
        a.x = x.base;
        a.outer = c.outer;
        a.mid = c.mid;
        a.inner = c.inner;
        a.x_outer_stride = x.outer_stride;
        a.x_mid_stride = x.mid_stride;
        a.mean = mean.data();
        a.m2 = m2.data();
        if (c.dispatched) {
            run_on(v, 1, [&] { simdnorm::batch_stats(a); return true; });
            std::vector<double> mean2(c.mid + 1, kUnwritten), m22(c.mid + 1, kUnwritten);
            a.mean = mean2.data();
            a.m2 = m22.data();
            run_on(v, 2, [&] { simdnorm::batch_stats(a); return true; });
            CHECK_MESSAGE(std::memcmp(mean.data(), mean2.data(), mean.size() * sizeof(double)) == 0, "mean at 2 threads");
            CHECK_MESSAGE(std::memcmp(m2.data(), m22.data(), m2.size() * sizeof(double)) == 0, "m2 at 2 threads");
        } else {
            v.get<T>().batch_stats(a);
        }
        CHECK_MESSAGE(mean.back() == kUnwritten, "wrote past mean");
        CHECK_MESSAGE(m2.back() == kUnwritten, "wrote past m2");
        mean.pop_back();
        m2.pop_back();
    };
    std::vector<double> scalar_mean, scalar_m2;
    run(scalar_variant(), scalar_mean, scalar_m2);
    for (const Variant& v : runnable_variants()) {
        INFO("variant " << std::string(v.name()));
        std::vector<double> mean, m2;
        run(v, mean, m2);
        check_within("mean vs float64 reference", mean, ref_mean, mean_allowed);
        check_within("m2 vs float64 reference", m2, ref_m2, m2_allowed);
        std::vector<double> mean_twice = mean_allowed, m2_twice = m2_allowed;
        for (double& a : mean_twice) a *= 2.0;
        for (double& a : m2_twice) a *= 2.0;
        check_within("mean vs scalar", mean, scalar_mean, mean_twice);
        check_within("m2 vs scalar", m2, scalar_m2, m2_twice);
    }
}

// Blocks of channels (channel_block_moments.inl) must give every channel the bits it gets alone
// (a one-channel call, whose block is that channel).
template <class T>
void check_channel_alone(std::size_t outer, std::size_t mid, std::size_t inner, std::uint64_t seed) {
    INFO(type_name<T>() << " outer=" << outer << " mid=" << mid << " inner=" << inner);
    std::vector<T> values = normal_values<T>(outer * mid * inner, seed, 3.0, 1.0);
    for (std::size_t m = 0; m < mid; m += 3) values[m * inner] += static_cast<T>(60.0);  // far pivots
    Strided<T> x = make_strided<T>(outer, mid, inner, 1, 2, false, std::numeric_limits<T>::quiet_NaN());
    fill_view(x, values);
    for (const Variant& v : runnable_variants()) {
        INFO("variant " << std::string(v.name()));
        auto run = [&](std::size_t first, std::size_t channels, double* mean, double* m2) {
            BatchStatsArgs<T> a;
            a.x = x.base + static_cast<std::ptrdiff_t>(first) * x.mid_stride;
            a.outer = outer;
            a.mid = channels;
            a.inner = inner;
            a.x_outer_stride = x.outer_stride;
            a.x_mid_stride = x.mid_stride;
            a.mean = mean;
            a.m2 = m2;
            v.get<T>().batch_stats(a);
        };
        std::vector<double> mean(mid), m2(mid);
        run(0, mid, mean.data(), m2.data());
        for (std::size_t m = 0; m < mid; ++m) {
            double alone_mean = 0.0, alone_m2 = 0.0;
            run(m, 1, &alone_mean, &alone_m2);
            CHECK_MESSAGE(std::memcmp(&mean[m], &alone_mean, sizeof(double)) == 0, "mean of channel " << m);
            CHECK_MESSAGE(std::memcmp(&m2[m], &alone_m2, sizeof(double)) == 0, "m2 of channel " << m);
        }
    }
}

// Channels-last x of 1 MiB or more is read kFlushSteps rows at a time across strips of columns
// (column_strips.inl): every column must get the bits the column tiles give it, here from copies
// of 64 columns (a multiple of every variant's tile) small enough for the tiles.
template <class T>
void check_strips_match_tiles(std::size_t outer, std::size_t mid, bool reversed, std::uint64_t seed) {
    INFO(type_name<T>() << " outer=" << outer << " mid=" << mid << (reversed ? " reversed" : ""));
    constexpr std::size_t kBlock = 64;
    const T nan = std::numeric_limits<T>::quiet_NaN();
    std::vector<T> values = normal_values<T>(outer * mid, seed, 3.0, 1.0);
    for (std::size_t m = 0; m < mid; m += 7) values[m] += static_cast<T>(60.0);  // far pivots: tiles rejected
    values[(outer / 2) * mid + 5] = nan;
    Strided<T> x = make_strided<T>(outer, mid, 1, 0, 3, reversed, nan);
    fill_view(x, values);
    REQUIRE(outer * static_cast<std::size_t>(std::abs(x.outer_stride)) * sizeof(T) > (std::size_t(1) << 20));
    REQUIRE(outer * kBlock * sizeof(T) < (std::size_t(1) << 20));  // the copies take tiles
    auto run = [](const Variant& v, const T* p, std::size_t rows, std::size_t columns, std::ptrdiff_t stride,
                  double* mean, double* m2) {
        BatchStatsArgs<T> a;
        a.x = p;
        a.outer = rows;
        a.mid = columns;
        a.inner = 1;
        a.x_outer_stride = stride;
        a.mean = mean;
        a.m2 = m2;
        v.get<T>().batch_stats(a);
    };
    for (const Variant& v : runnable_variants()) {
        INFO("variant " << std::string(v.name()));
        std::vector<double> mean(mid), m2(mid);
        run(v, x.base, outer, mid, x.outer_stride, mean.data(), m2.data());
        for (std::size_t first = 0; first < mid; first += kBlock) {
            const std::size_t columns = std::min(kBlock, mid - first);
            std::vector<T> block(outer * columns);
            for (std::size_t o = 0; o < outer; ++o)
                for (std::size_t k = 0; k < columns; ++k) block[o * columns + k] = x.at(o, first + k, 0);
            std::vector<double> tile_mean(columns), tile_m2(columns);
            run(v, block.data(), outer, columns, static_cast<std::ptrdiff_t>(columns), tile_mean.data(), tile_m2.data());
            for (std::size_t k = 0; k < columns; ++k) {
                CHECK_MESSAGE(std::memcmp(&mean[first + k], &tile_mean[k], sizeof(double)) == 0, "mean of column " << first + k);
                CHECK_MESSAGE(std::memcmp(&m2[first + k], &tile_m2[k], sizeof(double)) == 0, "m2 of column " << first + k);
            }
        }
    }
}

// Channels-last columns before x's first vector boundary are one partial tile, the rest start on
// it (aligned_head): every column's bits must be the same wherever x starts within a vector.
template <class T>
void check_placement_independent(std::size_t outer, std::size_t mid, std::size_t outer_pad, std::uint64_t seed) {
    INFO(type_name<T>() << " outer=" << outer << " mid=" << mid << " outer_pad=" << outer_pad);
    const T nan = std::numeric_limits<T>::quiet_NaN();
    std::vector<T> values = normal_values<T>(outer * mid, seed, 3.0, 1.0);
    for (std::size_t m = 0; m < mid; m += 5) values[m] += static_cast<T>(60.0);  // far pivots: lanes rejected
    values[(outer / 2) * mid + mid / 2] = nan;
    for (const Variant& v : runnable_variants()) {
        INFO("variant " << std::string(v.name()));
        std::vector<double> first_mean, first_m2;
        for (std::size_t lead = 0; lead <= 16; ++lead) {
            Strided<T> x = make_strided<T>(outer, mid, 1, 0, outer_pad, false, nan, lead);
            fill_view(x, values);
            std::vector<double> mean(mid), m2(mid);
            BatchStatsArgs<T> a;
            a.x = x.base;
            a.outer = outer;
            a.mid = mid;
            a.inner = 1;
            a.x_outer_stride = x.outer_stride;
            a.mean = mean.data();
            a.m2 = m2.data();
            v.get<T>().batch_stats(a);
            if (lead == 0) {
                first_mean = mean;
                first_m2 = m2;
                continue;
            }
            CHECK_MESSAGE(std::memcmp(mean.data(), first_mean.data(), mid * sizeof(double)) == 0, "mean, lead " << lead);
            CHECK_MESSAGE(std::memcmp(m2.data(), first_m2.data(), mid * sizeof(double)) == 0, "m2, lead " << lead);
        }
    }
}

// Channels-first statistics of short runs taken by columns (operations.cpp, stats_by_columns): a
// NaN or infinity stays in its channel, whose moments are NumPy's (NaN; +inf and a NaN spread;
// NaN for +inf and -inf), and every other channel keeps the bits it has without it.
template <class T>
void check_short_runs_nonfinite(std::size_t outer, std::size_t mid, std::size_t inner, std::uint64_t seed) {
    INFO(type_name<T>() << " outer=" << outer << " mid=" << mid << " inner=" << inner);
    const std::size_t n = outer * mid * inner;
    const std::vector<T> clean = normal_values<T>(n, seed, 1.0, 1.0);
    const T inf = std::numeric_limits<T>::infinity();
    StateGuard guard;
    auto stats = [&](const std::vector<T>& x, std::vector<double>& mean, std::vector<double>& m2) {
        mean.assign(mid, kUnwritten);
        m2.assign(mid, kUnwritten);
        BatchStatsArgs<T> a;
        a.x = x.data();
        a.outer = outer;
        a.mid = mid;
        a.inner = inner;
        a.x_outer_stride = static_cast<std::ptrdiff_t>(mid * inner);
        a.x_mid_stride = static_cast<std::ptrdiff_t>(inner);
        a.mean = mean.data();
        a.m2 = m2.data();
        simdnorm::batch_stats(a);
    };
    for (const Variant& v : runnable_variants()) {
        INFO("variant " << std::string(v.name()));
        std::vector<double> want_mean, want_m2;
        run_on(v, 2, [&] { stats(clean, want_mean, want_m2); return true; });
        for (int special : {1, 2, 3}) {
            INFO("special " << special);
            std::vector<T> x = clean;
            x[inner] = special == 1 ? std::numeric_limits<T>::quiet_NaN() : inf;  // channel 1, sample 0
            if (special == 3) x[(outer - 1) * mid * inner + 2 * inner - 1] = -inf;  // channel 1, last sample
            std::vector<double> mean, m2;
            run_on(v, 2, [&] { stats(x, mean, m2); return true; });
            CHECK((special == 2 ? mean[1] == double(inf) : std::isnan(mean[1])));
            CHECK(std::isnan(m2[1]));
            mean[1] = want_mean[1];
            m2[1] = want_m2[1];
            CHECK(std::memcmp(mean.data(), want_mean.data(), mid * sizeof(double)) == 0);
            CHECK(std::memcmp(m2.data(), want_m2.data(), mid * sizeof(double)) == 0);
        }
    }
}

}  // namespace

TEST_SUITE("batch_stats") {
    // A block of channels read run by run (runs_taken_by_run: 16 runs or more of at most 256 bytes
    // with 32 vector registers; from 2 runs of up to 4 KiB with 16), one statistics chunk or
    // several merged.
    TEST_CASE_TEMPLATE("few runs of up to 4 KiB", T, float, double) {
        std::uint64_t seed = 1700;
        for (std::size_t outer : {2, 3, 8, 9}) {
            for (std::size_t inner : {196, 1000, 1024, 1025}) {
                check_batch_stats<T>({outer, 21, inner, 1, 1, outer == 3}, ++seed);
                check_channel_alone<T>(outer, 21, inner, ++seed);
            }
        }
    }

    TEST_CASE_TEMPLATE("many short runs", T, float, double) {
        std::uint64_t seed = 1500;
        for (std::size_t outer : {16, 33, 300, 600}) {
            for (std::size_t inner : {2, 16, 17, 64}) {
                check_batch_stats<T>({outer, 37, inner, 1, 2, outer == 33}, ++seed);
                check_channel_alone<T>(outer, 37, inner, ++seed);
            }
        }
        check_batch_stats<T>({300, 19, 17, 0, 0, true, 1e6}, ++seed);
        check_batch_stats<T>({40, 5, 16, 0, 0, false, -1e6, true}, ++seed);
    }

    TEST_CASE_TEMPLATE("channels-first (inner > 1)", T, float, double) {
        std::uint64_t seed = 1000;
        for (std::size_t inner = 2; inner <= 70; ++inner) check_batch_stats<T>({3, 2, inner, 1, 2}, ++seed);
        for (std::size_t inner : {257, 4097, 9000}) check_batch_stats<T>({2, 3, inner, 5, 1}, ++seed);
        for (std::size_t inner : {5, 64, 4097}) check_batch_stats<T>({4, 3, inner, 2, 3, true}, ++seed);
    }

    TEST_CASE_TEMPLATE("channels-last (inner == 1)", T, float, double) {
        std::uint64_t seed = 2000;
        for (std::size_t mid = 1; mid <= 70; ++mid) check_batch_stats<T>({37, mid, 1, 0, 3}, ++seed);
        // outer around kColumnChunk (128) exercises the per-lane chunk merge.
        for (std::size_t mid : {1, 17, 64, 65, 129, 257}) {
            for (std::size_t outer : {1, 2, 127, 128, 129, 1000}) {
                check_batch_stats<T>({outer, mid, 1, 0, mid % 3, outer % 2 == 1}, ++seed);
            }
        }
    }

    TEST_CASE_TEMPLATE("channels-last, every placement of x", T, float, double) {
        std::uint64_t seed = 2700;
        // outer, mid, pad; 700 columns: enough tiles per row for the aligned tiles on every variant
        const std::size_t shapes[][3] = {{37, 3, 13}, {37, 70, 10}, {300, 100, 12}, {130, 257, 63}, {60, 700, 20}};
        for (const auto& shape : shapes) check_placement_independent<T>(shape[0], shape[1], shape[2], ++seed);
        const std::size_t strips_outer = sizeof(T) == sizeof(float) ? 2100 : 1100;
        check_placement_independent<T>(strips_outer, 130, 14, ++seed);  // beyond 1 MiB: strips
    }

    TEST_CASE_TEMPLATE("channels-first short runs: by columns through the dispatched call", T, float, double) {
        // Runs shorter than a cache line, 16 samples or more: the samples' columns, merged per
        // channel. Against the float64 reference at 1 and 2 threads (equal bits), with a large
        // offset and constant channels; and the shapes around the rule (gaps between runs, 15
        // samples, long runs, too many columns) through the same call.
        std::uint64_t seed = 2900;
        for (std::size_t inner = 2; inner * sizeof(T) < 64; ++inner) {
            check_batch_stats<T>({16, 37, inner, 0, 0, false, 0.0, false, true}, ++seed);
            check_batch_stats<T>({300, 21, inner, 0, 5, inner % 2 == 0, 0.0, false, true}, ++seed);
        }
        check_batch_stats<T>({2100, 64, 2, 0, 0, false, 0.0, false, true}, ++seed);  // split by columns
        check_batch_stats<T>({64, 40, 3, 0, 0, false, 1e6, false, true}, ++seed);
        check_batch_stats<T>({64, 40, 3, 0, 0, false, 3.5, true, true}, ++seed);
        check_batch_stats<T>({64, 40, 3, 1, 0, false, 0.0, false, true}, ++seed);   // gaps: run by run
        check_batch_stats<T>({15, 40, 3, 0, 0, false, 0.0, false, true}, ++seed);   // too few samples
        check_batch_stats<T>({64, 9, 40, 0, 0, false, 0.0, false, true}, ++seed);   // long runs
        check_batch_stats<T>({20, 2100, 4, 0, 0, false, 0.0, false, true}, ++seed);  // too many columns
        check_short_runs_nonfinite<T>(40, 9, 3, ++seed);
    }

    TEST_CASE_TEMPLATE("batch_norm_train_fits: not for short runs taken by columns", T, float, double) {
        BatchNormTrainArgs<T> a;
        a.outer = 64;
        a.mid = 100;
        a.inner = 5;
        a.x_mid_stride = 5;
        CHECK_FALSE(simdnorm::batch_norm_train_fits(a));
        a.outer = 8;  // few samples: run by run, fused
        CHECK(simdnorm::batch_norm_train_fits(a));
        a.outer = 64;
        a.inner = 64;
        a.x_mid_stride = 64;  // long runs: fused
        CHECK(simdnorm::batch_norm_train_fits(a));
    }

    TEST_CASE_TEMPLATE("channels-last from 1 MiB: strips of rows", T, float, double) {
        std::uint64_t seed = 2500;
        const std::size_t outer = sizeof(T) == sizeof(float) ? 2100 : 1100;
        for (std::size_t mid : {130, 700}) check_strips_match_tiles<T>(outer, mid, mid == 700, ++seed);
        check_batch_stats<T>({outer, 130, 1, 0, 3, false}, ++seed);
        check_batch_stats<T>({outer, 1100, 1, 0, 0, true, 1e6}, ++seed);
        check_batch_stats<T>({(std::size_t(1) << 20) / (256 * sizeof(T)), 256, 1, 0, 0, false}, ++seed);  // exactly 1 MiB
    }

    TEST_CASE_TEMPLATE("large common offset and constant channels", T, float, double) {
        std::uint64_t seed = 3000;
        for (bool constant : {false, true}) {
            check_batch_stats<T>({3, 2, 4097, 1, 1, false, 1e6, constant}, ++seed);
            check_batch_stats<T>({5, 3, 33, 0, 0, true, 1e6, constant}, ++seed);
            check_batch_stats<T>({300, 19, 1, 0, 2, false, 1e6, constant}, ++seed);
            check_batch_stats<T>({129, 70, 1, 0, 0, true, -1e6, constant}, ++seed);
        }
    }

    TEST_CASE("CountDivisor: the divide's bits for every value, a multiply only for powers of two") {
        // Values over the whole exponent range (random bit patterns), subnormals, zeros, infinities,
        // NaN; counts 1-4100 and a few large ones, powers of two and not.
        std::vector<double> values = {0.0, -0.0, std::numeric_limits<double>::infinity(),
                                      -std::numeric_limits<double>::infinity(), std::numeric_limits<double>::quiet_NaN(),
                                      std::numeric_limits<double>::denorm_min(), -3 * std::numeric_limits<double>::denorm_min(),
                                      DBL_MIN, DBL_MAX, -DBL_MAX, 1.0, 3.0, 1e-310, 5e-324 * 7};
        std::mt19937_64 engine(977);
        while (values.size() < 2000) {
            const std::uint64_t bits = engine();
            double v;
            std::memcpy(&v, &bits, sizeof v);
            values.push_back(v);
        }
        std::vector<double> counts;
        for (int n = 1; n <= 4100; ++n) counts.push_back(n);
        for (const double n : {1048576.0, 1099511627776.0, 9223372036854775808.0, 3298534883328.0, 100352.0, 1568.0}) {
            counts.push_back(n);
        }
        std::size_t mismatches = 0, powers = 0;
        for (const double n : counts) {
            const count_division::CountDivisor by(n);
            const auto k = static_cast<unsigned long long>(n);
            const bool power = (k & (k - 1)) == 0;
            powers += power;
            REQUIRE(by.exact_inverse() == power);
            for (const double x : values) {
                const double want = x / n, got = by.divide(x);
                if (std::isnan(want) ? !std::isnan(got) : std::memcmp(&want, &got, sizeof want) != 0) ++mismatches;
            }
        }
        CHECK(powers == 16);  // 2^0 .. 2^12, 2^20, 2^40, 2^63
        CHECK(mismatches == 0);
    }
}
