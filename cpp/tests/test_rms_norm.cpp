// RMSNorm: every variant vs scalar and the float64 reference (cases in norm_check.hpp).
#include "norm_check.hpp"

using namespace simdnorm_test;

TEST_SUITE("rms_norm") {
    TEST_CASE_TEMPLATE("rows layout, sizes 1..70 and multi-chunk rows", T, float, double) { norm_rows_all_sizes<T>(false); }
    TEST_CASE_TEMPLATE("rows layout, padded and negative outer strides", T, float, double) { norm_rows_strided<T>(false); }
    TEST_CASE_TEMPLATE("columns layout (inner > 1)", T, float, double) { norm_columns<T>(false); }
    TEST_CASE_TEMPLATE("large common offset keeps precision", T, float, double) { norm_large_offset<T>(false); }
    TEST_CASE_TEMPLATE("constant rows", T, float, double) { norm_constant_rows<T>(false); }
    TEST_CASE_TEMPLATE("in place (y == x)", T, float, double) { norm_in_place<T>(false); }
    TEST_CASE_TEMPLATE("streamed output: the bits of the cached path", T, float, double) {
        norm_streamed_equals_cached<T>(false);
    }
    TEST_CASE_TEMPLATE("a row in a batch: the bits of the row alone", T, float, double) {
        norm_row_in_batch_equals_row_alone<T>(false);
    }

    // kernels.hpp: "bias ... may be null; ignored by rms_norm". A non-null bias must not change y.
    TEST_CASE_TEMPLATE("bias is ignored, rows and columns layouts", T, float, double) {
        const std::vector<T> x = normal_values<T>(2 * 37 * 19, 77), weight = normal_values<T>(37, 78, 1.0, 0.5);
        const std::vector<T> bias = normal_values<T>(37, 79);
        for (const Variant& v : runnable_variants()) {
            INFO("variant " << std::string(v.name()));
            for (std::size_t inner : {1, 19}) {
                CAPTURE(inner);
                std::vector<T> with_bias(x.size()), without_bias(x.size());
                NormArgs<T> a;
                a.x = x.data();
                a.weight = weight.data();
                a.outer = 2;
                a.mid = 37;
                a.inner = inner;
                a.x_mid_stride = a.y_mid_stride = static_cast<std::ptrdiff_t>(inner);
                a.x_outer_stride = a.y_outer_stride = static_cast<std::ptrdiff_t>(37 * inner);
                a.y = without_bias.data();
                v.get<T>().rms_norm(a);
                a.y = with_bias.data();
                a.bias = bias.data();
                v.get<T>().rms_norm(a);
                CHECK(with_bias == without_bias);
            }
        }
    }
}
