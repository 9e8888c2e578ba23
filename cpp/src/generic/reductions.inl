// Generic reductions shared by every variant; included inside namespace simdnorm::<isa> after
// that variant's vec.hpp, so each ISA gets its own copy compiled with its own flags.
//
// Accumulation scheme: T-precision vector accumulators take at most kFlushSteps additions per lane,
// then are widened into double accumulators. The T-precision error therefore stays at a few ulps
// of a 16-term partial sum, and everything above it is summed in double.

#ifndef SIMDNORM_ALWAYS_INLINE
// The per-row reductions are small and called from a few places each: left to itself the compiler
// keeps them out of line, and the accumulators then go through memory once per row.
#if defined(__GNUC__)
#define SIMDNORM_ALWAYS_INLINE inline __attribute__((always_inline))
#else
#define SIMDNORM_ALWAYS_INLINE inline
#endif
#endif
#ifndef SIMDNORM_NOINLINE
#if defined(__GNUC__)
#define SIMDNORM_NOINLINE __attribute__((noinline))
#else
#define SIMDNORM_NOINLINE
#endif
#endif

namespace {

#include "generic/count_division.inl"

constexpr std::size_t kFlushSteps = 16;
// Elements per two-pass chunk of a contiguous run: both passes hit L1 (16 KiB of float32).
constexpr std::size_t kRowChunk = 4096;
// Rows per two-pass chunk of a strided column reduction.
constexpr std::size_t kColumnChunk = 128;
// Widest column tile, in vectors: independent accumulators hide the add latency.
constexpr std::size_t kTileVectors = 4;

inline std::size_t min_size(std::size_t a, std::size_t b) { return a < b ? a : b; }

// Strided column passes read a few cache lines per row, rows far apart: the hardware prefetchers
// do not follow that, so the pass asks for the rows kPrefetchRows ahead itself.
constexpr std::size_t kPrefetchRows = 8;
inline void prefetch_read(const void* p) {
#if defined(__GNUC__) && defined(__x86_64__)
    // Volatile asm, not __builtin_prefetch: GCC 12 -O3 left no prefetch instruction of
    // prefetch_row_ahead in the streamed LayerNorm row loops (bench/README.md tuning log 19;
    // tests/cross/check_codegen.sh checks the objects).
    asm volatile("prefetcht0 %0" : : "m"(*static_cast<const char*>(p)));
#elif defined(__GNUC__) && defined(__aarch64__)
    asm volatile("prfm pldl1keep, [%0]" : : "r"(p));  // same reason: GCC dropped it from layer_norm_rows
#elif defined(__GNUC__)
    __builtin_prefetch(p, 0, 3);
#else
    (void)p;
#endif
}
inline double clamp_non_negative(double v) { return v < 0.0 ? 0.0 : v; }  // NaN stays NaN

// Elements of T from p up to the next vector boundary (< lanes); p must be element-aligned.
template <class T>
inline std::size_t elements_to_vector_boundary(const T* p) {
    const std::uintptr_t address = reinterpret_cast<std::uintptr_t>(p);
    return ((sizeof(Vec<T>) - address % sizeof(Vec<T>)) % sizeof(Vec<T>)) / sizeof(T);
}

// Channels-last rows `stride` elements apart, `width` columns from p: the columns before p's first
// vector boundary when every row has that boundary at the same column (else 0), at most width.
template <class T>
inline std::size_t aligned_head(const T* p, std::size_t width, std::ptrdiff_t stride) {
    const std::size_t stride_bytes = static_cast<std::size_t>(stride < 0 ? -stride : stride) * sizeof(T);
    return stride_bytes % sizeof(Vec<T>) == 0 ? min_size(elements_to_vector_boundary(p), width) : 0;
}

// True for finite v (inf - inf and NaN - NaN are NaN). Avoids std::isfinite: inline library code
// compiled into several ISA translation units is an ODR hazard.
inline bool is_finite(double v) { return v - v == 0.0; }

struct Moments {
    double mean, m2;  // m2 = sum of squared deviations from mean
};

// Data with ±inf (and no NaN, no opposite infinities) has mean ±inf, as in NumPy and PyTorch, and
// an undefined (NaN) spread; `mean` is the plain double mean, non-finite.
inline Moments nonfinite_moments(double mean) { return {mean, mean - mean}; }

// Plain double-precision two-pass over n elements `stride` apart: the fallback when the
// T-precision partial sums overflow (float32 magnitudes beyond ~1e19 square past FLT_MAX).
template <class T>
Moments exact_moments(const T* p, std::size_t n, std::ptrdiff_t stride) {
    double sum = 0.0;
    for (std::size_t i = 0; i < n; ++i) sum += static_cast<double>(p[static_cast<std::ptrdiff_t>(i) * stride]);
    const double mean = sum / static_cast<double>(n);
    if (!is_finite(mean)) return nonfinite_moments(mean);
    double sum_d = 0.0, sum_dd = 0.0;
    for (std::size_t i = 0; i < n; ++i) {
        const double d = static_cast<double>(p[static_cast<std::ptrdiff_t>(i) * stride]) - mean;
        sum_d += d;
        sum_dd += d * d;
    }
    return {mean + sum_d / static_cast<double>(n), sum_dd - sum_d * (sum_d / static_cast<double>(n))};
}

template <class T>
double exact_sum_squares(const T* p, std::size_t n, std::ptrdiff_t stride) {
    double sum = 0.0;
    for (std::size_t i = 0; i < n; ++i) {
        const double v = static_cast<double>(p[static_cast<std::ptrdiff_t>(i) * stride]);
        sum += v * v;
    }
    return sum;
}

// Chan et al.'s pairwise combination of (count, mean, m2); count_a + count_b > 0. A non-finite mean
// on either side combines as a sum would (-inf with -inf stays -inf; with +inf or NaN, NaN).
inline void merge_moments(Moments& a, double count_a, const Moments& b, double count_b) {
    if (!is_finite(a.mean) || !is_finite(b.mean)) {
        a = nonfinite_moments(a.mean + b.mean);
        return;
    }
    const double count = count_a + count_b;
    const double delta = b.mean - a.mean;
    const double weight_b = count_b / count;
    a.mean += delta * weight_b;
    a.m2 += b.m2 + delta * delta * count_a * weight_b;
}

// Shifted one-pass statistics: sums of d = x - pivot and d^2 in one read, where the pivot is the
// mean of a few elements. Accepted when the pivot lies within one standard deviation of the mean
// (sum_d^2 / n <= m2): the cancellation in m2 = sum_dd - sum_d^2 / n then costs at most a few
// ulps more than the corrected two-pass around the mean itself. Otherwise (a pivot far off, or
// non-finite sums) the caller runs that corrected two-pass, with the chunk still in L1.
constexpr std::size_t kPivotSample = 16;

// Mean of the first min(n, kPivotSample) elements, rounded to T (exactly the value of a constant run).
template <class T>
SIMDNORM_ALWAYS_INLINE T pivot_estimate(const T* p, std::size_t n) {
    const std::size_t m = min_size(n, kPivotSample);
    double s0 = 0.0, s1 = 0.0, s2 = 0.0, s3 = 0.0;
    std::size_t i = 0;
    for (; i + 4 <= m; i += 4) {
        s0 += static_cast<double>(p[i]);
        s1 += static_cast<double>(p[i + 1]);
        s2 += static_cast<double>(p[i + 2]);
        s3 += static_cast<double>(p[i + 3]);
    }
    for (; i < m; ++i) s0 += static_cast<double>(p[i]);
    return static_cast<T>(((s0 + s1) + (s2 + s3)) / static_cast<double>(m));
}

// x / count (CountDivisor). In a row's or channel's dependency chain a power-of-two count then
// costs a multiply's latency instead of a divide's. Loops over rows build their CountDivisor once.
SIMDNORM_ALWAYS_INLINE double divide_by_count(double x, double count) { return CountDivisor(count).divide(x); }

// The moments from shifted sums around `pivot`, if the pivot was close enough (see above).
// accept_shifted_block repeats these operations on a vector of rows or channels.
SIMDNORM_ALWAYS_INLINE bool accept_shifted(double pivot, double sum_d, double sum_dd, const CountDivisor& count,
                                           Moments* result) {
    const double offset = count.divide(sum_d);
    const double correction = sum_d * offset;
    const double m2 = sum_dd - correction;
    if (!(is_finite(offset) && is_finite(m2) && correction <= m2)) return false;  // NaN fails too
    *result = {pivot + offset, m2};  // m2 >= sum_d^2 / n >= 0
    return true;
}
SIMDNORM_ALWAYS_INLINE bool accept_shifted(double pivot, double sum_d, double sum_dd, double count, Moments* result) {
    return accept_shifted(pivot, sum_d, sum_dd, CountDivisor(count), result);
}

// Zeroes a small array of vectors or accumulators with vector stores. GCC 12 turns
// `Acc<T> a[N] = {}` (and `Vec<T> a[N] = {}` that does not stay in registers) into `rep stos`,
// whose start-up cost (~60 cycles on Zen 3) was paid three times a column tile (tile_moments) and
// once a StatsBlock. Unrolled, the loop is no longer a memset to the compiler. C++ loop,
// channels-last statistics 1x768 4.2 -> 2.9 us, 32x768 10.1 -> 8.5 (bench README, log 29).
template <class E, std::size_t N>
SIMDNORM_ALWAYS_INLINE void zero_array(E (&array)[N]) {
#pragma GCC unroll 16
    for (std::size_t i = 0; i < N; ++i) array[i] = E{};
}

// accept_shifted and 1 / sqrt(m2 / count + eps) for the kStatsBlock rows or channels of a block
// (row_blocks.inl, channel_blocks.inl), a double vector at a time: the divides and square roots of
// Vec<double>::lanes entries share one instruction. Each entry gets the scalar operations' bits
// (the core builds without FMA contraction). Where accepted, m2 >= 0 and inverse_std's clamp
// changes nothing, so it is left out; where not, the caller takes the entry's own fallback.
constexpr std::size_t kStatsBlock = 16;
struct StatsBlock {
    // Inputs; entries past the block's end stay zero (a zero-spread entry: no NaN, nothing trapped).
    // Zeroed as zero_array does (`= {}` became `rep stos`): LayerNorm 4096x64 -6 %.
    StatsBlock() {
        constexpr std::size_t D = Vec<double>::lanes;
#pragma GCC unroll 16
        for (std::size_t k = 0; k < kStatsBlock; k += D) {
            store(pivot + k, splat(0.0));
            store(sum_d + k, splat(0.0));
            store(sum_dd + k, splat(0.0));
        }
    }
    alignas(64) double pivot[kStatsBlock], sum_d[kStatsBlock], sum_dd[kStatsBlock];
    // Outputs, meaningful where accepted.
    alignas(64) double mean[kStatsBlock], m2[kStatsBlock], rstd[kStatsBlock];
    bool accepted[kStatsBlock];
};
// x / by.count() in every lane (CountDivisor: a multiply when the count is a power of two).
SIMDNORM_ALWAYS_INLINE Vec<double> divide_lanes(Vec<double> x, const CountDivisor& by) {
    return by.exact_inverse() ? x * splat(by.inverse()) : x / splat(by.count());
}
// values[k] /= by.count() for k < n, the choice taken once for the loop.
SIMDNORM_ALWAYS_INLINE void divide_all(double* values, std::size_t n, const CountDivisor& by) {
    if (by.exact_inverse()) {
        for (std::size_t k = 0; k < n; ++k) values[k] *= by.inverse();
    } else {
        for (std::size_t k = 0; k < n; ++k) values[k] /= by.count();
    }
}

// rstd[k] = 1 / sqrt(m2[k] / count + eps) for a block's kStatsBlock entries (64-byte aligned).
SIMDNORM_ALWAYS_INLINE void inverse_std_block(const double* m2, double count, double eps, double* rstd) {
    constexpr std::size_t D = Vec<double>::lanes;
    const CountDivisor by(count);
    const Vec<double> eps_lanes = splat(eps), one = splat(1.0);
    for (std::size_t k = 0; k < kStatsBlock; k += D) {
        store(rstd + k, one / square_root(divide_lanes(load(m2 + k), by) + eps_lanes));
    }
}

// accept_shifted's test for a double vector of entries, all at once: z = (off - off) + (m2 - m2) is
// 0 where both are finite and NaN elsewhere, so corr + z <= m2 holds exactly where is_finite(off),
// is_finite(m2) and corr <= m2 do. Lane by lane, the test took ~40 % of channels-last statistics of
// few rows (BatchNorm training 8x4096: tuning log 32).
SIMDNORM_ALWAYS_INLINE bool all_shifted_accepted(Vec<double> off, Vec<double> corr, Vec<double> m2) {
    return all_less_equal(corr + ((off - off) + (m2 - m2)), m2);
}

SIMDNORM_ALWAYS_INLINE void accept_shifted_block(StatsBlock& b, double count, double eps) {
    constexpr std::size_t D = Vec<double>::lanes;
    static_assert(kStatsBlock % D == 0, "a block is whole double vectors");
    alignas(64) double offset[kStatsBlock], correction[kStatsBlock];
    const CountDivisor by(count);
    bool all_accepted = true;
    for (std::size_t k = 0; k < kStatsBlock; k += D) {
        const Vec<double> d = load(b.sum_d + k);
        const Vec<double> off = divide_lanes(d, by);
        const Vec<double> corr = d * off;
        const Vec<double> m = load(b.sum_dd + k) - corr;
        store(offset + k, off);
        store(correction + k, corr);
        store(b.m2 + k, m);
        store(b.mean + k, load(b.pivot + k) + off);
        all_accepted &= all_shifted_accepted(off, corr, m);
    }
    for (std::size_t k = 0; k < kStatsBlock; ++k) {
        b.accepted[k] = all_accepted || (is_finite(offset[k]) && is_finite(b.m2[k]) && correction[k] <= b.m2[k]);
    }
    inverse_std_block(b.m2, count, eps, b.rstd);
}

// total += sum(p[0..n))
template <class T>
SIMDNORM_ALWAYS_INLINE void add_row_sum(const T* p, std::size_t n, Acc<T>& total) {
    using V = Vec<T>;
    constexpr std::size_t L = V::lanes;
    std::size_t i = 0;
    while (i + 4 * L <= n) {
        V s0{}, s1{}, s2{}, s3{};
        for (std::size_t step = 0; step < kFlushSteps && i + 4 * L <= n; ++step, i += 4 * L) {
            s0 = s0 + load(p + i);
            s1 = s1 + load(p + i + L);
            s2 = s2 + load(p + i + 2 * L);
            s3 = s3 + load(p + i + 3 * L);
        }
        acc_add(total, (s0 + s1) + (s2 + s3));
    }
    V s{};
    for (; i + L <= n; i += L) s = s + load(p + i);
    if (i < n) s = s + load_partial(p + i, n - i);
    acc_add(total, s);
}

// sum(p[0..n))
template <class T>
SIMDNORM_ALWAYS_INLINE double row_sum(const T* p, std::size_t n) {
    Acc<T> total{};
    add_row_sum(p, n, total);
    return acc_reduce(total);
}

// total_d += sum(d), total_dd += sum(d * d) with d = p[i] - pivot; pivot_lanes holds the pivot in
// every lane (a partial load of it zeroes the inactive lanes of the tail: 0 - 0).
template <class T>
SIMDNORM_ALWAYS_INLINE void add_row_centered_sums(const T* p, std::size_t n, const T* pivot_lanes, Acc<T>& total_d, Acc<T>& total_dd) {
    using V = Vec<T>;
    constexpr std::size_t L = V::lanes;
    const V c = load(pivot_lanes);
    std::size_t i = 0;
    while (i + 4 * L <= n) {  // four independent chains: the adds' latency stays hidden
        V d0{}, d1{}, d2{}, d3{}, q0{}, q1{}, q2{}, q3{};
        for (std::size_t step = 0; step < kFlushSteps && i + 4 * L <= n; ++step, i += 4 * L) {
            const V a0 = load(p + i) - c, a1 = load(p + i + L) - c;
            const V a2 = load(p + i + 2 * L) - c, a3 = load(p + i + 3 * L) - c;
            d0 = d0 + a0;
            d1 = d1 + a1;
            d2 = d2 + a2;
            d3 = d3 + a3;
            q0 = mul_add(a0, a0, q0);
            q1 = mul_add(a1, a1, q1);
            q2 = mul_add(a2, a2, q2);
            q3 = mul_add(a3, a3, q3);
        }
        acc_add(total_d, (d0 + d1) + (d2 + d3));
        acc_add(total_dd, (q0 + q1) + (q2 + q3));
    }
    if (i == n) return;  // no tail (adding its zero sums would change nothing but the time)
    V d{}, q{};
    for (; i + L <= n; i += L) {
        const V a = load(p + i) - c;
        d = d + a;
        q = mul_add(a, a, q);
    }
    if (i < n) {
        const V a = load_partial(p + i, n - i) - load_partial(pivot_lanes, n - i);
        d = d + a;
        q = mul_add(a, a, q);
    }
    acc_add(total_d, d);
    acc_add(total_dd, q);
}

// sum(d) and sum(d * d) with d = p[i] - pivot.
template <class T>
SIMDNORM_ALWAYS_INLINE void row_centered_sums(const T* p, std::size_t n, T pivot, double* sum_d, double* sum_dd) {
    alignas(64) T pivot_lanes[Vec<T>::lanes];
    store(pivot_lanes, splat(pivot));
    Acc<T> total_d{}, total_dd{};
    add_row_centered_sums(p, n, pivot_lanes, total_d, total_dd);
    *sum_d = acc_reduce(total_d);
    *sum_dd = acc_reduce(total_dd);
}

// sum(p[i]^2)
template <class T>
SIMDNORM_ALWAYS_INLINE double row_sum_squares(const T* p, std::size_t n) {
    using V = Vec<T>;
    constexpr std::size_t L = V::lanes;
    Acc<T> total{};
    std::size_t i = 0;
    while (i + 4 * L <= n) {
        V s0{}, s1{}, s2{}, s3{};
        for (std::size_t step = 0; step < kFlushSteps && i + 4 * L <= n; ++step, i += 4 * L) {
            const V a = load(p + i), b = load(p + i + L), c = load(p + i + 2 * L), d = load(p + i + 3 * L);
            s0 = mul_add(a, a, s0);
            s1 = mul_add(b, b, s1);
            s2 = mul_add(c, c, s2);
            s3 = mul_add(d, d, s3);
        }
        acc_add(total, (s0 + s1) + (s2 + s3));
    }
    V s{};
    for (; i + L <= n; i += L) {
        const V a = load(p + i);
        s = mul_add(a, a, s);
    }
    if (i < n) {
        const V a = load_partial(p + i, n - i);
        s = mul_add(a, a, s);
    }
    acc_add(total, s);
    const double result = acc_reduce(total);
    return is_finite(result) ? result : exact_sum_squares(p, n, 1);
}

// Mean and m2 of one contiguous chunk: a shifted one-pass (see accept_shifted), else the corrected
// two-pass. Its pivot is the mean rounded to T; x - pivot is exact for x near the mean (Sterbenz),
// and sum(d) corrects the mean.
template <class T>
SIMDNORM_ALWAYS_INLINE Moments chunk_moments(const T* p, std::size_t n) {
    const double count = static_cast<double>(n);
    const T first_pivot = pivot_estimate(p, n);
    double sum_d = 0.0, sum_dd = 0.0;
    row_centered_sums(p, n, first_pivot, &sum_d, &sum_dd);
    Moments result;
    if (accept_shifted(static_cast<double>(first_pivot), sum_d, sum_dd, count, &result)) return result;
    const double mean_estimate = static_cast<double>(first_pivot) + sum_d / count;
    if (is_finite(mean_estimate)) {
        const T pivot = static_cast<T>(mean_estimate);
        row_centered_sums(p, n, pivot, &sum_d, &sum_dd);
        result = {static_cast<double>(pivot) + sum_d / count, clamp_non_negative(sum_dd - sum_d * (sum_d / count))};
        if (is_finite(result.mean) && is_finite(result.m2)) return result;
    }
    const Moments exact = exact_moments(p, n, 1);  // overflowed T sums, or non-finite data (NaN stays NaN)
    return {exact.mean, clamp_non_negative(exact.m2)};
}

// Mean and m2 of p[0..n), n > 0, in chunks of kRowChunk merged with Chan's formula (one read
// from memory: the second pass of each chunk hits L1).
template <class T>
SIMDNORM_ALWAYS_INLINE Moments row_moments(const T* p, std::size_t n) {
    Moments total = chunk_moments(p, min_size(n, kRowChunk));
    for (std::size_t start = kRowChunk; start < n; start += kRowChunk) {
        const std::size_t len = min_size(n - start, kRowChunk);
        merge_moments(total, static_cast<double>(start), chunk_moments(p + start, len), static_cast<double>(len));
    }
    return total;
}

// Channels-first batch statistics: a chunk is `runs` contiguous runs of n elements, `stride` apart
// (the same channel in consecutive outer rows), taken as one corrected two-pass over all of them.
// Pass 1 widens every vector into double accumulators (no T-precision partial sums): the chunk
// mean is then accurate to double rounding, where one T-rounded pivot shared by thousands of
// elements would give every x - pivot of a binade the same rounding error. Pass 1 reads from
// memory, so the widening is hidden behind the loads.
template <class T>
double runs_sum(const T* p, std::size_t runs, std::size_t n, std::ptrdiff_t stride) {
    constexpr std::size_t L = Vec<T>::lanes;
    Acc<T> s0{}, s1{}, s2{}, s3{};
    for (std::size_t r = 0; r < runs; ++r) {
        const T* q = p + static_cast<std::ptrdiff_t>(r) * stride;
        std::size_t i = 0;
        for (; i + 4 * L <= n; i += 4 * L) {
            acc_add(s0, load(q + i));
            acc_add(s1, load(q + i + L));
            acc_add(s2, load(q + i + 2 * L));
            acc_add(s3, load(q + i + 3 * L));
        }
        for (; i + L <= n; i += L) acc_add(s0, load(q + i));
        if (i < n) acc_add(s1, load_partial(q + i, n - i));
    }
    return (acc_reduce(s0) + acc_reduce(s1)) + (acc_reduce(s2) + acc_reduce(s3));
}

// sum(d), sum(d * d) over the runs with d = x - pivot. Short runs share the T-precision vector
// accumulators (no horizontal work per run): each run adds at most ceil(n / 4L) vectors to each of
// four accumulators, so whole runs are added until the next one would pass kFlushSteps, then the
// accumulators are widened. Longer runs flush on their own.
template <class T>
struct ShortRunSums {
    Vec<T> d0{}, d1{}, d2{}, d3{}, q0{}, q1{}, q2{}, q3{};
};

template <class T>
constexpr std::size_t centered_steps_per_run(std::size_t n) {
    return (n + 4 * Vec<T>::lanes - 1) / (4 * Vec<T>::lanes);
}

// One run of n elements into s (n / 4L steps and the tail), d = x - c; pivot_lanes holds c in every lane.
template <class T>
SIMDNORM_ALWAYS_INLINE void add_short_run(const T* q, std::size_t n, Vec<T> c, const T* pivot_lanes, ShortRunSums<T>& s) {
    using V = Vec<T>;
    constexpr std::size_t L = V::lanes;
    std::size_t i = 0;
    for (; i + 4 * L <= n; i += 4 * L) {
        const V a0 = load(q + i) - c, a1 = load(q + i + L) - c;
        const V a2 = load(q + i + 2 * L) - c, a3 = load(q + i + 3 * L) - c;
        s.d0 = s.d0 + a0;
        s.d1 = s.d1 + a1;
        s.d2 = s.d2 + a2;
        s.d3 = s.d3 + a3;
        s.q0 = mul_add(a0, a0, s.q0);
        s.q1 = mul_add(a1, a1, s.q1);
        s.q2 = mul_add(a2, a2, s.q2);
        s.q3 = mul_add(a3, a3, s.q3);
    }
    if (i + L <= n) {
        const V a0 = load(q + i) - c;
        s.d0 = s.d0 + a0;
        s.q0 = mul_add(a0, a0, s.q0);
        i += L;
        if (i + L <= n) {
            const V a1 = load(q + i) - c;
            s.d1 = s.d1 + a1;
            s.q1 = mul_add(a1, a1, s.q1);
            i += L;
            if (i + L <= n) {
                const V a2 = load(q + i) - c;
                s.d2 = s.d2 + a2;
                s.q2 = mul_add(a2, a2, s.q2);
                i += L;
            }
        }
    }
    if (i < n) {
        const V a3 = load_partial(q + i, n - i) - load_partial(pivot_lanes, n - i);
        s.d3 = s.d3 + a3;
        s.q3 = mul_add(a3, a3, s.q3);
    }
}

template <class T>
SIMDNORM_ALWAYS_INLINE void flush_short_runs(const ShortRunSums<T>& s, Acc<T>& total_d, Acc<T>& total_dd) {
    acc_add(total_d, (s.d0 + s.d1) + (s.d2 + s.d3));
    acc_add(total_dd, (s.q0 + s.q1) + (s.q2 + s.q3));
}

template <class T>
SIMDNORM_ALWAYS_INLINE void runs_centered_sums(const T* p, std::size_t runs, std::size_t n, std::ptrdiff_t stride,
                                               T pivot, double* sum_d, double* sum_dd) {
    alignas(64) T pivot_lanes[Vec<T>::lanes];
    store(pivot_lanes, splat(pivot));
    const std::size_t steps_per_run = centered_steps_per_run<T>(n);
    Acc<T> total_d{}, total_dd{};
    if (steps_per_run > kFlushSteps) {
        for (std::size_t r = 0; r < runs; ++r) {
            add_row_centered_sums(p + static_cast<std::ptrdiff_t>(r) * stride, n, pivot_lanes, total_d, total_dd);
        }
    } else {
        const std::size_t runs_per_flush = kFlushSteps / steps_per_run;
        const Vec<T> c = splat(pivot);
        for (std::size_t r = 0; r < runs;) {
            ShortRunSums<T> s;
            for (std::size_t k = 0; k < runs_per_flush && r < runs; ++k, ++r) {
                add_short_run(p + static_cast<std::ptrdiff_t>(r) * stride, n, c, pivot_lanes, s);
            }
            flush_short_runs(s, total_d, total_dd);
        }
    }
    *sum_d = acc_reduce(total_d);
    *sum_dd = acc_reduce(total_dd);
}

// runs_centered_sums taking the runs one at a time (batch_norm_train_pipelined interleaves them
// with another channel's normalization): the same additions in the same order, so the same bits.
// pivot_lanes: the pivot in every lane, 64-byte aligned, owned by the caller (an array member would
// keep the accumulators in memory).
template <class T>
class RunsCenteredSums {
public:
    RunsCenteredSums(std::size_t n, const T* pivot_lanes)
        : n_(n), long_runs_(centered_steps_per_run<T>(n) > kFlushSteps),
          runs_per_flush_(long_runs_ ? 1 : kFlushSteps / centered_steps_per_run<T>(n)), c_(load(pivot_lanes)),
          pivot_lanes_(pivot_lanes) {}

    SIMDNORM_ALWAYS_INLINE void add_run(const T* q) {
        if (long_runs_) {
            add_row_centered_sums(q, n_, pivot_lanes_, total_d_, total_dd_);
            return;
        }
        add_short_run(q, n_, c_, pivot_lanes_, sums_);
        if (++pending_runs_ == runs_per_flush_) {
            flush_short_runs(sums_, total_d_, total_dd_);
            sums_ = ShortRunSums<T>{};
            pending_runs_ = 0;
        }
    }

    // Call once, after the last run.
    void finish(double* sum_d, double* sum_dd) {
        if (pending_runs_ != 0) flush_short_runs(sums_, total_d_, total_dd_);
        *sum_d = acc_reduce(total_d_);
        *sum_dd = acc_reduce(total_dd_);
    }

private:
    std::size_t n_;
    bool long_runs_;
    std::size_t runs_per_flush_, pending_runs_ = 0;
    Vec<T> c_;
    ShortRunSums<T> sums_;
    Acc<T> total_d_{}, total_dd_{};
    const T* pivot_lanes_;
};

// Mean and m2 of one chunk of runs, runs * n > 0: a shifted one-pass (accept_shifted), else the
// corrected two-pass whose first pass sums in double (see runs_sum).
template <class T>
Moments runs_moments(const T* p, std::size_t runs, std::size_t n, std::ptrdiff_t stride) {
    const double count = static_cast<double>(runs * n);
    const T first_pivot = pivot_estimate(p, n);  // shifted one-pass first (accept_shifted)
    double sum_d = 0.0, sum_dd = 0.0;
    runs_centered_sums(p, runs, n, stride, first_pivot, &sum_d, &sum_dd);
    Moments shifted;
    if (accept_shifted(static_cast<double>(first_pivot), sum_d, sum_dd, count, &shifted)) return shifted;
    const double mean = runs_sum(p, runs, n, stride) / count;  // exact sums of a constant chunk
    if (!is_finite(mean)) return nonfinite_moments(mean);
    const T pivot = static_cast<T>(mean);
    runs_centered_sums(p, runs, n, stride, pivot, &sum_d, &sum_dd);
    const Moments result{mean, clamp_non_negative(sum_dd - sum_d * (sum_d / count))};
    if (is_finite(result.mean) && is_finite(result.m2)) return result;
    // Overflowed T sums, or non-finite data (NaN stays NaN): plain double two-pass over the runs.
    double exact_d = 0.0, exact_dd = 0.0;
    for (std::size_t r = 0; r < runs; ++r) {
        const T* q = p + static_cast<std::ptrdiff_t>(r) * stride;
        for (std::size_t i = 0; i < n; ++i) {
            const double d = static_cast<double>(q[i]) - mean;  // mean: the double sum (finite x)
            exact_d += d;
            exact_dd += d * d;
        }
    }
    return {mean + exact_d / count, clamp_non_negative(exact_dd - exact_d * (exact_d / count))};
}

// Loads vector v of a tile whose last vector has `last_lanes` valid lanes.
template <class T>
inline Vec<T> load_tile(const T* p, std::size_t v, std::size_t vectors, std::size_t last_lanes) {
    return (v + 1 == vectors && last_lanes != Vec<T>::lanes) ? load_partial(p, last_lanes) : load(p);
}
template <class T>
inline void store_tile(T* p, Vec<T> a, std::size_t v, std::size_t vectors, std::size_t last_lanes) {
    if (v + 1 == vectors && last_lanes != Vec<T>::lanes) {
        store_partial(p, a, last_lanes);
    } else {
        store(p, a);
    }
}

// Tile functions take their shape (vectors, last_lanes) as size_t or, for a whole tile, as these
// compile-time constants: with the count known the loops unroll and the accumulators stay in
// registers. GCC used to clone the whole-tile case by itself and stopped doing so as the
// translation unit grew: channels-last batch_stats 256x768 went from 7.8 to 14.4 us (AVX-512).
using WholeTileVectors = std::integral_constant<std::size_t, kTileVectors>;
template <class T>
using WholeVectorLanes = std::integral_constant<std::size_t, Vec<T>::lanes>;

// body(vectors, last_lanes) with the whole-tile constants when the tile is whole.
template <class T, class Body>
SIMDNORM_ALWAYS_INLINE void with_tile_shape(std::size_t vectors, std::size_t last_lanes, Body&& body) {
    if (vectors == kTileVectors && last_lanes == Vec<T>::lanes) {
        body(WholeTileVectors{}, WholeVectorLanes<T>{});
    } else {
        body(vectors, last_lanes);
    }
}

// Per-lane mean and m2 of a tile of `vectors` vectors (at most kTileVectors; the last one has
// last_lanes valid lanes) over `rows` rows `stride` elements apart. Chunks of kColumnChunk rows
// take a corrected two-pass each and are merged per lane. mean/m2: vectors * lanes doubles.
template <class T>
void tile_moments_two_pass(const T* p, std::size_t vectors, std::size_t last_lanes, std::size_t rows,
                  std::ptrdiff_t stride, double* mean, double* m2) {
    using V = Vec<T>;
    constexpr std::size_t L = V::lanes;
    constexpr std::size_t W = kTileVectors * L;
    alignas(64) double sums[W], sums_d[W], sums_dd[W];
    for (std::size_t start = 0; start < rows; start += kColumnChunk) {
        const std::size_t len = min_size(rows - start, kColumnChunk);
        const T* chunk = p + static_cast<std::ptrdiff_t>(start) * stride;
        // Pass 1: per-lane sums.
        Acc<T> total[kTileVectors] = {};
        for (std::size_t r = 0; r < len;) {
            V s[kTileVectors] = {};
            for (std::size_t step = 0; step < kFlushSteps && r < len; ++step, ++r) {
                const T* row = chunk + static_cast<std::ptrdiff_t>(r) * stride;
                for (std::size_t v = 0; v < vectors; ++v) s[v] = s[v] + load_tile(row + v * L, v, vectors, last_lanes);
            }
            for (std::size_t v = 0; v < vectors; ++v) acc_add(total[v], s[v]);
        }
        for (std::size_t v = 0; v < vectors; ++v) acc_store(sums + v * L, total[v]);
        const double count = static_cast<double>(len);
        for (std::size_t k = 0; k < vectors * L; ++k) sums[k] = static_cast<double>(static_cast<T>(sums[k] / count));
        // Pass 2: per-lane sum(d), sum(d^2) around the rounded pivots.
        V pivot[kTileVectors];
        for (std::size_t v = 0; v < vectors; ++v) pivot[v] = load_rounded<T>(sums + v * L);
        Acc<T> total_d[kTileVectors] = {}, total_dd[kTileVectors] = {};
        for (std::size_t r = 0; r < len;) {
            V d[kTileVectors] = {}, q[kTileVectors] = {};
            for (std::size_t step = 0; step < kFlushSteps && r < len; ++step, ++r) {
                const T* row = chunk + static_cast<std::ptrdiff_t>(r) * stride;
                for (std::size_t v = 0; v < vectors; ++v) {
                    const V a = load_tile(row + v * L, v, vectors, last_lanes) - pivot[v];
                    d[v] = d[v] + a;
                    q[v] = mul_add(a, a, q[v]);
                }
            }
            for (std::size_t v = 0; v < vectors; ++v) {
                acc_add(total_d[v], d[v]);
                acc_add(total_dd[v], q[v]);
            }
        }
        for (std::size_t v = 0; v < vectors; ++v) {
            acc_store(sums_d + v * L, total_d[v]);
            acc_store(sums_dd + v * L, total_dd[v]);
        }
        for (std::size_t k = 0; k < vectors * L; ++k) {
            const Moments chunk_stats{sums[k] + sums_d[k] / count,
                                      clamp_non_negative(sums_dd[k] - sums_d[k] * (sums_d[k] / count))};
            if (start == 0) {
                mean[k] = chunk_stats.mean;
                m2[k] = chunk_stats.m2;
            } else {
                Moments merged{mean[k], m2[k]};
                merge_moments(merged, static_cast<double>(start), chunk_stats, count);
                mean[k] = merged.mean;
                m2[k] = merged.m2;
            }
        }
    }
    const std::size_t valid = (vectors - 1) * L + last_lanes;
    for (std::size_t k = 0; k < valid; ++k) {
        if (is_finite(mean[k]) && is_finite(m2[k])) continue;
        const Moments exact = exact_moments(p + k, rows, stride);
        mean[k] = exact.mean;
        m2[k] = clamp_non_negative(exact.m2);
    }
}

// accept_shifted for every lane of a tile: mean = pivot + sum_d / count and m2 from the shifted
// sums, and the lanes it rejects take tile_moments_two_pass's values. Decided lane by lane, so a
// column's bits do not depend on the tile it shares: tiles may start wherever x's vectors do.
// Lanes past the tile hold zeros: accepted. pivots may be mean itself. The divides take a double
// vector of lanes at a time (the scalar operations' bits: no FMA contraction in the core).
template <class T>
SIMDNORM_ALWAYS_INLINE void accept_tile_lanes(const T* p, std::size_t vectors, std::size_t last_lanes,
                                              std::size_t rows, std::ptrdiff_t stride, const double* pivots,
                                              const double* sums_d, const double* sums_dd, double* mean, double* m2) {
    constexpr std::size_t W = kTileVectors * Vec<T>::lanes;
    const std::size_t lanes = vectors * Vec<T>::lanes;
    constexpr std::size_t D = Vec<double>::lanes;
    const CountDivisor by(static_cast<double>(rows));
    alignas(64) double offset[W], correction[W];
    bool all_accepted = true;
    for (std::size_t k = 0; k < lanes; k += D) {
        const Vec<double> d = load(sums_d + k);
        const Vec<double> off = divide_lanes(d, by);
        const Vec<double> corr = d * off;
        const Vec<double> m2_lanes = load(sums_dd + k) - corr;
        store(offset + k, off);
        store(correction + k, corr);
        store(m2 + k, m2_lanes);
        store(mean + k, load(pivots + k) + off);
        all_accepted &= all_shifted_accepted(off, corr, m2_lanes);
    }
    if (all_accepted) return;
    bool accepted[W];
    for (std::size_t k = 0; k < lanes; ++k) {
        accepted[k] = is_finite(offset[k]) & is_finite(m2[k]) & (correction[k] <= m2[k]);
    }
    // Zeroed only to quiet GCC's -Wmaybe-uninitialized (rows > 0: tile_moments_two_pass writes
    // every lane); this is the rare rejected path.
    alignas(64) double exact_mean[W] = {}, exact_m2[W] = {};
    tile_moments_two_pass(p, vectors, last_lanes, rows, stride, exact_mean, exact_m2);
    for (std::size_t k = 0; k < lanes; ++k) {
        if (!accepted[k]) {
            mean[k] = exact_mean[k];
            m2[k] = exact_m2[k];
        }
    }
}

// tile_moments_two_pass's result in one read: per-lane shifted sums around the mean of the first
// rows (kPivotSample), each lane accepted by accept_shifted or else recomputed with the corrected
// two-pass (accept_tile_lanes).
template <class T, class Vectors, class LastLanes>
SIMDNORM_ALWAYS_INLINE void tile_moments_shaped(const T* p, Vectors vectors, LastLanes last_lanes, std::size_t rows,
                                                std::ptrdiff_t stride, double* mean, double* m2) {
    using V = Vec<T>;
    constexpr std::size_t L = V::lanes;
    constexpr std::size_t W = kTileVectors * L;
    alignas(64) double sums[W], sums_d[W], sums_dd[W];
    const std::size_t sample = min_size(rows, kPivotSample);
    Acc<T> pivot_sums[kTileVectors];
    zero_array(pivot_sums);
    for (std::size_t r = 0; r < sample; ++r) {  // widened at once: a constant column gives its value
        const T* row = p + static_cast<std::ptrdiff_t>(r) * stride;
        for (std::size_t v = 0; v < vectors; ++v) acc_add(pivot_sums[v], load_tile(row + v * L, v, vectors, last_lanes));
    }
    for (std::size_t v = 0; v < vectors; ++v) acc_store(sums + v * L, pivot_sums[v]);
    divide_all(sums, vectors * L, CountDivisor(static_cast<double>(sample)));
    for (std::size_t k = 0; k < vectors * L; ++k) sums[k] = static_cast<double>(static_cast<T>(sums[k]));
    V pivot[kTileVectors];
    for (std::size_t v = 0; v < vectors; ++v) pivot[v] = load_rounded<T>(sums + v * L);
    Acc<T> total_d[kTileVectors], total_dd[kTileVectors];
    zero_array(total_d);
    zero_array(total_dd);
    for (std::size_t r = 0; r < rows;) {
        V d[kTileVectors] = {}, q[kTileVectors] = {};
        for (std::size_t step = 0; step < kFlushSteps && r < rows; ++step, ++r) {
            const T* row = p + static_cast<std::ptrdiff_t>(r) * stride;
            if (r + kPrefetchRows < rows) {
                const T* ahead = row + static_cast<std::ptrdiff_t>(kPrefetchRows) * stride;
                for (std::size_t v = 0; v < vectors; ++v) prefetch_read(ahead + v * L);
            }
            for (std::size_t v = 0; v < vectors; ++v) {
                const V a = load_tile(row + v * L, v, vectors, last_lanes) - pivot[v];
                d[v] = d[v] + a;
                q[v] = mul_add(a, a, q[v]);
            }
        }
        for (std::size_t v = 0; v < vectors; ++v) {
            acc_add(total_d[v], d[v]);
            acc_add(total_dd[v], q[v]);
        }
    }
    for (std::size_t v = 0; v < vectors; ++v) {
        acc_store(sums_d + v * L, total_d[v]);
        acc_store(sums_dd + v * L, total_dd[v]);
    }
    accept_tile_lanes(p, vectors, last_lanes, rows, stride, sums, sums_d, sums_dd, mean, m2);
}
template <class T>
void tile_moments(const T* p, std::size_t vectors, std::size_t last_lanes, std::size_t rows, std::ptrdiff_t stride,
                  double* mean, double* m2) {
    with_tile_shape<T>(vectors, last_lanes, [&](auto tile_vectors, auto tile_last_lanes) {
        tile_moments_shaped(p, tile_vectors, tile_last_lanes, rows, stride, mean, m2);
    });
}

// Per-lane sum of squares of a tile over `rows` rows `stride` elements apart.
template <class T, class Vectors, class LastLanes>
SIMDNORM_ALWAYS_INLINE void tile_sum_squares_shaped(const T* p, Vectors vectors, LastLanes last_lanes,
                                                    std::size_t rows, std::ptrdiff_t stride, double* sum_squares) {
    using V = Vec<T>;
    constexpr std::size_t L = V::lanes;
    Acc<T> total[kTileVectors];
    zero_array(total);
    for (std::size_t r = 0; r < rows;) {
        V s[kTileVectors] = {};
        for (std::size_t step = 0; step < kFlushSteps && r < rows; ++step, ++r) {
            const T* row = p + static_cast<std::ptrdiff_t>(r) * stride;
            for (std::size_t v = 0; v < vectors; ++v) {
                const V a = load_tile(row + v * L, v, vectors, last_lanes);
                s[v] = mul_add(a, a, s[v]);
            }
        }
        for (std::size_t v = 0; v < vectors; ++v) acc_add(total[v], s[v]);
    }
    for (std::size_t v = 0; v < vectors; ++v) acc_store(sum_squares + v * L, total[v]);
    const std::size_t valid = (vectors - 1) * L + last_lanes;
    for (std::size_t k = 0; k < valid; ++k) {
        if (!is_finite(sum_squares[k])) sum_squares[k] = exact_sum_squares(p + k, rows, stride);
    }
}
template <class T>
void tile_sum_squares(const T* p, std::size_t vectors, std::size_t last_lanes, std::size_t rows,
                      std::ptrdiff_t stride, double* sum_squares) {
    with_tile_shape<T>(vectors, last_lanes, [&](auto tile_vectors, auto tile_last_lanes) {
        tile_sum_squares_shaped(p, tile_vectors, tile_last_lanes, rows, stride, sum_squares);
    });
}

// Calls body(first_lane, vectors, last_lanes) for tiles covering `width` contiguous lanes.
template <class T, class Body>
void for_each_tile(std::size_t width, Body&& body) {
    constexpr std::size_t L = Vec<T>::lanes;
    std::size_t lane = 0;
    for (; lane + kTileVectors * L <= width; lane += kTileVectors * L) body(lane, kTileVectors, L);
    if (lane < width) {
        const std::size_t rest = width - lane;
        const std::size_t vectors = (rest + L - 1) / L;
        body(lane, vectors, rest - (vectors - 1) * L);
    }
}

}  // namespace
