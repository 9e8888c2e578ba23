// Public C++ API of simdnorm: dispatched, multi-threaded operations.
//
// Each call makes one indirect call per work chunk into the active variant's kernel (isa.hpp).
// Work is split across the internal thread pool only when it is large; chunking is fixed by the
// shape alone, so results are bit-identical for every thread count.
#pragma once

#include <cstddef>

#include "simdnorm/isa.hpp"
#include "simdnorm/kernels.hpp"

namespace simdnorm {

template <class T> void layer_norm(const NormArgs<T>& args);
template <class T> void rms_norm(const NormArgs<T>& args);

// Statistics of the whole input: mean and M2 per channel, count = outer * inner. Channels-first
// runs shorter than a cache line, back to back within 16 samples or more, are taken as the
// samples' columns and merged per channel (faster by 2-9x; other bits than run by run).
template <class T> void batch_stats(const BatchStatsArgs<T>& args);

template <class T> void channel_affine(const ChannelAffineArgs<T>& args);

// Training-mode BatchNorm forward, statistics and normalization in one read of x (kernels.hpp,
// BatchNormTrainArgs), for channels-first input whose channels each fit in the per-core cache and
// whose runs are not ones batch_stats takes by columns (runs shorter than a cache line, back to
// back, in 16 samples or more): batch_norm_train_fits says whether a shape qualifies; otherwise use
// batch_stats_folded + channel_affine.
template <class T> bool batch_norm_train_fits(const BatchNormTrainArgs<T>& args) noexcept;
template <class T> void batch_norm_train(const BatchNormTrainArgs<T>& args);

// batch_stats' moments folded into channel_affine's center / scale / offset (kernels.hpp,
// FoldArgs); returns whether the center is needed. Runs on the calling thread.
template <class T> bool fold_batch_moments(const FoldArgs<T>& args);

// batch_stats(stats), then fold_batch_moments of its moments into fold.center / scale / offset, the
// same bits, with each channel folded by the task that computed it when the statistics split by
// channels. fold's mean, m2, count and channels are taken from stats (its values there are ignored);
// its eps, weight, bias and outputs are used. Returns whether the center is needed.
template <class T> bool batch_stats_folded(const BatchStatsArgs<T>& stats, const FoldArgs<T>& fold);

// batch_stats_folded, and update_running_stats of its moments into running (S is float or double,
// whatever T is), each channel by the task that folded it. running's mean, m2, count and channels
// are taken from stats (its values there are ignored). Its running and old arrays must not overlap
// x, weight, bias or fold's outputs (old may be running itself). std::invalid_argument, before
// anything is read or written, unless stats has more than one value per channel.
template <class T, class S>
bool batch_stats_folded(const BatchStatsArgs<T>& stats, const FoldArgs<T>& fold, const RunningUpdateArgs<S>& running);

// The running statistics' update of training BatchNorm from batch_stats' moments (kernels.hpp,
// RunningUpdateArgs), on the calling thread. std::invalid_argument unless count > 1.
template <class S> void update_running_stats(const RunningUpdateArgs<S>& args);

// Outputs of at least this many bytes are written with non-temporal stores (they would only evict
// x from the last-level cache; kernels.hpp, stream_output). The streamed row loops align their
// stores to the vector width: a y at the same offset as x within a 64-byte line aligns x too.
std::size_t stream_output_bytes() noexcept;

// Threads used by large operations (process-wide). n >= 1 (std::invalid_argument otherwise); one
// operation runs on at most 64 of them, fewer if the system refuses to start more. The default is
// the number of CPUs this process may run on, or SIMDNORM_NUM_THREADS when set.
void set_num_threads(int n);
int get_num_threads() noexcept;

}  // namespace simdnorm
