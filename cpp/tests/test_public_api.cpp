// The dispatched public API (simdnorm.hpp): thread-count independence, agreement with the active
// variant's kernel, and ISA selection (parse_isa / set_active_isa / SIMDNORM_ISA).
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <string>
#include <thread>

#include "support.hpp"

using namespace simdnorm_test;

namespace {

template <class T>
bool same_bits(const std::vector<T>& a, const std::vector<T>& b) {
    return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(T)) == 0;
}

// Every public operation on large inputs (above the parallel threshold), outputs concatenated.
template <class T>
std::vector<T> run_public_ops() {
    std::vector<T> out;
    auto append = [&](const std::vector<T>& v) { out.insert(out.end(), v.begin(), v.end()); };
    const std::vector<T> x = normal_values<T>(64 * 4100, 7, 3.0, 2.0);
    const std::vector<T> weight = normal_values<T>(4100, 8, 1.0, 0.5), bias = normal_values<T>(4100, 9);

    for (bool columns : {false, true}) {
        NormArgs<T> a;
        std::vector<T> y(x.size()), mean(columns ? 4100 : 64), rstd(mean.size());
        a.x = x.data();
        a.y = y.data();
        a.weight = weight.data();
        a.bias = bias.data();
        a.mean = mean.data();
        a.rstd = rstd.data();
        if (columns) {  // one sample, 64 channels of 4100: split along inner
            a.outer = 1;
            a.mid = 64;
            a.inner = 4100;
            a.x_mid_stride = a.y_mid_stride = 4100;
            a.x_outer_stride = a.y_outer_stride = 64 * 4100;
        } else {  // 64 rows of 4100: split along outer
            a.outer = 64;
            a.mid = 4100;
            a.x_outer_stride = a.y_outer_stride = 4100;
        }
        simdnorm::layer_norm(a);
        append(y);
        append(mean);
        append(rstd);
        simdnorm::rms_norm(a);
        append(y);
        append(rstd);
    }

    {  // two rows of 131200 (past the long-row threshold, not a multiple of the statistics piece):
       // each row is split across threads
        NormArgs<T> a;
        std::vector<T> y(x.size()), mean(2), rstd(2), long_weight = normal_values<T>(x.size() / 2, 10, 1.0, 0.5);
        a.x = x.data();
        a.y = y.data();
        a.weight = long_weight.data();
        a.bias = long_weight.data();
        a.mean = mean.data();
        a.rstd = rstd.data();
        a.outer = 2;
        a.mid = x.size() / 2;
        a.x_outer_stride = a.y_outer_stride = static_cast<std::ptrdiff_t>(a.mid);
        simdnorm::layer_norm(a);
        append(y);
        append(mean);
        append(rstd);
        simdnorm::rms_norm(a);
        append(y);
        append(rstd);
    }

    // batch_stats: channels-last over many blocks of rows, and channels-first.
    for (bool channels_last : {true, false}) {
        std::vector<double> mean(16), m2(16);
        BatchStatsArgs<T> s;
        s.x = x.data();
        s.mean = mean.data();
        s.m2 = m2.data();
        if (channels_last) {
            s.outer = x.size() / 16;
            s.mid = 16;
            s.x_outer_stride = 16;
        } else {
            s.outer = 4;
            s.mid = 16;
            s.inner = x.size() / 64;
            s.x_mid_stride = static_cast<std::ptrdiff_t>(s.inner);
            s.x_outer_stride = static_cast<std::ptrdiff_t>(16 * s.inner);
        }
        simdnorm::batch_stats(s);
        for (std::size_t c = 0; c < 16; ++c) {
            out.push_back(static_cast<T>(mean[c]));
            out.push_back(static_cast<T>(m2[c]));
            // Keep full float64 bits too: compare the statistics exactly.
            T bits[sizeof(double) / sizeof(T)];
            std::memcpy(bits, &m2[c], sizeof(double));
            out.insert(out.end(), bits, bits + sizeof(double) / sizeof(T));
        }
    }

    for (bool one_sample : {false, true}) {
        ChannelAffineArgs<T> c;
        std::vector<T> y(x.size());
        c.x = x.data();
        c.y = y.data();
        c.center = bias.data();
        c.scale = weight.data();
        c.offset = bias.data();
        if (one_sample) {  // split across channels
            c.outer = 1;
            c.mid = 64;
            c.inner = 4100;
            c.x_mid_stride = c.y_mid_stride = 4100;
        } else {
            c.outer = 64;
            c.mid = 4100;
            c.x_outer_stride = c.y_outer_stride = 4100;
        }
        simdnorm::channel_affine(c);
        append(y);
    }
    return out;
}

}  // namespace

TEST_SUITE("public_api") {
    TEST_CASE_TEMPLATE("one thread and two threads give identical bits", T, float, double) {
        StateGuard guard;
        for (const Variant& v : runnable_variants()) {
            INFO("variant " << std::string(v.name()));
            const std::vector<T> single = run_on(v, 1, run_public_ops<T>);
            const std::vector<T> parallel = run_on(v, 2, run_public_ops<T>);
            CHECK(same_bits(single, parallel));
        }
    }

    TEST_CASE_TEMPLATE("dispatch calls the active variant's kernel", T, float, double) {
        StateGuard guard;
        simdnorm::set_num_threads(2);
        const std::vector<T> x = normal_values<T>(40 * 999, 11), weight = normal_values<T>(999, 12, 1.0, 0.5);
        for (const Variant& v : runnable_variants()) {
            INFO("variant " << std::string(v.name()));
            simdnorm::set_active_isa(v.isa);
            CHECK(simdnorm::active_isa() == v.isa);
            std::vector<T> y_public(x.size()), y_direct(x.size());
            NormArgs<T> a;
            a.x = x.data();
            a.weight = weight.data();
            a.outer = 40;
            a.mid = 999;
            a.x_outer_stride = a.y_outer_stride = 999;
            a.y = y_public.data();
            simdnorm::layer_norm(a);
            a.y = y_direct.data();
            v.get<T>().layer_norm(a);  // rows are independent, so chunking cannot change bits
            CHECK(same_bits(y_public, y_direct));
        }
    }

    TEST_CASE("empty reduction axis gives NaN statistics") {
        std::vector<float> mean(3, 0.0f), rstd(3, 0.0f);
        NormArgs<float> a;
        a.outer = 3;
        a.mid = 0;
        a.mean = mean.data();
        a.rstd = rstd.data();
        simdnorm::layer_norm(a);
        for (std::size_t i = 0; i < 3; ++i) {
            CHECK(std::isnan(mean[i]));
            CHECK(std::isnan(rstd[i]));
        }
    }

    TEST_CASE("stream_output_bytes: outputs from there on are streamed, same bits either way") {
        const std::size_t threshold = simdnorm::stream_output_bytes();
        CHECK(threshold >= (std::size_t(1) << 20));
        // One row past the threshold vs the same row alone (not streamed).
        const std::size_t cols = 1000, rows = threshold / (cols * sizeof(float)) + 1;
        std::vector<float> x(rows * cols), y(rows * cols), y_row(cols);
        for (std::size_t i = 0; i < x.size(); ++i) x[i] = static_cast<float>((i * 7919) % 1013) * 0.01f - 5.0f;
        NormArgs<float> a;
        a.x = x.data();
        a.y = y.data();
        a.outer = rows;
        a.mid = cols;
        a.x_outer_stride = a.y_outer_stride = static_cast<std::ptrdiff_t>(cols);
        simdnorm::layer_norm(a);
        for (std::size_t r : {std::size_t(0), std::size_t(1), rows / 2, rows - 1}) {
            NormArgs<float> one = a;
            one.x = x.data() + r * cols;
            one.y = y_row.data();
            one.outer = 1;
            simdnorm::layer_norm(one);
            CHECK(std::memcmp(y_row.data(), y.data() + r * cols, cols * sizeof(float)) == 0);
        }
    }

    TEST_CASE("parse_isa") {
        Isa isa = Isa::scalar;
        CHECK(simdnorm::parse_isa("avx2", &isa));
        CHECK(isa == Isa::avx2);
        CHECK(simdnorm::parse_isa("AVX512", &isa));
        CHECK(isa == Isa::avx512);
        CHECK(simdnorm::parse_isa("Neon", &isa));
        CHECK(isa == Isa::neon);
        CHECK(simdnorm::parse_isa("scalar", &isa));
        CHECK(isa == Isa::scalar);
        isa = Isa::avx2;
        CHECK_FALSE(simdnorm::parse_isa("sse4", &isa));
        CHECK_FALSE(simdnorm::parse_isa("", &isa));
        CHECK_FALSE(simdnorm::parse_isa("avx2 ", &isa));
        CHECK(isa == Isa::avx2);  // untouched on failure
        for (Isa each : {Isa::avx512, Isa::avx2, Isa::neon, Isa::scalar}) {
            CHECK(simdnorm::parse_isa(simdnorm::isa_name(each), &isa));
            CHECK(isa == each);
        }
    }

    TEST_CASE("compiled and supported variants") {
        const std::vector<Isa> compiled = simdnorm::compiled_isas(), supported = simdnorm::supported_isas();
        REQUIRE(!compiled.empty());
        CHECK(compiled.back() == Isa::scalar);
        CHECK(compiled.size() == compiled_variants().size());
        CHECK(supported.size() == runnable_variants().size());
        for (std::size_t i = 0; i < supported.size(); ++i) CHECK(supported[i] == runnable_variants()[i].isa);
        CHECK(simdnorm::isa_supported(Isa::scalar));
#if SIMDNORM_HAVE_NEON
        CHECK(simdnorm::isa_supported(Isa::neon));  // AdvSIMD is mandatory on AArch64
#endif
        MESSAGE("compiled: " << compiled.size() << " variants, supported here: " << supported.size()
                             << ", best: " << std::string(simdnorm::isa_name(supported.front())));
    }

    TEST_CASE("set_active_isa switches and rejects what cannot run") {
        StateGuard guard;
        for (Isa isa : simdnorm::supported_isas()) {
            simdnorm::set_active_isa(isa);
            CHECK(simdnorm::active_isa() == isa);
        }
        simdnorm::set_active_isa(Isa::scalar);
        for (Isa isa : {Isa::avx512, Isa::avx2, Isa::neon}) {
            if (simdnorm::isa_supported(isa)) continue;
            INFO("isa " << std::string(simdnorm::isa_name(isa)));
            CHECK_THROWS_AS(simdnorm::set_active_isa(isa), std::invalid_argument);
            CHECK(simdnorm::active_isa() == Isa::scalar);  // unchanged after the failure
        }
    }

    TEST_CASE("PinActiveIsa keeps this thread's variant while others switch") {
        StateGuard guard;
        const Isa first = simdnorm::supported_isas().front();
        simdnorm::set_active_isa(first);
        {
            const simdnorm::PinActiveIsa pin;
            simdnorm::set_active_isa(Isa::scalar);
            CHECK(simdnorm::active_isa() == first);  // pinned here
            Isa seen_elsewhere = first;
            std::thread([&] { seen_elsewhere = simdnorm::active_isa(); }).join();
            CHECK(seen_elsewhere == Isa::scalar);  // the switch itself is process-wide
            {
                const simdnorm::PinActiveIsa nested;  // nests: the outer pin stays in charge
                CHECK(simdnorm::active_isa() == first);
            }
            CHECK(simdnorm::active_isa() == first);
        }
        CHECK(simdnorm::active_isa() == Isa::scalar);
    }

    TEST_CASE("SIMDNORM_ISA selects the initial variant") {
        StateGuard guard;
        const char* previous = std::getenv("SIMDNORM_ISA");
        const std::string saved = previous ? previous : "";
        const Isa best = simdnorm::supported_isas().front();

        setenv("SIMDNORM_ISA", "SCALAR", 1);
        CHECK(simdnorm::init_active_isa_from_env().empty());
        CHECK(simdnorm::active_isa() == Isa::scalar);

        setenv("SIMDNORM_ISA", "not-an-isa", 1);
        CHECK_FALSE(simdnorm::init_active_isa_from_env().empty());  // warning text, best variant
        CHECK(simdnorm::active_isa() == best);

        for (Isa isa : {Isa::avx512, Isa::avx2, Isa::neon}) {
            setenv("SIMDNORM_ISA", simdnorm::isa_name(isa), 1);
            const std::string warning = simdnorm::init_active_isa_from_env();
            CAPTURE(warning);
            CHECK(warning.empty() == simdnorm::isa_supported(isa));
            CHECK(simdnorm::active_isa() == (simdnorm::isa_supported(isa) ? isa : best));
        }

        unsetenv("SIMDNORM_ISA");
        CHECK(simdnorm::init_active_isa_from_env().empty());
        CHECK(simdnorm::active_isa() == best);
        if (previous) setenv("SIMDNORM_ISA", saved.c_str(), 1);
    }
}
