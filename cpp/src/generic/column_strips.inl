// Channels-last batch statistics: per-column moments of contiguous columns over strided rows, in
// column tiles (x within L2) or row strips (beyond). Included by generic/kernels.inl (inside its
// unnamed namespace) after channel_block_moments.inl; batch_stats calls channels_last_batch_stats.
//
// tile_moments sweeps one 4-vector tile (256 bytes of float32 under AVX-512) down every row before
// the next tile: in L2 that is fastest, but from L3 or memory each sweep meets every page of x a
// few lines at a time, which the prefetchers and the TLB follow badly. strip_moments takes
// kFlushSteps rows at a time across a whole strip instead (up to 2 KiB of each row), the double
// totals kept in memory between row steps. C++ loop, AVX-512, float32: 512x1024 38.6 -> 28.2 us,
// 4096x1024 390 -> 200, 100352x64 411 -> 377; 256x768 (786 KB, in L2) 8.2 -> 9.4, so x below
// kStripMinBytes keeps the tiles. x of exactly 1 MiB (1024x256, 256x1024: common shapes) takes
// strips: on Zen 3 (512 KiB L2, AVX2) statistics + affine pass 85 -> 75 and 104 -> 96 us, while
// 768 KiB measured 59 -> 63 in strips (bench README, tuning log 29). Per lane the operations and
// their order are tile_moments' (pivot, float partial sums of kFlushSteps rows, widened,
// accept_tile_lanes): the same bits.

constexpr std::size_t kStripMinBytes = std::size_t(1) << 20;
// Calls of fewer than 2 * kChannelsLastStrip channels are blocks of rows of a larger input
// (operations.cpp splits few channels by rows, many by columns), so their size says nothing of
// where x comes from: blocks of more than kNarrowStripMinBytes take strips too. Zen 3, AVX2,
// BatchNorm training 32x56x56x64 (25.7 MB, blocks of 512 rows): statistics 1.75-1.88 -> 1.57-1.68
// ms in a C++ loop, the whole call 4,355 -> 3,950 us through Python; in-L2 blocks level (1568x64
// 10.3-12.3 vs 10.6-11.1 us, 3136x64 24-27 vs 24-30). Bench README, tuning log 26.
constexpr std::size_t kNarrowStripMinBytes = std::size_t(64) << 10;

// Widest strip, in vectors (2 KiB of float32 rows under AVX-512): its pivots, totals and results
// take ~26 KiB of stack (threads of musl-based Pythons get 128 KiB). 64 measured the same.
constexpr std::size_t kStripVectors = 32;
// Vectors per register tile of one row step: the pivot and two accumulators (d, d^2) per vector,
// 24 registers for 8 vectors, so 8 only with 32 registers.
constexpr std::size_t kStripTileVectors = kVectorRegisters >= 32 ? 2 * kTileVectors : kTileVectors;

// Adds `steps` rows (at most kFlushSteps) of vectors [v0, v0 + tile) (tile <= kStripTileVectors)
// to the totals, as partial sums widened once: tile_moments' inner loop for one flush step.
// Full tiles (Full: tile == kStripTileVectors, whole vectors) are compiled apart: with the count
// known the accumulators stay in registers and the loads need no lane checks.
template <class T, bool Full>
SIMDNORM_ALWAYS_INLINE void strip_tile_step(const T* rows, std::ptrdiff_t stride, std::size_t steps, std::size_t v0,
                                            std::size_t tile, std::size_t vectors, std::size_t last_lanes,
                                            const T* pivot, Acc<T>* total_d, Acc<T>* total_dd) {
    if (Full) tile = kStripTileVectors;
    using V = Vec<T>;
    constexpr std::size_t L = V::lanes;
    V d[kStripTileVectors] = {}, q[kStripTileVectors] = {}, pv[kStripTileVectors] = {};
    for (std::size_t t = 0; t < kStripTileVectors; ++t) {
        if (t < tile) pv[t] = load(pivot + (v0 + t) * L);
    }
    for (std::size_t step = 0; step < steps; ++step) {
        const T* row = rows + static_cast<std::ptrdiff_t>(step) * stride;
        for (std::size_t t = 0; t < kStripTileVectors; ++t) {
            if (t < tile) {
                const std::size_t v = v0 + t;
                const V x = Full ? load(row + v * L) : load_tile(row + v * L, v, vectors, last_lanes);
                const V a = x - pv[t];
                d[t] = d[t] + a;
                q[t] = mul_add(a, a, q[t]);
            }
        }
    }
    for (std::size_t t = 0; t < kStripTileVectors; ++t) {
        if (t < tile) {
            acc_add(total_d[v0 + t], d[t]);
            acc_add(total_dd[v0 + t], q[t]);
        }
    }
}

// mean[k], m2[k] of columns k < columns (at most kStripVectors vectors) of p over `rows` rows
// `stride` elements apart; mean and m2 hold columns rounded up to whole tiles of kTileVectors
// vectors (the lanes past `columns` are scratch).
// Kept out of line: inlined into channels_last_batch_stats, its row loop spilled the stride and
// 1568x256 ran 16.4 -> 17.6 us.
template <class T>
SIMDNORM_NOINLINE void strip_moments(const T* p, std::size_t columns, std::size_t rows, std::ptrdiff_t stride,
                                     double* mean, double* m2) {
    using V = Vec<T>;
    constexpr std::size_t L = V::lanes;
    const std::size_t vectors = (columns + L - 1) / L;
    const std::size_t last_lanes = columns - (vectors - 1) * L;
    const std::size_t lanes = vectors * L;
    alignas(64) T pivot[kStripVectors * L];
    Acc<T> total_d[kStripVectors], total_dd[kStripVectors];
    // Pivots: the double mean of the first rows, rounded to T (tile_moments).
    const std::size_t sample = min_size(rows, kPivotSample);
    for (std::size_t v = 0; v < vectors; ++v) total_d[v] = Acc<T>{};
    for (std::size_t r = 0; r < sample; ++r) {
        const T* row = p + static_cast<std::ptrdiff_t>(r) * stride;
        for (std::size_t v = 0; v < vectors; ++v) acc_add(total_d[v], load_tile(row + v * L, v, vectors, last_lanes));
    }
    for (std::size_t v = 0; v < vectors; ++v) acc_store(mean + v * L, total_d[v]);
    divide_all(mean, lanes, CountDivisor(static_cast<double>(sample)));
    for (std::size_t k = 0; k < lanes; ++k) {
        pivot[k] = static_cast<T>(mean[k]);
        mean[k] = static_cast<double>(pivot[k]);
    }
    for (std::size_t v = 0; v < vectors; ++v) total_d[v] = total_dd[v] = Acc<T>{};
    for (std::size_t r0 = 0; r0 < rows; r0 += kFlushSteps) {
        const std::size_t steps = min_size(kFlushSteps, rows - r0);
        const T* block = p + static_cast<std::ptrdiff_t>(r0) * stride;
        std::size_t v0 = 0;
        for (; v0 + kStripTileVectors < vectors || (v0 + kStripTileVectors == vectors && last_lanes == L);
             v0 += kStripTileVectors) {
            strip_tile_step<T, true>(block, stride, steps, v0, kStripTileVectors, vectors, last_lanes, pivot, total_d,
                                     total_dd);
        }
        if (v0 < vectors) {
            strip_tile_step<T, false>(block, stride, steps, v0, vectors - v0, vectors, last_lanes, pivot, total_d,
                                      total_dd);
        }
    }
    alignas(64) double sums_d[kStripVectors * L], sums_dd[kStripVectors * L];
    for (std::size_t v = 0; v < vectors; ++v) {
        acc_store(sums_d + v * L, total_d[v]);
        acc_store(sums_dd + v * L, total_dd[v]);
    }
    constexpr std::size_t W = kTileVectors * L;
    for (std::size_t first = 0; first < lanes; first += W) {
        const std::size_t tile_vectors = min_size(W, lanes - first) / L;
        const std::size_t tile_last = min_size(L, columns - first - (tile_vectors - 1) * L);
        accept_tile_lanes(p + first, tile_vectors, tile_last, rows, stride, mean + first, sums_d + first,
                          sums_dd + first, mean + first, m2 + first);
    }
}

// batch_stats for channels-last x (inner == 1). Within L2, rows of kAlignedTilesMinTiles tiles or
// more take tiles of whole vectors from x's first vector boundary on, the columns before it one
// partial tile (aligned_head: NumPy's large arrays start 16 bytes into a line, where every AVX-512
// load spans two lines; through Python 256x768 10.3 -> 9.8 us, 9.2 with x on a line). The partial
// tile is one more sweep down every row: with one or two tiles per row that cost more than the
// split loads (32x56x56x64, blocks of 512 rows of one tile, 460-530 -> 1,110-1,330 us), and in
// strips too (1568x256 19.5 -> 21 us), so those keep x's own placement. Every column's bits are
// its own (accept_tile_lanes), whatever tile or strip holds it.
constexpr std::size_t kAlignedTilesMinTiles = 8;
template <class T>
void channels_last_batch_stats(const BatchStatsArgs<T>& a) {
    constexpr std::size_t L = Vec<T>::lanes;
    constexpr std::size_t W = kStripVectors * L;  // also a whole number of tiles
    alignas(64) double mean[W], m2[W];
    auto store_columns = [&](std::size_t lane, std::size_t columns) {
        for (std::size_t k = 0; k < columns; ++k) {
            a.mean[lane + k] = mean[k];
            a.m2[lane + k] = m2[k];
        }
    };
    const std::size_t stride_bytes = static_cast<std::size_t>(std::abs(a.x_outer_stride)) * sizeof(T);
    const std::size_t x_bytes = a.outer * stride_bytes;
    if (x_bytes >= kStripMinBytes || (a.mid < 2 * kChannelsLastStrip && x_bytes > kNarrowStripMinBytes)) {
        for (std::size_t lane = 0; lane < a.mid; lane += W) {
            const std::size_t columns = min_size(W, a.mid - lane);
            strip_moments(a.x + lane, columns, a.outer, a.x_outer_stride, mean, m2);
            store_columns(lane, columns);
        }
        return;
    }
    const std::size_t head = a.mid >= kAlignedTilesMinTiles * kTileVectors * L
                                 ? aligned_head(a.x, a.mid, a.x_outer_stride) : 0;
    if (head != 0) {
        tile_moments(a.x, 1, head, a.outer, a.x_outer_stride, mean, m2);
        store_columns(0, head);
    }
    for_each_tile<T>(a.mid - head, [&](std::size_t tile_lane, std::size_t vectors, std::size_t last_lanes) {
        tile_moments(a.x + head + tile_lane, vectors, last_lanes, a.outer, a.x_outer_stride, mean, m2);
        store_columns(head + tile_lane, (vectors - 1) * L + last_lanes);
    });
}
