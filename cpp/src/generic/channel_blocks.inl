// BatchNorm training of small channels in blocks: every channel's pivot, then every channel's
// centered sums, then the block's statistics (accept_shifted_block) and folds, then the channels
// written. Included by generic/kernels.inl after fold_channel (inside its unnamed namespace).
//
// Channel after channel, each channel's statistics are one long dependent chain (pivot, sums,
// horizontal sums, divide, square root), and the work queued behind it filled the scheduler before
// the next channel's independent work could start: 1x512x7x7 took ~90 cycles per channel, ~70 of
// them statistics, even with the next channel's sums interleaved into this one's stores
// (batch_norm_train_pipelined, which keeps channels over 4 KiB where registers allow). Taken step
// by step over a block the chains run side by side, as LayerNorm's row blocks do (row_blocks.inl). Per channel these are runs_moments' and fold_channel's operations in
// the same order: the same bits as batch_stats + channel_affine (test_batch_norm_train.cpp).

// Channel order: channels of at most kChannelBlockMaxBytes, kChannelBlockBytes of x per block, so
// the block's x stays in L1 for the normalization that rereads it. Larger channels with long runs
// keep batch_stats + the prefetching normalization.
constexpr std::size_t kChannelBlockMaxBytes = std::size_t(8) << 10;
constexpr std::size_t kChannelBlockBytes = std::size_t(16) << 10;

// Run order (ByRun): channels of kByRunMinRuns runs or more, each at most kByRunMaxRunBytes, any
// size up to one statistics chunk (16 KiB of float). The block's sums and writes take run o of
// every channel, then run o + 1; channel by channel, a channel's runs lie an outer stride apart,
// share L1 sets (a multiple of 4 KiB) and are followed by no prefetcher. C++ loop, us, channel
// order -> run order: 32x512x4x4 172 -> 62, 64x128x4x4 89 -> 29, 16x256x8x8 42 -> 35,
// 256x64x4x4 (16 KiB channels: batch_stats + normalization before) 189 -> 59. With 8 runs or
// fewer, or runs of 1 KiB, run order measured 0-10 % slower. A block of 256 KiB (from L2) beat
// 32-128 KiB; prefetching the next block, or taking the sums run by run across the block
// (accumulators in memory), was slower.
constexpr std::size_t kByRunMinRuns = 16;
constexpr std::size_t kByRunMaxRunBytes = 256;
constexpr std::size_t kByRunBlockBytes = std::size_t(256) << 10;

// The centered sums of channels [first, first + channels) around pivot[k], into block.sum_d /
// sum_dd: per channel the additions of runs_centered_sums in the same order (same bits), taken a
// flush group of runs at a time for every channel of the block, so the reads sweep the block's
// runs in memory order rather than one channel's runs an outer stride apart.
template <class T>
void block_centered_sums(const BatchNormTrainArgs<T>& a, std::size_t first, std::size_t channels, const T* pivot,
                         StatsBlock& block) {
    const std::size_t n = a.inner;
    alignas(64) T pivot_lanes[kStatsBlock][Vec<T>::lanes];
    Acc<T> total_d[kStatsBlock], total_dd[kStatsBlock];
    for (std::size_t k = 0; k < channels; ++k) {
        store(pivot_lanes[k], splat(pivot[k]));
        total_d[k] = Acc<T>{};
        total_dd[k] = Acc<T>{};
    }
    auto run = [&](std::size_t k, std::size_t o) {
        return a.x + static_cast<std::ptrdiff_t>(first + k) * a.x_mid_stride +
               static_cast<std::ptrdiff_t>(o) * a.x_outer_stride;
    };
    const std::size_t steps_per_run = centered_steps_per_run<T>(n);
    const std::size_t group = steps_per_run > kFlushSteps ? 1 : kFlushSteps / steps_per_run;
    for (std::size_t o = 0; o < a.outer; o += group) {
        const std::size_t runs = min_size(group, a.outer - o);
        for (std::size_t k = 0; k < channels; ++k) {
            if (steps_per_run > kFlushSteps) {
                add_row_centered_sums(run(k, o), n, pivot_lanes[k], total_d[k], total_dd[k]);
                continue;
            }
            const Vec<T> c = load(pivot_lanes[k]);
            ShortRunSums<T> sums;
            for (std::size_t r = 0; r < runs; ++r) add_short_run(run(k, o + r), n, c, pivot_lanes[k], sums);
            flush_short_runs(sums, total_d[k], total_dd[k]);
        }
    }
    for (std::size_t k = 0; k < channels; ++k) {
        block.sum_d[k] = acc_reduce(total_d[k]);
        block.sum_dd[k] = acc_reduce(total_dd[k]);
    }
}

// Moments of channels [first, first + channels) over one statistics chunk, runs [o, o + runs):
// per channel runs_moments' operations (pivot from the chunk's first run, shifted sums, accepted or
// its corrected two-pass), so the same bits.
template <class T, bool ByRun>
void block_chunk_moments(const BatchNormTrainArgs<T>& a, std::size_t first, std::size_t channels, std::size_t o,
                         std::size_t runs, Moments* moments) {
    BatchNormTrainArgs<T> chunk = a;
    chunk.x += static_cast<std::ptrdiff_t>(o) * a.x_outer_stride;
    chunk.outer = runs;
    auto channel_x = [&](std::size_t k) { return chunk.x + static_cast<std::ptrdiff_t>(first + k) * a.x_mid_stride; };
    StatsBlock block;
    T pivot[kStatsBlock];
    for (std::size_t k = 0; k < channels; ++k) pivot[k] = pivot_estimate(channel_x(k), a.inner);
    for (std::size_t k = 0; k < channels; ++k) block.pivot[k] = static_cast<double>(pivot[k]);
    if constexpr (ByRun) {
        block_centered_sums(chunk, first, channels, pivot, block);
    } else {
        for (std::size_t k = 0; k < channels; ++k) {
            runs_centered_sums(channel_x(k), runs, a.inner, a.x_outer_stride, pivot[k], &block.sum_d[k],
                               &block.sum_dd[k]);
        }
    }
    accept_shifted_block(block, static_cast<double>(runs * a.inner), a.eps);
    for (std::size_t k = 0; k < channels; ++k) {
        moments[k] = block.accepted[k] ? Moments{block.mean[k], block.m2[k]}
                                       : runs_moments(channel_x(k), runs, a.inner, a.x_outer_stride);
    }
}

template <class T, bool ByRun>
void channel_blocks(const BatchNormTrainArgs<T>& a) {
    const std::size_t fitting = (ByRun ? kByRunBlockBytes : kChannelBlockBytes) / (a.outer * a.inner * sizeof(T));
    const std::size_t block_channels = fitting == 0 ? 1 : min_size(kStatsBlock, fitting);
    const double count = static_cast<double>(a.outer * a.inner);
    // Chunks of runs as batch_stats takes them, merged in the same order.
    const std::size_t group = batch_stats_group_rows(a.inner);
    const double run = static_cast<double>(a.inner);
    auto channel_x = [&](std::size_t c) { return a.x + static_cast<std::ptrdiff_t>(c) * a.x_mid_stride; };
    for (std::size_t first = 0; first < a.mid; first += block_channels) {
        const std::size_t channels = min_size(block_channels, a.mid - first);
        Moments total[kStatsBlock];
        block_chunk_moments<T, ByRun>(a, first, channels, 0, min_size(group, a.outer), total);
        for (std::size_t o = group; o < a.outer; o += group) {
            const std::size_t runs = min_size(group, a.outer - o);
            Moments part[kStatsBlock];
            block_chunk_moments<T, ByRun>(a, first, channels, o, runs, part);
            for (std::size_t k = 0; k < channels; ++k) {
                merge_moments(total[k], static_cast<double>(o) * run, part[k], static_cast<double>(runs) * run);
            }
        }
        alignas(64) double m2[kStatsBlock] = {}, rstd[kStatsBlock];
        for (std::size_t k = 0; k < channels; ++k) {
            a.mean[first + k] = total[k].mean;
            a.m2[first + k] = m2[k] = total[k].m2;
        }
        inverse_std_block(m2, count, a.eps, rstd);
        ChannelFold<T> fold[kStatsBlock];
        for (std::size_t k = 0; k < channels; ++k) fold[k] = fold_channel(a, first + k, rstd[k]);
        if constexpr (ByRun) {  // run o of every channel, then run o + 1
            for (std::size_t o = 0; o < a.outer; ++o) {
                const T* x = channel_x(first) + static_cast<std::ptrdiff_t>(o) * a.x_outer_stride;
                T* y = a.y + static_cast<std::ptrdiff_t>(first) * a.y_mid_stride +
                       static_cast<std::ptrdiff_t>(o) * a.y_outer_stride;
                for (std::size_t k = 0; k < channels; ++k) {
                    affine_run<T, true, false>(x + static_cast<std::ptrdiff_t>(k) * a.x_mid_stride,
                                               y + static_cast<std::ptrdiff_t>(k) * a.y_mid_stride, a.inner,
                                               splat(fold[k].center), splat(fold[k].scale), splat(fold[k].offset),
                                               nullptr);
                }
            }
        } else {
            for (std::size_t k = 0; k < channels; ++k) {
                const Vec<T> center = splat(fold[k].center), scale = splat(fold[k].scale), offset = splat(fold[k].offset);
                const T* x = channel_x(first + k);
                T* y = a.y + static_cast<std::ptrdiff_t>(first + k) * a.y_mid_stride;
                for (std::size_t o = 0; o < a.outer; ++o) {
                    affine_run<T, true, false>(x + static_cast<std::ptrdiff_t>(o) * a.x_outer_stride,
                                               y + static_cast<std::ptrdiff_t>(o) * a.y_outer_stride, a.inner, center,
                                               scale, offset, nullptr);
                }
            }
        }
    }
}

template <class T>
bool by_run(const BatchNormTrainArgs<T>& a) {
    return a.outer >= kByRunMinRuns && a.inner * sizeof(T) <= kByRunMaxRunBytes;
}
// Whether batch_norm_train_channel_blocks takes these channels (one_chunk: their runs form one
// statistics chunk, batch_stats takes one runs_moments per channel).
template <class T>
bool channel_blocks_apply(const BatchNormTrainArgs<T>& a, bool one_chunk) {
    return !a.stream_output && (by_run(a) || (one_chunk && a.outer * a.inner * sizeof(T) <= kChannelBlockMaxBytes));
}

template <class T>
void batch_norm_train_channel_blocks(const BatchNormTrainArgs<T>& a) {
    if (by_run(a)) {
        channel_blocks<T, true>(a);
    } else {
        channel_blocks<T, false>(a);
    }
}
