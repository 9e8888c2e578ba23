// Per-column moments of a strip of contiguous columns over strided rows: channels-last batch
// statistics of x larger than L2. Included by generic/kernels.inl (inside its unnamed namespace)
// after channel_block_moments.inl.
//
// tile_moments sweeps one 4-vector tile (256 bytes of float32 under AVX-512) down every row before
// the next tile: in L2 that is fastest, but from L3 or memory each sweep meets every page of x a
// few lines at a time, which the prefetchers and the TLB follow badly. strip_moments takes
// kFlushSteps rows at a time across a whole strip instead (up to 2 KiB of each row), the double
// totals kept in memory between row steps. C++ loop, AVX-512, float32: 512x1024 38.6 -> 28.2 us,
// 4096x1024 390 -> 200, 100352x64 411 -> 377; 256x768 (786 KB, in L2) 8.2 -> 9.4, so x of at
// most kStripMinBytes keeps the tiles. Per lane the operations and their order are tile_moments'
// (pivot, float partial sums of kFlushSteps rows, widened, accept_shifted decided per tile of
// kTileVectors vectors, tile_moments_two_pass for a rejected tile): the same bits.

constexpr std::size_t kStripMinBytes = std::size_t(1) << 20;

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
template <class T>
void strip_moments(const T* p, std::size_t columns, std::size_t rows, std::ptrdiff_t stride, double* mean,
                   double* m2) {
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
    for (std::size_t k = 0; k < lanes; ++k) {
        pivot[k] = static_cast<T>(mean[k] / static_cast<double>(sample));
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
    // accept_shifted per lane, decided per tile of kTileVectors vectors as tile_moments decides it
    // (its lanes past the last column hold zeros: accepted).
    alignas(64) double sums_d[kStripVectors * L], sums_dd[kStripVectors * L];
    for (std::size_t v = 0; v < vectors; ++v) {
        acc_store(sums_d + v * L, total_d[v]);
        acc_store(sums_dd + v * L, total_dd[v]);
    }
    const double count = static_cast<double>(rows);
    constexpr std::size_t W = kTileVectors * L;
    for (std::size_t first = 0; first < lanes; first += W) {
        const std::size_t tile_lanes = min_size(W, lanes - first);
        bool accepted = true;
        for (std::size_t k = first; k < first + tile_lanes; ++k) {
            const double offset = sums_d[k] / count;
            const double lane_m2 = sums_dd[k] - sums_d[k] * offset;
            accepted &= is_finite(offset) & is_finite(lane_m2) & (sums_d[k] * offset <= lane_m2);
            mean[k] += offset;
            m2[k] = lane_m2;
        }
        if (!accepted) {
            const std::size_t tile_vectors = tile_lanes / L;
            const std::size_t tile_last = min_size(L, columns - first - (tile_vectors - 1) * L);
            tile_moments_two_pass(p + first, tile_vectors, tile_last, rows, stride, mean + first, m2 + first);
        }
    }
}
