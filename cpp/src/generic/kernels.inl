// Generic kernel bodies (semantics documented in simdnorm/kernels.hpp). Included inside namespace
// simdnorm::<isa> after that variant's vec.hpp and generic/reductions.inl.

namespace {

constexpr std::size_t kLineBytes = 64;  // cache line

inline double inverse_std(double m2, const CountDivisor& count, double eps) {
    return 1.0 / std::sqrt(clamp_non_negative(count.divide(m2)) + eps);
}
inline double inverse_std(double m2, double count, double eps) { return inverse_std(m2, CountDivisor(count), eps); }

// A vector of n <= lanes elements: whole (n == lanes) or partial.
template <class T>
SIMDNORM_ALWAYS_INLINE Vec<T> load_part(const T* p, std::size_t n) {
    return n == Vec<T>::lanes ? load(p) : load_partial(p, n);
}
template <class T>
SIMDNORM_ALWAYS_INLINE void store_part(T* p, Vec<T> v, std::size_t n) {
    if (n == Vec<T>::lanes) {
        store(p, v);
    } else {
        store_partial(p, v, n);
    }
}

// step(i, n) over [0, count): [0, head) as one partial vector, whole vectors from head on, then
// the partial tail. step is inlined twice: for whole vectors (n == lanes, a constant) and parts.
template <class T, class Step>
SIMDNORM_ALWAYS_INLINE void for_aligned_vectors(std::size_t head, std::size_t count, Step&& step) {
    constexpr std::size_t L = Vec<T>::lanes;
    if (head != 0) step(0, head);
    std::size_t i = head;
    for (; i + L <= count; i += L) step(i, L);
    if (i < count) step(i, count - i);
}

// Elements of y before its first vector boundary, where a row of n elements gains by starting its
// stores there (n > lanes; 0 when y is not element-aligned). A vector store that spans two cache
// lines costs about a second store on Intel: Sapphire Rapids-class VM, C++ loop, x 16 bytes into a
// line, y 16 / 32 bytes in, B/A with the stores aligned: AVX-512 RMSNorm 8x768 0.73 / 0.77,
// LayerNorm 8x768 0.69 / 0.71, 32x4096 0.60 / 0.62; AVX2 (y 16 bytes in) 0.74, 0.78, 0.74; with y on
// a line level (bench/README.md tuning log 32). The values do not depend on where the vectors
// start: the normalization is elementwise.
template <class T>
SIMDNORM_ALWAYS_INLINE std::size_t store_head(const T* y, std::size_t n) {
    if (n <= Vec<T>::lanes || reinterpret_cast<std::uintptr_t>(y) % sizeof(T) != 0) return 0;
    return elements_to_vector_boundary(y);
}

// y[i, i + valid) = make(i, valid) over [0, n), one vector at a time from y's first vector
// boundary (store_head; valid < lanes only at the head and the tail). With `stream`, all of y is
// written with non-temporal stores: whole vectors from y's first vector boundary on, the partial
// ones before and after element by element (store_stream_partial: no ordinary store meets a
// streamed line). Always inlined: left to the compiler with make called in three places, it became
// a function of its own and AVX2 streamed LayerNorm rows ran 30-50 % slower (tuning log 19).
template <class T, class Make>
SIMDNORM_ALWAYS_INLINE void write_run(T* y, std::size_t n, bool stream, Make&& make) {
    using V = Vec<T>;
    constexpr std::size_t L = V::lanes;
    std::size_t i = 0;
    if (stream && n >= 2 * L && reinterpret_cast<std::uintptr_t>(y) % sizeof(T) == 0) {
        const std::size_t head = elements_to_vector_boundary(y);
        if (head != 0) {
            store_stream_partial(y, make(std::size_t(0), head), head);
            i = head;
        }
        for (; i + L <= n; i += L) store_stream(y + i, make(i, L));
        if (i < n) store_stream_partial(y + i, make(i, n - i), n - i);
        return;
    }
    const std::size_t head = store_head(y, n);
    if (head != 0) {
        store_partial(y, make(std::size_t(0), head), head);
        i = head;
    }
    for (; i + L <= n; i += L) store(y + i, make(i, L));
    if (i < n) store_partial(y + i, make(i, n - i), n - i);
}

// One store of y, non-temporal when Stream (p vector-aligned then), and its partial-vector twin.
template <bool Stream, class T>
SIMDNORM_ALWAYS_INLINE void store_maybe_stream(T* p, Vec<T> v) {
    if (Stream) {
        store_stream(p, v);
    } else {
        store(p, v);
    }
}
template <bool Stream, class T>
SIMDNORM_ALWAYS_INLINE void store_partial_maybe_stream(T* p, Vec<T> v, std::size_t n) {
    if (Stream) {
        store_stream_partial(p, v, n);
    } else {
        store_partial(p, v, n);
    }
}

// y = (x - pivot) * rstd + shift  (Centered)   or   y = x * rstd  (not Centered),
// then * weight and + bias per element when present. x and y may be the same row.
template <class T, bool Centered, bool HasWeight, bool HasBias>
void normalize_row(const T* x, T* y, std::size_t n, T pivot, T rstd, T shift, const T* weight, const T* bias,
                   bool stream) {
    using V = Vec<T>;
    constexpr std::size_t L = V::lanes;
    const V c = splat(pivot), r = splat(rstd), s = splat(shift);
    auto apply = [&](V a, std::size_t i, std::size_t valid) {
        V t = Centered ? mul_add(a - c, r, s) : a * r;
        const bool full = valid == L;
        if (HasWeight) {
            const V w = full ? load(weight + i) : load_partial(weight + i, valid);
            if (HasBias) {
                t = mul_add(t, w, full ? load(bias + i) : load_partial(bias + i, valid));
            } else {
                t = t * w;
            }
        } else if (HasBias) {
            t = t + (full ? load(bias + i) : load_partial(bias + i, valid));
        }
        return t;
    };
    // Streamed: x comes from memory too; AVX-512 loads it in halves (load_streaming, vec.hpp).
    write_run(y, n, stream, [&](std::size_t i, std::size_t valid) {
        return apply(valid == L ? (stream ? load_streaming(x + i) : load(x + i)) : load_partial(x + i, valid), i, valid);
    });
}

template <class T, bool Centered>
void normalize_row_affine(const T* x, T* y, std::size_t n, T pivot, T rstd, T shift, const T* weight,
                          const T* bias, bool stream) {
    if (weight && bias) return normalize_row<T, Centered, true, true>(x, y, n, pivot, rstd, shift, weight, bias, stream);
    if (weight) return normalize_row<T, Centered, true, false>(x, y, n, pivot, rstd, shift, weight, bias, stream);
    if (bias) return normalize_row<T, Centered, false, true>(x, y, n, pivot, rstd, shift, weight, bias, stream);
    normalize_row<T, Centered, false, false>(x, y, n, pivot, rstd, shift, weight, bias, stream);
}

// 4K aliasing: a load whose address matches an older store's in its low 12 bits waits for that
// store, as if it depended on it. The stores of a normalization pass stay queued while their lines
// come from L2 / L3, so a load stream that trails the store stream by a few lines of page offset
// (y a little ahead of x, weight or bias modulo 4 KiB) meets them at every step; walking the
// other way it meets only younger stores, which do not block it. NumPy places a batch's x and y
// that close often enough (8x4096: x 3088, y 3136, weight 3072 bytes into their pages).
// kAliasWindowBytes: about what the queued stores cover.
constexpr std::ptrdiff_t kAliasWindowBytes = 512;
// Rows up to this size always walk forward: there the choice cost more than it saved (LayerNorm
// 4096x64, groups of 16-element rows: +5 %).
constexpr std::size_t kWalkChoiceMinBytes = 1024;

// Whether a pass storing to each of `stores` and loading from each of `loads` (null entries
// skipped) meets fewer queued stores at the same page offsets walking from the end than from the
// start. Every pair counts: the rows of a group share their offsets when the row strides are
// multiples of 4 KiB, and then x outweighs weight and bias.
template <class T, std::size_t S, std::size_t N>
SIMDNORM_ALWAYS_INLINE bool walk_backward(const T* const (&stores)[S], const T* const (&loads)[N]) {
    int forward = 0, backward = 0;
    for (const T* store : stores) {
        for (const T* load : loads) {
            if (load == nullptr) continue;
            auto d = static_cast<std::ptrdiff_t>(
                (reinterpret_cast<std::uintptr_t>(store) - reinterpret_cast<std::uintptr_t>(load)) & 4095);
            if (d >= 2048) d -= 4096;  // the store's offset minus the load's, in [-2048, 2048)
            forward += d > 0 && d <= kAliasWindowBytes;
            backward += d < 0 && d >= -kAliasWindowBytes;
        }
    }
    return backward < forward;
}

// R rows with the same weight and bias: each weight / bias vector is loaded once for all of them
// (the normalization pass of rows in L1 is bound by its loads: x, weight and bias per vector), the
// R loads of x before the R stores to y. Walked from the end when walk_backward says so. AVX2,
// C++ loop, 8x4096 in two of NumPy's layouts: 14.7 -> 6.6 and 9.9 -> 5.8 us against the forward
// walk; where every direction meets some stores (y 32 bytes behind x, 16 ahead of weight) the
// forward walk still ran 10-30 % slower than the row pairs it replaced (bench/README.md, log 30).
template <class T, std::size_t R, bool Centered, bool HasBias>
void normalize_row_group(const T* const* x, T* const* y, std::size_t n, const T* pivot, const T* rstd,
                         const T* shift, const T* weight, const T* bias) {
    using V = Vec<T>;
    constexpr std::size_t L = V::lanes;
    V c[R], r[R], s[R];
    for (std::size_t k = 0; k < R; ++k) {
        r[k] = splat(rstd[k]);
        c[k] = Centered ? splat(pivot[k]) : V{};
        s[k] = Centered ? splat(shift[k]) : V{};
    }
    auto step = [&](std::size_t i) {
        const V w = load(weight + i);
        const V b = HasBias ? load(bias + i) : V{};
        V out[R];
        for (std::size_t k = 0; k < R; ++k) {
            const V t = Centered ? mul_add(load(x[k] + i) - c[k], r[k], s[k]) : load(x[k] + i) * r[k];
            out[k] = HasBias ? mul_add(t, w, b) : t * w;
        }
        for (std::size_t k = 0; k < R; ++k) store(y[k] + i, out[k]);
    };
    auto part = [&](std::size_t i, std::size_t valid) {
        if (valid == 0) return;
        const V w = load_partial(weight + i, valid);
        const V b = HasBias ? load_partial(bias + i, valid) : V{};
        for (std::size_t k = 0; k < R; ++k) {
            const V t = Centered ? mul_add(load_partial(x[k] + i, valid) - c[k], r[k], s[k])
                                 : load_partial(x[k] + i, valid) * r[k];
            store_partial(y[k] + i, HasBias ? mul_add(t, w, b) : t * w, valid);
        }
    };
    // Whole vectors from the rows' first vector boundary in y when they share it (store_head).
    std::size_t head = store_head(y[0], n);
    for (std::size_t k = 1; k < R; ++k) head = store_head(y[k], n) == head ? head : 0;
    const std::size_t whole = head + (n - head) / L * L;
    const T* loads[R + 2];
    const T* stores[R];
    for (std::size_t k = 0; k < R; ++k) {
        loads[k] = x[k];
        stores[k] = y[k];
    }
    loads[R] = weight;
    loads[R + 1] = HasBias ? bias : nullptr;
    if (n * sizeof(T) > kWalkChoiceMinBytes && walk_backward(stores, loads)) {
        part(whole, n - whole);
        for (std::size_t i = whole; i > head;) {
            i -= L;
            step(i);
        }
        part(0, head);
        return;
    }
    part(0, head);
    for (std::size_t i = head; i < whole; i += L) step(i);
    part(whole, n - whole);
}

// Columns layout: per-lane pivot / rstd / shift vectors, weight and bias broadcast per row m.
template <class T, bool Centered>
void normalize_tile(const NormArgs<T>& a, std::size_t o, std::size_t lane, std::size_t vectors,
                    std::size_t last_lanes, const double* pivot, const double* rstd, const double* shift) {
    using V = Vec<T>;
    constexpr std::size_t L = V::lanes;
    V c[kTileVectors], r[kTileVectors], s[kTileVectors];
    zero_array(c);
    zero_array(r);
    zero_array(s);
    for (std::size_t v = 0; v < vectors; ++v) {
        r[v] = load_rounded<T>(rstd + v * L);
        if (Centered) {
            c[v] = load_rounded<T>(pivot + v * L);
            s[v] = load_rounded<T>(shift + v * L);
        }
    }
    const T* x = a.x + static_cast<std::ptrdiff_t>(o) * a.x_outer_stride + lane;
    T* y = a.y + static_cast<std::ptrdiff_t>(o) * a.y_outer_stride + lane;
    const bool stream = a.stream_output && last_lanes == L;  // only whole vectors stream
    for (std::size_t m = 0; m < a.mid; ++m) {
        const T* xm = x + static_cast<std::ptrdiff_t>(m) * a.x_mid_stride;
        T* ym = y + static_cast<std::ptrdiff_t>(m) * a.y_mid_stride;
        const V w = splat(a.weight ? a.weight[m] : T(1));
        const V b = splat(a.bias ? a.bias[m] : T(0));
        if (stream && reinterpret_cast<std::uintptr_t>(ym) % sizeof(V) == 0) {
            for (std::size_t v = 0; v < vectors; ++v) {
                const V t = Centered ? mul_add(load(xm + v * L) - c[v], r[v], s[v]) : load(xm + v * L) * r[v];
                store_stream(ym + v * L, mul_add(t, w, b));
            }
            continue;
        }
        for (std::size_t v = 0; v < vectors; ++v) {
            const V xv = load_tile(xm + v * L, v, vectors, last_lanes);
            const V t = Centered ? mul_add(xv - c[v], r[v], s[v]) : xv * r[v];
            store_tile(ym + v * L, mul_add(t, w, b), v, vectors, last_lanes);
        }
    }
}

// Streamed (DRAM-sized) rows: asks for row o + kStreamRowsAhead before row o is written, so its
// statistics pass finds it in cache; the hardware prefetchers alone stay too close behind short
// rows. Rows longer than kStreamPrefetchBytes are left to them (long sequential streams).
constexpr std::size_t kStreamRowsAhead = 2;
constexpr std::size_t kStreamPrefetchBytes = std::size_t(16) << 10;
template <class T>
void prefetch_row_ahead(const NormArgs<T>& a, std::size_t o) {
    if (o + kStreamRowsAhead >= a.outer || a.mid * sizeof(T) > kStreamPrefetchBytes) return;
    const char* row = reinterpret_cast<const char*>(a.x + static_cast<std::ptrdiff_t>(o + kStreamRowsAhead) * a.x_outer_stride);
    for (std::size_t byte = 0; byte < a.mid * sizeof(T); byte += 64) prefetch_read(row + byte);
}

// Mean and 1 / sqrt(var + eps) of one row.
struct RowStats {
    double mean, rstd;
};
template <class T>
SIMDNORM_ALWAYS_INLINE RowStats layer_norm_row_stats(const T* x, std::size_t n, double eps) {
    const Moments stats = row_moments(x, n);
    return {stats.mean, inverse_std(stats.m2, static_cast<double>(n), eps)};
}

template <class T>
void layer_norm_write_row(const NormArgs<T>& a, std::size_t o, RowStats stats) {
    const T pivot = static_cast<T>(stats.mean);
    const T shift = static_cast<T>(-(stats.mean - static_cast<double>(pivot)) * stats.rstd);
    normalize_row_affine<T, true>(a.x + static_cast<std::ptrdiff_t>(o) * a.x_outer_stride,
                                  a.y + static_cast<std::ptrdiff_t>(o) * a.y_outer_stride, a.mid, pivot,
                                  static_cast<T>(stats.rstd), shift, a.weight, a.bias, a.stream_output);
}

// Writes rows [o, o + rows) with their statistics (mean / rstd outputs included), rows > 0: with a
// weight and rows_may_share_passes, kRowGroup rows at a time, then a pair, then single rows
// (normalize_row_group: each weight / bias vector loaded once for the group). Four rows wide halved
// the weight and bias traffic of rows that stream from L2 / L3 (AVX2, 32x4096 C++ loop 28.3 -> 25.4 us).
constexpr std::size_t kRowGroup = 4;  // LayerNorm and RMSNorm rows per normalization pass
constexpr std::size_t kRowPair = 2;   // what is left after the groups: a pair, then single rows
template <class T, std::size_t R>
SIMDNORM_ALWAYS_INLINE void layer_norm_write_group(const NormArgs<T>& a, std::size_t o, const RowStats* stats) {
    T pivot[R], rstd[R], shift[R];
    const T* xs[R];
    T* ys[R];
    for (std::size_t j = 0; j < R; ++j) {
        const RowStats& s = stats[j];
        const std::size_t row = o + j;
        pivot[j] = static_cast<T>(s.mean);
        rstd[j] = static_cast<T>(s.rstd);
        shift[j] = static_cast<T>(-(s.mean - static_cast<double>(pivot[j])) * s.rstd);
        if (a.mean) a.mean[row] = pivot[j];
        if (a.rstd) a.rstd[row] = rstd[j];
        xs[j] = a.x + static_cast<std::ptrdiff_t>(row) * a.x_outer_stride;
        ys[j] = a.y + static_cast<std::ptrdiff_t>(row) * a.y_outer_stride;
    }
    if (a.bias) {
        normalize_row_group<T, R, true, true>(xs, ys, a.mid, pivot, rstd, shift, a.weight, a.bias);
    } else {
        normalize_row_group<T, R, true, false>(xs, ys, a.mid, pivot, rstd, shift, a.weight, nullptr);
    }
}

// Whether rows may share normalization passes (normalize_row_group): when each row of x and of y
// starts at the same place in its cache line as the one before, or when x and y together fit in L1.
// Rows a part of a line apart (1000 float32: 4000 bytes, half a line) that come from L2 ran their
// groups slower than one row at a time on every vector ISA, also where no vector load splits (AVX2
// on rows half a line apart): C++ loop, 8 rows, one row at a time over groups, AVX-512 / AVX2: 984
// wide 0.83 / 0.84, 1000 0.86 / 0.83, 1032 0.76 / 0.74, 1100 0.75 / 0.77; 6x1000 0.80, 2x3000
// 0.74, RMSNorm 8x1000 0.75 / 0.68. Line-multiple widths around them measured level (960, 1024:
// 0.99-1.01) and keep their groups; so do batches within L1, where the groups still won (one row at
// a time 4x1000 1.08, 4x1100 1.13; 5x1000, 40,000 bytes of x and y, 0.96). Tuning log 34.
constexpr std::size_t kRowGroupsAnyPhaseBytes = std::size_t(36) << 10;  // x and y
template <class T, template <class> class Args>
bool rows_may_share_passes(const Args<T>& a) {
    constexpr std::ptrdiff_t kLine = 64;
    const auto line_multiple = [](std::ptrdiff_t stride) { return (stride * std::ptrdiff_t(sizeof(T))) % kLine == 0; };
    return (line_multiple(a.x_outer_stride) && line_multiple(a.y_outer_stride)) ||
           2 * a.outer * a.mid * sizeof(T) <= kRowGroupsAnyPhaseBytes;
}

template <class T>
void layer_norm_write_rows(const NormArgs<T>& a, std::size_t o, std::size_t rows, const RowStats* stats) {
    constexpr std::size_t R = kRowGroup;
    std::size_t k = 0;
    if (a.weight && rows_may_share_passes(a)) {
        for (; k + R <= rows; k += R) layer_norm_write_group<T, R>(a, o + k, stats + k);
        for (; k + kRowPair <= rows; k += kRowPair) layer_norm_write_group<T, kRowPair>(a, o + k, stats + k);
    }
    for (; k < rows; ++k) {
        if (a.mean) a.mean[o + k] = static_cast<T>(stats[k].mean);
        if (a.rstd) a.rstd[o + k] = static_cast<T>(stats[k].rstd);
        layer_norm_write_row(a, o + k, stats[k]);
    }
}

#include "generic/row_blocks.inl"
#include "generic/interleaved_rows.inl"  // after row_blocks.inl: kRowBlockMaxBytes
#include "generic/channel_block_moments.inl"
#include "generic/column_strips.inl"

// layer_norm_rows with a weight, kRowGroup rows at a time, the statistics of the next
// group computed before this one is written.
template <class T>
void layer_norm_row_groups(const NormArgs<T>& a) {
    constexpr std::size_t R = kRowGroup;
    auto row_x = [&](std::size_t o) { return a.x + static_cast<std::ptrdiff_t>(o) * a.x_outer_stride; };
    RowStats next[R];
    for (std::size_t k = 0; k < R && k < a.outer; ++k) next[k] = layer_norm_row_stats(row_x(k), a.mid, a.eps);
    for (std::size_t o = 0; o < a.outer; o += R) {
        const std::size_t rows = min_size(R, a.outer - o);
        RowStats current[R];
        for (std::size_t k = 0; k < rows; ++k) current[k] = next[k];
        for (std::size_t k = 0; k < R && o + R + k < a.outer; ++k) {
            next[k] = layer_norm_row_stats(row_x(o + R + k), a.mid, a.eps);
        }
        layer_norm_write_rows(a, o, rows, current);
    }
}

template <class T>
void layer_norm_rows(const NormArgs<T>& a) {
    // Rows are distinct (an overlapping out= goes through a temporary), so the paths that take
    // statistics ahead of the normalization stay correct in place.
    if (row_blocks_apply(a)) {  // two or more rows in cache, one chunk long (row_blocks.inl)
        layer_norm_row_blocks(a);
        return;
    }
    if (interleaved_cached_rows_apply(a)) {  // more x than L1 holds (interleaved_rows.inl)
        layer_norm_rows_interleaved_affine(a);
        return;
    }
    // Streamed (DRAM-sized) outputs keep the plain loop at the end: the look-ahead order below
    // measured slower there (1.9 -> 2.2 ms at 8192x1024 out=), and so did the interleaved loop
    // (interleaved_rows.inl).
    if (!a.stats_in && !a.stats_out && !a.stream_output && a.outer > 0) {
        // One row, or rows the paths above leave (wider than a row block: rows over 4 KiB, 16 KiB
        // with NormArgs::interleave_wide_rows, or batches within L1). Statistics one row ahead:
        // the reduction of row o + 1 runs while the square root and division of row o complete,
        // instead of the normalization waiting on them.
        if (a.weight && a.outer >= kRowPair) {
            layer_norm_row_groups(a);
            return;
        }
        RowStats next = layer_norm_row_stats(a.x, a.mid, a.eps);
        for (std::size_t o = 0; o < a.outer; ++o) {
            const RowStats stats = next;
            if (o + 1 < a.outer) {
                next = layer_norm_row_stats(a.x + static_cast<std::ptrdiff_t>(o + 1) * a.x_outer_stride, a.mid, a.eps);
            }
            if (a.mean) a.mean[o] = static_cast<T>(stats.mean);
            if (a.rstd) a.rstd[o] = static_cast<T>(stats.rstd);
            layer_norm_write_row(a, o, stats);
        }
        return;
    }
    for (std::size_t o = 0; o < a.outer; ++o) {
        const T* x = a.x + static_cast<std::ptrdiff_t>(o) * a.x_outer_stride;
        if (a.stats_out) {
            const Moments stats = row_moments(x, a.mid);
            a.stats_out[2 * o] = stats.mean;
            a.stats_out[2 * o + 1] = stats.m2;
            continue;
        }
        if (a.stats_in) {
            layer_norm_write_row(a, o, RowStats{a.stats_in[2 * o], a.stats_in[2 * o + 1]});
            continue;
        }
        const RowStats stats = layer_norm_row_stats(x, a.mid, a.eps);
        if (a.mean) a.mean[o] = static_cast<T>(stats.mean);
        if (a.rstd) a.rstd[o] = static_cast<T>(stats.rstd);
        if (a.stream_output) prefetch_row_ahead(a, o);
        layer_norm_write_row(a, o, stats);
    }
}

template <class T>
void layer_norm_columns(const NormArgs<T>& a) {
    constexpr std::size_t W = kTileVectors * Vec<T>::lanes;
    const double count = static_cast<double>(a.mid);
    for (std::size_t o = 0; o < a.outer; ++o) {
        for_each_tile<T>(a.inner, [&](std::size_t lane, std::size_t vectors, std::size_t last_lanes) {
            alignas(64) double mean[W], m2[W], rstd[W], shift[W];
            const T* x = a.x + static_cast<std::ptrdiff_t>(o) * a.x_outer_stride + lane;
            tile_moments(x, vectors, last_lanes, a.mid, a.x_mid_stride, mean, m2);
            const std::size_t valid = (vectors - 1) * Vec<T>::lanes + last_lanes;
            for (std::size_t k = 0; k < vectors * Vec<T>::lanes; ++k) {
                rstd[k] = inverse_std(m2[k], count, a.eps);
                const double pivot = static_cast<double>(static_cast<T>(mean[k]));
                shift[k] = -(mean[k] - pivot) * rstd[k];
                mean[k] = pivot;
            }
            const std::size_t out = o * a.inner + lane;
            for (std::size_t k = 0; k < valid; ++k) {
                if (a.mean) a.mean[out + k] = static_cast<T>(mean[k]);
                if (a.rstd) a.rstd[out + k] = static_cast<T>(rstd[k]);
            }
            normalize_tile<T, true>(a, o, lane, vectors, last_lanes, mean, rstd, shift);
        });
    }
}

// rms_norm_rows with a weight, kRowGroup rows per normalization pass (then a pair, then
// single rows; normalize_row_group) where rows_may_share_passes, else one row at a time, the next
// group's sums of squares taken before this group is written.
template <class T>
void rms_norm_row_groups(const NormArgs<T>& a) {
    constexpr std::size_t R = kRowGroup;
    const double count = static_cast<double>(a.mid);
    auto row_x = [&](std::size_t o) { return a.x + static_cast<std::ptrdiff_t>(o) * a.x_outer_stride; };
    const CountDivisor by(count);
    auto row_rstd = [&](std::size_t o) { return 1.0 / std::sqrt(by.divide(row_sum_squares(row_x(o), a.mid)) + a.eps); };
    const bool grouped = rows_may_share_passes(a);
    double next[R];
    for (std::size_t k = 0; k < R && k < a.outer; ++k) next[k] = row_rstd(k);
    for (std::size_t o = 0; o < a.outer; o += R) {
        const std::size_t rows = min_size(R, a.outer - o);
        T rstd[R];
        const T* xs[R];
        T* ys[R];
        for (std::size_t k = 0; k < rows; ++k) {
            rstd[k] = static_cast<T>(next[k]);
            if (a.rstd) a.rstd[o + k] = rstd[k];
            xs[k] = row_x(o + k);
            ys[k] = a.y + static_cast<std::ptrdiff_t>(o + k) * a.y_outer_stride;
        }
        for (std::size_t k = 0; k < R && o + R + k < a.outer; ++k) next[k] = row_rstd(o + R + k);
        std::size_t k = 0;
        if (!grouped) {
            for (; k < rows; ++k) {
                normalize_row<T, false, true, false>(xs[k], ys[k], a.mid, T(0), rstd[k], T(0), a.weight, nullptr,
                                                     false);
            }
            continue;
        }
        if (rows == R) {
            normalize_row_group<T, R, false, false>(xs, ys, a.mid, nullptr, rstd, nullptr, a.weight, nullptr);
            continue;
        }
        if (rows >= kRowPair) {
            normalize_row_group<T, kRowPair, false, false>(xs, ys, a.mid, nullptr, rstd, nullptr, a.weight, nullptr);
            k = kRowPair;
        }
        for (; k < rows; ++k) {
            normalize_row<T, false, true, false>(xs[k], ys[k], a.mid, T(0), rstd[k], T(0), a.weight, nullptr, false);
        }
    }
}

template <class T>
void rms_norm_rows(const NormArgs<T>& a) {
    if (interleaved_cached_rows_apply(a)) {  // more x than L1 holds (interleaved_rows.inl)
        if (a.weight) {
            rms_norm_rows_interleaved<T, true>(a);
        } else {
            rms_norm_rows_interleaved<T, false>(a);
        }
        return;
    }
    if (a.weight && !a.stats_in && !a.stats_out && !a.stream_output && a.outer >= kRowPair) {
        rms_norm_row_groups(a);
        return;
    }
    const double count = static_cast<double>(a.mid);
    for (std::size_t o = 0; o < a.outer; ++o) {
        const T* x = a.x + static_cast<std::ptrdiff_t>(o) * a.x_outer_stride;
        if (a.stats_out) {
            a.stats_out[2 * o] = 0.0;
            a.stats_out[2 * o + 1] = row_sum_squares(x, a.mid);
            continue;
        }
        const double rstd = a.stats_in ? a.stats_in[2 * o + 1]
                                       : 1.0 / std::sqrt(divide_by_count(row_sum_squares(x, a.mid), count) + a.eps);
        if (a.rstd && !a.stats_in) a.rstd[o] = static_cast<T>(rstd);
        if (a.stream_output && !a.stats_in) prefetch_row_ahead(a, o);
        T* y = a.y + static_cast<std::ptrdiff_t>(o) * a.y_outer_stride;
        if (a.weight) {
            normalize_row<T, false, true, false>(x, y, a.mid, T(0), static_cast<T>(rstd), T(0), a.weight, nullptr,
                                                 a.stream_output);
        } else {
            normalize_row<T, false, false, false>(x, y, a.mid, T(0), static_cast<T>(rstd), T(0), nullptr, nullptr,
                                                  a.stream_output);
        }
    }
}

template <class T>
void rms_norm_columns(const NormArgs<T>& a) {
    constexpr std::size_t W = kTileVectors * Vec<T>::lanes;
    const double count = static_cast<double>(a.mid);
    for (std::size_t o = 0; o < a.outer; ++o) {
        for_each_tile<T>(a.inner, [&](std::size_t lane, std::size_t vectors, std::size_t last_lanes) {
            alignas(64) double rstd[W];
            const T* x = a.x + static_cast<std::ptrdiff_t>(o) * a.x_outer_stride + lane;
            tile_sum_squares(x, vectors, last_lanes, a.mid, a.x_mid_stride, rstd);
            const std::size_t valid = (vectors - 1) * Vec<T>::lanes + last_lanes;
            divide_all(rstd, vectors * Vec<T>::lanes, CountDivisor(count));
            for (std::size_t k = 0; k < vectors * Vec<T>::lanes; ++k) rstd[k] = 1.0 / std::sqrt(rstd[k] + a.eps);
            if (a.rstd) {
                for (std::size_t k = 0; k < valid; ++k) a.rstd[o * a.inner + lane + k] = static_cast<T>(rstd[k]);
            }
            NormArgs<T> no_bias = a;  // RMSNorm has no bias, whatever the caller passed
            no_bias.bias = nullptr;
            normalize_tile<T, false>(no_bias, o, lane, vectors, last_lanes, nullptr, rstd, nullptr);
        });
    }
}

// y[i] = ((x[i] - center) or x[i]) * scale + offset over one contiguous run of n. With `prefetch`
// non-null, prefetch[i] is requested for every vector written (batch_norm_train: the next channel).
// WholeVectors (channel_affine): see below; batch_norm_train measured 0-3 % slower with it.
template <class T, bool Centered, bool WholeVectors>
SIMDNORM_ALWAYS_INLINE void affine_run(const T* x, T* y, std::size_t n, Vec<T> center, Vec<T> scale, Vec<T> offset,
                                       const T* prefetch) {
    using V = Vec<T>;
    constexpr std::size_t L = V::lanes;
    auto value = [&](std::size_t i) { return mul_add(Centered ? load(x + i) - center : load(x + i), scale, offset); };
    if (WholeVectors && n >= L && x != y) {
        // Out of place (the callers' y is x itself or does not overlap it): whole vectors from y's
        // vector boundary (store_head; the head a partial vector), the last one overlapping its
        // neighbour, which rewrites equal values. A partial vector at the end of every short NCHW
        // run cost more (scale_shift 1x512x7x7 in the C++ loop 1.2 vs 1.8 us with the arguments in
        // locals; aligning the loads to x's vector boundary changed nothing after that). The
        // partial head paid for itself even there (Sapphire Rapids-class VM, channel_affine
        // 1x512x7x7: 0.73x the time with AVX-512, 0.80x with AVX2; tuning log 32).
        std::size_t i = store_head(y, n);
        if (i != 0) {
            if (prefetch) prefetch_read(prefetch);
            store_partial(y, value(0), i);
        }
        for (; i + L <= n; i += L) {
            if (prefetch) prefetch_read(prefetch + i);
            store(y + i, value(i));
        }
        if (i < n) {
            if (prefetch) prefetch_read(prefetch + n - L);
            store(y + n - L, value(n - L));
        }
        return;
    }
    // Two vectors a step, and at least one 64-byte line, which gets one prefetch: a request per
    // vector sent 16 per line in the scalar build and two on AVX2. (With 16, the scalar loop ran
    // 1x64x56x56 in 128 or 176 us depending on the build's code layout.)
    constexpr std::size_t kLineElements = kLineBytes / sizeof(T);
    constexpr std::size_t step = 2 * L > kLineElements ? 2 * L : kLineElements;
    // From y's vector boundary (store_head) in runs of 8 vectors or more: shorter ones paid more for
    // the partial head than the aligned stores saved (AVX2 batch_norm_train 1x512x7x7, 49-element
    // runs: 1.06x the time).
    std::size_t i = n >= 8 * L ? store_head(y, n) : 0;
    if (i != 0) {
        if (prefetch) prefetch_read(prefetch);
        const V xv = Centered ? load_partial(x, i) - center : load_partial(x, i);
        store_partial(y, mul_add(xv, scale, offset), i);
    }
    for (; i + step <= n; i += step) {
        if (prefetch) {
            for (std::size_t k = 0; k < step; k += kLineElements) prefetch_read(prefetch + i + k);
        }
        for (std::size_t k = 0; k < step; k += L) store(y + i + k, value(i + k));
    }
    for (; i + L <= n; i += L) {
        if (prefetch && i % kLineElements < L) prefetch_read(prefetch + i);
        store(y + i, value(i));
    }
    if (i < n) {
        if (prefetch) prefetch_read(prefetch + i);
        const V xv = Centered ? load_partial(x + i, n - i) - center : load_partial(x + i, n - i);
        store_partial(y + i, mul_add(xv, scale, offset), n - i);
    }
}

// Channels-last rows that follow each other in x and in y, with at most kPeriodicChannelBytes of
// channels, run as one flat loop (channel_affine_periodic) where that aligns what a loop per row
// cannot:
// - streamed y (non-temporal stores need it vector-aligned): per row, a y off its line began and
//   ended every row with partial lines;
// - cached, x and y equally off a vector boundary, with 64-byte vectors (AVX-512): the flat loop
//   aligns both once. There every vector 16 bytes off straddles two lines; with 32-byte vectors
//   (AVX2) only every other one does, and the row pairs ran faster than the flat loop (C++ loop in
//   one process, x and y 16 bytes into a line: 256x768 0.76x, 1568x256 0.76-0.94x, 64x768
//   0.55-0.65x the flat loop's time; bench/README.md, tuning log 30).
// Elsewhere the loop per row is faster in cache: two rows per pass share the per-channel loads, and
// with one of x and y aligned, the other's split accesses cost less than the flat loop's would
// (scale_shift 64x768, when the row loop aligned x: 3.2 vs 4.6 us; it now aligns y). Building the
// tables costs about three rows' loads, hence the minimum row counts.
constexpr std::size_t kPeriodicChannelBytes = 4096;
constexpr std::size_t kPeriodicMinRowsStreamed = 8;
constexpr std::size_t kPeriodicMinRowsCached = 64;

template <class T>
bool channels_last_periodic(const ChannelAffineArgs<T>& a) noexcept {
    const auto row = static_cast<std::ptrdiff_t>(a.mid);
    // Not for the scalar variant: its per-row loop is the one the compiler vectorizes (the flat
    // loop's table index is not), NHWC 32x56x56x64 1.1 vs 4.7 ms.
    if (Vec<T>::lanes == 1 || a.inner != 1 || a.mid * sizeof(T) > kPeriodicChannelBytes || a.x_outer_stride != row ||
        a.y_outer_stride != row) {
        return false;
    }
    const std::uintptr_t x_off = reinterpret_cast<std::uintptr_t>(a.x) % sizeof(Vec<T>);
    const std::uintptr_t y_off = reinterpret_cast<std::uintptr_t>(a.y) % sizeof(Vec<T>);
    if (a.stream_output) return a.outer >= kPeriodicMinRowsStreamed && y_off % sizeof(T) == 0;
    return sizeof(Vec<T>) >= 64 && a.outer >= kPeriodicMinRowsCached && x_off == y_off && y_off != 0;
}

// Channels-last rows back to back: one flat run over outer * mid values whose vectors may span two
// rows, the per-channel values read from tables that repeat the channels (table[j] = v[j % mid] for
// j < mid + lanes). Against one loop per row this aligns y once instead of per row (streamed
// 64-channel rows into a y 16 bytes off a line began and ended each 256-byte row with partial lines:
// 2.4x slower), places the tables so that their loads do not straddle cache lines whatever the
// caller's scale / shift alignment, and has no per-row loop overhead. AVX-512, 32x56x56x64:
// bench/README.md tuning log 18.
template <class T, bool Centered, bool Stream>
void channel_affine_periodic(const ChannelAffineArgs<T>& a) {
    using V = Vec<T>;
    constexpr std::size_t L = V::lanes;
    constexpr std::size_t kMaxChannels = kPeriodicChannelBytes / sizeof(T);
    const std::size_t channels = a.mid, n = a.outer * a.mid;
    const std::size_t head =
        reinterpret_cast<std::uintptr_t>(a.y) % sizeof(T) == 0 ? min_size(elements_to_vector_boundary(a.y), n) : 0;

    // Table base chosen so that base + head is vector-aligned: every body position is head plus a
    // multiple of L, so when L divides mid every table load is aligned.
    alignas(64) T storage[3][kMaxChannels + 2 * L];
    const std::size_t base = (L - head % L) % L;
    const T* sources[3] = {Centered ? a.center : a.scale, a.scale, a.offset};
    T* tables[3];
    for (int k = Centered ? 0 : 1; k < 3; ++k) {
        T* table = storage[k] + base;
        std::size_t j = 0;
        for (; j + L <= channels; j += L) store(table + j, load(sources[k] + j));
        if (j < channels) store_partial(table + j, load_partial(sources[k] + j, channels - j), channels - j);
        if (channels >= L) {
            store(table + channels, load(table));
        } else {
            for (j = channels; j < channels + L; ++j) table[j] = table[j - channels];
        }
        tables[k] = table;
    }
    const T* center = tables[0];
    const T* scale = tables[1];
    const T* offset = tables[2];
    auto make = [&](std::size_t i, std::size_t t, std::size_t valid) {
        const bool full = valid == L;
        const V xv = full ? (Stream ? load_streaming(a.x + i) : load(a.x + i)) : load_partial(a.x + i, valid);
        const V c = Centered ? (full ? load(center + t) : load_partial(center + t, valid)) : V{};
        const V sc = full ? load(scale + t) : load_partial(scale + t, valid);
        const V of = full ? load(offset + t) : load_partial(offset + t, valid);
        return mul_add(Centered ? xv - c : xv, sc, of);
    };

    std::size_t i = 0, t = 0;  // t = i % channels, kept without dividing
    if (head != 0) {
        store_partial_maybe_stream<Stream>(a.y, make(0, 0, head), head);
        i = head;
        t = head % channels;
    }
    const std::size_t step = L % channels;
    for (; i + L <= n; i += L) {
        store_maybe_stream<Stream>(a.y + i, make(i, t, L));
        t += step;
        if (t >= channels) t -= channels;
    }
    if (i < n) store_partial_maybe_stream<Stream>(a.y + i, make(i, t, n - i), n - i);
}

// A channels-last call's per-channel vectors copied to where y's rows sit in their cache line
// (channel_affine_co_aligned). The row loop aligns its vectors to y (channel_affine_impl); a scale /
// offset that NumPy placed elsewhere in its line then makes every one of their loads span two
// lines. Where those split loads also met queued stores to y at the same page offsets (256
// channels: 1 KiB rows), the loop ran 2-3x slower. Zen 4, when the loop aligned x, C++ loop in one
// process, x 16 bytes into a line, y and the parameters 64-byte aligned (so 16 bytes off x's place),
// 1568x256 µs: AVX-512 125 -> 41, AVX2 93 -> 43;
// 1024x256 AVX2 60 -> 29; other channel counts level (0.95-1.02 from 128 rows on). The copies (3 x 4
// KiB at most) cost about three rows of their channels: 16x1024 took 1.25x as long, hence the
// minimum row count (bench/README.md tuning log 31).
constexpr std::size_t kCoAlignedChannelsMinRows = 128;

template <class T>
bool co_aligned_channels_pay(const ChannelAffineArgs<T>& a, bool centered) {
    const std::uintptr_t y_address = reinterpret_cast<std::uintptr_t>(a.y);
    const std::size_t stride_bytes =
        static_cast<std::size_t>(a.y_outer_stride < 0 ? -a.y_outer_stride : a.y_outer_stride) * sizeof(T);
    if (a.outer < kCoAlignedChannelsMinRows || a.mid * sizeof(T) > kPeriodicChannelBytes ||
        y_address % sizeof(T) != 0 || stride_bytes % kLineBytes != 0) {
        return false;
    }
    const std::uintptr_t line_offset = y_address % kLineBytes;
    auto off = [&](const T* p) { return reinterpret_cast<std::uintptr_t>(p) % kLineBytes != line_offset; };
    return off(a.scale) || off(a.offset) || (centered && off(a.center));
}

template <class T, bool Centered>
void channel_affine_impl(const ChannelAffineArgs<T>& a);

// channel_affine_impl over copies of center / scale / offset at y's place in the line. Out of line:
// its 12 KiB frame stays off the common path.
template <class T, bool Centered>
SIMDNORM_NOINLINE void channel_affine_co_aligned(const ChannelAffineArgs<T>& a) {
    constexpr std::size_t kCapacity = (kPeriodicChannelBytes + kLineBytes) / sizeof(T);
    alignas(64) T tables[3][kCapacity];
    const std::size_t skip = reinterpret_cast<std::uintptr_t>(a.y) % kLineBytes / sizeof(T);
    auto copy = [&](std::size_t slot, const T* from) {
        T* to = tables[slot] + skip;
        std::memcpy(to, from, a.mid * sizeof(T));
        return to;
    };
    ChannelAffineArgs<T> co_aligned = a;
    if (Centered) co_aligned.center = copy(0, a.center);
    co_aligned.scale = copy(1, a.scale);
    co_aligned.offset = copy(2, a.offset);
    channel_affine_impl<T, Centered>(co_aligned);  // co_aligned_channels_pay is false there
}

template <class T, bool Centered>
void channel_affine_impl(const ChannelAffineArgs<T>& a) {
    using V = Vec<T>;
    constexpr std::size_t L = V::lanes;
    if (a.inner == 1) {  // channels-last: vectors across channels
        if (channels_last_periodic(a)) {
            if (a.stream_output) return channel_affine_periodic<T, Centered, true>(a);
            return channel_affine_periodic<T, Centered, false>(a);
        }
        // Cached rows: whole vectors from y's first vector boundary on when every row starts at
        // the same place in its vector (NumPy's large arrays start 16 bytes into a line, where each
        // AVX-512 access spans two lines). Which side to align was measured both ways:
        // - Zen 4, scale_shift 256x768 out= through Python, x 16 bytes into a line: y 32 bytes in,
        //   16.5-16.7 us unaligned, 14.1-14.5 with x's loads aligned, 16.5-17.0 with y's stores
        //   aligned; y on a line, 14.3-14.6, 13.4-13.6, 13.8-14.3.
        // - Intel (Sapphire Rapids-class VM), where a store that spans two lines costs far more
        //   than such a load: C++ loop, x 16 bytes into a line, y on a line, B/A stores / loads
        //   aligned: AVX-512 1568x256 0.69-0.72, 256x768 0.37-0.41, 64x768 0.40, 16x768 0.38; AVX2
        //   0.90-0.97, 0.73, 0.70, 0.73 (tuning log 32).
        // Aligning the stores costs Zen 4 up to ~17 % where x and y sit differently in their lines
        // and saves Intel up to 2.7x, so y it is. (Outputs simdnorm allocates start on a line.)
        const std::size_t head = aligned_head(a.y, a.mid, a.y_outer_stride);
        if (!a.stream_output && co_aligned_channels_pay(a, Centered)) {
            return channel_affine_co_aligned<T, Centered>(a);
        }
        // Locals, as in the channels-first loop below: read through `a`, these pointers were
        // reloaded after every store to y (two or three loads more per vector).
        const T* const center_row = a.center;
        const T* const scale_row = a.scale;
        const T* const offset_row = a.offset;
        // Rows a part of a line apart beyond L1 go one at a time, each stored from its own vector
        // boundary, as LayerNorm's (rows_may_share_passes): the pairs' stores split lines in most
        // rows. C++ loop, AVX-512, B/A: 64x500 0.58, 64x516 0.54, 16x1000 0.67; in L1 the pairs
        // still won (8x100 1.45 one at a time).
        const bool rows_share_passes = rows_may_share_passes(a);
        // One cached row, its vectors from `row_head` on (the row's own or every row's boundary).
        const auto write_row = [&](const T* x, T* y, std::size_t row_head) {
            for_aligned_vectors<T>(row_head, a.mid, [&](std::size_t i, std::size_t n) {
                const V xv = Centered ? load_part(x + i, n) - load_part(center_row + i, n) : load_part(x + i, n);
                store_part(y + i, mul_add(xv, load_part(scale_row + i, n), load_part(offset_row + i, n)), n);
            });
        };
        for (std::size_t o = 0; o < a.outer; ++o) {
            const T* x = a.x + static_cast<std::ptrdiff_t>(o) * a.x_outer_stride;
            T* y = a.y + static_cast<std::ptrdiff_t>(o) * a.y_outer_stride;
            if (a.stream_output) {
                write_run(y, a.mid, true, [&](std::size_t i, std::size_t n) {
                    if (n == L) {
                        const V xv = Centered ? load_streaming(x + i) - load(center_row + i) : load_streaming(x + i);
                        return mul_add(xv, load(scale_row + i), load(offset_row + i));
                    }
                    const V xv =
                        Centered ? load_partial(x + i, n) - load_partial(center_row + i, n) : load_partial(x + i, n);
                    return mul_add(xv, load_partial(scale_row + i, n), load_partial(offset_row + i, n));
                });
                continue;
            }
            if (!rows_share_passes) {
                write_row(x, y, store_head(y, a.mid));
                continue;
            }
            if (o + 1 < a.outer) {  // two rows per pass: each scale / offset vector loaded once for both
                const T* x1 = x + a.x_outer_stride;
                T* y1 = y + a.y_outer_stride;
                auto step = [&](std::size_t i, std::size_t n) {
                    const V scale = load_part(scale_row + i, n), offset = load_part(offset_row + i, n);
                    const V center = Centered ? load_part(center_row + i, n) : V{};
                    const V x0v = Centered ? load_part(x + i, n) - center : load_part(x + i, n);
                    const V x1v = Centered ? load_part(x1 + i, n) - center : load_part(x1 + i, n);
                    store_part(y + i, mul_add(x0v, scale, offset), n);
                    store_part(y1 + i, mul_add(x1v, scale, offset), n);
                };
                for_aligned_vectors<T>(head, a.mid, step);
                ++o;
                continue;
            }
            write_row(x, y, head);
        }
        return;
    }
    // Channels-first: vectors along the contiguous inner run. The arguments are read into locals
    // once: through `a` the compiler reloaded them for every channel, the stores to y being
    // possible aliases (scale_shift 1x512x7x7 in the C++ loop: 1.8 -> 1.2 us with the
    // whole-vector runs of affine_run).
    const ChannelAffineArgs<T> args = a;
    for (std::size_t o = 0; o < args.outer; ++o) {
        const T* x_row = args.x + static_cast<std::ptrdiff_t>(o) * args.x_outer_stride;
        T* y_row = args.y + static_cast<std::ptrdiff_t>(o) * args.y_outer_stride;
        for (std::size_t c = 0; c < args.mid; ++c) {
            const T* x = x_row + static_cast<std::ptrdiff_t>(c) * args.x_mid_stride;
            T* y = y_row + static_cast<std::ptrdiff_t>(c) * args.y_mid_stride;
            const V center = splat(Centered ? args.center[c] : T(0)), scale = splat(args.scale[c]);
            const V offset = splat(args.offset[c]);
            if (args.stream_output) {
                write_run(y, args.inner, true, [&](std::size_t i, std::size_t n) {
                    const V xv = n == L ? load_streaming(x + i) : load_partial(x + i, n);
                    return mul_add(Centered ? xv - center : xv, scale, offset);
                });
                continue;
            }
            affine_run<T, Centered, true>(x, y, args.inner, center, scale, offset, nullptr);
        }
    }
}

}  // namespace

template <class T>
void layer_norm(const NormArgs<T>& a) noexcept {
    if (a.inner == 1) {
        layer_norm_rows(a);
    } else {
        layer_norm_columns(a);
    }
    if (a.stream_output) stream_fence();
}

template <class T>
void rms_norm(const NormArgs<T>& a) noexcept {
    if (a.inner == 1) {
        rms_norm_rows(a);
    } else {
        rms_norm_columns(a);
    }
    if (a.stream_output) stream_fence();
}

template <class T>
void batch_stats(const BatchStatsArgs<T>& a) noexcept {
    if (a.inner == 1) {
        channels_last_batch_stats(a);  // column_strips.inl
        return;
    }
    const double run = static_cast<double>(a.inner);
    const std::size_t group = batch_stats_group_rows(a.inner);
    if (group == 1) {  // channels-first, long runs: each run in kRowChunk chunks, merged
        for (std::size_t c = 0; c < a.mid; ++c) {
            const T* x = a.x + static_cast<std::ptrdiff_t>(c) * a.x_mid_stride;
            Moments total = row_moments(x, a.inner);
            for (std::size_t o = 1; o < a.outer; ++o) {
                merge_moments(total, static_cast<double>(o) * run,
                              row_moments(x + static_cast<std::ptrdiff_t>(o) * a.x_outer_stride, a.inner), run);
            }
            a.mean[c] = total.mean;
            a.m2[c] = total.m2;
        }
        return;
    }
    // Channels-first, short runs: chunks of batch_stats_group_rows(inner) consecutive runs of a
    // channel, one corrected two-pass each (the second pass rereads the chunk from L1), merged in order.
    // Many short runs: a block of channels at a time, read by run (channel_block_moments.inl), the
    // same operations per channel.
    if (runs_taken_by_run<T>(a.outer, a.inner)) {
        const ChannelRuns<T> v{a.x, a.outer, a.inner, a.x_outer_stride, a.x_mid_stride};
        const std::size_t block_channels = channels_per_block(v, kByRunBlockBytes);
        for (std::size_t first = 0; first < a.mid; first += block_channels) {
            const std::size_t channels = min_size(block_channels, a.mid - first);
            Moments moments[kStatsBlock];
            block_moments<T, true>(v, first, channels, 1.0, moments, nullptr);  // eps: no rstd asked
            for (std::size_t k = 0; k < channels; ++k) {
                a.mean[first + k] = moments[k].mean;
                a.m2[first + k] = moments[k].m2;
            }
        }
        return;
    }
    for (std::size_t c = 0; c < a.mid; ++c) {
        const T* x = a.x + static_cast<std::ptrdiff_t>(c) * a.x_mid_stride;
        Moments total = runs_moments(x, min_size(group, a.outer), a.inner, a.x_outer_stride);
        for (std::size_t o = group; o < a.outer; o += group) {
            const std::size_t runs = min_size(group, a.outer - o);
            merge_moments(total, static_cast<double>(o) * run,
                          runs_moments(x + static_cast<std::ptrdiff_t>(o) * a.x_outer_stride, runs, a.inner,
                                       a.x_outer_stride),
                          static_cast<double>(runs) * run);
        }
        a.mean[c] = total.mean;
        a.m2[c] = total.m2;
    }
}

namespace {
#include "generic/channel_fold.inl"
}  // namespace

template <class T>
bool fold_batch_moments(const FoldArgs<T>& a) noexcept {
    const CountDivisor by(a.count);
    if (by.exact_inverse()) {
        return fold_channels<T>(a.channels, BatchMomentsSource<true>{a.mean, a.m2, by.inverse(), a.eps}, a.weight,
                                a.bias, a.center, a.scale, a.offset);
    }
    return fold_channels<T>(a.channels, BatchMomentsSource<false>{a.mean, a.m2, a.count, a.eps}, a.weight, a.bias,
                            a.center, a.scale, a.offset);
}

// Two plain loops that vectorize (old_* may be the running arrays themselves: each element is read
// before its own store).
template <class S>
void update_running_stats(const RunningUpdateArgs<S>& a) noexcept {
    const double keep = 1.0 - a.momentum;
    const double momentum = a.momentum;
    const double var_factor = a.momentum / (a.count - 1.0);
    for (std::size_t c = 0; c < a.channels; ++c) {
        a.running_mean[c] = static_cast<S>(keep * static_cast<double>(a.old_mean[c]) + momentum * a.mean[c]);
    }
    for (std::size_t c = 0; c < a.channels; ++c) {
        a.running_var[c] = static_cast<S>(keep * static_cast<double>(a.old_var[c]) + var_factor * a.m2[c]);
    }
}

template <class T>
void channel_affine(const ChannelAffineArgs<T>& a) noexcept {
    if (a.center) {
        channel_affine_impl<T, true>(a);
    } else {
        channel_affine_impl<T, false>(a);
    }
    if (a.stream_output) stream_fence();
}

// channel_affine_impl<T, true> for one channels-first channel (same bits), asking for the next
// channel's element at the same place of each vector it writes: that channel's runs are short
// streams far apart which the hardware prefetchers do not follow, and its statistics come next.
// One prefetch per vector spreads the requests over the pass (all at once would wait for free
// miss buffers before the first store).
template <class T>
void normalize_channel_prefetching_next(const ChannelAffineArgs<T>& a, const T* next_channel) {
    const Vec<T> center = splat(a.center[0]), scale = splat(a.scale[0]), offset = splat(a.offset[0]);
    for (std::size_t o = 0; o < a.outer; ++o) {
        affine_run<T, true, false>(a.x + static_cast<std::ptrdiff_t>(o) * a.x_outer_stride,
                            a.y + static_cast<std::ptrdiff_t>(o) * a.y_outer_stride, a.inner, center, scale, offset,
                            next_channel + static_cast<std::ptrdiff_t>(o) * a.x_outer_stride);
    }
}

namespace {

// The per-channel fold of batch_norm_train: inv_std * weight rounded as the two-step path
// (fold_batch_moments) rounds it, and the centered affine map's three values (the center's rounding
// remainder times that rounded scale, as fold_batch_moments' centered pass takes it).
template <class T>
struct ChannelFold {
    T center, scale, offset;
};
template <class T>
SIMDNORM_ALWAYS_INLINE ChannelFold<T> fold_channel(const BatchNormTrainArgs<T>& a, std::size_t c, double inv_std) {
    const T scale = static_cast<T>(inv_std * (a.weight ? static_cast<double>(a.weight[c]) : 1.0));
    const T center = static_cast<T>(a.mean[c]);
    return {center, scale,
            static_cast<T>((a.bias ? static_cast<double>(a.bias[c]) : 0.0) -
                           (a.mean[c] - static_cast<double>(center)) * static_cast<double>(scale))};
}

// 1 / sqrt(m2 / count + eps) of channel c, as the two-step path's fold_batch_moments rounds it.
template <class T>
SIMDNORM_ALWAYS_INLINE double channel_inverse_std(const BatchNormTrainArgs<T>& a, std::size_t c, double count) {
    return 1.0 / std::sqrt(divide_by_count(a.m2[c], count) + a.eps);
}

#include "generic/channel_blocks.inl"

// Channels of more than this many bytes that channel_blocks.inl would take in channel order are
// pipelined instead where the pipeline's accumulators fit the vector registers (32: AVX-512,
// NEON). Through Python, AVX-512 8x256x14x14 `out=` took 42.7-43.4 us pipelined against 47.2-50.6
// in blocks; with 16 registers the pipeline spills and lost (AVX2 8x256x14x14 59-61 vs 51-54 us,
// 1x128x40x40 29-31 vs 22; scalar 333-341 vs 198-199).
constexpr std::size_t kPipelinedMinChannelBytes = std::size_t(4) << 10;

template <class T>
bool pipeline_apply(const BatchNormTrainArgs<T>& a) {
    return kVectorRegisters >= 32 && !by_run(a) && a.outer * a.inner * sizeof(T) > kPipelinedMinChannelBytes;
}

// batch_norm_train for channels whose runs form one statistics chunk (batch_stats takes one
// runs_moments per channel): channel c + 1's centered sums are added run by run between the runs
// of channel c's normalization, so c + 1's fold (horizontal sums, sqrt, divide) overlaps c's
// stores instead of stalling before c + 1's first one; c + 2 is prefetched meanwhile. Same
// additions in the same order as batch_stats + channel_affine: same bits.
template <class T>
void batch_norm_train_pipelined(const BatchNormTrainArgs<T>& a) {
    const double count = static_cast<double>(a.outer * a.inner);
    auto channel_x = [&](std::size_t c) { return a.x + static_cast<std::ptrdiff_t>(c) * a.x_mid_stride; };
    auto run_offset = [&](std::size_t o, std::ptrdiff_t stride) { return static_cast<std::ptrdiff_t>(o) * stride; };
    // Channel c's mean and m2, with before_run(o) called before each of its runs is added.
    auto take_moments = [&](std::size_t c, auto&& before_run) {
        const T* x = channel_x(c);
        const T pivot = pivot_estimate(x, a.inner);
        alignas(64) T pivot_lanes[Vec<T>::lanes];
        store(pivot_lanes, splat(pivot));
        RunsCenteredSums<T> sums(a.inner, pivot_lanes);
        for (std::size_t o = 0; o < a.outer; ++o) {
            before_run(o);
            sums.add_run(x + run_offset(o, a.x_outer_stride));
        }
        double sum_d, sum_dd;
        sums.finish(&sum_d, &sum_dd);
        Moments m;
        if (!accept_shifted(static_cast<double>(pivot), sum_d, sum_dd, count, &m)) {
            m = runs_moments(x, a.outer, a.inner, a.x_outer_stride);  // its fallback (same first try)
        }
        a.mean[c] = m.mean;
        a.m2[c] = m.m2;
    };
    take_moments(0, [](std::size_t) {});
    for (std::size_t c = 0; c < a.mid; ++c) {
        const ChannelFold<T> fold = fold_channel(a, c, channel_inverse_std(a, c, count));
        const Vec<T> center = splat(fold.center), scale = splat(fold.scale), offset = splat(fold.offset);
        const T* x = channel_x(c);
        T* y = a.y + static_cast<std::ptrdiff_t>(c) * a.y_mid_stride;
        const T* prefetch = c + 2 < a.mid ? channel_x(c + 2) : nullptr;
        auto normalize_run = [&](std::size_t o) {
            const std::ptrdiff_t xo = run_offset(o, a.x_outer_stride);
            affine_run<T, true, false>(x + xo, y + run_offset(o, a.y_outer_stride), a.inner, center, scale, offset,
                                prefetch ? prefetch + xo : nullptr);
        };
        if (c + 1 < a.mid) {
            take_moments(c + 1, normalize_run);
        } else {
            for (std::size_t o = 0; o < a.outer; ++o) normalize_run(o);
        }
    }
}

}  // namespace

template <class T>
void batch_norm_train(const BatchNormTrainArgs<T>& a) noexcept {
    const double count = static_cast<double>(a.outer * a.inner);
    const bool one_chunk = a.inner < kBatchStatsChunk && a.outer <= batch_stats_group_rows(a.inner);
    if (channel_blocks_apply(a, one_chunk)) {
        if (a.mid == 0 || a.outer == 0) return;
        if (pipeline_apply(a)) {
            batch_norm_train_pipelined(a);
        } else {
            batch_norm_train_channel_blocks(a);
        }
        return;
    }
    for (std::size_t c = 0; c < a.mid; ++c) {
        BatchStatsArgs<T> stats;
        stats.x = a.x + static_cast<std::ptrdiff_t>(c) * a.x_mid_stride;
        stats.outer = a.outer;
        stats.mid = 1;
        stats.inner = a.inner;
        stats.x_outer_stride = a.x_outer_stride;
        stats.x_mid_stride = a.x_mid_stride;
        stats.mean = a.mean + c;
        stats.m2 = a.m2 + c;
        batch_stats(stats);
        const ChannelFold<T> fold = fold_channel(a, c, channel_inverse_std(a, c, count));
        ChannelAffineArgs<T> affine;
        affine.x = stats.x;
        affine.y = a.y + static_cast<std::ptrdiff_t>(c) * a.y_mid_stride;
        affine.center = &fold.center;
        affine.scale = &fold.scale;
        affine.offset = &fold.offset;
        affine.outer = a.outer;
        affine.mid = 1;
        affine.inner = a.inner;
        affine.x_outer_stride = a.x_outer_stride;
        affine.x_mid_stride = a.x_mid_stride;
        affine.y_outer_stride = a.y_outer_stride;
        affine.y_mid_stride = a.y_mid_stride;
        affine.stream_output = a.stream_output;
        if (a.stream_output || c + 1 == a.mid) {
            channel_affine_impl<T, true>(affine);
        } else {
            normalize_channel_prefetching_next(affine, stats.x + a.x_mid_stride);
        }
    }
    if (a.stream_output) stream_fence();
}

template void layer_norm<float>(const NormArgs<float>&) noexcept;
template void layer_norm<double>(const NormArgs<double>&) noexcept;
template void rms_norm<float>(const NormArgs<float>&) noexcept;
template void rms_norm<double>(const NormArgs<double>&) noexcept;
template void batch_stats<float>(const BatchStatsArgs<float>&) noexcept;
template void batch_stats<double>(const BatchStatsArgs<double>&) noexcept;
template void channel_affine<float>(const ChannelAffineArgs<float>&) noexcept;
template void channel_affine<double>(const ChannelAffineArgs<double>&) noexcept;
template void batch_norm_train<float>(const BatchNormTrainArgs<float>&) noexcept;
template void batch_norm_train<double>(const BatchNormTrainArgs<double>&) noexcept;
template bool fold_batch_moments<float>(const FoldArgs<float>&) noexcept;
template bool fold_batch_moments<double>(const FoldArgs<double>&) noexcept;
template void update_running_stats<float>(const RunningUpdateArgs<float>&) noexcept;
template void update_running_stats<double>(const RunningUpdateArgs<double>&) noexcept;
