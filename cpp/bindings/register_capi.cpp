// simdnorm._core._C_API: the C-level function table (simdnorm/capi.h) as a PyCapsule.
//
// Each entry checks its arguments, calls the same public C++ operation the Python bindings call
// (simdnorm.hpp: the active ISA's kernels; running_stats.hpp: RunningStats' loops on caller-owned
// state) and turns any exception into a status code: nothing C++ crosses the C boundary.
#include <pybind11/pybind11.h>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <new>
#include <vector>

#define SIMDNORM_CAPI_NO_IMPORT
#include "simdnorm/capi.h"
#include "simdnorm/isa.hpp"
#include "simdnorm/running_stats.hpp"
#include "simdnorm/simdnorm.hpp"

namespace py = pybind11;

namespace simdnorm::bindings {
namespace {

// Runs op() and maps exceptions to status codes.
template <class Op>
int guarded(const Op& op) noexcept {
    try {
        return op();
    } catch (const std::bad_alloc&) {
        return SIMDNORM_ERR_NOMEM;
    } catch (...) {
        return SIMDNORM_ERR_INTERNAL;
    }
}

bool valid_eps(double eps) noexcept { return std::isfinite(eps) && eps > 0.0; }
// Norms of T data: also at least T's smallest normal number, as the Python API requires (a smaller
// eps acts as 0 in T and a constant row would give NaN).
template <class T>
bool valid_eps_for(double eps) noexcept {
    return std::isfinite(eps) && eps >= static_cast<double>(std::numeric_limits<T>::min());
}

const char* c_active_isa() noexcept { return isa_name(active_isa()); }

const char* c_status_message(int status) noexcept {
    switch (status) {
        case SIMDNORM_OK: return "ok";
        case SIMDNORM_ERR_NULL: return "a required pointer is NULL";
        case SIMDNORM_ERR_SIZE: return "zero features / channels, or a size that overflows";
        case SIMDNORM_ERR_LAYOUT: return "unsupported stride (the channel stride must be 1 when inner == 1)";
        case SIMDNORM_ERR_VALUE: return "eps, momentum or the non-finite policy is out of range";
        case SIMDNORM_ERR_NONFINITE: return "the input holds a NaN or Inf (policy raise); the state is unchanged";
        case SIMDNORM_ERR_EMPTY: return "no statistics yet (count == 0)";
        case SIMDNORM_ERR_NOMEM: return "out of memory";
        case SIMDNORM_ERR_INTERNAL: return "internal error in simdnorm";
        case SIMDNORM_ERR_NOT_IMPORTED: return "the simdnorm C API is not imported (call import_simdnorm() first)";
        default: return "unknown simdnorm status";
    }
}

// rows * cols elements must be addressable.
bool size_ok(std::size_t a, std::size_t b, std::size_t c = 1) noexcept {
    const std::size_t limit = static_cast<std::size_t>(PTRDIFF_MAX) / 8;
    if (a == 0 || b == 0 || c == 0) return true;
    return a <= limit / b && a * b <= limit / c;
}

// ---- layer norm / rms norm on rows ---------------------------------------------------------------

template <class T>
NormArgs<T> row_args(const T* x, T* y, std::size_t rows, std::size_t cols, std::ptrdiff_t x_row_stride,
                     std::ptrdiff_t y_row_stride, double eps) noexcept {
    NormArgs<T> args;
    args.x = x;
    args.y = y;
    args.outer = rows;
    args.mid = cols;
    args.inner = 1;
    args.x_outer_stride = x_row_stride;
    args.y_outer_stride = y_row_stride;
    args.eps = eps;
    return args;
}

template <class T>
int c_layer_norm(const T* x, T* y, std::size_t rows, std::size_t cols, std::ptrdiff_t x_row_stride,
                 std::ptrdiff_t y_row_stride, const T* weight, const T* bias, double eps, T* mean, T* rstd) noexcept {
    if (rows != 0 && cols != 0 && (!x || !y)) return SIMDNORM_ERR_NULL;
    if (!size_ok(rows, cols)) return SIMDNORM_ERR_SIZE;
    if (!valid_eps_for<T>(eps)) return SIMDNORM_ERR_VALUE;
    NormArgs<T> args = row_args(x, y, rows, cols, x_row_stride, y_row_stride, eps);
    args.weight = weight;
    args.bias = bias;
    args.mean = mean;
    args.rstd = rstd;
    return guarded([&] {
        simdnorm::layer_norm(args);
        return SIMDNORM_OK;
    });
}

template <class T>
int c_rms_norm(const T* x, T* y, std::size_t rows, std::size_t cols, std::ptrdiff_t x_row_stride,
               std::ptrdiff_t y_row_stride, const T* weight, double eps, T* rstd) noexcept {
    if (rows != 0 && cols != 0 && (!x || !y)) return SIMDNORM_ERR_NULL;
    if (!size_ok(rows, cols)) return SIMDNORM_ERR_SIZE;
    if (!valid_eps_for<T>(eps)) return SIMDNORM_ERR_VALUE;
    NormArgs<T> args = row_args(x, y, rows, cols, x_row_stride, y_row_stride, eps);
    args.weight = weight;
    args.rstd = rstd;
    return guarded([&] {
        simdnorm::rms_norm(args);
        return SIMDNORM_OK;
    });
}

// ---- per-channel batch statistics and scale / shift -------------------------------------------

int channel_layout(std::size_t outer, std::size_t channels, std::size_t inner, std::ptrdiff_t* channel_stride) noexcept {
    if (channels == 0) return SIMDNORM_ERR_SIZE;
    if (!size_ok(outer, channels, inner)) return SIMDNORM_ERR_SIZE;
    if (inner == 1) {
        if (channels == 1) *channel_stride = 1;
        if (*channel_stride != 1) return SIMDNORM_ERR_LAYOUT;
    }
    return SIMDNORM_OK;
}

template <class T>
int c_batch_stats(const T* x, std::size_t outer, std::size_t channels, std::size_t inner, std::ptrdiff_t x_outer_stride,
                  std::ptrdiff_t x_channel_stride, double* mean, double* var) noexcept {
    if (!mean || !var || (outer * inner != 0 && !x)) return SIMDNORM_ERR_NULL;
    if (const int status = channel_layout(outer, channels, inner, &x_channel_stride)) return status;
    BatchStatsArgs<T> args;
    args.x = x;
    args.outer = outer;
    args.mid = channels;
    args.inner = inner;
    args.x_outer_stride = x_outer_stride;
    args.x_mid_stride = x_channel_stride;
    args.mean = mean;
    args.m2 = var;  // M2, divided by the count below (NaN for an empty batch)
    return guarded([&] {
        simdnorm::batch_stats(args);
        const double count = static_cast<double>(outer * inner);
        if (count > 0) {
            for (std::size_t c = 0; c < channels; ++c) var[c] /= count;
        }
        return SIMDNORM_OK;
    });
}

template <class T>
int c_scale_shift(const T* x, T* y, std::size_t outer, std::size_t channels, std::size_t inner,
                  std::ptrdiff_t x_outer_stride, std::ptrdiff_t x_channel_stride, std::ptrdiff_t y_outer_stride,
                  std::ptrdiff_t y_channel_stride, const T* scale, const T* shift) noexcept {
    if (!scale || !shift || (outer * inner != 0 && (!x || !y))) return SIMDNORM_ERR_NULL;
    if (const int status = channel_layout(outer, channels, inner, &x_channel_stride)) return status;
    if (const int status = channel_layout(outer, channels, inner, &y_channel_stride)) return status;
    ChannelAffineArgs<T> args;
    args.x = x;
    args.y = y;
    args.scale = scale;
    args.offset = shift;
    args.outer = outer;
    args.mid = channels;
    args.inner = inner;
    args.x_outer_stride = x_outer_stride;
    args.x_mid_stride = x_channel_stride;
    args.y_outer_stride = y_outer_stride;
    args.y_mid_stride = y_channel_stride;
    return guarded([&] {
        simdnorm::channel_affine(args);
        return SIMDNORM_OK;
    });
}

// ---- streaming statistics ------------------------------------------------------------------------

// Checks the caller's state and views it as the C++ core's RunningStatsRef. Every call checks (the
// struct is the caller's to modify); the valid case costs one branch, the codes are sorted out after.
int state_ref(const simdnorm_running_state* state, RunningStatsRef* ref) noexcept {
    if (!state) return SIMDNORM_ERR_NULL;
    const std::size_t features = state->num_features;
    const double eps = state->eps, momentum = state->momentum;
    const bool bad = (state->mean == nullptr) | (state->m2 == nullptr) |
                     (features - 1 >= static_cast<std::size_t>(PTRDIFF_MAX) / 32) | (state->count < 0) |
                     !((eps > 0.0) & (eps <= std::numeric_limits<double>::max())) |
                     !((momentum >= 0.0) & (momentum <= 1.0)) | (static_cast<unsigned>(state->nonfinite) > 2u);
    if (bad) {
        if (!state->mean || !state->m2) return SIMDNORM_ERR_NULL;
        if (features - 1 >= static_cast<std::size_t>(PTRDIFF_MAX) / 32) return SIMDNORM_ERR_SIZE;
        return SIMDNORM_ERR_VALUE;
    }
    static_assert(SIMDNORM_NONFINITE_RAISE == 0 && SIMDNORM_NONFINITE_IGNORE == 1 && SIMDNORM_NONFINITE_PROPAGATE == 2,
                  "C policy codes follow NonFinite's order");
    constexpr NonFinite kPolicies[] = {NonFinite::raise, NonFinite::ignore, NonFinite::propagate};
    ref->policy = kPolicies[state->nonfinite];
    ref->num_features = features;
    ref->count = const_cast<std::int64_t*>(&state->count);  // normalize() never writes it
    ref->mean = state->mean;
    ref->second = state->m2;
    ref->momentum = momentum;
    ref->eps = eps;
    return SIMDNORM_OK;
}

int c_running_init(simdnorm_running_state* state, std::size_t num_features, double* mean, double* m2, double momentum,
                   double eps, int nonfinite) noexcept {
    if (!state) return SIMDNORM_ERR_NULL;
    simdnorm_running_state s{num_features, 0, mean, m2, momentum, eps, nonfinite};
    RunningStatsRef ref;
    if (const int status = state_ref(&s, &ref)) return status;
    for (std::size_t j = 0; j < num_features; ++j) mean[j] = m2[j] = 0.0;
    *state = s;
    return SIMDNORM_OK;
}

// Exact-mode batches get RunningStats' batch path (scratch); anything else needs none.
struct Scratch {
    std::vector<double> buffer;
    double* get(const RunningStatsRef& ref, std::size_t rows) {
        if (!ref.exact() || rows <= 1) return nullptr;
        buffer.resize(3 * ref.num_features);
        return buffer.data();
    }
};

template <class T>
int c_running_update(simdnorm_running_state* state, const T* x, std::size_t rows, std::ptrdiff_t row_stride) noexcept {
    RunningStatsRef ref;
    if (const int status = state_ref(state, &ref)) return status;
    if (rows == 0) return SIMDNORM_OK;
    if (!x) return SIMDNORM_ERR_NULL;
    return guarded([&] {
        Scratch scratch;
        NonFiniteHit hit;
        running::update(ref, x, rows, row_stride, &hit, scratch.get(ref, rows));
        return hit.found ? SIMDNORM_ERR_NONFINITE : SIMDNORM_OK;
    });
}

template <class T>
int c_running_normalize(const simdnorm_running_state* state, const T* x, T* y, std::size_t rows,
                        std::ptrdiff_t x_row_stride, std::ptrdiff_t y_row_stride) noexcept {
    RunningStatsRef ref;
    if (const int status = state_ref(state, &ref)) return status;
    if (state->count == 0) return SIMDNORM_ERR_EMPTY;
    if (rows == 0) return SIMDNORM_OK;
    if (!x || !y) return SIMDNORM_ERR_NULL;
    running::normalize(ref, x, y, rows, x_row_stride, y_row_stride, ref.eps, nullptr);
    return SIMDNORM_OK;
}

template <class T>
int c_running_update_normalize(simdnorm_running_state* state, const T* x, T* y, std::size_t rows,
                               std::ptrdiff_t x_row_stride, std::ptrdiff_t y_row_stride) noexcept {
    RunningStatsRef ref;
    if (const int status = state_ref(state, &ref)) return status;
    if (rows == 0) return state->count == 0 ? SIMDNORM_ERR_EMPTY : SIMDNORM_OK;
    if (!x || !y) return SIMDNORM_ERR_NULL;
    if (rows == 1) {  // the per-sample path: no allocation, nothing that can throw
        NonFiniteHit hit;
        if (running::update_normalize(ref, x, y, 1, x_row_stride, y_row_stride, &hit, nullptr)) return SIMDNORM_OK;
        return hit.found ? SIMDNORM_ERR_NONFINITE : SIMDNORM_ERR_EMPTY;
    }
    return guarded([&] {
        Scratch scratch;
        NonFiniteHit hit;
        if (running::update_normalize(ref, x, y, rows, x_row_stride, y_row_stride, &hit, scratch.get(ref, rows))) {
            return SIMDNORM_OK;
        }
        return hit.found ? SIMDNORM_ERR_NONFINITE : SIMDNORM_ERR_EMPTY;
    });
}

// The table: filled once, never changes.
const simdnorm_capi kTable = {
    SIMDNORM_CAPI_VERSION,
    static_cast<std::uint32_t>(sizeof(simdnorm_capi)),
    &c_active_isa,
    &c_status_message,
    &c_layer_norm<float>,
    &c_layer_norm<double>,
    &c_rms_norm<float>,
    &c_rms_norm<double>,
    &c_batch_stats<float>,
    &c_batch_stats<double>,
    &c_scale_shift<float>,
    &c_scale_shift<double>,
    &c_running_init,
    &c_running_update<float>,
    &c_running_update<double>,
    &c_running_normalize<float>,
    &c_running_normalize<double>,
    &c_running_update_normalize<float>,
    &c_running_update_normalize<double>,
};

}  // namespace

void register_capi(py::module_& m) {
    m.attr("_C_API") = py::capsule(static_cast<const void*>(&kTable), SIMDNORM_CAPI_CAPSULE);
}

}  // namespace simdnorm::bindings
