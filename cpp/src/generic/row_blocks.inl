// LayerNorm of rows in blocks: every row's pivot, then every row's centered sums, then the block's
// statistics a double vector of rows at a time, then the rows written. Included by
// generic/kernels.inl after layer_norm_write_rows.
//
// Row after row, each row's statistics are one long dependent chain (pivot, sums, horizontal
// sums, divides, square root), and the work behind it filled the scheduler before the next row's
// independent work could start: 4096x64 took ~80 cycles per row, ~65 of them statistics. Taken
// step by step over a block the chains run side by side, and the divides and square roots of
// 8 rows (AVX-512) share one instruction. Per row these are the operations of layer_norm_row_stats
// in the same order, and the build turns FMA contraction off, so each row gets the same bits as
// alone or on the other paths (test_layer_norm.py, norm_check.hpp).

// Rows per block, and the widest row taken: a block's x (16 KiB) stays in L1 for the normalization
// that rereads it. Wider rows keep layer_norm_row_groups, whose look-ahead overlaps one row's
// statistics with the other's stores: blocks of 768-wide rows measured faster in the C++ loop but
// 5-13 % slower through Python (32x768 2.31 -> 2.64 us, 512x768 39.5 -> 42.1 us).
constexpr std::size_t kRowBlockRows = kStatsBlock;
constexpr std::size_t kRowBlockMaxBytes = 1024;

// Whether layer_norm_row_blocks takes these rows: two or more, in cache, short. A single row keeps
// the direct path: less to set up (1x64 30 vs 50 ns in the C++ loop), same bits.
template <class T>
bool row_blocks_apply(const NormArgs<T>& a) {
    return !a.stats_in && !a.stats_out && !a.stream_output && a.outer >= 2 && a.mid > 0 &&
           a.mid * sizeof(T) <= kRowBlockMaxBytes;
}

template <class T>
void layer_norm_row_blocks(const NormArgs<T>& a) {
    constexpr std::size_t B = kRowBlockRows;
    const std::size_t n = a.mid;
    const double count = static_cast<double>(n);
    auto row_x = [&](std::size_t o) { return a.x + static_cast<std::ptrdiff_t>(o) * a.x_outer_stride; };
    for (std::size_t o = 0; o < a.outer; o += B) {
        const std::size_t rows = min_size(B, a.outer - o);
        StatsBlock block;
        T pivots[B];
        for (std::size_t r = 0; r < rows; ++r) pivots[r] = pivot_estimate(row_x(o + r), n);
        for (std::size_t r = 0; r < rows; ++r) {
            block.pivot[r] = static_cast<double>(pivots[r]);
            row_centered_sums(row_x(o + r), n, pivots[r], &block.sum_d[r], &block.sum_dd[r]);
        }
        accept_shifted_block(block, count, a.eps);
        RowStats stats[B];
        for (std::size_t r = 0; r < rows; ++r) {
            // A pivot far from the mean: the row's own path (the same first try, then its two-pass).
            stats[r] = block.accepted[r] ? RowStats{block.mean[r], block.rstd[r]}
                                         : layer_norm_row_stats(row_x(o + r), n, a.eps);
        }
        layer_norm_write_rows(a, o, rows, stats);
    }
}
