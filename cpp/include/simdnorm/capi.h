/* simdnorm C-level API: a versioned table of function pointers for C, C++ and Cython extensions.
 *
 * Why a PyCapsule and not a shared library: the kernels, the CPU dispatch state (use_isa(),
 * SIMDNORM_ISA) and the thread pool live inside the simdnorm._core extension, linked statically.
 * Exporting a table from that module (simdnorm._core._C_API, as NumPy's _ARRAY_API and SciPy's
 * cython_blas do) hands downstream code the very functions Python calls, with the process-wide
 * ISA choice applied, and needs nothing at link time: a downstream extension compiles against this
 * header only, and finds the table at import (PyCapsule_Import). A separate libsimdnorm would need
 * RPATH / install-name / DLL-search handling in every wheel (auditwheel, delocate, delvewheel),
 * would either duplicate the dispatch state (then use_isa() would not reach it) or force _core to
 * load it too, and would pin downstream builds to its soname. The table costs one indirect call
 * per operation (~1 ns), and it can grow: `abi_version` changes only on incompatible changes,
 * new entries go at the end and raise `size`.
 *
 * Semantics: every entry calls the same dispatched C++ operation as the Python API (layer_norm,
 * rms_norm, batch_stats, scale_shift: the active variant of simdnorm.current_isa(); RunningStats:
 * its per-sample loops). simdnorm.use_isa() and SIMDNORM_ISA apply to C callers too (process-wide).
 * Entries take no Python objects, never touch the GIL (call them inside `with nogil:`), never throw
 * and return a status: SIMDNORM_OK (0) or one of the error codes below, in which case nothing was
 * written. Strides are in elements; y may be x itself (same strides) for in-place operation; other
 * overlap between inputs and outputs is undefined. Large inputs use simdnorm's thread pool
 * (simdnorm.set_num_threads), with results bit-identical for any thread count.
 *
 * Using it from C / C++ (Python.h included first):
 *     if (simdnorm_import_capi() < 0) return NULL;   // sets ImportError
 *     simdnorm_capi_ptr->layer_norm_f32(...);
 * From Cython: `cimport simdnorm` then `simdnorm.import_simdnorm()` (see simdnorm/__init__.pxd).
 * simdnorm.get_include() is the directory holding this file as simdnorm/capi.h.
 */
#ifndef SIMDNORM_CAPI_H
#define SIMDNORM_CAPI_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Incompatible changes only (appending entries raises `size` instead). */
#define SIMDNORM_CAPI_VERSION 1
#define SIMDNORM_CAPI_CAPSULE "simdnorm._core._C_API"

/* Status codes. */
#define SIMDNORM_OK 0
#define SIMDNORM_ERR_NULL 1          /* a required pointer is NULL */
#define SIMDNORM_ERR_SIZE 2          /* zero features / channels, or a size that overflows */
#define SIMDNORM_ERR_LAYOUT 3        /* a stride the operation cannot take (see each entry) */
#define SIMDNORM_ERR_VALUE 4         /* eps, momentum or the non-finite policy out of range */
#define SIMDNORM_ERR_NONFINITE 5     /* policy RAISE: a NaN / Inf in the input; state unchanged */
#define SIMDNORM_ERR_EMPTY 6         /* streaming: no statistics yet (count == 0) */
#define SIMDNORM_ERR_NOMEM 7         /* allocation failed */
#define SIMDNORM_ERR_INTERNAL 8      /* any other failure inside simdnorm */
#define SIMDNORM_ERR_NOT_IMPORTED 9  /* the Cython wrappers: import_simdnorm() not called */

/* Non-finite policy of the streaming state (RunningStats' nonfinite=). */
#define SIMDNORM_NONFINITE_RAISE 0      /* reject the whole call, change nothing */
#define SIMDNORM_NONFINITE_IGNORE 1     /* skip samples (rows) holding a NaN / Inf */
#define SIMDNORM_NONFINITE_PROPAGATE 2  /* let them into the statistics */

/* Streaming per-feature statistics on caller-owned memory: the state of simdnorm.RunningStats.
 *   exact mode (momentum == 0):  m2[j] = sum((x - mean)^2), var = m2 / count (Welford / Chan).
 *   momentum mode (0 < momentum <= 1): m2[j] holds the variance itself, exponentially weighted,
 *     momentum weighting the new sample (PyTorch's convention); the first sample sets mean = x.
 * Initialize with running_init (or count = 0, mean = m2 = 0). The functions do not lock: one
 * thread at a time per state. Normalization: y = (x - mean) / sqrt(var + eps). */
typedef struct simdnorm_running_state {
    size_t num_features; /* >= 1 */
    int64_t count;       /* samples seen, >= 0 */
    double* mean;        /* num_features doubles, owned by the caller */
    double* m2;          /* num_features doubles, owned by the caller */
    double momentum;     /* 0: exact mode; else 0 < momentum <= 1 */
    double eps;          /* > 0, finite */
    int nonfinite;       /* SIMDNORM_NONFINITE_* */
} simdnorm_running_state;

typedef struct simdnorm_capi {
    uint32_t abi_version; /* SIMDNORM_CAPI_VERSION of the library */
    uint32_t size;        /* sizeof(simdnorm_capi) of the library: entries beyond it are absent */

    /* "avx512", "avx2", "neon" or "scalar": the variant every entry uses now (static string). */
    const char* (*active_isa)(void);
    /* Static description of a status code. */
    const char* (*status_message)(int status);

    /* LayerNorm over each of `rows` rows of `cols` contiguous elements:
     *   y = (x - mean) / sqrt(var + eps) * weight + bias   (population variance)
     * x row r starts at x + r * x_row_stride (elements). weight, bias (cols), mean, rstd (rows,
     * receiving the row mean and 1 / sqrt(var + eps)) may each be NULL. eps finite and at least the
     * smallest normal number of the data type (FLT_MIN / DBL_MIN), else SIMDNORM_ERR_VALUE. cols == 0
     * writes NaN statistics. Same numerics as simdnorm.layer_norm (see kernels.hpp). */
    int (*layer_norm_f32)(const float* x, float* y, size_t rows, size_t cols, ptrdiff_t x_row_stride,
                          ptrdiff_t y_row_stride, const float* weight, const float* bias, double eps, float* mean,
                          float* rstd);
    int (*layer_norm_f64)(const double* x, double* y, size_t rows, size_t cols, ptrdiff_t x_row_stride,
                          ptrdiff_t y_row_stride, const double* weight, const double* bias, double eps, double* mean,
                          double* rstd);

    /* RMSNorm over rows: y = x / sqrt(mean(x^2) + eps) * weight. weight and rstd may be NULL; eps as above. */
    int (*rms_norm_f32)(const float* x, float* y, size_t rows, size_t cols, ptrdiff_t x_row_stride,
                        ptrdiff_t y_row_stride, const float* weight, double eps, float* rstd);
    int (*rms_norm_f64)(const double* x, double* y, size_t rows, size_t cols, ptrdiff_t x_row_stride,
                        ptrdiff_t y_row_stride, const double* weight, double eps, double* rstd);

    /* Per-channel mean and population variance (float64) of x viewed as (outer, channels, inner),
     * inner elements contiguous, count = outer * inner (an empty batch gives NaN, as numpy.var):
     *   channels-last (N, C):      outer = N, inner = 1, outer_stride = row stride, channel_stride = 1
     *   channels-first (N, C, HW): outer = N, inner = HW, outer_stride = C * HW, channel_stride = HW
     * With inner == 1 the channel stride must be 1 (SIMDNORM_ERR_LAYOUT). simdnorm.batch_stats. */
    int (*batch_stats_f32)(const float* x, size_t outer, size_t channels, size_t inner, ptrdiff_t x_outer_stride,
                           ptrdiff_t x_channel_stride, double* mean, double* var);
    int (*batch_stats_f64)(const double* x, size_t outer, size_t channels, size_t inner, ptrdiff_t x_outer_stride,
                           ptrdiff_t x_channel_stride, double* mean, double* var);

    /* y = x * scale[c] + shift[c] per channel, same (outer, channels, inner) view as batch_stats
     * for x and y. simdnorm.scale_shift. */
    int (*scale_shift_f32)(const float* x, float* y, size_t outer, size_t channels, size_t inner,
                           ptrdiff_t x_outer_stride, ptrdiff_t x_channel_stride, ptrdiff_t y_outer_stride,
                           ptrdiff_t y_channel_stride, const float* scale, const float* shift);
    int (*scale_shift_f64)(const double* x, double* y, size_t outer, size_t channels, size_t inner,
                           ptrdiff_t x_outer_stride, ptrdiff_t x_channel_stride, ptrdiff_t y_outer_stride,
                           ptrdiff_t y_channel_stride, const double* scale, const double* shift);

    /* Streaming statistics (simdnorm.RunningStats semantics). running_init fills the state and
     * zeroes mean / m2 (momentum 0: exact mode). */
    int (*running_init)(simdnorm_running_state* state, size_t num_features, double* mean, double* m2,
                        double momentum, double eps, int nonfinite);
    /* Feeds `rows` samples (row r at x + r * row_stride). Exact-mode batches (rows > 1) use the
     * batch mean / M2 + Chan's combination, allocating 3 * num_features doubles; one sample
     * allocates nothing. */
    int (*running_update_f32)(simdnorm_running_state* state, const float* x, size_t rows, ptrdiff_t row_stride);
    int (*running_update_f64)(simdnorm_running_state* state, const double* x, size_t rows, ptrdiff_t row_stride);
    /* y = (x - mean) / sqrt(var + eps) with the state's eps; SIMDNORM_ERR_EMPTY while count == 0. */
    int (*running_normalize_f32)(const simdnorm_running_state* state, const float* x, float* y, size_t rows,
                                 ptrdiff_t x_row_stride, ptrdiff_t y_row_stride);
    int (*running_normalize_f64)(const simdnorm_running_state* state, const double* x, double* y, size_t rows,
                                 ptrdiff_t x_row_stride, ptrdiff_t y_row_stride);
    /* update then normalize with the updated statistics (one fused pass for one sample). */
    int (*running_update_normalize_f32)(simdnorm_running_state* state, const float* x, float* y, size_t rows,
                                        ptrdiff_t x_row_stride, ptrdiff_t y_row_stride);
    int (*running_update_normalize_f64)(simdnorm_running_state* state, const double* x, double* y, size_t rows,
                                        ptrdiff_t x_row_stride, ptrdiff_t y_row_stride);
} simdnorm_capi;

/* Importing the table (needs Python.h included first). One pointer per translation unit, like
 * NumPy's PyArray_API. Define SIMDNORM_CAPI_NO_IMPORT to leave it out. */
#if defined(Py_PYTHON_H) && !defined(SIMDNORM_CAPI_NO_IMPORT)
#if defined(__GNUC__) || defined(__clang__)
#define SIMDNORM_CAPI_UNUSED __attribute__((unused))
#else
#define SIMDNORM_CAPI_UNUSED
#endif
static const simdnorm_capi* simdnorm_capi_ptr SIMDNORM_CAPI_UNUSED = NULL;

/* 0 on success; -1 with a Python exception set (ImportError for a missing or incompatible table). */
static SIMDNORM_CAPI_UNUSED int simdnorm_import_capi(void) {
    const simdnorm_capi* table;
    if (simdnorm_capi_ptr != NULL) return 0;
    table = (const simdnorm_capi*)PyCapsule_Import(SIMDNORM_CAPI_CAPSULE, 0);
    if (table == NULL) return -1;
    if (table->abi_version != SIMDNORM_CAPI_VERSION) {
        PyErr_Format(PyExc_ImportError,
                     "simdnorm C API version %u, this extension was compiled for version %d: rebuild it",
                     (unsigned)table->abi_version, SIMDNORM_CAPI_VERSION);
        return -1;
    }
    if (table->size < sizeof(simdnorm_capi)) {
        PyErr_Format(PyExc_ImportError,
                     "the installed simdnorm C API table is older than the simdnorm/capi.h this extension "
                     "was compiled with (%u < %u bytes): upgrade simdnorm",
                     (unsigned)table->size, (unsigned)sizeof(simdnorm_capi));
        return -1;
    }
    simdnorm_capi_ptr = table;
    return 0;
}
#endif

#ifdef __cplusplus
}
#endif

#endif /* SIMDNORM_CAPI_H */
