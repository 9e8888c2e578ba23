// LayerNorm: every variant vs scalar and the float64 reference (cases in norm_check.hpp).
#include "norm_check.hpp"

using namespace simdnorm_test;

TEST_SUITE("layer_norm") {
    TEST_CASE_TEMPLATE("rows layout, sizes 1..70 and multi-chunk rows", T, float, double) { norm_rows_all_sizes<T>(true); }
    TEST_CASE_TEMPLATE("rows layout, padded and negative outer strides", T, float, double) { norm_rows_strided<T>(true); }
    TEST_CASE_TEMPLATE("columns layout (inner > 1)", T, float, double) { norm_columns<T>(true); }
    TEST_CASE_TEMPLATE("large common offset keeps precision", T, float, double) { norm_large_offset<T>(true); }
    TEST_CASE_TEMPLATE("constant rows give exactly bias", T, float, double) { norm_constant_rows<T>(true); }
    TEST_CASE_TEMPLATE("in place (y == x)", T, float, double) { norm_in_place<T>(true); }
    TEST_CASE_TEMPLATE("streamed output: the bits of the cached path", T, float, double) {
        norm_streamed_equals_cached<T>(true);
    }
    TEST_CASE_TEMPLATE("a row in a batch: the bits of the row alone", T, float, double) {
        norm_row_in_batch_equals_row_alone<T>(true);
    }

    TEST_CASE_TEMPLATE("NaN stays in its own row", T, float, double) {
        for (const Variant& v : runnable_variants()) {
            INFO("variant " << std::string(v.name()));
            for (std::size_t mid : {1, 5, 37, 4100}) {
                CAPTURE(mid);
                std::vector<T> x = normal_values<T>(3 * mid, mid), y(3 * mid);
                x[mid + mid / 2] = std::numeric_limits<T>::quiet_NaN();
                NormArgs<T> a;
                a.x = x.data();
                a.y = y.data();
                a.outer = 3;
                a.mid = mid;
                a.x_outer_stride = a.y_outer_stride = static_cast<std::ptrdiff_t>(mid);
                v.get<T>().layer_norm(a);
                std::size_t nan_first = 0, nan_middle = 0, nan_last = 0;
                for (std::size_t k = 0; k < mid; ++k) {
                    nan_first += std::isnan(y[k]);
                    nan_middle += std::isnan(y[mid + k]);
                    nan_last += std::isnan(y[2 * mid + k]);
                }
                CHECK(nan_first == 0);
                CHECK(nan_middle == mid);
                CHECK(nan_last == 0);
            }
        }
    }
}
