// LayerNorm rows with the next row's statistics inside this row's normalization loop (and, at the
// end, RMSNorm rows in cache with the next row's sum of squares). Included by generic/kernels.inl
// after layer_norm_row_stats and row_blocks.inl.
//
// Row o is normalized in the same loop that takes row o + 1's centered sums, one 4-vector block
// of each per iteration. One after the other, each row's reduction and its divide / square-root
// chain stall the stores between two rows; interleaved, the out-of-order core overlaps them
// (bench/README.md tuning log 15). Row o + 1's sums follow add_row_centered_sums' order step for
// step, so every row gets the same bits as on the other paths.
//
// Taken for cached batches larger than L1 (interleaved_cached_rows_apply). Streamed (DRAM-sized)
// outputs keep the plain row loop of kernels.inl: tuning log 15 took this loop for them with AVX-512
// when the plain loop's row prefetch was missing from the binary (tuning log 19); with it, the
// plain loop measured faster (Zen 4, C++ loop, 16384x1024 0.86-0.93x, 4096x4096 0.91x this loop's
// time; through the bench AVX-512 against AVX2 from 1.01-1.14x to 0.78-0.89x; tuning log 31).
// Other rows in cache take row_blocks.inl, which overlaps the rows' chains by taking each step over
// a block of rows, or the row groups of kernels.inl. The loop
// keeps ~16 vectors live; with 16 registers the two pivots are read from L1 at each use
// (opaque_load) so that no accumulator spills. One-lane blocks (scalar) keep the plain loop.
// (Walking the normalization from a rotated start, to keep its stores away from the loads' page
// offsets, measured slower at every offset: 4K aliasing is not what limits this loop.)

// load(p) at each use, never kept in a register: the address is opaque to the compiler. With 16
// vector registers (AVX2) the loops' constants then come from L1 as memory operands instead of
// pushing an accumulator out to the stack (bench/README.md tuning log 28).
template <class T>
SIMDNORM_ALWAYS_INLINE Vec<T> opaque_load(const T* p) {
#if defined(__GNUC__)
    asm("" : "+r"(p));
#endif
    return load(p);
}

// add_row_centered_sums(p, n, ...) taken one 4-vector step at a time, then finished. A copy on
// purpose: add_row_centered_sums written on top of this object ran in-cache LayerNorm 5-8 % slower
// (512x768 37.8-39.2 -> 41.1-42.1 us, 32x768 2.64-2.68 -> 2.78-2.82 us, alternated builds); the
// bit-equality tests (test_large_paths.py, norm_check.hpp) keep the two in step.
template <class T>
struct CenteredSumsInProgress {
    using V = Vec<T>;
    static constexpr std::size_t L = V::lanes;
    V c, d0{}, d1{}, d2{}, d3{}, q0{}, q1{}, q2{}, q3{};
    std::size_t steps = 0;
    Acc<T> total_d{}, total_dd{};

    const T* pivot_lanes = nullptr;  // c in every lane, read from memory when registers are few

    SIMDNORM_ALWAYS_INLINE V pivot() const { return kVectorRegisters >= 32 ? c : opaque_load(pivot_lanes); }
    SIMDNORM_ALWAYS_INLINE void step(const T* p) {  // the 4L elements at p
        const V c_lanes = pivot();
        const V a0 = load(p) - c_lanes, a1 = load(p + L) - c_lanes;
        const V a2 = load(p + 2 * L) - c_lanes, a3 = load(p + 3 * L) - c_lanes;
        d0 = d0 + a0;
        d1 = d1 + a1;
        d2 = d2 + a2;
        d3 = d3 + a3;
        q0 = mul_add(a0, a0, q0);
        q1 = mul_add(a1, a1, q1);
        q2 = mul_add(a2, a2, q2);
        q3 = mul_add(a3, a3, q3);
        if (++steps == kFlushSteps) flush();
    }
    SIMDNORM_ALWAYS_INLINE void flush() {
        acc_add(total_d, (d0 + d1) + (d2 + d3));
        acc_add(total_dd, (q0 + q1) + (q2 + q3));
        d0 = d1 = d2 = d3 = q0 = q1 = q2 = q3 = V{};
        steps = 0;
    }
    // The rest of the row from element i (after its whole 4-vector steps), as add_row_centered_sums.
    SIMDNORM_ALWAYS_INLINE void finish(const T* p, std::size_t i, std::size_t n, const T* pivot_lanes, double* sum_d,
                                       double* sum_dd) {
        if (steps != 0) flush();
        if (i == n) {  // no tail, as add_row_centered_sums
            *sum_d = acc_reduce(total_d);
            *sum_dd = acc_reduce(total_dd);
            return;
        }
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
        *sum_d = acc_reduce(total_d);
        *sum_dd = acc_reduce(total_dd);
    }
};

// normalize_row's value for the `valid` elements at i (valid == lanes: a whole vector).
template <class T, bool HasWeight, bool HasBias>
SIMDNORM_ALWAYS_INLINE Vec<T> layer_norm_value(const T* x, std::size_t i, std::size_t valid, Vec<T> c, Vec<T> r,
                                               Vec<T> s, const T* weight, const T* bias) {
    const bool full = valid == Vec<T>::lanes;
    Vec<T> t = mul_add((full ? load(x + i) : load_partial(x + i, valid)) - c, r, s);
    if (HasWeight) {
        const Vec<T> w = full ? load(weight + i) : load_partial(weight + i, valid);
        t = HasBias ? mul_add(t, w, full ? load(bias + i) : load_partial(bias + i, valid)) : t * w;
    } else if (HasBias) {
        t = t + (full ? load(bias + i) : load_partial(bias + i, valid));
    }
    return t;
}

// Rows whose streams (two rows of x, y, and the weight and bias when present) pass
// kAlternateWalkBytes walk their normalization blocks from the end on every other row (the next
// row's sums still go forward, as the row alone takes them, for the same bits; the values are
// elementwise, so the order of the stores changes no bit). A row read forward ends with its last
// part, and the weight's and bias' last part, in L1; walked back from there, the next pass finds
// them still there instead of in L2, whose traffic bounds these wide rows. Sapphire Rapids-class VM
// (48 KiB L1), C++ loop, B/A alternating / forward, AVX-512: LayerNorm 8x4096 0.94-0.96, 16x4096
// 0.95-0.97, 32x4096 0.94-0.95, 4x4096 0.96, 32x3072 0.91-0.94 (several placements of x, y, weight
// and bias), RMSNorm 8x4096 0.94, 32x4096 0.95; AVX2 0.95-0.97. Where the streams fit L1 anyway the
// forward walk stays: LayerNorm 64x2048 1.02-1.06, RMSNorm 32x3072 1.05 alternating.
constexpr std::size_t kAlternateWalkBytes = std::size_t(48) << 10;
template <class T>
SIMDNORM_ALWAYS_INLINE bool walks_backward(std::size_t o, std::size_t n, std::size_t streams) {
    return (o & 1) != 0 && n * sizeof(T) * streams > kAlternateWalkBytes;
}

template <class T, bool HasWeight, bool HasBias>
void layer_norm_rows_interleaved(const NormArgs<T>& a) {
    using V = Vec<T>;
    constexpr std::size_t L = V::lanes;
    constexpr std::size_t B = 4 * L;  // elements per block
    const std::size_t n = a.mid;
    const double count = static_cast<double>(n);
    const CountDivisor by(count);
    auto row_x = [&](std::size_t o) { return a.x + static_cast<std::ptrdiff_t>(o) * a.x_outer_stride; };
    // Locals, not a.weight / a.bias in the loop: the vector stores to y may alias `a` as far as the
    // compiler knows, and it reloaded both pointers after every store (two loads per vector).
    const T* const weight = a.weight;
    const T* const bias = a.bias;
    alignas(64) T pivot_lanes[L];
    RowStats current = layer_norm_row_stats(row_x(0), n, a.eps);
    // Pivots are taken a row earlier than the sums that use them: the pivot's load and its scalar
    // chain then complete during the previous row's loop instead of holding up this row's sums.
    T next_pivot = a.outer > 1 ? pivot_estimate(row_x(1), n) : T(0);
    for (std::size_t o = 0; o < a.outer; ++o) {
        if (a.mean) a.mean[o] = static_cast<T>(current.mean);
        if (a.rstd) a.rstd[o] = static_cast<T>(current.rstd);
        const T* x = row_x(o);
        T* y = a.y + static_cast<std::ptrdiff_t>(o) * a.y_outer_stride;
        const T pivot = static_cast<T>(current.mean);
        const T shift = static_cast<T>(-(current.mean - static_cast<double>(pivot)) * current.rstd);
        if (o + 1 == a.outer) {
            normalize_row<T, true, HasWeight, HasBias>(x, y, n, pivot, static_cast<T>(current.rstd), shift, weight,
                                                      bias, false);
            break;
        }
        const V c = splat(pivot), r = splat(static_cast<T>(current.rstd)), s = splat(shift);
        alignas(64) T row_pivot_lanes[L];
        store(row_pivot_lanes, c);
        const T* next = row_x(o + 1);
        const std::size_t steps = n / B;
        store(pivot_lanes, splat(next_pivot));
        const T pivot_after = o + 2 < a.outer ? pivot_estimate(row_x(o + 2), n) : T(0);
        CenteredSumsInProgress<T> sums;
        sums.c = load(pivot_lanes);
        sums.pivot_lanes = pivot_lanes;
        // The normalization's blocks start at y's first vector boundary (store_head): one block
        // fewer than the sums' when the head leaves less than a block at the end.
        const std::size_t head = store_head(y, n);
        if (head != 0) {
            store_partial(y, layer_norm_value<T, HasWeight, HasBias>(x, 0, head, c, r, s, weight, bias), head);
        }
        const std::size_t blocks = (n - head) / B;
        const bool backward = walks_backward<T>(o, n, 3 + HasWeight + HasBias);
        for (std::size_t k = 0; k < blocks; ++k) {
            sums.step(next + k * B);
            const std::size_t i = head + (backward ? blocks - 1 - k : k) * B;
            for (std::size_t v = 0; v < 4; ++v) {
                const V c_lanes = kVectorRegisters >= 32 ? c : opaque_load(row_pivot_lanes);
                const V value = layer_norm_value<T, HasWeight, HasBias>(x, i + v * L, L, c_lanes, r, s, weight, bias);
                store(y + i + v * L, value);
            }
        }
        if (blocks < steps) sums.step(next + blocks * B);
        std::size_t i = head + blocks * B;
        for (; i + L <= n; i += L) {
            store(y + i, layer_norm_value<T, HasWeight, HasBias>(x, i, L, c, r, s, weight, bias));
        }
        if (i < n) {
            store_partial(y + i, layer_norm_value<T, HasWeight, HasBias>(x, i, n - i, c, r, s, weight, bias), n - i);
        }
        double sum_d = 0.0, sum_dd = 0.0;
        sums.finish(next, steps * B, n, pivot_lanes, &sum_d, &sum_dd);
        Moments moments;
        if (!accept_shifted(static_cast<double>(next_pivot), sum_d, sum_dd, by, &moments)) {
            moments = chunk_moments(next, n);  // same rejection, then its corrected two-pass
        }
        current = {moments.mean, inverse_std(moments.m2, by, a.eps)};
        next_pivot = pivot_after;
    }
}

// Whether cached rows (normal stores) take layer_norm_rows_interleaved (RMSNorm:
// rms_norm_rows_interleaved, below): rows wider than a row block
// (row_blocks.inl takes the narrower) and at most 4 KiB (row o, row o + 1 and y's row stay in L1;
// on Zen 3 through Python LayerNorm 256x2048 measured 10 % slower, 32x4096 7 %; on Intel wider rows
// gain, see interleave_wide_rows below), and more x than L1 holds
// (kInterleavedCachedBytes). There the rows come from L2 or L3, and
// overlapping one row's stores with the next row's loads beat the row pairs of
// layer_norm_row_groups. Zen 3, C++ loop, alternated in one process, µs, pairs / interleaved:
// 1 thread 512x768 134 / 122, 1024x512 218 / 188, 64x1024 21.3 / 19.6, 64x768 17.7 / 16.3,
// 32x768 8.4 / 8.2; 2 threads (tasks of ~128 KiB) 512x768 68.8 / 65.7, 256x1024 45.2 / 42.2;
// 8x768 2.2 / 2.3, 2x768 0.6 / 0.7. Against the groups of four rows that replaced the pairs
// (tuning log 30) the interleaved loop still won: groups / interleaved 1.03-1.06 at 512x768,
// 256x1024, 64x1024, 1024x512. With AVX-512 (Zen 4, C++ loop, one process) the row groups took
// 1.35-1.5x the time of this loop: B/A 0.67 at LayerNorm 512x768, 0.71 at 16x768 and 32x768, 0.69
// at 256x1024, 0.67 at RMSNorm 512x768 (tuning log 31; tuning log 15's opposite finding came
// before the reloads of weight and bias were removed). NEON (32 registers) takes it as well; it was
// not timed on AArch64 hardware (the qemu tests check its bits only).
// With a.interleave_wide_rows (Tuning, isa.hpp: Intel cores) rows up to 16 KiB take it too: on a
// Sapphire Rapids-class VM, C++ loop in one process, B/A interleaved / row groups, AVX-512:
// LayerNorm 4x4096 0.98, 8x4096 0.87, 16x4096 0.89, 32x4096 0.87-0.94, 128x4096 0.89, 16x2048 0.69,
// 64x2048 0.67, 256x2048 0.90, 32x3072 0.87, RMSNorm 8x4096 0.82, 32x4096 0.80, 128x4096 0.96,
// 16x2048 0.66; AVX2 0.74-0.96. Through Python, 1 thread: 0.70-0.92. On Zen 4 (AVX-512) the same
// loop took 1.04-1.18x the row groups' time (tuning logs 31 and 32).
constexpr std::size_t kInterleavedCachedBytes = std::size_t(32) << 10;
constexpr std::size_t kInterleavedCachedRowBytes = std::size_t(4) << 10;
constexpr std::size_t kInterleavedWideRowBytes = std::size_t(16) << 10;
static_assert(kInterleavedWideRowBytes / sizeof(float) <= kRowChunk, "rows of one chunk (chunk_moments)");
template <class T>
bool interleaved_cached_rows_apply(const NormArgs<T>& a) {
    const std::size_t row_bytes = a.mid * sizeof(T);
    return Vec<T>::lanes > 1 && !a.stream_output && !a.stats_in && !a.stats_out && a.outer >= 2 &&
           row_bytes > kRowBlockMaxBytes &&
           row_bytes <= (a.interleave_wide_rows ? kInterleavedWideRowBytes : kInterleavedCachedRowBytes) &&
           a.outer * row_bytes > kInterleavedCachedBytes;
}

template <class T>
void layer_norm_rows_interleaved_affine(const NormArgs<T>& a) {
    if (a.weight && a.bias) return layer_norm_rows_interleaved<T, true, true>(a);
    if (a.weight) return layer_norm_rows_interleaved<T, true, false>(a);
    if (a.bias) return layer_norm_rows_interleaved<T, false, true>(a);
    layer_norm_rows_interleaved<T, false, false>(a);
}

// row_sum_squares(p, n) taken one 4-vector step at a time, then finished: the same chains, flushes
// and tail, so the same bits (test_large_paths.py compares each row with the row alone).
template <class T>
struct SumSquaresInProgress {
    using V = Vec<T>;
    static constexpr std::size_t L = V::lanes;
    V s0{}, s1{}, s2{}, s3{};
    std::size_t steps = 0;
    Acc<T> total{};

    SIMDNORM_ALWAYS_INLINE void step(const T* p) {  // the 4L elements at p
        const V a0 = load(p), a1 = load(p + L), a2 = load(p + 2 * L), a3 = load(p + 3 * L);
        s0 = mul_add(a0, a0, s0);
        s1 = mul_add(a1, a1, s1);
        s2 = mul_add(a2, a2, s2);
        s3 = mul_add(a3, a3, s3);
        if (++steps == kFlushSteps) flush();
    }
    SIMDNORM_ALWAYS_INLINE void flush() {
        acc_add(total, (s0 + s1) + (s2 + s3));
        s0 = s1 = s2 = s3 = V{};
        steps = 0;
    }
    // The rest of the row from element i (after its whole 4-vector steps), as row_sum_squares.
    SIMDNORM_ALWAYS_INLINE double finish(const T* p, std::size_t i, std::size_t n) {
        if (steps != 0) flush();
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
};

// RMSNorm rows in cache with row o + 1's sum of squares inside row o's normalization loop: the
// counterpart of layer_norm_rows_interleaved for rows beyond L1 (interleaved_cached_rows_apply).
// Zen 3, C++ loop, alternated in one process, µs, row pairs / interleaved: 1 thread 512x768 80.7 /
// 68.6, 1024x512 144 / 110, 64x1024 15.8 / 12.9, 32x768 6.1 / 4.7; 2 threads 512x768 51.3 / 41.3.
// (Streamed rows keep the plain loop: there this interleaving gained nothing, tuning log 16.)
template <class T, bool HasWeight>
void rms_norm_rows_interleaved(const NormArgs<T>& a) {
    using V = Vec<T>;
    constexpr std::size_t L = V::lanes;
    constexpr std::size_t B = 4 * L;  // elements per block
    const std::size_t n = a.mid;
    const double count = static_cast<double>(n);
    auto row_x = [&](std::size_t o) { return a.x + static_cast<std::ptrdiff_t>(o) * a.x_outer_stride; };
    const T* const weight = a.weight;  // a local: see layer_norm_rows_interleaved
    auto value = [&](const T* x, std::size_t i, std::size_t valid, V r) {
        const bool full = valid == L;
        const V t = (full ? load(x + i) : load_partial(x + i, valid)) * r;
        return HasWeight ? t * (full ? load(weight + i) : load_partial(weight + i, valid)) : t;
    };
    const CountDivisor by(count);
    double rstd = 1.0 / std::sqrt(by.divide(row_sum_squares(row_x(0), n)) + a.eps);
    for (std::size_t o = 0; o < a.outer; ++o) {
        if (a.rstd) a.rstd[o] = static_cast<T>(rstd);
        const T* x = row_x(o);
        T* y = a.y + static_cast<std::ptrdiff_t>(o) * a.y_outer_stride;
        const V r = splat(static_cast<T>(rstd));
        const std::size_t steps = n / B;
        if (o + 1 == a.outer) {
            normalize_row<T, false, HasWeight, false>(x, y, n, T(0), static_cast<T>(rstd), T(0), weight, nullptr,
                                                      false);
            break;
        }
        const T* next = row_x(o + 1);
        SumSquaresInProgress<T> sums;
        const std::size_t head = store_head(y, n);  // as in layer_norm_rows_interleaved
        if (head != 0) store_partial(y, value(x, 0, head, r), head);
        const std::size_t blocks = (n - head) / B;
        const bool backward = walks_backward<T>(o, n, 3 + HasWeight);
        for (std::size_t k = 0; k < blocks; ++k) {
            sums.step(next + k * B);
            const std::size_t i = head + (backward ? blocks - 1 - k : k) * B;
            for (std::size_t v = 0; v < 4; ++v) store(y + i + v * L, value(x, i + v * L, L, r));
        }
        if (blocks < steps) sums.step(next + blocks * B);
        std::size_t i = head + blocks * B;
        for (; i + L <= n; i += L) store(y + i, value(x, i, L, r));
        if (i < n) store_partial(y + i, value(x, i, n - i, r), n - i);
        rstd = 1.0 / std::sqrt(by.divide(sums.finish(next, steps * B, n)) + a.eps);
    }
}
