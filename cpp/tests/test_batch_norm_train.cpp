// Training BatchNorm, channels-first (inner > 1): each variant's fused kernel must equal, bit for
// bit, that variant's two-step path (batch_stats over the view as one block, then channel_affine
// with the folded center / scale / offset), and stay within a few ulps of a float64 reference;
// strided, reversed, in place, NaN isolation, and the dispatched call's thread-count independence.
#include <algorithm>
#include <cfloat>
#include <cstring>
#include <sstream>
#include <stdexcept>

#include "support.hpp"

using namespace simdnorm_test;

namespace {

struct TrainCase {
    std::size_t outer, mid, inner;
    std::size_t mid_pad = 0, outer_pad = 0;
    bool reversed = false;
    bool weight = false, bias = false;
    double offset = 0.0;  // common offset of x
    double eps = 1e-5;
    // Added to outer row 0, whose first elements give the shifted pass its pivot: far from the
    // channel mean, the corrected two-pass fallback runs. Only channels m % shift_every == 0 get it.
    double first_row_shift = 0.0;
    std::size_t shift_every = 1;
};

std::string describe(const TrainCase& c) {
    std::ostringstream s;  // a std::string for INFO: doctest prints a const char* as a pointer
    s << "outer=" << c.outer << " mid=" << c.mid << " inner=" << c.inner << " mid_pad=" << c.mid_pad
      << " outer_pad=" << c.outer_pad << (c.reversed ? " reversed" : "") << (c.weight ? " weight" : "")
      << (c.bias ? " bias" : "") << " offset=" << c.offset << " eps=" << c.eps
      << " first_row_shift=" << c.first_row_shift << " shift_every=" << c.shift_every;
    return s.str();
}

// Bit-for-bit equality: == would accept -0 for +0 and reject equal NaNs.
bool same_bits(const std::vector<double>& a, const std::vector<double>& b) {
    return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(double)) == 0;
}

template <class T>
struct Inputs {
    TrainCase c;
    std::vector<T> values, weight, bias;  // values in (o, m, i) order

    const T* w() const { return c.weight ? weight.data() : nullptr; }
    const T* b() const { return c.bias ? bias.data() : nullptr; }
    // NaN gaps: a read outside the view poisons that channel's statistics.
    Strided<T> make_x() const {
        Strided<T> x = make_strided<T>(c.outer, c.mid, c.inner, c.mid_pad, c.outer_pad, c.reversed,
                                       std::numeric_limits<T>::quiet_NaN());
        fill_view(x, values);
        return x;
    }
    // Strides differing from x's, so a kernel using x's strides for y fails.
    Strided<T> make_y() const {
        return make_strided<T>(c.outer, c.mid, c.inner, c.mid_pad + 2, c.outer_pad + 1, c.reversed, T(kUnwritten));
    }
};

template <class T>
Inputs<T> make_inputs(const TrainCase& c, std::uint64_t seed) {
    Inputs<T> in{c, normal_values<T>(c.outer * c.mid * c.inner, seed, c.offset, 1.0),
                 normal_values<T>(c.mid, seed + 1, 1.0, 0.5), normal_values<T>(c.mid, seed + 2, 0.0, 1.0)};
    for (std::size_t k = 0; k < c.mid * c.inner; ++k) {
        if ((k / c.inner) % c.shift_every == 0) in.values[k] += static_cast<T>(c.first_row_shift);
    }
    return in;
}

struct Outputs {
    std::vector<double> mean, m2, y;
};

// The fused kernel of v, out of place or in place (y over x, same strides), with the
// no-stray-write checks; `stream`: non-temporal stores for y, as the dispatcher asks for large outputs.
template <class T>
Outputs run_fused(const Variant& v, const Inputs<T>& in, bool in_place, bool stream = false) {
    const TrainCase& c = in.c;
    const T nan = std::numeric_limits<T>::quiet_NaN();
    Strided<T> x = in.make_x(), y = in.make_y();
    Outputs r;
    r.mean.assign(c.mid + 1, kUnwritten);
    r.m2.assign(c.mid + 1, kUnwritten);
    BatchNormTrainArgs<T> a;
    set_views(a, x, y, in_place);
    a.weight = in.w();
    a.bias = in.b();
    a.eps = c.eps;
    a.mean = r.mean.data();
    a.m2 = r.m2.data();
    a.stream_output = stream;
    v.get<T>().batch_norm_train(a);
    CHECK_MESSAGE(r.mean.back() == kUnwritten, "wrote past mean");
    CHECK_MESSAGE(r.m2.back() == kUnwritten, "wrote past m2");
    r.mean.pop_back();
    r.m2.pop_back();
    CHECK_MESSAGE(touched_gaps(x, nan) == 0, "wrote into x's gaps");
    if (in_place) {
        r.y = gather(x);
        return r;
    }
    CHECK_MESSAGE(touched_gaps(y, T(kUnwritten)) == 0, "wrote outside y's view");
    CHECK_MESSAGE(same_bits(gather(x), std::vector<double>(in.values.begin(), in.values.end())), "modified x");
    r.y = gather(y);
    return r;
}

// The folding documented for BatchNormTrainArgs: center = T(mean), scale = T((1 / sqrt(m2 / count
// + eps)) * w), offset = T(b - (mean - center) * scale), the scale as rounded to T.
template <class T>
void fold(double mean, double m2, double count, double eps, double w, double b, T& center, T& scale, T& offset) {
    scale = static_cast<T>((1.0 / std::sqrt(m2 / count + eps)) * w);
    center = static_cast<T>(mean);
    offset = static_cast<T>(b - (mean - static_cast<double>(center)) * static_cast<double>(scale));
}

// v's two-step path: batch_stats with the same outer (a single block), then channel_affine.
template <class T>
Outputs run_two_step(const Variant& v, const Inputs<T>& in) {
    const TrainCase& c = in.c;
    Strided<T> x = in.make_x(), y = in.make_y();
    Outputs r;
    r.mean.assign(c.mid, kUnwritten);
    r.m2.assign(c.mid, kUnwritten);
    BatchStatsArgs<T> s;
    s.x = x.base;
    s.outer = c.outer;
    s.mid = c.mid;
    s.inner = c.inner;
    s.x_outer_stride = x.outer_stride;
    s.x_mid_stride = x.mid_stride;
    s.mean = r.mean.data();
    s.m2 = r.m2.data();
    v.get<T>().batch_stats(s);

    std::vector<T> center(c.mid), scale(c.mid), offset(c.mid);
    for (std::size_t m = 0; m < c.mid; ++m) {
        fold<T>(r.mean[m], r.m2[m], static_cast<double>(c.outer * c.inner), c.eps,
                c.weight ? static_cast<double>(in.weight[m]) : 1.0, c.bias ? static_cast<double>(in.bias[m]) : 0.0,
                center[m], scale[m], offset[m]);
    }
    ChannelAffineArgs<T> a;
    a.x = x.base;
    a.y = y.base;
    a.center = center.data();
    a.scale = scale.data();
    a.offset = offset.data();
    a.outer = c.outer;
    a.mid = c.mid;
    a.inner = c.inner;
    a.x_outer_stride = x.outer_stride;
    a.x_mid_stride = x.mid_stride;
    a.y_outer_stride = y.outer_stride;
    a.y_mid_stride = y.mid_stride;
    v.get<T>().channel_affine(a);
    r.y = gather(y);
    return r;
}

template <class T>
void check_batch_norm_train(const TrainCase& c, std::uint64_t seed) {
    INFO(type_name<T>() << " " << describe(c));
    const Inputs<T> in = make_inputs<T>(c, seed);

    // float64 reference from the same T inputs. Allowance: a few roundings of T relative to the
    // output's terms (|w| covers errors of the folded statistics, which scale with the channel's
    // std * scale), plus the float64 rounding of the mean (matters for float64 with an offset).
    const std::size_t n = in.values.size();
    const double count = static_cast<double>(c.outer * c.inner);
    std::vector<double> ref(n), allowed(n);
    for (std::size_t m = 0; m < c.mid; ++m) {
        std::vector<double> channel;
        for (std::size_t o = 0; o < c.outer; ++o)
            for (std::size_t i = 0; i < c.inner; ++i) channel.push_back(static_cast<double>(in.values[(o * c.mid + m) * c.inner + i]));
        const Moments mo = reference_moments(channel);
        const double w = c.weight ? static_cast<double>(in.weight[m]) : 1.0;
        const double b = c.bias ? static_cast<double>(in.bias[m]) : 0.0;
        const double s = w / std::sqrt(mo.m2 / count + c.eps);
        for (std::size_t o = 0; o < c.outer; ++o) {
            for (std::size_t i = 0; i < c.inner; ++i) {
                const std::size_t k = (o * c.mid + m) * c.inner + i;
                const double scaled = (static_cast<double>(in.values[k]) - mo.mean) * s;
                ref[k] = scaled + b;
                allowed[k] = 4.0 * std::numeric_limits<T>::epsilon() * (std::fabs(scaled) + std::fabs(b) + std::fabs(w)) +
                             16.0 * DBL_EPSILON * std::fabs(mo.mean * s);
            }
        }
    }

    for (const Variant& v : runnable_variants()) {
        INFO("variant " << std::string(v.name()));
        const Outputs fused = run_fused(v, in, false);
        const Outputs two_step = run_two_step(v, in);
        CHECK_MESSAGE(same_bits(fused.mean, two_step.mean), "mean differs from batch_stats");
        CHECK_MESSAGE(same_bits(fused.m2, two_step.m2), "m2 differs from batch_stats");
        CHECK_MESSAGE(same_bits(fused.y, two_step.y), "y differs from batch_stats + channel_affine");
        check_within("y vs float64 reference", fused.y, ref, allowed);
        if (sizeof(T) == sizeof(float) && c.offset != 0.0 && !c.weight && !c.bias) {
            // The point of the center: float32 keeps ~1e-6 absolute accuracy under a 1e6 offset.
            const double error = max_abs_error(fused.y, ref);
            INFO("max abs error " << error);
            CHECK(error <= 4e-6);
        }
        const Outputs streamed = run_fused(v, in, false, true);
        CHECK_MESSAGE(same_bits(streamed.y, fused.y), "streamed y differs");
        CHECK_MESSAGE(same_bits(streamed.mean, fused.mean), "streamed mean differs");
        CHECK_MESSAGE(same_bits(streamed.m2, fused.m2), "streamed m2 differs");
        const Outputs in_place = run_fused(v, in, true);
        CHECK_MESSAGE(same_bits(in_place.y, fused.y), "in-place y differs from out-of-place");
        CHECK_MESSAGE(same_bits(in_place.mean, fused.mean), "in-place mean differs");
        CHECK_MESSAGE(same_bits(in_place.m2, fused.m2), "in-place m2 differs");
    }
}

// One NaN in channel `bad`: that channel's statistics and outputs are NaN, every other channel's
// bits equal those of the same input without the NaN.
template <class T>
void check_nan_isolation(const TrainCase& c, std::size_t bad, std::uint64_t seed) {
    INFO(type_name<T>() << " " << describe(c) << " NaN in channel " << bad);
    const Inputs<T> clean = make_inputs<T>(c, seed);
    Inputs<T> poisoned = clean;
    poisoned.values[((c.outer / 2) * c.mid + bad) * c.inner + c.inner / 3] = std::numeric_limits<T>::quiet_NaN();
    for (const Variant& v : runnable_variants()) {
        INFO("variant " << std::string(v.name()));
        const Outputs expected = run_fused(v, clean, false);
        const Outputs got = run_fused(v, poisoned, false);
        for (std::size_t m = 0; m < c.mid; ++m) {
            INFO("channel " << m);
            std::vector<double> y_got, y_expected;
            for (std::size_t o = 0; o < c.outer; ++o) {
                const std::size_t first = (o * c.mid + m) * c.inner;
                y_got.insert(y_got.end(), got.y.begin() + first, got.y.begin() + first + c.inner);
                y_expected.insert(y_expected.end(), expected.y.begin() + first, expected.y.begin() + first + c.inner);
            }
            if (m == bad) {
                CHECK(std::isnan(got.mean[m]));
                CHECK(std::isnan(got.m2[m]));
                std::size_t nans = 0;
                for (double y : y_got) nans += std::isnan(y) ? 1 : 0;
                CHECK(nans == y_got.size());
            } else {
                CHECK(std::isfinite(got.mean[m]));
                CHECK(std::isfinite(got.m2[m]));
                CHECK(std::memcmp(&got.mean[m], &expected.mean[m], sizeof(double)) == 0);
                CHECK(std::memcmp(&got.m2[m], &expected.m2[m], sizeof(double)) == 0);
                CHECK(same_bits(y_got, y_expected));
            }
        }
    }
}

template <class T>
BatchNormTrainArgs<T> shape_args(std::size_t outer, std::size_t inner) {
    BatchNormTrainArgs<T> a;
    a.outer = outer;
    a.mid = 3;
    a.inner = inner;
    return a;
}

// Channels are split across tasks: chunking must not change bits, and each channel must match
// the active variant's kernel called directly.
template <class T>
void check_dispatched_threads(const TrainCase& c) {
    INFO(type_name<T>() << " " << describe(c));
    const Inputs<T> in = make_inputs<T>(c, 9600);
    BatchNormTrainArgs<T> a;
    a.x = in.values.data();
    a.weight = in.w();
    a.bias = in.b();
    a.outer = c.outer;
    a.mid = c.mid;
    a.inner = c.inner;
    a.x_mid_stride = a.y_mid_stride = static_cast<std::ptrdiff_t>(c.inner);
    a.x_outer_stride = a.y_outer_stride = static_cast<std::ptrdiff_t>(c.mid * c.inner);
    REQUIRE(simdnorm::batch_norm_train_fits(a));
    auto run = [&](void (*kernel)(const BatchNormTrainArgs<T>&) noexcept) {
        std::vector<T> y(in.values.size(), T(kUnwritten));
        Outputs r;
        r.mean.assign(c.mid, kUnwritten);
        r.m2.assign(c.mid, kUnwritten);
        BatchNormTrainArgs<T> call = a;
        call.y = y.data();
        call.mean = r.mean.data();
        call.m2 = r.m2.data();
        if (kernel) {
            kernel(call);
        } else {
            simdnorm::batch_norm_train(call);
        }
        r.y.assign(y.begin(), y.end());
        return r;
    };
    for (const Variant& v : runnable_variants()) {
        INFO("variant " << std::string(v.name()));
        const Outputs single = run_on(v, 1, [&] { return run(nullptr); });
        const Outputs parallel = run_on(v, 2, [&] { return run(nullptr); });
        const Outputs direct = run(v.get<T>().batch_norm_train);
        for (const Outputs* other : {&parallel, &direct}) {
            CHECK(same_bits(single.mean, other->mean));
            CHECK(same_bits(single.m2, other->m2));
            CHECK(same_bits(single.y, other->y));
        }
    }
}

// batch_stats_folded with running statistics of dtype S against the same call without them followed
// by update_running_stats (the reference): equal bits for the moments, the fold and the running
// values, in place and from separate old values. want_* are the reference call's outputs.
template <class T, class S>
void check_folded_with_running(const Variant& v, int threads, const simdnorm::BatchStatsArgs<T>& stats,
                               const simdnorm::FoldArgs<T>& fold_template, const std::vector<double>& want_mean,
                               const std::vector<double>& want_m2, const std::vector<T>& want_offset) {
    const std::size_t channels = stats.mid;
    const double count = static_cast<double>(stats.outer * stats.inner);
    const std::vector<S> old_mean = normal_values<S>(channels, 9706);
    std::vector<S> old_var = normal_values<S>(channels, 9707);
    for (S& value : old_var) value = value * value;
    for (const bool in_place : {true, false}) {
        INFO((in_place ? "running statistics in place" : "separate old values"));
        std::vector<S> want_running_mean = old_mean, want_running_var = old_var;
        simdnorm::RunningUpdateArgs<S> ref;
        ref.mean = want_mean.data();
        ref.m2 = want_m2.data();
        ref.count = count;
        ref.momentum = 0.1;
        ref.old_mean = ref.running_mean = want_running_mean.data();
        ref.old_var = ref.running_var = want_running_var.data();
        ref.channels = channels;
        run_on(v, 1, [&] { simdnorm::update_running_stats(ref); return true; });

        std::vector<double> mean(channels, kUnwritten), m2(channels, kUnwritten);
        std::vector<T> center(channels, T(kUnwritten)), scale(channels, T(kUnwritten)), offset(channels, T(kUnwritten));
        std::vector<S> running_mean = old_mean, running_var = old_var;
        if (!in_place) {
            std::fill(running_mean.begin(), running_mean.end(), S(kUnwritten));
            std::fill(running_var.begin(), running_var.end(), S(kUnwritten));
        }
        simdnorm::BatchStatsArgs<T> got_stats = stats;
        got_stats.mean = mean.data();
        got_stats.m2 = m2.data();
        simdnorm::FoldArgs<T> fold = fold_template;
        fold.center = center.data();
        fold.scale = scale.data();
        fold.offset = offset.data();
        simdnorm::RunningUpdateArgs<S> running;  // mean, m2, count, channels left unset: taken from stats
        running.momentum = 0.1;
        running.old_mean = in_place ? running_mean.data() : old_mean.data();
        running.old_var = in_place ? running_var.data() : old_var.data();
        running.running_mean = running_mean.data();
        running.running_var = running_var.data();
        run_on(v, threads, [&] { return simdnorm::batch_stats_folded(got_stats, fold, running); });
        CHECK(same_bits(mean, want_mean));
        CHECK(same_bits(m2, want_m2));
        CHECK(std::memcmp(offset.data(), want_offset.data(), channels * sizeof(T)) == 0);
        CHECK(std::memcmp(running_mean.data(), want_running_mean.data(), channels * sizeof(S)) == 0);
        CHECK(std::memcmp(running_var.data(), want_running_var.data(), channels * sizeof(S)) == 0);
    }
}

}  // namespace

TEST_SUITE("batch_norm_train") {
    // affine cycles through none / weight / bias / both.
    TEST_CASE_TEMPLATE("inner 2..70 and long runs", T, float, double) {
        std::uint64_t seed = 7000;
        for (std::size_t inner = 2; inner <= 70; ++inner) {
            check_batch_norm_train<T>({3, 2 + inner % 3, inner, 1, 2, inner % 3 == 0, inner % 4 >= 2, inner % 2 == 1}, seed += 3);
        }
        // 4097 and 5000: runs past kBatchStatsChunk (statistics per run, merged).
        for (std::size_t inner : {257, 4097, 5000}) {
            for (int affine = 0; affine < 4; ++affine) {
                check_batch_norm_train<T>({2, 3, inner, 3, 1, affine == 1 || affine == 2, (affine & 1) != 0, (affine & 2) != 0},
                                          seed += 3);
            }
        }
    }

    // outer around batch_stats' row groups (4096 / inner runs per chunk): one partial group, whole
    // groups, several groups merged.
    TEST_CASE_TEMPLATE("outer 1..9 and many rows", T, float, double) {
        std::uint64_t seed = 8000;
        for (std::size_t outer = 1; outer <= 9; ++outer) {
            for (std::size_t inner : {5, 2000, 4097}) {
                check_batch_norm_train<T>({outer, 2, inner, 1, 1, outer % 2 == 0, outer % 3 != 0, outer % 2 == 1}, seed += 3);
            }
        }
        check_batch_norm_train<T>({64, 3, 64, 0, 0, false, true, true}, seed += 3);   // exactly one group
        check_batch_norm_train<T>({65, 2, 64, 1, 0, true, false, false}, seed += 3);  // one group + one row
        check_batch_norm_train<T>({130, 5, 64, 0, 3, false, true, false}, seed += 3);
        check_batch_norm_train<T>({300, 3, 17, 2, 2, true, false, true}, seed += 3);
        check_batch_norm_train<T>({64, 8, 196, 0, 0, false, true, true}, seed += 3);
        check_batch_norm_train<T>({16, 1, 3, 0, 0, false, true, true, 0.0, 0.5}, seed += 3);  // eps matters
    }

    // Every channel's pivot far from its mean: the fallback of each channel, whether its
    // statistics are taken alone or between the previous channel's runs.
    TEST_CASE_TEMPLATE("a far pivot falls back to the corrected two-pass", T, float, double) {
        std::uint64_t seed = 8500;
        for (std::size_t inner : {5, 33, 196, 2000, 5000}) {
            for (std::size_t outer : {2, 9}) {
                check_batch_norm_train<T>({outer, 4, inner, 1, 1, outer == 9, true, true, 0.0, 1e-5, 50.0}, seed += 3);
            }
        }
    }

    // Small channels run in blocks (channel_blocks.inl): many channels, so whole blocks and a
    // partial last one, blocks of 16 channels down to 1 (channel bytes up to kChannelBlockMaxBytes
    // and past it), written channel by channel or by run (runs_taken_by_run: with 16 registers from
    // 2 runs of up to 4 KiB, with 32 from 16 runs of up to 256 bytes; also channels of several
    // statistics chunks, merged: 9 runs of 1000); 4-8 KiB channels pipelined on AVX-512 / NEON;
    // every third channel's pivot far off, so accepted and fallback channels share a block.
    TEST_CASE_TEMPLATE("channel blocks: whole and partial blocks, mixed fallbacks", T, float, double) {
        std::uint64_t seed = 8700;
        const std::pair<std::size_t, std::size_t> shapes[] = {{1, 2},   {1, 16},   {1, 49},   {3, 17},
                                                              {4, 49},  {8, 196},  {2, 1000}, {1, 2048},
                                                              {1, 2049}, {16, 16}, {17, 3},   {32, 64}, {20, 33},
                                                              {600, 16}, {260, 64}, {9, 1000}, {3, 1024}, {2, 1025}};
        for (const auto& [outer, inner] : shapes) {
            for (std::size_t mid : {1, 16, 37}) {
                check_batch_norm_train<T>({outer, mid, inner, 1, 2, mid == 37, true, true, 0.0, 1e-5, 50.0, 3},
                                          seed += 3);
            }
            check_batch_norm_train<T>({outer, 33, inner, 0, 0, false, false, false}, seed += 3);
        }
        check_nan_isolation<T>({1, 37, 49, 0, 0, false, true, true}, 17, 8790);
        check_nan_isolation<T>({4, 20, 33, 1, 1, true, true, false}, 15, 8791);
    }

    TEST_CASE_TEMPLATE("large common offset: the center keeps precision", T, float, double) {
        std::uint64_t seed = 9000;
        for (double offset : {1e6, -1e6}) {
            for (bool affine : {false, true}) {
                check_batch_norm_train<T>({4, 3, 33, 0, 1, offset < 0, affine, affine, offset}, seed += 3);
                check_batch_norm_train<T>({2, 2, 4097, 1, 0, offset > 0, affine, affine, offset}, seed += 3);
                check_batch_norm_train<T>({9, 5, 70, 2, 2, false, affine, affine, offset}, seed += 3);
                check_batch_norm_train<T>({64, 3, 64, 0, 0, true, affine, affine, offset}, seed += 3);
                check_batch_norm_train<T>({3, 1, 5000, 0, 0, false, affine, affine, offset}, seed += 3);
            }
        }
    }

    TEST_CASE_TEMPLATE("a NaN stays in its channel", T, float, double) {
        check_nan_isolation<T>({4, 5, 37, 1, 2, false, true, true}, 2, 9500);
        check_nan_isolation<T>({3, 3, 4097, 0, 1, true, false, false}, 0, 9501);
        check_nan_isolation<T>({130, 3, 64, 0, 0, false, true, false}, 2, 9502);
    }

    TEST_CASE_TEMPLATE("dispatched: one and two threads give identical bits", T, float, double) {
        StateGuard guard;
        check_dispatched_threads<T>({16, 64, 196, 0, 0, false, true, true});  // 12 KiB channels: two passes each
        check_dispatched_threads<T>({4, 64, 196, 0, 0, false, true, true});   // channel blocks (kChannelBlockMaxBytes)
        check_dispatched_threads<T>({8, 40, 196, 0, 0, false, true, true});   // pipelined where registers allow
        check_dispatched_threads<T>({64, 40, 16, 0, 0, false, true, true});   // channel blocks by run
    }

    TEST_CASE_TEMPLATE("batch_norm_train_fits: channels-first channels of at most 512 KiB", T, float, double) {
        constexpr std::size_t limit = (std::size_t(512) << 10) / sizeof(T);  // elements per channel
        CHECK(simdnorm::batch_norm_train_fits(shape_args<T>(16, 196)));
        CHECK(simdnorm::batch_norm_train_fits(shape_args<T>(1, 2)));
        CHECK(simdnorm::batch_norm_train_fits(shape_args<T>(1, limit)));
        CHECK(simdnorm::batch_norm_train_fits(shape_args<T>(limit / 2, 2)));
        CHECK_FALSE(simdnorm::batch_norm_train_fits(shape_args<T>(1, limit + 1)));
        CHECK_FALSE(simdnorm::batch_norm_train_fits(shape_args<T>(limit / 2 + 1, 2)));
        CHECK_FALSE(simdnorm::batch_norm_train_fits(shape_args<T>(64, 4096)));
        CHECK_FALSE(simdnorm::batch_norm_train_fits(shape_args<T>(16, 1)));  // channels-last
        CHECK_FALSE(simdnorm::batch_norm_train_fits(shape_args<T>(1, 1)));
    }

    TEST_CASE_TEMPLATE("fold_batch_moments: every variant gives the float64 formula's bits", T, float, double) {
        // 1000 channels: whole vectors and a tail on every variant. Means near zero fold into the
        // offset; one far mean (1e4 std) makes every channel keep its center. Counts 37 (a divide)
        // and 64 (a power of two: the fold multiplies by 1 / 64, which must give the divide's bits).
        StateGuard guard;
        constexpr std::size_t channels = 1000;
        const double eps = 1e-5;
        const std::vector<double> means = normal_values<double>(channels, 9600);
        const std::vector<T> weight = normal_values<T>(channels, 9602, 1.0, 0.3);
        const std::vector<T> bias = normal_values<T>(channels, 9603);
        // far: one mean 1e4 std out (every channel centered); nan: one NaN mean (centered too, the
        // NaN stays in its channel); weight and bias present, absent, or one of them.
        for (int index = 0; index < 12; ++index) {
            const double count = index < 6 ? 37.0 : 64.0;
            const int layout = index % 6;
            std::vector<double> m2 = normal_values<double>(channels, 9601);
            for (double& v : m2) v = (1.0 + std::fabs(v)) * (1.0 + std::fabs(v)) * count;  // std >= 1: |mean * scale| < 16
            const bool far = layout == 1 || layout == 5, nan = layout == 2;
            const bool has_weight = layout != 3 && layout != 5, has_bias = layout != 4 && layout != 5;
            std::vector<double> mean = means;
            if (far) mean[channels / 2] = 1e4 * std::sqrt(m2[channels / 2] / count);
            if (nan) mean[7] = std::numeric_limits<double>::quiet_NaN();
            for (const Variant& v : runnable_variants()) {
                const std::string label = std::string("variant ") + v.name() + ", layout " + std::to_string(layout) +
                                          ", count " + std::to_string(count);
                INFO(label);
                std::vector<T> center(channels, T(kUnwritten)), scale(channels), offset(channels);
                simdnorm::FoldArgs<T> a;
                a.mean = mean.data();
                a.m2 = m2.data();
                a.count = count;
                a.eps = eps;
                a.weight = has_weight ? weight.data() : nullptr;
                a.bias = has_bias ? bias.data() : nullptr;
                a.center = center.data();
                a.scale = scale.data();
                a.offset = offset.data();
                a.channels = channels;
                const bool centered = run_on(v, 1, [&] { return simdnorm::fold_batch_moments(a); });
                CHECK(centered == (far || nan));
                for (std::size_t c = 0; c < channels; ++c) {
                    const double s = 1.0 / std::sqrt(m2[c] / count + eps) * (has_weight ? double(weight[c]) : 1.0);
                    const T want_center = centered ? static_cast<T>(mean[c]) : T(0);
                    // Centered, the remainder is taken times the scale as rounded to T.
                    const double shift =
                        centered ? (mean[c] - double(want_center)) * double(static_cast<T>(s)) : mean[c] * s;
                    const T want_offset = static_cast<T>((has_bias ? double(bias[c]) : 0.0) - shift);
                    if (nan && c == 7) {
                        REQUIRE(std::isnan(center[c]));
                        REQUIRE(std::isnan(offset[c]));
                        continue;
                    }
                    REQUIRE(center[c] == want_center);
                    REQUIRE(scale[c] == static_cast<T>(s));
                    REQUIRE(offset[c] == want_offset);
                }
            }
        }
    }

    TEST_CASE_TEMPLATE("batch_stats_folded: batch_stats + fold_batch_moments' bits at 1 and 2 threads", T, float,
                       double) {
        // Every split of batch_stats: channels-last column tasks (768 and 130 channels; they split
        // from 2^17 elements), channels-last in one task (300x130), rows merged across blocks (16
        // channels-last channels, channels-first 16x300 runs), channels-first channel tasks (64x49
        // runs), an empty batch. Per layout: all channels folded into the offset; one far mean in
        // the last task's channels (every channel centered, the whole fold redone); a NaN channel;
        // no weight, no bias.
        StateGuard guard;
        struct Shape {
            std::size_t outer, mid, inner;
        };
        const Shape shapes[] = {{256, 768, 1}, {1100, 130, 1}, {300, 130, 1}, {5000, 16, 1},
                                {8, 64, 49},   {200, 16, 300}, {0, 130, 1}};
        for (const Shape& sh : shapes) {
            const std::size_t n = sh.outer * sh.mid * sh.inner;
            for (const int layout : {0, 1, 2, 3}) {
                const bool far = layout == 1, nan = layout == 2, affine = layout != 3;
                std::vector<T> x = normal_values<T>(n, 9700 + n, 0.5, 2.0);
                if (far && n != 0) {  // channel mid - 1 moves 1e4 std away
                    for (std::size_t o = 0; o < sh.outer; ++o) {
                        for (std::size_t i = 0; i < sh.inner; ++i) x[(o * sh.mid + sh.mid - 1) * sh.inner + i] += T(2e4);
                    }
                }
                if (nan && n != 0) x[(sh.mid / 2) * sh.inner] = std::numeric_limits<T>::quiet_NaN();
                const std::vector<T> weight = normal_values<T>(sh.mid, 9704, 1.0, 0.3);
                const std::vector<T> bias = normal_values<T>(sh.mid, 9705);
                simdnorm::BatchStatsArgs<T> stats;
                stats.x = x.data();
                stats.outer = sh.outer;
                stats.mid = sh.mid;
                stats.inner = sh.inner;
                stats.x_outer_stride = static_cast<std::ptrdiff_t>(sh.mid * sh.inner);
                stats.x_mid_stride = static_cast<std::ptrdiff_t>(sh.inner);
                for (const Variant& v : runnable_variants()) {
                    const std::string label = std::string("variant ") + v.name() + ", " + std::to_string(sh.outer) +
                                              "x" + std::to_string(sh.mid) + "x" + std::to_string(sh.inner) +
                                              ", layout " + std::to_string(layout);
                    INFO(label);
                    // The reference: the two calls, one thread.
                    std::vector<double> want_mean(sh.mid), want_m2(sh.mid);
                    std::vector<T> want_center(sh.mid), want_scale(sh.mid), want_offset(sh.mid);
                    simdnorm::BatchStatsArgs<T> ref_stats = stats;
                    ref_stats.mean = want_mean.data();
                    ref_stats.m2 = want_m2.data();
                    simdnorm::FoldArgs<T> ref_fold;
                    ref_fold.mean = want_mean.data();
                    ref_fold.m2 = want_m2.data();
                    ref_fold.count = static_cast<double>(sh.outer * sh.inner);
                    ref_fold.eps = 1e-3;
                    ref_fold.weight = affine ? weight.data() : nullptr;
                    ref_fold.bias = affine ? bias.data() : nullptr;
                    ref_fold.center = want_center.data();
                    ref_fold.scale = want_scale.data();
                    ref_fold.offset = want_offset.data();
                    ref_fold.channels = sh.mid;
                    const bool want_centered = run_on(v, 1, [&] {
                        simdnorm::batch_stats(ref_stats);
                        return simdnorm::fold_batch_moments(ref_fold);
                    });
                    if (n != 0) CHECK(want_centered == (far || nan));
                    for (const int threads : {1, 2}) {
                        INFO("threads " << threads);
                        std::vector<double> mean(sh.mid, kUnwritten), m2(sh.mid, kUnwritten);
                        std::vector<T> center(sh.mid, T(kUnwritten)), scale(sh.mid, T(kUnwritten)),
                            offset(sh.mid, T(kUnwritten));
                        simdnorm::BatchStatsArgs<T> got_stats = stats;
                        got_stats.mean = mean.data();
                        got_stats.m2 = m2.data();
                        simdnorm::FoldArgs<T> fold;  // mean, m2, count, channels left unset: taken from stats
                        fold.eps = ref_fold.eps;
                        fold.weight = ref_fold.weight;
                        fold.bias = ref_fold.bias;
                        fold.center = center.data();
                        fold.scale = scale.data();
                        fold.offset = offset.data();
                        const bool centered =
                            run_on(v, threads, [&] { return simdnorm::batch_stats_folded(got_stats, fold); });
                        CHECK(centered == want_centered);
                        CHECK(same_bits(mean, want_mean));
                        CHECK(same_bits(m2, want_m2));
                        CHECK(std::memcmp(center.data(), want_center.data(), sh.mid * sizeof(T)) == 0);
                        CHECK(std::memcmp(scale.data(), want_scale.data(), sh.mid * sizeof(T)) == 0);
                        CHECK(std::memcmp(offset.data(), want_offset.data(), sh.mid * sizeof(T)) == 0);
                        if (n == 0 || layout != 0) continue;
                        // The running statistics updated by the same tasks: both dtypes.
                        check_folded_with_running<T, float>(v, threads, stats, fold, want_mean, want_m2, want_offset);
                        check_folded_with_running<T, double>(v, threads, stats, fold, want_mean, want_m2, want_offset);
                    }
                }
            }
        }
    }

    TEST_CASE_TEMPLATE("batch_stats_folded with running statistics: one value per channel throws first", T, float,
                       double) {
        // A batch of one row (and an empty one) has no unbiased variance: the call throws before
        // it reads x or writes anything.
        StateGuard guard;
        for (const std::size_t outer : {0, 1}) {
            INFO("outer " << outer);
            std::vector<T> x = normal_values<T>(outer * 300, 9708);
            std::vector<double> mean(300, kUnwritten), m2(300, kUnwritten);
            std::vector<T> center(300, T(kUnwritten)), scale(300, T(kUnwritten)), offset(300, T(kUnwritten));
            std::vector<float> running_mean(300, 0.5f), running_var(300, 2.0f);
            simdnorm::BatchStatsArgs<T> stats;
            stats.x = x.data();
            stats.outer = outer;
            stats.mid = 300;
            stats.x_outer_stride = 300;
            stats.mean = mean.data();
            stats.m2 = m2.data();
            simdnorm::FoldArgs<T> fold;
            fold.center = center.data();
            fold.scale = scale.data();
            fold.offset = offset.data();
            simdnorm::RunningUpdateArgs<float> running;
            running.old_mean = running.running_mean = running_mean.data();
            running.old_var = running.running_var = running_var.data();
            CHECK_THROWS_AS(simdnorm::batch_stats_folded(stats, fold, running), std::invalid_argument);
            CHECK(std::all_of(mean.begin(), mean.end(), [](double m) { return m == kUnwritten; }));
            CHECK(std::all_of(offset.begin(), offset.end(), [](T o) { return o == T(kUnwritten); }));
            CHECK(std::all_of(running_mean.begin(), running_mean.end(), [](float m) { return m == 0.5f; }));
            CHECK(std::all_of(running_var.begin(), running_var.end(), [](float m) { return m == 2.0f; }));
        }
    }

    TEST_CASE_TEMPLATE("update_running_stats: every variant gives the float64 formula's bits", S, float, double) {
        // 1000 channels: whole vectors and a tail on every variant. In place (old_* the running
        // arrays themselves, as the bindings call it) and from separate old values; momentum 0.1,
        // 1 (the running values become the batch's) and 0 (they stay).
        StateGuard guard;
        constexpr std::size_t channels = 1000;
        const std::vector<double> mean = normal_values<double>(channels, 9700, 0.0, 3.0);
        std::vector<double> m2 = normal_values<double>(channels, 9701);
        for (double& v : m2) v = v * v * 50.0;
        const std::vector<S> old_mean = normal_values<S>(channels, 9702);
        std::vector<S> old_var = normal_values<S>(channels, 9703);
        for (S& v : old_var) v = v * v;
        for (const double count : {2.0, 37.0}) {
            for (const double momentum : {0.1, 1.0, 0.0}) {
                for (const bool in_place : {true, false}) {
                    for (const Variant& v : runnable_variants()) {
                        INFO("variant " << v.name() << ", count " << count << ", momentum " << momentum
                                        << (in_place ? ", in place" : ", separate old values"));
                        std::vector<S> running_mean = old_mean, running_var = old_var;
                        simdnorm::RunningUpdateArgs<S> a;
                        a.mean = mean.data();
                        a.m2 = m2.data();
                        a.count = count;
                        a.momentum = momentum;
                        a.old_mean = in_place ? running_mean.data() : old_mean.data();
                        a.old_var = in_place ? running_var.data() : old_var.data();
                        if (!in_place) std::fill(running_var.begin(), running_var.end(), S(kUnwritten));
                        a.running_mean = running_mean.data();
                        a.running_var = running_var.data();
                        a.channels = channels;
                        run_on(v, 1, [&] { simdnorm::update_running_stats(a); return true; });
                        const double factor = momentum / (count - 1.0);
                        for (std::size_t c = 0; c < channels; ++c) {
                            const S want_mean = static_cast<S>((1.0 - momentum) * double(old_mean[c]) + momentum * mean[c]);
                            const S want_var = static_cast<S>((1.0 - momentum) * double(old_var[c]) + factor * m2[c]);
                            REQUIRE(running_mean[c] == want_mean);
                            REQUIRE(running_var[c] == want_var);
                        }
                        if (momentum == 0.0) REQUIRE(running_mean == old_mean);
                        if (momentum == 1.0) {  // the unbiased variance within an ulp of double
                            for (std::size_t c = 0; c < channels; ++c) {
                                const double unbiased = m2[c] / (count - 1.0);
                                REQUIRE(std::fabs(double(running_var[c]) - unbiased) <=
                                        std::numeric_limits<S>::epsilon() * unbiased);
                            }
                        }
                    }
                }
            }
        }
        simdnorm::RunningUpdateArgs<S> one;
        one.count = 1.0;  // the unbiased variance of one value does not exist
        CHECK_THROWS_AS(simdnorm::update_running_stats(one), std::invalid_argument);
    }
}
