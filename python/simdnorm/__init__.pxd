# cython: language_level=3
# simdnorm's C-level API for Cython: `cimport simdnorm` (or `from simdnorm cimport ...`).
#
# The kernels reach a cimporting extension through a table of C function pointers exported by
# simdnorm._core as the capsule "simdnorm._core._C_API" (simdnorm/capi.h explains the choice).
# Build with include_dirs=[simdnorm.get_include()], call import_simdnorm() once at module import
# (like numpy's import_array()), then call the wrappers below from nogil code:
#
#     cimport simdnorm
#     simdnorm.import_simdnorm()
#     cdef simdnorm.running_state state
#     simdnorm.running_init(&state, F, &mean[0], &m2[0], 0.0, 1e-5, simdnorm.SIMDNORM_NONFINITE_RAISE)
#     with nogil:
#         for i in range(n):
#             status = simdnorm.running_update_normalize_f32(&state, &x[i, 0], &y[i, 0], 1, 0, 0)
#
# Every wrapper returns a status: SIMDNORM_OK (0) or a SIMDNORM_ERR_* code (status_message()
# describes it; SIMDNORM_ERR_NOT_IMPORTED when import_simdnorm() was not called). They run the same
# dispatched kernels as the Python API: simdnorm.use_isa() / SIMDNORM_ISA apply.

from libc.stdint cimport int64_t, uint32_t
from libc.stddef cimport ptrdiff_t

cdef extern from "simdnorm/capi.h" nogil:
    enum:
        SIMDNORM_CAPI_VERSION
        SIMDNORM_OK
        SIMDNORM_ERR_NULL
        SIMDNORM_ERR_SIZE
        SIMDNORM_ERR_LAYOUT
        SIMDNORM_ERR_VALUE
        SIMDNORM_ERR_NONFINITE
        SIMDNORM_ERR_EMPTY
        SIMDNORM_ERR_NOMEM
        SIMDNORM_ERR_INTERNAL
        SIMDNORM_ERR_NOT_IMPORTED
        SIMDNORM_NONFINITE_RAISE
        SIMDNORM_NONFINITE_IGNORE
        SIMDNORM_NONFINITE_PROPAGATE

    ctypedef struct simdnorm_running_state:
        size_t num_features
        int64_t count
        double* mean
        double* m2
        double momentum
        double eps
        int nonfinite

    ctypedef struct simdnorm_capi:
        uint32_t abi_version
        uint32_t size
        const char* (*active_isa)() noexcept nogil
        const char* (*status_message)(int status) noexcept nogil
        int (*layer_norm_f32)(const float* x, float* y, size_t rows, size_t cols, ptrdiff_t x_row_stride,
                              ptrdiff_t y_row_stride, const float* weight, const float* bias, double eps,
                              float* mean, float* rstd) noexcept nogil
        int (*layer_norm_f64)(const double* x, double* y, size_t rows, size_t cols, ptrdiff_t x_row_stride,
                              ptrdiff_t y_row_stride, const double* weight, const double* bias, double eps,
                              double* mean, double* rstd) noexcept nogil
        int (*rms_norm_f32)(const float* x, float* y, size_t rows, size_t cols, ptrdiff_t x_row_stride,
                            ptrdiff_t y_row_stride, const float* weight, double eps, float* rstd) noexcept nogil
        int (*rms_norm_f64)(const double* x, double* y, size_t rows, size_t cols, ptrdiff_t x_row_stride,
                            ptrdiff_t y_row_stride, const double* weight, double eps, double* rstd) noexcept nogil
        int (*batch_stats_f32)(const float* x, size_t outer, size_t channels, size_t inner,
                               ptrdiff_t x_outer_stride, ptrdiff_t x_channel_stride,
                               double* mean, double* var) noexcept nogil
        int (*batch_stats_f64)(const double* x, size_t outer, size_t channels, size_t inner,
                               ptrdiff_t x_outer_stride, ptrdiff_t x_channel_stride,
                               double* mean, double* var) noexcept nogil
        int (*scale_shift_f32)(const float* x, float* y, size_t outer, size_t channels, size_t inner,
                               ptrdiff_t x_outer_stride, ptrdiff_t x_channel_stride, ptrdiff_t y_outer_stride,
                               ptrdiff_t y_channel_stride, const float* scale, const float* shift) noexcept nogil
        int (*scale_shift_f64)(const double* x, double* y, size_t outer, size_t channels, size_t inner,
                               ptrdiff_t x_outer_stride, ptrdiff_t x_channel_stride, ptrdiff_t y_outer_stride,
                               ptrdiff_t y_channel_stride, const double* scale, const double* shift) noexcept nogil
        int (*running_init)(simdnorm_running_state* state, size_t num_features, double* mean, double* m2,
                            double momentum, double eps, int nonfinite) noexcept nogil
        int (*running_update_f32)(simdnorm_running_state* state, const float* x, size_t rows,
                                  ptrdiff_t row_stride) noexcept nogil
        int (*running_update_f64)(simdnorm_running_state* state, const double* x, size_t rows,
                                  ptrdiff_t row_stride) noexcept nogil
        int (*running_normalize_f32)(const simdnorm_running_state* state, const float* x, float* y, size_t rows,
                                     ptrdiff_t x_row_stride, ptrdiff_t y_row_stride) noexcept nogil
        int (*running_normalize_f64)(const simdnorm_running_state* state, const double* x, double* y, size_t rows,
                                     ptrdiff_t x_row_stride, ptrdiff_t y_row_stride) noexcept nogil
        int (*running_update_normalize_f32)(simdnorm_running_state* state, const float* x, float* y, size_t rows,
                                            ptrdiff_t x_row_stride, ptrdiff_t y_row_stride) noexcept nogil
        int (*running_update_normalize_f64)(simdnorm_running_state* state, const double* x, double* y,
                                            size_t rows, ptrdiff_t x_row_stride,
                                            ptrdiff_t y_row_stride) noexcept nogil

    # One pointer per extension module (a static in the header), set by import_simdnorm().
    const simdnorm_capi* simdnorm_capi_ptr

cdef extern from "simdnorm/capi.h":
    int simdnorm_import_capi() except -1

ctypedef simdnorm_running_state running_state


cdef inline int import_simdnorm() except -1:
    """Fetches the table from simdnorm._core._C_API; ImportError if missing or incompatible."""
    return simdnorm_import_capi()


cdef inline const simdnorm_capi* capi() noexcept nogil:
    """The table itself (NULL before import_simdnorm()): entries appended by later versions."""
    return simdnorm_capi_ptr


cdef inline const char* active_isa() noexcept nogil:
    """Name of the variant in use ("avx512", "avx2", "neon", "scalar"); NULL before import."""
    if simdnorm_capi_ptr is NULL:
        return NULL
    return simdnorm_capi_ptr.active_isa()


cdef inline const char* status_message(int status) noexcept nogil:
    if simdnorm_capi_ptr is NULL:
        return b"the simdnorm C API is not imported (call import_simdnorm() first)"
    return simdnorm_capi_ptr.status_message(status)


# ---- LayerNorm / RMSNorm on rows ------------------------------------------------------------------

cdef inline int layer_norm_f32(const float* x, float* y, size_t rows, size_t cols, ptrdiff_t x_row_stride,
                               ptrdiff_t y_row_stride, const float* weight, const float* bias, double eps,
                               float* mean, float* rstd) noexcept nogil:
    if simdnorm_capi_ptr is NULL:
        return SIMDNORM_ERR_NOT_IMPORTED
    return simdnorm_capi_ptr.layer_norm_f32(x, y, rows, cols, x_row_stride, y_row_stride, weight, bias, eps,
                                            mean, rstd)


cdef inline int layer_norm_f64(const double* x, double* y, size_t rows, size_t cols, ptrdiff_t x_row_stride,
                               ptrdiff_t y_row_stride, const double* weight, const double* bias, double eps,
                               double* mean, double* rstd) noexcept nogil:
    if simdnorm_capi_ptr is NULL:
        return SIMDNORM_ERR_NOT_IMPORTED
    return simdnorm_capi_ptr.layer_norm_f64(x, y, rows, cols, x_row_stride, y_row_stride, weight, bias, eps,
                                            mean, rstd)


cdef inline int rms_norm_f32(const float* x, float* y, size_t rows, size_t cols, ptrdiff_t x_row_stride,
                             ptrdiff_t y_row_stride, const float* weight, double eps, float* rstd) noexcept nogil:
    if simdnorm_capi_ptr is NULL:
        return SIMDNORM_ERR_NOT_IMPORTED
    return simdnorm_capi_ptr.rms_norm_f32(x, y, rows, cols, x_row_stride, y_row_stride, weight, eps, rstd)


cdef inline int rms_norm_f64(const double* x, double* y, size_t rows, size_t cols, ptrdiff_t x_row_stride,
                             ptrdiff_t y_row_stride, const double* weight, double eps, double* rstd) noexcept nogil:
    if simdnorm_capi_ptr is NULL:
        return SIMDNORM_ERR_NOT_IMPORTED
    return simdnorm_capi_ptr.rms_norm_f64(x, y, rows, cols, x_row_stride, y_row_stride, weight, eps, rstd)


# ---- per-channel statistics and scale / shift: x viewed as (outer, channels, inner) ---------------
# channels-last (N, C):  outer=N, inner=1, outer_stride=row stride, channel_stride=1
# channels-first (N, C, HW): outer=N, inner=HW, outer_stride=C*HW, channel_stride=HW

cdef inline int batch_stats_f32(const float* x, size_t outer, size_t channels, size_t inner,
                                ptrdiff_t x_outer_stride, ptrdiff_t x_channel_stride,
                                double* mean, double* var) noexcept nogil:
    if simdnorm_capi_ptr is NULL:
        return SIMDNORM_ERR_NOT_IMPORTED
    return simdnorm_capi_ptr.batch_stats_f32(x, outer, channels, inner, x_outer_stride, x_channel_stride, mean, var)


cdef inline int batch_stats_f64(const double* x, size_t outer, size_t channels, size_t inner,
                                ptrdiff_t x_outer_stride, ptrdiff_t x_channel_stride,
                                double* mean, double* var) noexcept nogil:
    if simdnorm_capi_ptr is NULL:
        return SIMDNORM_ERR_NOT_IMPORTED
    return simdnorm_capi_ptr.batch_stats_f64(x, outer, channels, inner, x_outer_stride, x_channel_stride, mean, var)


cdef inline int scale_shift_f32(const float* x, float* y, size_t outer, size_t channels, size_t inner,
                                ptrdiff_t x_outer_stride, ptrdiff_t x_channel_stride, ptrdiff_t y_outer_stride,
                                ptrdiff_t y_channel_stride, const float* scale, const float* shift) noexcept nogil:
    if simdnorm_capi_ptr is NULL:
        return SIMDNORM_ERR_NOT_IMPORTED
    return simdnorm_capi_ptr.scale_shift_f32(x, y, outer, channels, inner, x_outer_stride, x_channel_stride,
                                             y_outer_stride, y_channel_stride, scale, shift)


cdef inline int scale_shift_f64(const double* x, double* y, size_t outer, size_t channels, size_t inner,
                                ptrdiff_t x_outer_stride, ptrdiff_t x_channel_stride, ptrdiff_t y_outer_stride,
                                ptrdiff_t y_channel_stride, const double* scale, const double* shift) noexcept nogil:
    if simdnorm_capi_ptr is NULL:
        return SIMDNORM_ERR_NOT_IMPORTED
    return simdnorm_capi_ptr.scale_shift_f64(x, y, outer, channels, inner, x_outer_stride, x_channel_stride,
                                             y_outer_stride, y_channel_stride, scale, shift)


# ---- streaming statistics on a caller-owned running_state (simdnorm.RunningStats semantics) ------

cdef inline int running_init(running_state* state, size_t num_features, double* mean, double* m2,
                             double momentum, double eps, int nonfinite) noexcept nogil:
    if simdnorm_capi_ptr is NULL:
        return SIMDNORM_ERR_NOT_IMPORTED
    return simdnorm_capi_ptr.running_init(state, num_features, mean, m2, momentum, eps, nonfinite)


cdef inline int running_update_f32(running_state* state, const float* x, size_t rows,
                                   ptrdiff_t row_stride) noexcept nogil:
    if simdnorm_capi_ptr is NULL:
        return SIMDNORM_ERR_NOT_IMPORTED
    return simdnorm_capi_ptr.running_update_f32(state, x, rows, row_stride)


cdef inline int running_update_f64(running_state* state, const double* x, size_t rows,
                                   ptrdiff_t row_stride) noexcept nogil:
    if simdnorm_capi_ptr is NULL:
        return SIMDNORM_ERR_NOT_IMPORTED
    return simdnorm_capi_ptr.running_update_f64(state, x, rows, row_stride)


cdef inline int running_normalize_f32(const running_state* state, const float* x, float* y, size_t rows,
                                      ptrdiff_t x_row_stride, ptrdiff_t y_row_stride) noexcept nogil:
    if simdnorm_capi_ptr is NULL:
        return SIMDNORM_ERR_NOT_IMPORTED
    return simdnorm_capi_ptr.running_normalize_f32(state, x, y, rows, x_row_stride, y_row_stride)


cdef inline int running_normalize_f64(const running_state* state, const double* x, double* y, size_t rows,
                                      ptrdiff_t x_row_stride, ptrdiff_t y_row_stride) noexcept nogil:
    if simdnorm_capi_ptr is NULL:
        return SIMDNORM_ERR_NOT_IMPORTED
    return simdnorm_capi_ptr.running_normalize_f64(state, x, y, rows, x_row_stride, y_row_stride)


cdef inline int running_update_normalize_f32(running_state* state, const float* x, float* y, size_t rows,
                                             ptrdiff_t x_row_stride, ptrdiff_t y_row_stride) noexcept nogil:
    if simdnorm_capi_ptr is NULL:
        return SIMDNORM_ERR_NOT_IMPORTED
    return simdnorm_capi_ptr.running_update_normalize_f32(state, x, y, rows, x_row_stride, y_row_stride)


cdef inline int running_update_normalize_f64(running_state* state, const double* x, double* y, size_t rows,
                                             ptrdiff_t x_row_stride, ptrdiff_t y_row_stride) noexcept nogil:
    if simdnorm_capi_ptr is NULL:
        return SIMDNORM_ERR_NOT_IMPORTED
    return simdnorm_capi_ptr.running_update_normalize_f64(state, x, y, rows, x_row_stride, y_row_stride)
