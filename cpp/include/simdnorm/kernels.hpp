// Kernel interface shared by every instruction-set variant.
//
// Every operation sees its input as a 3-D view (outer, mid, inner) whose `inner` elements are
// contiguous (stride 1). `mid` is the reduced axis (LayerNorm / RMSNorm) or the channel axis
// (BatchNorm). Two layouts follow from that:
//   inner == 1  "rows":    each outer index owns a contiguous run of `mid` elements
//                          (mid stride must be 1). LayerNorm over the last axes, NHWC / (N, F) BatchNorm.
//   inner  > 1  "columns": the reduction runs over a strided axis and vectors run along `inner`.
//                          LayerNorm with axis=(1,) on NCHW, NCHW BatchNorm.
// Strides are in elements and may be negative. One args struct per operation keeps every ISA's
// signature identical; the kernels are reached only through the dispatch table (simdnorm.hpp).
//
// Numerics (all variants): sums run in T-precision vectors for at most 16 steps per lane, then
// are widened into double accumulators. The statistics are sums of d = x - p and d^2 around a
// pivot p (the mean of the first 16 elements / rows, rounded to T), with the variance
// (sum(d^2) - sum(d)^2 / n) / n and the mean p + sum(d) / n. That one pass is kept when
// sum(d)^2 / n <= M2 (p within one standard deviation of the mean: the cancellation costs at most
// a few ulps); otherwise the chunk is reduced again around its mean rounded to T (a corrected
// two-pass, the chunk still in L1). For a constant input p is the constant and d is 0, so the mean
// is exactly the constant. Contiguous runs are processed in 4096-element chunks merged with
// Chan's formula; a strided column is one pass over all its rows (the fallback takes chunks of
// 128 rows, merged the same way). When the
// T-precision partial sums overflow (float32 magnitudes beyond ~1e19), that row or lane is
// recomputed in plain double, so statistics stay finite for every finite input. Outputs are computed as
// ((x - m) - delta) * rstd where m is the mean rounded to T and delta the rounding remainder, so
// float32 rows with a large common offset keep full precision and a constant row yields exactly
// `bias`. NaN / Inf in x propagate to the affected rows / channels.
//
// Output stores: with `stream_output` the contiguous runs of y are written with non-temporal
// (streaming) stores where the variant has them (AVX2, AVX-512: the vector-aligned body of each run;
// the unaligned head and the tail use normal stores), followed by a store fence before the kernel
// returns. It only changes where the bits go (not into the caches), never the bits: the caller
// sets it when y is far larger than the last-level cache and will not be reread soon.
#pragma once

#include <cstddef>

namespace simdnorm {

// LayerNorm and RMSNorm forward. x, y viewed as (outer, mid, inner).
template <class T>
struct NormArgs {
    const T* x = nullptr;
    T* y = nullptr;
    const T* weight = nullptr;  // length mid, contiguous; may be null
    const T* bias = nullptr;    // length mid, contiguous; may be null; ignored by rms_norm
    T* mean = nullptr;          // (outer, inner) contiguous; may be null; ignored by rms_norm
    T* rstd = nullptr;          // (outer, inner) contiguous, 1/sqrt(var + eps); may be null
    std::size_t outer = 0, mid = 0, inner = 1;
    std::ptrdiff_t x_outer_stride = 0, x_mid_stride = 1;  // x_mid_stride must be 1 when inner == 1
    std::ptrdiff_t y_outer_stride = 0, y_mid_stride = 1;  // y_mid_stride must be 1 when inner == 1
    double eps = 1e-5;
    bool stream_output = false;  // non-temporal stores for y (see the top of this file)
    // Rows layout only (inner == 1): one row split into pieces across threads.
    // stats_out non-null: statistics only, y / mean / rstd untouched: stats_out[2 o], [2 o + 1] =
    //   mean and M2 of row o (LayerNorm, the same per-row reduction as a full call), or 0 and the sum
    //   of squares (RMSNorm).
    // stats_in non-null: no reduction; row o is normalized with mean = stats_in[2 o] (ignored by
    //   rms_norm) and rstd = stats_in[2 o + 1], both in double, exactly as a full call uses its own.
    //   mean / rstd outputs are not written.
    double* stats_out = nullptr;
    const double* stats_in = nullptr;
    // Cached rows of 4-16 KiB take the loop that normalizes one row while summing the next instead
    // of groups of four rows (Tuning::interleave_wide_rows; simdnorm::layer_norm / rms_norm set it
    // from active_tuning()). Either way every row gets the same bits.
    bool interleave_wide_rows = false;
};

// Per-channel batch statistics over (outer, inner) for every channel in `mid`.
// Writes the mean and M2 = sum((x - mean)^2) of this block; its count is outer * inner.
// Channels-first (inner > 1): runs of at most kBatchStatsChunk / 2 elements are taken in chunks of
// batch_stats_group_rows(inner) consecutive outer rows (counted from this call's first row), one
// pivoted pass per chunk (its fallback: a corrected two-pass whose first pass sums in double);
// longer runs as rows (kBatchStatsChunk pieces of each run). Chunks are merged in order with
// Chan's formula. operations.cpp splits `outer` only at multiples of the group, so chunks stay
// whole (the split itself is fixed by the shape).
constexpr std::size_t kBatchStatsChunk = 4096;
constexpr std::size_t batch_stats_group_rows(std::size_t inner) {
    return inner >= kBatchStatsChunk || inner == 0 ? 1 : kBatchStatsChunk / inner;
}
// Channels-last (inner == 1) batch statistics with at least 2 * kChannelsLastStrip channels are
// split by columns, in tasks of 2 * kChannelsLastStrip channels over every row (operations.cpp);
// with fewer, by blocks of rows. A multiple of every variant's column tile (4 vectors, at most 64
// float32 lanes), so tiles never straddle strips.
constexpr std::size_t kChannelsLastStrip = 64;
template <class T>
struct BatchStatsArgs {
    const T* x = nullptr;
    std::size_t outer = 0, mid = 0, inner = 1;
    std::ptrdiff_t x_outer_stride = 0, x_mid_stride = 1;  // x_mid_stride must be 1 when inner == 1
    double* mean = nullptr;  // length mid
    double* m2 = nullptr;    // length mid
};

// Per-channel affine map y = (x - center[c]) * scale[c] + offset[c]; center may be null (frozen
// inference: y = x * scale + offset, one fused multiply-add). Subtracting the center first keeps
// precision when x carries a large offset. y may be x itself (same strides); otherwise y must not
// overlap x (channels-first runs rewrite a few elements of y from x).
template <class T>
struct ChannelAffineArgs {
    const T* x = nullptr;
    T* y = nullptr;
    const T* center = nullptr;  // length mid; may be null
    const T* scale = nullptr;   // length mid
    const T* offset = nullptr;  // length mid
    std::size_t outer = 0, mid = 0, inner = 1;
    std::ptrdiff_t x_outer_stride = 0, x_mid_stride = 1;  // mid strides must be 1 when inner == 1
    std::ptrdiff_t y_outer_stride = 0, y_mid_stride = 1;
    bool stream_output = false;  // non-temporal stores for y (see the top of this file)
};

// Training-mode BatchNorm forward on channels-first input (inner > 1), one channel at a time:
// the channel's statistics exactly as batch_stats computes them for a single block (mean, M2 into
// mean[c], m2[c]), then y = (x - m) * ((1 / sqrt(M2 / count + eps)) * weight) + bias with m the mean
// rounded to T (its remainder goes into the offset) while the channel is still in cache: x is
// read once from memory. Small channels take their statistics between the previous channel's
// normalization runs (same bits). weight / bias may be null (1 / 0). y may be x itself (same
// strides); otherwise y must not overlap x.
template <class T>
struct BatchNormTrainArgs {
    const T* x = nullptr;
    T* y = nullptr;
    const T* weight = nullptr;  // length mid; may be null
    const T* bias = nullptr;    // length mid; may be null
    std::size_t outer = 0, mid = 0, inner = 1;
    std::ptrdiff_t x_outer_stride = 0, x_mid_stride = 1;
    std::ptrdiff_t y_outer_stride = 0, y_mid_stride = 1;
    double eps = 1e-5;
    double* mean = nullptr;  // length mid
    double* m2 = nullptr;    // length mid
    bool stream_output = false;  // non-temporal stores for y (see the top of this file)
};

// Batch moments folded into channel_affine's arguments (training BatchNorm's statistics-then-affine
// path), per channel: inv_std = 1 / sqrt(m2 / count + eps), scale = inv_std * weight, offset =
// bias - mean * scale, all in double, rounded once to T, center zero. When some |mean * scale|
// exceeds 16 output units (or is NaN), every channel's center is instead its mean rounded to T,
// the rounding remainder (times the rounded scale) going into the offset, and the kernel returns
// true. weight / bias may be null (1 / 0); the outputs must not overlap the inputs.
template <class T>
struct FoldArgs {
    const double* mean = nullptr;  // length channels
    const double* m2 = nullptr;    // length channels: sum of squared deviations from the mean
    double count = 1;              // values per channel
    double eps = 1e-5;
    const T* weight = nullptr;
    const T* bias = nullptr;
    T* center = nullptr;  // length channels each, all three required (center is written either way)
    T* scale = nullptr;
    T* offset = nullptr;
    std::size_t channels = 0;
};

// Training BatchNorm's running statistics (PyTorch's rule) from batch moments, per channel:
//   running_mean = (1 - momentum) * old_mean + momentum * mean
//   running_var  = (1 - momentum) * old_var + (momentum / (count - 1)) * m2   (the unbiased variance)
// in double, rounded once to S. The factor momentum / (count - 1) is rounded once, so running_var
// may differ from momentum * (m2 / (count - 1)) by an ulp of double (below float32's resolution by
// 29 bits); it saves a divide per channel, the slowest part of this pass. old_mean / old_var may be
// running_mean / running_var themselves; otherwise no array may overlap another. count > 1.
template <class S>
struct RunningUpdateArgs {
    const double* mean = nullptr;  // length channels (batch_stats' mean and M2)
    const double* m2 = nullptr;
    double count = 2;  // values per channel
    double momentum = 0.1;
    const S* old_mean = nullptr;  // the running values before this batch, length channels
    const S* old_var = nullptr;
    S* running_mean = nullptr;  // written, length channels
    S* running_var = nullptr;
    std::size_t channels = 0;
};

#define SIMDNORM_DECLARE_KERNELS(ns)                                        \
    namespace ns {                                                          \
    template <class T> void layer_norm(const NormArgs<T>&) noexcept;        \
    template <class T> void rms_norm(const NormArgs<T>&) noexcept;          \
    template <class T> void batch_stats(const BatchStatsArgs<T>&) noexcept; \
    template <class T> void channel_affine(const ChannelAffineArgs<T>&) noexcept; \
    template <class T> void batch_norm_train(const BatchNormTrainArgs<T>&) noexcept; \
    template <class T> bool fold_batch_moments(const FoldArgs<T>&) noexcept; \
    template <class S> void update_running_stats(const RunningUpdateArgs<S>&) noexcept; \
    }

SIMDNORM_DECLARE_KERNELS(scalar)
SIMDNORM_DECLARE_KERNELS(avx2)
SIMDNORM_DECLARE_KERNELS(avx512)
SIMDNORM_DECLARE_KERNELS(neon)

#undef SIMDNORM_DECLARE_KERNELS

}  // namespace simdnorm
