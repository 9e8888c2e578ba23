// LayerNorm rows with the next row's statistics inside this row's normalization loop. Included
// by generic/kernels.inl after layer_norm_row_stats.
//
// Row o is normalized in the same loop that takes row o + 1's centered sums, one 4-vector block
// of each per iteration. One after the other, each row's reduction and its divide / square-root
// chain stall the stores between two rows; interleaved, the out-of-order core overlaps them
// (bench/README.md tuning log 15). Row o + 1's sums follow add_row_centered_sums' order step for
// step, so every row gets the same bits as on the other paths.
//
// Taken for DRAM-sized outputs (non-temporal stores; 8192x1024 out= ~1.4x -> ~1.05x the time of
// np.copyto). Rows in cache take row_blocks.inl, which overlaps the rows' chains by taking each
// step over a block of rows. The loop keeps ~16 vectors live: with 16 registers (AVX2) they spill
// and it is slower than the plain loop (8192x1024 out= 2.2-2.4 -> 2.9-3.0 ms), as it is with
// one-lane blocks (scalar), so those keep it. (Walking the normalization from a rotated start, to
// keep its stores away from the loads' page offsets, measured slower at every offset: 4K aliasing
// is not what limits this loop.)

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

    SIMDNORM_ALWAYS_INLINE void step(const T* p) {  // the 4L elements at p
        const V a0 = load(p) - c, a1 = load(p + L) - c;
        const V a2 = load(p + 2 * L) - c, a3 = load(p + 3 * L) - c;
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

// normalize_row's value for the `valid` elements at i (valid == lanes: a whole vector). Stream: x
// of a DRAM-sized pass, loaded with load_streaming (AVX-512: two 256-bit halves; an x whose
// vectors straddle lines ran 16384x1024 out= 3,300-3,800 us against 2,650-2,750, tuning log 19).
template <class T, bool HasWeight, bool HasBias, bool Stream = false>
SIMDNORM_ALWAYS_INLINE Vec<T> layer_norm_value(const T* x, std::size_t i, std::size_t valid, Vec<T> c, Vec<T> r,
                                               Vec<T> s, const T* weight, const T* bias) {
    const bool full = valid == Vec<T>::lanes;
    Vec<T> t = mul_add((full ? (Stream ? load_streaming(x + i) : load(x + i)) : load_partial(x + i, valid)) - c, r, s);
    if (HasWeight) {
        const Vec<T> w = full ? load(weight + i) : load_partial(weight + i, valid);
        t = HasBias ? mul_add(t, w, full ? load(bias + i) : load_partial(bias + i, valid)) : t * w;
    } else if (HasBias) {
        t = t + (full ? load(bias + i) : load_partial(bias + i, valid));
    }
    return t;
}

template <class T, bool HasWeight, bool HasBias>
void layer_norm_rows_interleaved(const NormArgs<T>& a) {
    using V = Vec<T>;
    constexpr std::size_t L = V::lanes;
    constexpr std::size_t B = 4 * L;  // elements per block
    const std::size_t n = a.mid;
    const double count = static_cast<double>(n);
    auto row_x = [&](std::size_t o) { return a.x + static_cast<std::ptrdiff_t>(o) * a.x_outer_stride; };
    alignas(64) T pivot_lanes[L];
    RowStats current = layer_norm_row_stats(row_x(0), n, a.eps);
    for (std::size_t o = 0; o < a.outer; ++o) {
        if (a.mean) a.mean[o] = static_cast<T>(current.mean);
        if (a.rstd) a.rstd[o] = static_cast<T>(current.rstd);
        prefetch_row_ahead(a, o);
        const T* x = row_x(o);
        T* y = a.y + static_cast<std::ptrdiff_t>(o) * a.y_outer_stride;
        const T pivot = static_cast<T>(current.mean);
        const T shift = static_cast<T>(-(current.mean - static_cast<double>(pivot)) * current.rstd);
        if (o + 1 == a.outer) {
            normalize_row<T, true, HasWeight, HasBias>(x, y, n, pivot, static_cast<T>(current.rstd), shift, a.weight,
                                                      a.bias, true);
            break;
        }
        const V c = splat(pivot), r = splat(static_cast<T>(current.rstd)), s = splat(shift);
        const T* next = row_x(o + 1);
        // Whole vectors of y from `head` on are aligned for the non-temporal stores.
        const std::size_t head = min_size(elements_to_vector_boundary(y), n);
        const std::size_t blocks = (n - head) / B, steps = n / B;
        const T next_pivot = pivot_estimate(next, n);
        store(pivot_lanes, splat(next_pivot));
        CenteredSumsInProgress<T> sums;
        sums.c = load(pivot_lanes);
        for (std::size_t k = 0; k < steps || k < blocks; ++k) {
            if (k < steps) sums.step(next + k * B);
            if (k < blocks) {
                const std::size_t i = head + k * B;
                for (std::size_t v = 0; v < 4; ++v) {
                    store_stream(y + i + v * L,
                                 layer_norm_value<T, HasWeight, HasBias, true>(x, i + v * L, L, c, r, s, a.weight, a.bias));
                }
            }
        }
        if (head != 0) {
            store_stream_partial(
                y, layer_norm_value<T, HasWeight, HasBias>(x, 0, head, c, r, s, a.weight, a.bias), head);
        }
        std::size_t i = head + blocks * B;
        for (; i + L <= n; i += L) {
            store_stream(y + i, layer_norm_value<T, HasWeight, HasBias>(x, i, L, c, r, s, a.weight, a.bias));
        }
        if (i < n) {
            store_stream_partial(
                y + i, layer_norm_value<T, HasWeight, HasBias>(x, i, n - i, c, r, s, a.weight, a.bias), n - i);
        }
        double sum_d = 0.0, sum_dd = 0.0;
        sums.finish(next, steps * B, n, pivot_lanes, &sum_d, &sum_dd);
        Moments moments;
        if (!accept_shifted(static_cast<double>(next_pivot), sum_d, sum_dd, count, &moments)) {
            moments = chunk_moments(next, n);  // same rejection, then its corrected two-pass
        }
        current = {moments.mean, inverse_std(moments.m2, count, a.eps)};
    }
}

// Whether layer_norm_rows_interleaved takes these rows (see the top of this file): streamed, rows
// one chunk long (row_moments = chunk_moments), y element-aligned (the head is whole elements).
template <class T>
bool interleaved_rows_apply(const NormArgs<T>& a) {
    return kVectorRegisters >= 32 && Vec<T>::lanes > 1 && a.stream_output && !a.stats_in && !a.stats_out &&
           a.outer > 0 && a.mid > 0 && a.mid <= kRowChunk && reinterpret_cast<std::uintptr_t>(a.y) % sizeof(T) == 0;
}

template <class T>
void layer_norm_rows_interleaved_affine(const NormArgs<T>& a) {
    if (a.weight && a.bias) return layer_norm_rows_interleaved<T, true, true>(a);
    if (a.weight) return layer_norm_rows_interleaved<T, true, false>(a);
    if (a.bias) return layer_norm_rows_interleaved<T, false, true>(a);
    layer_norm_rows_interleaved<T, false, false>(a);
}
