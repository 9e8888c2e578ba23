// Per-channel affine map y = (x - center) * scale + offset: every variant vs scalar and the
// float64 reference, channels-last (inner == 1) and channels-first (inner > 1), with and without
// center, strided, reversed and in place.
#include <algorithm>
#include <cstring>
#include <sstream>

#include "support.hpp"

using namespace simdnorm_test;

namespace {

struct AffineCase {
    std::size_t outer, mid, inner;
    std::size_t mid_pad = 0, outer_pad = 0;
    bool reversed = false;
    bool centered = false;
    double offset = 0.0;  // common offset of x (and of center)
    bool y_like_x = false;  // y without extra padding: back-to-back rows stay back to back
    std::size_t x_lead = 0, y_lead = 0;  // elements before each view (alignment)
    bool stream = false;  // non-temporal stores
};

// Checks every runnable variant and returns their outputs (in runnable_variants() order).
template <class T>
std::vector<std::vector<double>> check_channel_affine(const AffineCase& c, std::uint64_t seed) {
    std::ostringstream context;  // a std::string for INFO: doctest prints a const char* as a pointer
    context << type_name<T>() << " outer=" << c.outer << " mid=" << c.mid << " inner=" << c.inner << " mid_pad=" << c.mid_pad
                        << " outer_pad=" << c.outer_pad << (c.reversed ? " reversed" : "")
                        << (c.centered ? " centered" : "") << " offset=" << c.offset << (c.y_like_x ? " y_like_x" : "")
                        << " x_lead=" << c.x_lead << " y_lead=" << c.y_lead << (c.stream ? " stream" : "");
    INFO(context.str());
    const std::size_t n = c.outer * c.mid * c.inner;
    const std::vector<T> values = normal_values<T>(n, seed, c.offset, 1.0);
    const std::vector<T> center = normal_values<T>(c.mid, seed + 1, c.offset, 0.1);
    const std::vector<T> scale = normal_values<T>(c.mid, seed + 2, 1.0, 0.5);
    const std::vector<T> offset = normal_values<T>(c.mid, seed + 3, 0.0, 1.0);
    const T nan = std::numeric_limits<T>::quiet_NaN();

    // Reference and allowance: a few roundings of T relative to the terms' magnitudes.
    std::vector<double> ref(n), allowed(n);
    for (std::size_t k = 0; k < n; ++k) {
        const std::size_t m = (k / c.inner) % c.mid;
        const double centered_x = static_cast<double>(values[k]) - (c.centered ? static_cast<double>(center[m]) : 0.0);
        ref[k] = centered_x * static_cast<double>(scale[m]) + static_cast<double>(offset[m]);
        allowed[k] = 3.0 * std::numeric_limits<T>::epsilon() *
                     (std::fabs(centered_x * static_cast<double>(scale[m])) + std::fabs(static_cast<double>(offset[m])));
    }

    auto run = [&](const Variant& v, bool in_place) {
        Strided<T> x = make_strided<T>(c.outer, c.mid, c.inner, c.mid_pad, c.outer_pad, c.reversed, nan, c.x_lead);
        fill_view(x, values);
        const std::size_t extra = c.y_like_x ? 0 : 1;
        Strided<T> y = make_strided<T>(c.outer, c.mid, c.inner, c.mid_pad + 2 * extra, c.outer_pad + extra, c.reversed,
                                       T(kUnwritten), c.y_lead);
        ChannelAffineArgs<T> a;
        set_views(a, x, y, in_place);
        a.center = c.centered ? center.data() : nullptr;
        a.scale = scale.data();
        a.offset = offset.data();
        a.stream_output = c.stream;
        v.get<T>().channel_affine(a);
        CHECK_MESSAGE(touched_gaps(x, nan) == 0, "wrote into x's gaps");
        if (in_place) return gather(x);
        CHECK_MESSAGE(touched_gaps(y, T(kUnwritten)) == 0, "wrote outside y's view");
        CHECK_MESSAGE(gather(x) == std::vector<double>(values.begin(), values.end()), "modified x");
        return gather(y);
    };
    const std::vector<double> scalar = run(scalar_variant(), false);
    std::vector<double> allowed_vs_scalar = allowed;
    for (double& a : allowed_vs_scalar) a *= 2.0;
    std::vector<std::vector<double>> outputs;
    for (const Variant& v : runnable_variants()) {
        INFO("variant " << std::string(v.name()));
        const std::vector<double> y = run(v, false);
        check_within("y vs float64 reference", y, ref, allowed);
        check_within("y vs scalar", y, scalar, allowed_vs_scalar);
        CHECK_MESSAGE(run(v, true) == y, "in-place result differs from out-of-place");
        outputs.push_back(y);
    }
    return outputs;
}

// The dispatched call on channels-first x against the variant's kernel called directly: short runs
// that lie back to back within each sample are spread over it and mapped as channels-last rows
// (operations.cpp, spread_short_runs), and the bits must be the kernel's run by run. In place too.
template <class T>
void check_dispatched_channels_first(const AffineCase& c, int threads, std::uint64_t seed) {
    std::ostringstream context;
    context << type_name<T>() << " outer=" << c.outer << " mid=" << c.mid << " inner=" << c.inner
            << " mid_pad=" << c.mid_pad << " outer_pad=" << c.outer_pad << (c.reversed ? " reversed" : "")
            << (c.centered ? " centered" : "") << " threads=" << threads;
    INFO(context.str());
    const std::size_t n = c.outer * c.mid * c.inner;
    const std::vector<T> values = normal_values<T>(n, seed, 2.0, 1.0);
    const std::vector<T> center = normal_values<T>(c.mid, seed + 1, 2.0, 0.1);
    const std::vector<T> scale = normal_values<T>(c.mid, seed + 2, 1.0, 0.5);
    const std::vector<T> offset = normal_values<T>(c.mid, seed + 3, 0.0, 1.0);
    const T nan = std::numeric_limits<T>::quiet_NaN();
    StateGuard guard;
    for (const Variant& v : runnable_variants()) {
        INFO("variant " << std::string(v.name()));
        std::vector<double> want;
        for (const int mode : {0, 1, 2}) {  // the kernel; the dispatched call; the dispatched call in place
            Strided<T> x = make_strided<T>(c.outer, c.mid, c.inner, c.mid_pad, c.outer_pad, c.reversed, nan);
            fill_view(x, values);
            Strided<T> y = make_strided<T>(c.outer, c.mid, c.inner, c.mid_pad, c.outer_pad, c.reversed, T(kUnwritten));
            const bool in_place = mode == 2;
            ChannelAffineArgs<T> a;
            set_views(a, x, y, in_place);
            a.center = c.centered ? center.data() : nullptr;
            a.scale = scale.data();
            a.offset = offset.data();
            if (mode == 0) {
                v.get<T>().channel_affine(a);
            } else {
                run_on(v, threads, [&] { simdnorm::channel_affine(a); return true; });
            }
            CHECK_MESSAGE(touched_gaps(x, nan) == 0, "wrote into x's gaps");
            if (!in_place) CHECK_MESSAGE(touched_gaps(y, T(kUnwritten)) == 0, "wrote outside y's view");
            const std::vector<double> got = in_place ? gather(x) : gather(y);
            if (mode == 0) {
                want = got;
            } else {
                CHECK_MESSAGE(std::memcmp(got.data(), want.data(), n * sizeof(double)) == 0,
                              (in_place ? "in place" : "out of place") << ": bits differ from the kernel's");
            }
        }
    }
}

}  // namespace

TEST_SUITE("channel_affine") {
    TEST_CASE_TEMPLATE("channels-last (inner == 1)", T, float, double) {
        std::uint64_t seed = 4000;
        for (bool centered : {false, true}) {
            for (std::size_t mid = 1; mid <= 70; ++mid) check_channel_affine<T>({3, mid, 1, 0, 2, mid % 2 == 0, centered}, ++seed);
            for (std::size_t mid : {257, 1000}) check_channel_affine<T>({2, mid, 1, 0, 1, false, centered}, ++seed);
        }
    }

    // Rows back to back in x and y with up to 4 KiB of channels run as one flat loop whose vectors span
    // rows (kernels.inl, channel_affine_periodic) when streamed, or cached with x and y equally off
    // alignment: every channel count around the vector widths, both placements, cached and streamed.
    TEST_CASE_TEMPLATE("channels-last rows back to back", T, float, double) {
        std::uint64_t seed = 7000;
        const std::size_t per_4k = 4096 / sizeof(T);
        const std::size_t leads[][2] = {{0, 0}, {1, 1}, {5, 5}, {1, 0}, {2, 5}};  // x, y
        for (bool stream : {false, true}) {
            for (bool centered : {false, true}) {
                for (const auto& lead : leads) {
                    for (std::size_t mid : {std::size_t(1), std::size_t(2), std::size_t(3), std::size_t(7), std::size_t(8),
                                            std::size_t(15), std::size_t(16), std::size_t(17), std::size_t(33),
                                            std::size_t(64), std::size_t(100), per_4k, per_4k + 1}) {
                        AffineCase c{mid > per_4k ? std::size_t(9) : std::size_t(64), mid, 1, 0, 0, false, centered};
                        c.y_like_x = true;
                        c.x_lead = lead[0];
                        c.y_lead = lead[1];
                        c.stream = stream;
                        check_channel_affine<T>(c, ++seed);
                    }
                }
            }
        }
    }

    // Cached channels-last rows a part of a cache line apart whose x and y pass 36 KiB go one at a
    // time, each stored from its own vector boundary (rows_may_share_passes): every start of x and
    // y within a vector, reversed, in place; the bits must be those of the rows in pairs (within L1).
    TEST_CASE_TEMPLATE("channels-last rows a part of a line apart, one at a time", T, float, double) {
        std::uint64_t seed = 8300;
        for (bool centered : {false, true}) {
            for (std::size_t mid : {std::size_t(1000), std::size_t(1003)}) {
                ++seed;
                std::vector<std::vector<double>> first;
                for (std::size_t x_lead : {std::size_t(0), std::size_t(1), std::size_t(5)}) {
                    for (std::size_t y_lead : {x_lead, std::size_t(3)}) {
                        AffineCase c{12, mid, 1, 0, 0, x_lead == 5, centered};
                        c.y_like_x = true;  // both strides mid: a part of a line for both
                        c.x_lead = x_lead;
                        c.y_lead = y_lead;
                        const auto outputs = check_channel_affine<T>(c, seed);
                        if (first.empty()) {
                            first = outputs;
                        } else if (!c.reversed) {
                            CHECK_MESSAGE(outputs == first, "bits depend on placement (x_lead " << x_lead << ")");
                        }
                    }
                }
                // The same rows within L1 (two of them): pairs, the same values for the first rows.
                AffineCase small{2, mid, 1, 0, 0, false, centered};
                small.y_like_x = true;
                const auto pairs = check_channel_affine<T>(small, seed);
                for (std::size_t k = 0; k < pairs.size(); ++k) {
                    CHECK(std::equal(pairs[k].begin(), pairs[k].end(), first[k].begin()));
                }
            }
        }
    }

    // Cached channels-last rows whose stride keeps every row at the same place in its vector take
    // whole vectors from y's first vector boundary on (a partial head, then aligned stores): every
    // start offset of x within a vector, y at x's offset and off it; the bits must not move.
    TEST_CASE_TEMPLATE("channels-last, every alignment of x", T, float, double) {
        std::uint64_t seed = 8500;
        const std::size_t shapes[][2] = {{5, 27}, {17, 15}, {64, 0}, {100, 12}, {257, 63}};  // mid, outer pad
        for (const auto& shape : shapes) {
            for (bool centered : {false, true}) {
                ++seed;
                std::vector<std::vector<double>> first;
                for (std::size_t x_lead = 0; x_lead <= 16; ++x_lead) {
                    for (std::size_t y_lead : {x_lead, (x_lead * 5 + 3) % 17}) {
                        AffineCase c{5, shape[0], 1, 0, shape[1], false, centered};
                        c.x_lead = x_lead;
                        c.y_lead = y_lead;
                        const auto outputs = check_channel_affine<T>(c, seed);  // same seed: same values
                        if (first.empty()) {
                            first = outputs;
                        } else {
                            CHECK_MESSAGE(outputs == first, "bits depend on placement (x_lead " << x_lead << ", y_lead "
                                                                                               << y_lead << ")");
                        }
                    }
                }
            }
        }
    }

    TEST_CASE_TEMPLATE("channels-first (inner > 1)", T, float, double) {
        std::uint64_t seed = 5000;
        for (bool centered : {false, true}) {
            for (std::size_t inner = 2; inner <= 70; ++inner) {
                check_channel_affine<T>({2, 3, inner, 1, 2, inner % 2 == 1, centered}, ++seed);
            }
            for (std::size_t inner : {257, 4097}) check_channel_affine<T>({2, 3, inner, 3, 0, false, centered}, ++seed);
        }
    }

    // Channels-first runs out of place are written in whole vectors from y's vector boundary (a
    // partial head), the last one overlapping its neighbour (affine_run): every start offset of x
    // within a vector, y at x's offset and off it; the map is elementwise, so the bits must not move.
    TEST_CASE_TEMPLATE("channels-first, every alignment of x", T, float, double) {
        std::uint64_t seed = 8000;
        for (std::size_t inner : {std::size_t(31), std::size_t(32), std::size_t(49), std::size_t(196)}) {
            for (bool centered : {false, true}) {
                ++seed;
                std::vector<std::vector<double>> first;
                for (std::size_t x_lead = 0; x_lead <= 16; ++x_lead) {
                    for (std::size_t y_lead : {x_lead, (x_lead * 5 + 3) % 17}) {
                        AffineCase c{3, 4, inner, 0, 0, false, centered};
                        c.x_lead = x_lead;
                        c.y_lead = y_lead;
                        const auto outputs = check_channel_affine<T>(c, seed);  // same seed: same values
                        if (first.empty()) {
                            first = outputs;
                        } else {
                            CHECK_MESSAGE(outputs == first, "bits depend on placement (x_lead " << x_lead << ", y_lead "
                                                                                               << y_lead << ")");
                        }
                    }
                }
            }
        }
    }

    TEST_CASE_TEMPLATE("channels-first short runs: the dispatched call gives the kernel's bits", T, float, double) {
        // Runs shorter than a cache line spread over each sample (back to back, two samples or
        // more), and the cases that keep the runs: a gap between runs, one sample, long runs.
        std::uint64_t seed = 9000;
        for (bool centered : {false, true}) {
            for (std::size_t inner = 2; inner * sizeof(T) < 64; ++inner) {
                check_dispatched_channels_first<T>({5, 37, inner, 0, 0, false, centered}, 1, ++seed);
                check_dispatched_channels_first<T>({4, 9, inner, 0, 3, inner % 2 == 0, centered}, 1, ++seed);
            }
            check_dispatched_channels_first<T>({3, 9, 4, 1, 0, false, centered}, 1, ++seed);     // gaps: runs kept
            check_dispatched_channels_first<T>({1, 300, 3, 0, 0, false, centered}, 1, ++seed);   // one sample
            check_dispatched_channels_first<T>({3, 5, 40, 0, 0, false, centered}, 1, ++seed);    // long runs
            check_dispatched_channels_first<T>({2, 1025, 4, 0, 0, false, centered}, 1, ++seed);  // past the spread
            check_dispatched_channels_first<T>({200, 64, 4, 0, 0, true, centered}, 2, ++seed);  // split by rows
        }
    }

    TEST_CASE_TEMPLATE("center keeps precision with a large offset", T, float, double) {
        std::uint64_t seed = 6000;
        check_channel_affine<T>({4, 33, 1, 0, 0, false, true, 1e6}, ++seed);
        check_channel_affine<T>({2, 5, 67, 0, 1, true, true, 1e6}, ++seed);
    }
}
