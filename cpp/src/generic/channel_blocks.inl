// BatchNorm training of small channels in blocks: every channel's pivot, then every channel's
// centered sums, then the block's statistics (accept_shifted_block) and folds, then the channels
// written. Included by generic/kernels.inl after fold_channel (inside its unnamed namespace).
//
// Channel after channel, each channel's statistics are one long dependent chain (pivot, sums,
// horizontal sums, divide, square root), and the work queued behind it filled the scheduler before
// the next channel's independent work could start: 1x512x7x7 took ~90 cycles per channel, ~70 of
// them statistics, even with the next channel's sums interleaved into this one's stores (the loop
// this replaced). Taken step by step over a block the chains run side by side, as LayerNorm's row
// blocks do (row_blocks.inl). Per channel these are runs_moments' and fold_channel's operations in
// the same order: the same bits as batch_stats + channel_affine (test_batch_norm_train.cpp).

// The largest channel taken, and the bytes of x per block: the block's x stays in L1 for the
// normalization that rereads it. Channels of 6 KiB (8x256x14x14) measured level with the
// interleaved loop this replaced on AVX-512 and faster on AVX2; larger channels keep
// batch_stats + the prefetching normalization.
constexpr std::size_t kChannelBlockMaxBytes = std::size_t(8) << 10;
constexpr std::size_t kChannelBlockBytes = std::size_t(16) << 10;
// Channels of many short runs are written by run (ByRun): run o of every channel of the block,
// then run o + 1. Channel by channel, 32x512x4x4 (64-byte runs 32 KiB apart, so a channel's runs
// share L1 sets) took 172 us in the C++ loop against 68 by run, 64x128x4x4 89 against 35,
// 16x256x8x8 42 against 35. With 8 runs or fewer, or runs of 1 KiB, by run measured 0-10 % slower.
constexpr std::size_t kMemoryOrderMinRuns = 16;
constexpr std::size_t kMemoryOrderMaxRunBytes = 256;

template <class T, bool ByRun>
void channel_blocks(const BatchNormTrainArgs<T>& a) {
    const std::size_t fitting = kChannelBlockBytes / (a.outer * a.inner * sizeof(T));
    const std::size_t block_channels = fitting == 0 ? 1 : min_size(kStatsBlock, fitting);
    const double count = static_cast<double>(a.outer * a.inner);
    auto channel_x = [&](std::size_t c) { return a.x + static_cast<std::ptrdiff_t>(c) * a.x_mid_stride; };
    for (std::size_t first = 0; first < a.mid; first += block_channels) {
        const std::size_t channels = min_size(block_channels, a.mid - first);
        StatsBlock block;
        T pivot[kStatsBlock];
        for (std::size_t k = 0; k < channels; ++k) pivot[k] = pivot_estimate(channel_x(first + k), a.inner);
        for (std::size_t k = 0; k < channels; ++k) block.pivot[k] = static_cast<double>(pivot[k]);
        for (std::size_t k = 0; k < channels; ++k) {
            runs_centered_sums(channel_x(first + k), a.outer, a.inner, a.x_outer_stride, pivot[k], &block.sum_d[k],
                               &block.sum_dd[k]);
        }
        accept_shifted_block(block, count, a.eps);
        ChannelFold<T> fold[kStatsBlock];
        for (std::size_t k = 0; k < channels; ++k) {
            const std::size_t c = first + k;
            if (block.accepted[k]) {
                a.mean[c] = block.mean[k];
                a.m2[c] = block.m2[k];
                fold[k] = fold_channel(a, c, block.rstd[k]);
            } else {  // its fallback, the same first try then the two-pass
                const Moments m = runs_moments(channel_x(c), a.outer, a.inner, a.x_outer_stride);
                a.mean[c] = m.mean;
                a.m2[c] = m.m2;
                fold[k] = fold_channel(a, c, channel_inverse_std(a, c, count));
            }
        }
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
void batch_norm_train_channel_blocks(const BatchNormTrainArgs<T>& a) {
    if (a.outer >= kMemoryOrderMinRuns && a.inner * sizeof(T) <= kMemoryOrderMaxRunBytes) {
        channel_blocks<T, true>(a);
    } else {
        channel_blocks<T, false>(a);
    }
}
