// Per-channel moments of channels-first x for a block of channels at once: batch_stats' chunks
// (runs_moments each, merged in order with merge_moments), with every step taken for the whole
// block before the next (pivots, centered sums, accept_shifted_block, fallbacks). Per channel
// the operations and their order are runs_moments' and batch_stats', so the bits are the same.
// Included by generic/kernels.inl after row_blocks.inl; used by batch_stats and by BatchNorm
// training's channel blocks (channel_blocks.inl).

// Channels-first x: channel c's run o starts at x + c * mid_stride + o * outer_stride, `inner` long.
template <class T>
struct ChannelRuns {
    const T* x;
    std::size_t outer, inner;
    std::ptrdiff_t outer_stride, mid_stride;

    const T* run(std::size_t c, std::size_t o) const {
        return x + static_cast<std::ptrdiff_t>(c) * mid_stride + static_cast<std::ptrdiff_t>(o) * outer_stride;
    }
};

// Run order: with kByRunMinRuns runs or more of at most kByRunMaxRunBytes, a channel's runs lie an
// outer stride apart (32x512x4x4: 64 bytes every 32 KiB), share L1 sets and are followed by no
// prefetcher, so a block of channels is read (and BatchNorm training's block written) run o of
// every channel, then run o + 1, kByRunBlockBytes of x per block. BatchNorm training, C++ loop, us,
// channel order -> run order: 32x512x4x4 172 -> 62, 64x128x4x4 89 -> 29, 256x64x4x4 189 -> 59,
// 1024x64x4x4 830 -> 335. A block of 256 KiB (from L2) beat 32-128 KiB and 0.5-2 MiB; prefetching
// the next block, or taking the sums run by run across the block (accumulators in memory), was
// slower.
// The thresholds differ with the register file. With 32 registers (AVX-512 on Zen 4, where it was
// measured; NEON) channels over 4 KiB are pipelined (kernels.inl), and run order with 8 runs or
// fewer, or runs of 1 KiB, measured 0-10 % slower. With 16 (AVX2 on Zen 3, scalar) there is no
// pipeline, and run order won from two runs of up to 4 KiB: AVX2 C++ loop, us, 8x256x14x14
// 110-168 -> 91-136, 12x128x12x12 88 -> 66, 8x256x16x16 189 -> 111, 8x128x28x28 219 -> 190,
// 2x256x14x14 and 4x64x32x32 level to 10 % faster; runs of 12-16 KiB were level, and the scalar
// build level throughout (statistics alone: level, the gain is the writes in memory order).
constexpr std::size_t kByRunMinRuns = kVectorRegisters >= 32 ? 16 : 2;
constexpr std::size_t kByRunMaxRunBytes = kVectorRegisters >= 32 ? 256 : 4096;
constexpr std::size_t kByRunBlockBytes = std::size_t(256) << 10;

// Blocks of at least two channels: with one, run order is channel order, and batch_stats + the
// normalization prefetching the next channel was faster (BatchNorm training 8192x8x4x4, 512 KiB
// channels: 245-250 us against 345-355 in one-channel blocks).
template <class T>
bool runs_taken_by_run(std::size_t outer, std::size_t inner) {
    return outer >= kByRunMinRuns && inner * sizeof(T) <= kByRunMaxRunBytes &&
           2 * outer * inner * sizeof(T) <= kByRunBlockBytes;
}

// Channels per block: `block_bytes` of x, at least 1, at most kStatsBlock.
template <class T>
std::size_t channels_per_block(const ChannelRuns<T>& v, std::size_t block_bytes) {
    const std::size_t fitting = block_bytes / (v.outer * v.inner * sizeof(T));
    return fitting == 0 ? 1 : min_size(kStatsBlock, fitting);
}

// The centered sums of channels [first, first + channels) around pivot[k], into block.sum_d /
// sum_dd: per channel the additions of runs_centered_sums in the same order, taken a flush group
// of runs at a time for every channel of the block, so the reads sweep the block's runs in memory
// order.
template <class T>
void block_centered_sums_by_run(const ChannelRuns<T>& v, std::size_t first, std::size_t channels, const T* pivot,
                                StatsBlock& block) {
    const std::size_t n = v.inner;
    alignas(64) T pivot_lanes[kStatsBlock][Vec<T>::lanes];
    Acc<T> total_d[kStatsBlock], total_dd[kStatsBlock];
    for (std::size_t k = 0; k < channels; ++k) {
        store(pivot_lanes[k], splat(pivot[k]));
        total_d[k] = Acc<T>{};
        total_dd[k] = Acc<T>{};
    }
    const std::size_t steps_per_run = centered_steps_per_run<T>(n);
    const std::size_t group = steps_per_run > kFlushSteps ? 1 : kFlushSteps / steps_per_run;
    for (std::size_t o = 0; o < v.outer; o += group) {
        const std::size_t runs = min_size(group, v.outer - o);
        for (std::size_t k = 0; k < channels; ++k) {
            if (steps_per_run > kFlushSteps) {
                add_row_centered_sums(v.run(first + k, o), n, pivot_lanes[k], total_d[k], total_dd[k]);
                continue;
            }
            const Vec<T> c = load(pivot_lanes[k]);
            ShortRunSums<T> sums;
            for (std::size_t r = 0; r < runs; ++r) add_short_run(v.run(first + k, o + r), n, c, pivot_lanes[k], sums);
            flush_short_runs(sums, total_d[k], total_dd[k]);
        }
    }
    for (std::size_t k = 0; k < channels; ++k) {
        block.sum_d[k] = acc_reduce(total_d[k]);
        block.sum_dd[k] = acc_reduce(total_dd[k]);
    }
}

// Moments of channels [first, first + channels) over one statistics chunk, runs [o, o + runs).
template <class T, bool ByRun>
void block_chunk_moments(const ChannelRuns<T>& v, std::size_t first, std::size_t channels, std::size_t o,
                         std::size_t runs, double eps, Moments* moments, double* rstd) {
    ChannelRuns<T> chunk = v;
    chunk.x = v.run(0, o);
    chunk.outer = runs;
    StatsBlock block;
    T pivot[kStatsBlock];
    for (std::size_t k = 0; k < channels; ++k) pivot[k] = pivot_estimate(chunk.run(first + k, 0), v.inner);
    for (std::size_t k = 0; k < channels; ++k) block.pivot[k] = static_cast<double>(pivot[k]);
    if constexpr (ByRun) {
        block_centered_sums_by_run(chunk, first, channels, pivot, block);
    } else {
        for (std::size_t k = 0; k < channels; ++k) {
            runs_centered_sums(chunk.run(first + k, 0), runs, v.inner, v.outer_stride, pivot[k], &block.sum_d[k],
                               &block.sum_dd[k]);
        }
    }
    accept_shifted_block(block, static_cast<double>(runs * v.inner), eps);
    bool all_accepted = true;
    for (std::size_t k = 0; k < channels; ++k) {
        all_accepted = all_accepted && block.accepted[k];
        moments[k] = block.accepted[k] ? Moments{block.mean[k], block.m2[k]}
                                       : runs_moments(chunk.run(first + k, 0), runs, v.inner, v.outer_stride);
    }
    if (rstd) {  // 1 / sqrt(m2 / count + eps), already computed where every channel was accepted
        if (all_accepted) {
            for (std::size_t k = 0; k < channels; ++k) rstd[k] = block.rstd[k];
        } else {
            alignas(64) double m2[kStatsBlock] = {};
            for (std::size_t k = 0; k < channels; ++k) m2[k] = moments[k].m2;
            inverse_std_block(m2, static_cast<double>(runs * v.inner), eps, rstd);
        }
    }
}

// Moments of channels [first, first + channels) over all runs: chunks of batch_stats_group_rows
// runs, merged in order as batch_stats merges them. With `rstd`, also 1 / sqrt(m2 / count + eps)
// (a kStatsBlock array, 64-byte aligned).
template <class T, bool ByRun>
void block_moments(const ChannelRuns<T>& v, std::size_t first, std::size_t channels, double eps, Moments* total,
                   double* rstd) {
    const std::size_t group = batch_stats_group_rows(v.inner);
    if (v.outer <= group) {
        block_chunk_moments<T, ByRun>(v, first, channels, 0, v.outer, eps, total, rstd);
        return;
    }
    const double run = static_cast<double>(v.inner);
    block_chunk_moments<T, ByRun>(v, first, channels, 0, group, eps, total, nullptr);
    for (std::size_t o = group; o < v.outer; o += group) {
        const std::size_t runs = min_size(group, v.outer - o);
        Moments part[kStatsBlock];
        block_chunk_moments<T, ByRun>(v, first, channels, o, runs, eps, part, nullptr);
        for (std::size_t k = 0; k < channels; ++k) {
            merge_moments(total[k], static_cast<double>(o) * run, part[k], static_cast<double>(runs) * run);
        }
    }
    if (rstd) {
        alignas(64) double m2[kStatsBlock] = {};
        for (std::size_t k = 0; k < channels; ++k) m2[k] = total[k].m2;
        inverse_std_block(m2, static_cast<double>(v.outer * v.inner), eps, rstd);
    }
}
