// BatchNorm training of small channels, and of channels of short runs, in blocks: the block's
// moments (channel_block_moments.inl: every channel's pivot, then every channel's centered sums,
// then the block's statistics), its folds, then its channels written. Included by
// generic/kernels.inl after fold_channel (inside its unnamed namespace).
//
// Channel after channel, each channel's statistics are one long dependent chain (pivot, sums,
// horizontal sums, divide, square root), and the work queued behind it filled the scheduler before
// the next channel's independent work could start: 1x512x7x7 took ~90 cycles per channel, ~70 of
// them statistics, even with the next channel's sums interleaved into this one's stores
// (batch_norm_train_pipelined, which keeps channels over 4 KiB where registers allow). Taken step
// by step over a block the chains run side by side, as LayerNorm's row blocks do (row_blocks.inl).
// Per channel these are batch_stats' and fold_channel's operations in the same order: the same
// bits as batch_stats + channel_affine (test_batch_norm_train.cpp).

// Channel order: channels of at most kChannelBlockMaxBytes, kChannelBlockBytes of x per block, so
// the block's x stays in L1 for the normalization that rereads it. Larger channels with long runs
// keep batch_stats + the prefetching normalization. Run order (runs_taken_by_run): channels of up
// to half a by-run block, written run o of every channel of the block, then run o + 1.
constexpr std::size_t kChannelBlockMaxBytes = std::size_t(8) << 10;
constexpr std::size_t kChannelBlockBytes = std::size_t(16) << 10;

template <class T, bool ByRun>
void channel_blocks(const BatchNormTrainArgs<T>& a) {
    const ChannelRuns<T> v{a.x, a.outer, a.inner, a.x_outer_stride, a.x_mid_stride};
    const std::size_t block_channels = channels_per_block(v, ByRun ? kByRunBlockBytes : kChannelBlockBytes);
    for (std::size_t first = 0; first < a.mid; first += block_channels) {
        const std::size_t channels = min_size(block_channels, a.mid - first);
        Moments moments[kStatsBlock];
        alignas(64) double rstd[kStatsBlock];
        block_moments<T, ByRun>(v, first, channels, a.eps, moments, rstd);
        ChannelFold<T> fold[kStatsBlock];
        for (std::size_t k = 0; k < channels; ++k) {
            a.mean[first + k] = moments[k].mean;
            a.m2[first + k] = moments[k].m2;
            fold[k] = fold_channel(a, first + k, rstd[k]);
        }
        auto y_run = [&](std::size_t c, std::size_t o) {
            return a.y + static_cast<std::ptrdiff_t>(c) * a.y_mid_stride + static_cast<std::ptrdiff_t>(o) * a.y_outer_stride;
        };
        if constexpr (ByRun) {  // run o of every channel, then run o + 1
            for (std::size_t o = 0; o < a.outer; ++o) {
                for (std::size_t k = 0; k < channels; ++k) {
                    affine_run<T, true, false>(v.run(first + k, o), y_run(first + k, o), a.inner, splat(fold[k].center),
                                               splat(fold[k].scale), splat(fold[k].offset), nullptr);
                }
            }
        } else {
            for (std::size_t k = 0; k < channels; ++k) {
                // Splatted once: y's stores may alias fold (both hold T), so the compiler would reload.
                const Vec<T> center = splat(fold[k].center), scale = splat(fold[k].scale), offset = splat(fold[k].offset);
                for (std::size_t o = 0; o < a.outer; ++o) {
                    affine_run<T, true, false>(v.run(first + k, o), y_run(first + k, o), a.inner, center, scale, offset,
                                               nullptr);
                }
            }
        }
    }
}

template <class T>
bool by_run(const BatchNormTrainArgs<T>& a) {
    return runs_taken_by_run<T>(a.outer, a.inner);
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
