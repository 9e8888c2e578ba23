// Public operations: split work into fixed chunks, run them through the active kernel table.
// Compiled with baseline flags. Chunk boundaries that a result depends on (merged row blocks, row
// pieces) depend on the shape only, never on the thread count, so results are bit-identical for any
// number of threads; splits of independent items (rows, channels, channels-last columns) may follow
// the thread count.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstddef>
#include <limits>
#include <stdexcept>
#include <vector>

#include "dispatch.hpp"
#include "simdnorm/simdnorm.hpp"
#include "thread_pool.hpp"

namespace simdnorm {
namespace {

// Below this many elements an operation runs on the calling thread. Measured (LayerNorm rows of
// 768 float32, 2-core EPYC): 2 threads break even at ~37K elements and win from ~49K (6.2 -> 4.7 µs).
constexpr std::size_t kMinParallelElements = std::size_t(1) << 15;
// Target elements per task.
constexpr std::size_t kTaskElements = std::size_t(1) << 15;
// Channels-last statistics split their columns across threads only from this many elements: with
// few rows the per-channel results (mean, M2, a training call's fold) are about as many bytes as x,
// and reading them back from the other core cost more than the split saved. Through Python, 1 / 2
// threads, µs (Sapphire Rapids-class VM): 8x4096 12.4 / 14.7, 32x1024 5.2 / 6.6, 128x512 4.9 / 6.0,
// 64x1024 6.6 / 7.2; even at 32x4096 (131K) 19.9 / 19.8 and 128x1024 11.1 / 11.2; 64x4096 38.1 /
// 31.2, 256x768 14.5 / 12.
constexpr std::size_t kMinParallelChannelsLastElements = std::size_t(1) << 17;

// Outputs at least this large are written with non-temporal stores (kernels.hpp, stream_output):
// then x + y fill the 32 MiB L3 of the measured machine, and cached stores would only evict x and
// pay a read-for-ownership. Swept 4-64 MiB of output (bench/README.md, Tuning log): streaming wins
// from 16 MiB at 1 and 2 threads, 8 MiB is a tie, below it loses.
constexpr std::size_t kStreamOutputBytes = std::size_t(16) << 20;
// A LayerNorm / RMSNorm row's fixed cost in elements' worth of time (run_norm): narrow rows cost
// about the same per row whatever their width (1 thread, float32, AVX-512: LayerNorm ~17-24 ns a
// row up to 64 wide, against ~0.13 ns an element of 768-wide rows; RMSNorm ~6-12 ns, ~0.11 ns), so
// 1024x32 (32K elements) was 20 us of work that stayed on one thread.
constexpr std::size_t kLayerNormRowOverhead = 128;
constexpr std::size_t kRmsNormRowOverhead = 64;
// Rows at least this long are split across threads: statistics per piece of kStatsPiece elements
// (in parallel), merged in order, then the normalization in parallel. Fixed by the shape, so the
// bits do not depend on the thread count.
constexpr std::size_t kSplitRowElements = std::size_t(1) << 17;
constexpr std::size_t kStatsPiece = 4096;

// Training BatchNorm normalizes a channels-first channel right after its statistics when the
// channel (all its runs) fits in a 1 MiB L2 alongside its output: x is then read from memory once.
// Measured (1 thread, float32): 8x256x14x14 (6 KiB channels) 67 -> 44 us; 32x64x56x56 (392 KiB
// channels) 1,373 -> 1,285 us with this limit instead of 128 KiB. With a smaller L2 the second
// read of a large channel comes from L3, as in the two-step path.
constexpr std::size_t kFusedChannelBytes = std::size_t(512) << 10;

std::size_t ceil_div(std::size_t a, std::size_t b) { return (a + b - 1) / b; }

// Channels-first statistics of runs shorter than a cache line, back to back within each sample,
// are taken as channels-last statistics of the samples' mid * inner columns (the column kernel's
// tiles), each channel's `inner` columns then merged in order (Chan). Run by run, each short run
// cost a pivot, a partial vector and a horizontal reduction: 1 thread, us, statistics run by run
// / by columns: 128x64x2x2 21.9 / 2.5, 64x100x5 17.1 / 3.8, 16x256x7 12.9 / 6.4, 32x64x3x3 5.9 /
// 2.9; with few samples the columns lose (8x64x7x7 3.1 / 8.1, 4x512x4x4 12 / 17), hence at least
// kColumnStatsMinRows of them and at most kColumnStatsMaxColumns columns.
constexpr std::size_t kColumnStatsMinRows = 16;
constexpr std::size_t kColumnStatsMaxColumns = 8192;
template <class T>
bool stats_by_columns(std::size_t outer, std::size_t mid, std::size_t inner, std::ptrdiff_t mid_stride) {
    return inner > 1 && inner * sizeof(T) < 64 && mid_stride == static_cast<std::ptrdiff_t>(inner) &&
           outer >= kColumnStatsMinRows && mid * inner <= kColumnStatsMaxColumns;
}

// Chan et al.'s combination of (count, mean, m2) with a further block's statistics, in place.
// (The kernels carry their own copy: ISA translation units share no inline code with this one.)
void merge_moments(double& count, double& mean, double& m2, double count_b, double mean_b, double m2_b) {
    if (!std::isfinite(mean) || !std::isfinite(mean_b)) {  // ±inf data: as the kernels' merge_moments
        mean += mean_b;
        m2 = mean - mean;
        count += count_b;
        return;
    }
    const double total = count + count_b;
    const double delta = mean_b - mean;
    const double weight_b = count_b / total;
    mean += delta * weight_b;
    m2 += m2_b + delta * delta * count * weight_b;
    count = total;
}
std::size_t max_size(std::size_t a, std::size_t b) { return a > b ? a : b; }

// Runs task(first, count) over [0, n) in chunks of `chunk` (the last may be shorter), in parallel
// when the whole operation has at least min_parallel elements.
template <class Task>
void run_chunked(std::size_t n, std::size_t chunk, std::size_t total_elements, const Task& task,
                 std::size_t min_parallel = kMinParallelElements) {
    const std::size_t tasks = ceil_div(n, chunk);
    const bool parallel = total_elements >= min_parallel && tasks > 1 && get_num_threads() > 1;
    if (!parallel) {
        task(0, n);
        return;
    }
    parallel_for(tasks, [&](std::size_t i) {
        const std::size_t first = i * chunk;
        task(first, (first + chunk <= n) ? chunk : n - first);
    });
}

// Runs task(first, count) over [0, n) of independent items (rows, channels: no results are merged
// across tasks, so the split cannot change bits), in parallel when the whole operation is large:
// tasks of at most about `chunk` items, as many as a multiple of the thread count and of near-equal
// size, so each thread's share (thread_pool.cpp) holds the same work. Measured: BatchNorm train
// 8x256x14x14 NCHW at 2 threads, 13 tasks of 20 channels (shares of 120 and 136) -> 14 of 18-19.
template <class Task>
void run_balanced(std::size_t n, std::size_t chunk, std::size_t total_elements, const Task& task) {
    std::size_t tasks = ceil_div(n, chunk);
    const std::size_t threads =
        total_elements >= kMinParallelElements && tasks > 1 ? static_cast<std::size_t>(get_num_threads()) : 1;
    if (threads <= 1) {
        task(0, n);
        return;
    }
    tasks = std::min(n, ceil_div(tasks, threads) * threads);
    parallel_for(tasks, [&](std::size_t i) {
        const std::size_t first = n * i / tasks;
        task(first, n * (i + 1) / tasks - first);
    });
}

// LayerNorm and RMSNorm share the splitting: rows of the outer axis, or lanes of the inner axis
// when there is a single outer index (columns layout). Rows and lanes are independent, so any
// split gives identical bits.
// One long contiguous row at a time, split into pieces (see kSplitRowElements).
template <class T>
void run_split_rows(const NormArgs<T>& args, void (*kernel)(const NormArgs<T>&) noexcept, bool layer) {
    const std::size_t n = args.mid;
    const std::size_t pieces = ceil_div(n, kStatsPiece);
    const std::size_t full_pieces = n / kStatsPiece;
    std::vector<double> piece_stats(2 * pieces);
    for (std::size_t o = 0; o < args.outer; ++o) {
        const T* x = args.x + static_cast<std::ptrdiff_t>(o) * args.x_outer_stride;
        T* y = args.y + static_cast<std::ptrdiff_t>(o) * args.y_outer_stride;
        // Pass 1: statistics of each piece, the pieces viewed as rows of kStatsPiece elements.
        run_chunked(pieces, kTaskElements / kStatsPiece, n, [&](std::size_t first, std::size_t count) {
            NormArgs<T> part = args;
            part.x = x + first * kStatsPiece;
            part.y = nullptr;
            part.mean = part.rstd = nullptr;
            part.stats_in = nullptr;
            part.stats_out = piece_stats.data() + 2 * first;
            part.mid = kStatsPiece;
            part.x_outer_stride = static_cast<std::ptrdiff_t>(kStatsPiece);
            part.outer = (first + count <= full_pieces) ? count : full_pieces - first;
            if (part.outer != 0) kernel(part);
            if (first + count > full_pieces) {  // the short last piece
                part.x = x + full_pieces * kStatsPiece;
                part.stats_out = piece_stats.data() + 2 * full_pieces;
                part.mid = n - full_pieces * kStatsPiece;
                part.outer = 1;
                kernel(part);
            }
        });
        // Merge in order (Chan for LayerNorm, a plain sum of squares for RMSNorm).
        double row[2];
        if (layer) {
            double mean = piece_stats[0], m2 = piece_stats[1], count = static_cast<double>(std::min(n, kStatsPiece));
            for (std::size_t k = 1; k < pieces; ++k) {
                const double n_k = static_cast<double>(std::min(n - k * kStatsPiece, kStatsPiece));
                merge_moments(count, mean, m2, n_k, piece_stats[2 * k], piece_stats[2 * k + 1]);
            }
            const double var = m2 / static_cast<double>(n);
            row[0] = mean;
            row[1] = 1.0 / std::sqrt((var < 0.0 ? 0.0 : var) + args.eps);  // NaN stays NaN
            if (args.mean) args.mean[o] = static_cast<T>(mean);
        } else {
            double sum_squares = 0.0;
            for (std::size_t k = 0; k < pieces; ++k) sum_squares += piece_stats[2 * k + 1];
            row[0] = 0.0;
            row[1] = 1.0 / std::sqrt(sum_squares / static_cast<double>(n) + args.eps);
        }
        if (args.rstd) args.rstd[o] = static_cast<T>(row[1]);
        // Pass 2: normalize the pieces with the row's statistics.
        run_chunked(n, kTaskElements, n, [&](std::size_t first, std::size_t count) {
            NormArgs<T> part = args;
            part.x = x + first;
            part.y = y + first;
            part.weight = args.weight ? args.weight + first : nullptr;
            part.bias = args.bias ? args.bias + first : nullptr;
            part.mean = part.rstd = nullptr;
            part.stats_in = row;
            part.outer = 1;
            part.mid = count;
            kernel(part);
        });
    }
}

template <class T>
void run_norm(NormArgs<T> args, void (*kernel)(const NormArgs<T>&) noexcept, bool layer) {
    const std::size_t total = args.outer * args.mid * args.inner;
    args.stream_output = total * sizeof(T) >= stream_output_bytes();
    args.interleave_wide_rows = active_tuning().interleave_wide_rows;
    if (args.inner == 1 && args.mid >= kSplitRowElements) {
        run_split_rows(args, kernel, layer);
        return;
    }
    if (args.outer == 1 && args.inner > 1) {
        const std::size_t chunk = max_size(64, ceil_div(kTaskElements, max_size(args.mid, 1)));
        run_chunked(args.inner, chunk, total, [&](std::size_t first, std::size_t count) {
            NormArgs<T> part = args;
            part.x += first;
            part.y += first;
            part.mean = args.mean ? args.mean + first : nullptr;
            part.rstd = args.rstd ? args.rstd + first : nullptr;
            part.inner = count;
            kernel(part);
        });
        return;
    }
    // A row costs its elements plus a fixed chain (pivot, sums, horizontal reductions, inverse
    // square root), counted as that many more elements when sizing and splitting the work.
    const std::size_t row_overhead = args.inner == 1 ? (layer ? kLayerNormRowOverhead : kRmsNormRowOverhead) : 0;
    const std::size_t per_outer = max_size(args.mid * args.inner, 1) + row_overhead;
    const std::size_t chunk = max_size(1, kTaskElements / per_outer);
    run_balanced(args.outer, chunk, args.outer * per_outer, [&](std::size_t first, std::size_t count) {
        NormArgs<T> part = args;
        part.x += static_cast<std::ptrdiff_t>(first) * args.x_outer_stride;
        part.y += static_cast<std::ptrdiff_t>(first) * args.y_outer_stride;
        part.mean = args.mean ? args.mean + first * args.inner : nullptr;
        part.rstd = args.rstd ? args.rstd + first * args.inner : nullptr;
        part.outer = count;
        kernel(part);
    });
}

template <class T>
bool fill_empty_norm_stats(const NormArgs<T>& args) {
    if (args.outer * args.mid * args.inner != 0 && args.mid != 0) return false;
    if (args.mid == 0) {  // nothing to normalize over: undefined statistics, like numpy.mean([])
        const std::size_t n = args.outer * args.inner;
        for (std::size_t i = 0; i < n; ++i) {
            if (args.mean) args.mean[i] = std::numeric_limits<T>::quiet_NaN();
            if (args.rstd) args.rstd[i] = std::numeric_limits<T>::quiet_NaN();
        }
    }
    return true;
}

}  // namespace

std::size_t stream_output_bytes() noexcept { return kStreamOutputBytes; }

template <class T>
void layer_norm(const NormArgs<T>& args) {
    if (fill_empty_norm_stats(args)) return;
    run_norm(args, active_table().get<T>().layer_norm, true);
}

template <class T>
void rms_norm(const NormArgs<T>& args) {
    if (fill_empty_norm_stats(args)) return;
    run_norm(args, active_table().get<T>().rms_norm, false);
}

namespace {

// compute_batch_stats' `done` when nothing is to be done per task (one type, so that its
// channels-first path can call the channels-last one without instantiating it again).
struct NoChannelsDone {
    void operator()(std::size_t, std::size_t) const {}
};

// batch_stats' work. A task that computes whole channels [first, first + count) calls
// done(first, count) after them, on its own thread while their moments are in its cache; returns
// whether such calls covered every channel (false: the moments were merged across row blocks after
// the tasks, or set to NaN for an empty batch, and done was not called).
template <class T, class Done>
bool compute_batch_stats(const BatchStatsArgs<T>& args, const Done& done) {
    const std::size_t channels = args.mid;
    if (channels == 0) return true;
    if (args.outer * args.inner == 0) {
        for (std::size_t c = 0; c < channels; ++c) {
            args.mean[c] = std::numeric_limits<double>::quiet_NaN();
            args.m2[c] = std::numeric_limits<double>::quiet_NaN();
        }
        return false;
    }
    const auto kernel = active_table().get<T>().batch_stats;
    if (args.inner == 1 && channels >= 2 * kChannelsLastStrip) {
        // Channels-last with enough channels: tasks of whole columns (every row of kChannelsLastStrip
        // channels, or twice that), so no per-block merges; every column's bits are its own whatever
        // task holds it. An x within L2 takes two strips a task when every thread still gets a task:
        // one-strip tasks took the kernel's strips (column_strips.inl reads a narrow call as a row
        // block of a large x), and 2 threads ran slower than 1 (statistics of 256x768 at 2 threads
        // 15.5 -> 11 us against 13.5 at 1; tuning log 32). Larger x takes strips either way.
        const std::size_t strips = ceil_div(channels, kChannelsLastStrip);
        const bool in_l2 = channels * args.outer * sizeof(T) < (std::size_t(1) << 20);
        const std::size_t threads = static_cast<std::size_t>(get_num_threads());
        const std::size_t task_channels = (in_l2 && strips >= 2 * threads ? 2 : 1) * kChannelsLastStrip;
        run_chunked(channels, task_channels, channels * args.outer, [&](std::size_t first, std::size_t count) {
            BatchStatsArgs<T> part = args;
            part.x += first;
            part.mid = count;
            part.mean = args.mean + first;
            part.m2 = args.m2 + first;
            kernel(part);
            done(first, count);
        }, kMinParallelChannelsLastElements);
        return true;
    }
    if (stats_by_columns<T>(args.outer, channels, args.inner, args.x_mid_stride)) {
        const std::size_t columns = channels * args.inner;
        thread_local std::vector<double> column_moments;
        column_moments.resize(2 * columns);
        BatchStatsArgs<T> by_columns = args;
        by_columns.mid = columns;
        by_columns.inner = 1;
        by_columns.x_mid_stride = 1;
        by_columns.mean = column_moments.data();
        by_columns.m2 = column_moments.data() + columns;
        compute_batch_stats(by_columns, NoChannelsDone{});  // channels-last: no recursion
        const double rows = static_cast<double>(args.outer);
        for (std::size_t c = 0; c < channels; ++c) {
            const std::size_t first = c * args.inner;
            double count = rows, mean = by_columns.mean[first], m2 = by_columns.m2[first];
            for (std::size_t k = first + 1; k < first + args.inner; ++k) {
                merge_moments(count, mean, m2, rows, by_columns.mean[k], by_columns.m2[k]);
            }
            args.mean[c] = mean;
            args.m2[c] = m2;
        }
        return false;
    }
    // Fixed blocks of outer rows; each block's moments are merged in order below.
    const std::size_t per_outer = channels * args.inner;
    // Channels-first: whole chunks of runs (kernels.hpp, batch_stats_group_rows) per block.
    const std::size_t group = args.inner > 1 ? batch_stats_group_rows(args.inner) : 1;
    const std::size_t block_rows = ceil_div(max_size(1, kTaskElements / per_outer), group) * group;
    const std::size_t blocks = ceil_div(args.outer, block_rows);
    if (blocks == 1) {
        run_chunked(channels, max_size(1, ceil_div(kTaskElements, args.outer * args.inner)), per_outer * args.outer,
                    [&](std::size_t first, std::size_t count) {
                        BatchStatsArgs<T> part = args;
                        part.x += static_cast<std::ptrdiff_t>(first) * args.x_mid_stride;
                        part.mid = count;
                        part.mean = args.mean + first;
                        part.m2 = args.m2 + first;
                        kernel(part);
                        done(first, count);
                    });
        return true;
    }
    std::vector<double> block_mean(blocks * channels), block_m2(blocks * channels);
    run_chunked(blocks, 1, per_outer * args.outer, [&](std::size_t first, std::size_t count) {
        for (std::size_t b = first; b < first + count; ++b) {
            BatchStatsArgs<T> part = args;
            part.x += static_cast<std::ptrdiff_t>(b * block_rows) * args.x_outer_stride;
            part.outer = (b + 1 < blocks) ? block_rows : args.outer - b * block_rows;
            part.mean = block_mean.data() + b * channels;
            part.m2 = block_m2.data() + b * channels;
            kernel(part);
        }
    });
    // Chan's combination, block by block in order.
    const double block_count = static_cast<double>(block_rows * args.inner);
    for (std::size_t c = 0; c < channels; ++c) {
        double mean = block_mean[c], m2 = block_m2[c], count = block_count;
        for (std::size_t b = 1; b < blocks; ++b) {
            const double n_b = static_cast<double>(((b + 1 < blocks) ? block_rows : args.outer - b * block_rows) * args.inner);
            merge_moments(count, mean, m2, n_b, block_mean[b * channels + c], block_m2[b * channels + c]);
        }
        args.mean[c] = mean;
        args.m2[c] = m2;
    }
    return false;
}

}  // namespace

template <class T>
void batch_stats(const BatchStatsArgs<T>& args) {
    compute_batch_stats(args, NoChannelsDone{});
}

namespace {

// Each channel's fold needs only its own moments, so a task that computed whole channels folds them
// there (BatchNorm training 256x768 channels-last at 2 threads: the fold of 768 channels, a double
// divide and square root each, took 3-4 of ~32 us on the calling thread alone). Whether the center
// is needed is one decision over every channel: if any task's channels need it (and that task did
// not take them all), the whole fold runs again on the calling thread, so the bits are always those
// of one fold_batch_moments. update(first, count) runs after the fold of channels [first, first +
// count), in the task that computed them, or once for every channel at the end when the moments
// were merged after the tasks.
template <class T, class Update>
bool fold_batch_stats(const BatchStatsArgs<T>& stats, const FoldArgs<T>& caller_fold, const Update& update) {
    const auto fold_kernel = active_table().get<T>().fold_batch_moments;
    FoldArgs<T> fold = caller_fold;
    fold.mean = stats.mean;
    fold.m2 = stats.m2;
    fold.count = static_cast<double>(stats.outer * stats.inner);
    fold.channels = stats.mid;
    std::atomic<bool> some_centered{false};
    bool folded_whole = false;  // one task took every channel: its fold is the whole fold
    const bool folded = compute_batch_stats(stats, [&](std::size_t first, std::size_t count) {
        FoldArgs<T> part = fold;
        part.mean += first;
        part.m2 += first;
        part.weight = fold.weight ? fold.weight + first : nullptr;
        part.bias = fold.bias ? fold.bias + first : nullptr;
        part.center += first;
        part.scale += first;
        part.offset += first;
        part.channels = count;
        const bool centered = fold_kernel(part);
        if (centered) some_centered.store(true, std::memory_order_relaxed);
        if (count == fold.channels) folded_whole = true;
        update(first, count);
    });
    if (!folded) update(std::size_t(0), fold.channels);
    if (folded && (folded_whole || !some_centered.load(std::memory_order_relaxed))) {
        return some_centered.load(std::memory_order_relaxed);
    }
    return fold_kernel(fold);
}

}  // namespace

template <class T>
bool batch_stats_folded(const BatchStatsArgs<T>& stats, const FoldArgs<T>& fold) {
    return fold_batch_stats(stats, fold, [](std::size_t, std::size_t) {});
}

// The running statistics of each task's channels are updated in that task too: their moments are
// still in its cache there, while an update after the call read half of them from the other core
// (BatchNorm training 256x768 channels-last at 2 threads, C++ loop: 20.3 -> 22.2 us with the update
// after the call, 0.1 us at 1 thread).
template <class T, class S>
bool batch_stats_folded(const BatchStatsArgs<T>& stats, const FoldArgs<T>& fold, const RunningUpdateArgs<S>& running) {
    const std::size_t count = stats.outer * stats.inner;
    if (count <= 1) throw std::invalid_argument("batch_stats_folded: the running statistics need more than one value per channel");
    const auto update_kernel = active_table().get<S>().update_running_stats;
    return fold_batch_stats(stats, fold, [&](std::size_t first, std::size_t channels) {
        RunningUpdateArgs<S> part = running;
        part.mean = stats.mean + first;
        part.m2 = stats.m2 + first;
        part.count = static_cast<double>(count);
        part.old_mean += first;
        part.old_var += first;
        part.running_mean += first;
        part.running_var += first;
        part.channels = channels;
        update_kernel(part);
    });
}

// Channels-first runs shorter than a cache line cost a broadcast and a partial vector each
// (BatchNorm eval 128x64x2x2, 32K elements: 11.7 us, 0.36 ns an element). When each sample's runs
// are adjacent (one block of mid * inner elements), the center, scale and offset are spread over
// such a block once, into `spread`, and args becomes channels-last rows of that many columns: each
// element's operations are the same, so are the bits. Blocks up to kSpreadMaxElements (48 KiB of
// float32 values in all), and two samples or more: spreading costs about as much as one sample's
// runs (1 thread, us, before / after: 128x64x2x2 13.9 / 4.4, 64x100x5 10.8 / 6.7, 16x256x7 7.4 /
// 4.2, 2x512x3 1.9 / 1.5; 1x1024x4 2.2 / 3.6 if spread). Returns whether it did.
constexpr std::size_t kSpreadMaxElements = 4096;
template <class T>
bool spread_short_runs(ChannelAffineArgs<T>& args, std::vector<T>& spread) {
    const std::size_t n = args.mid * args.inner;
    const auto run = static_cast<std::ptrdiff_t>(args.inner);
    if (args.outer < 2 || args.inner <= 1 || args.inner * sizeof(T) >= 64 || n > kSpreadMaxElements ||
        args.x_mid_stride != run || args.y_mid_stride != run) {
        return false;
    }
    const bool centered = args.center != nullptr;
    spread.resize((centered ? 3 : 2) * n);
    T* const scale = spread.data();
    T* const offset = scale + n;
    T* const center = centered ? offset + n : nullptr;
    for (std::size_t c = 0; c < args.mid; ++c) {
        std::fill_n(scale + c * args.inner, args.inner, args.scale[c]);
        std::fill_n(offset + c * args.inner, args.inner, args.offset[c]);
        if (centered) std::fill_n(center + c * args.inner, args.inner, args.center[c]);
    }
    args.center = center;
    args.scale = scale;
    args.offset = offset;
    args.mid = n;
    args.inner = 1;
    args.x_mid_stride = args.y_mid_stride = 1;
    return true;
}

template <class T>
void channel_affine(const ChannelAffineArgs<T>& caller_args) {
    const std::size_t total = caller_args.outer * caller_args.mid * caller_args.inner;
    if (total == 0) return;
    ChannelAffineArgs<T> args = caller_args;
    args.stream_output = total * sizeof(T) >= stream_output_bytes();
    const auto kernel = active_table().get<T>().channel_affine;
    thread_local std::vector<T> spread;  // the per-channel values over one sample (spread_short_runs)
    spread_short_runs(args, spread);
    if (args.outer == 1 && args.inner > 1) {  // one sample, channels-first: split channels
        run_chunked(args.mid, max_size(1, kTaskElements / args.inner), total, [&](std::size_t first, std::size_t count) {
            ChannelAffineArgs<T> part = args;
            part.x += static_cast<std::ptrdiff_t>(first) * args.x_mid_stride;
            part.y += static_cast<std::ptrdiff_t>(first) * args.y_mid_stride;
            part.center = args.center ? args.center + first : nullptr;
            part.scale += first;
            part.offset += first;
            part.mid = count;
            kernel(part);
        });
        return;
    }
    run_chunked(args.outer, max_size(1, kTaskElements / (args.mid * args.inner)), total,
                [&](std::size_t first, std::size_t count) {
                    ChannelAffineArgs<T> part = args;
                    part.x += static_cast<std::ptrdiff_t>(first) * args.x_outer_stride;
                    part.y += static_cast<std::ptrdiff_t>(first) * args.y_outer_stride;
                    part.outer = count;
                    kernel(part);
                });
}

template <class T>
bool fold_batch_moments(const FoldArgs<T>& args) {
    return active_table().get<T>().fold_batch_moments(args);
}

template <class S>
void update_running_stats(const RunningUpdateArgs<S>& args) {
    if (!(args.count > 1)) throw std::invalid_argument("update_running_stats: count must be above 1");
    active_table().get<S>().update_running_stats(args);
}

template <class T>
bool batch_norm_train_fits(const BatchNormTrainArgs<T>& args) noexcept {
    return args.inner > 1 && args.outer * args.inner * sizeof(T) <= kFusedChannelBytes &&
           !stats_by_columns<T>(args.outer, args.mid, args.inner, args.x_mid_stride);
}

template <class T>
void batch_norm_train(const BatchNormTrainArgs<T>& caller_args) {
    const std::size_t per_channel = caller_args.outer * caller_args.inner;
    const std::size_t total = per_channel * caller_args.mid;
    if (total == 0) return;
    BatchNormTrainArgs<T> args = caller_args;
    args.stream_output = total * sizeof(T) >= stream_output_bytes();
    const auto kernel = active_table().get<T>().batch_norm_train;
    run_balanced(args.mid, max_size(1, kTaskElements / per_channel), total, [&](std::size_t first, std::size_t count) {
        BatchNormTrainArgs<T> part = args;
        part.x += static_cast<std::ptrdiff_t>(first) * args.x_mid_stride;
        part.y += static_cast<std::ptrdiff_t>(first) * args.y_mid_stride;
        part.weight = args.weight ? args.weight + first : nullptr;
        part.bias = args.bias ? args.bias + first : nullptr;
        part.mean = args.mean + first;
        part.m2 = args.m2 + first;
        part.mid = count;
        kernel(part);
    });
}

#define SIMDNORM_INSTANTIATE(T)                                  \
    template void layer_norm<T>(const NormArgs<T>&);             \
    template void rms_norm<T>(const NormArgs<T>&);               \
    template void batch_stats<T>(const BatchStatsArgs<T>&);      \
    template void channel_affine<T>(const ChannelAffineArgs<T>&);        \
    template bool batch_norm_train_fits<T>(const BatchNormTrainArgs<T>&) noexcept; \
    template void batch_norm_train<T>(const BatchNormTrainArgs<T>&);    \
    template bool fold_batch_moments<T>(const FoldArgs<T>&);                \
    template bool batch_stats_folded<T>(const BatchStatsArgs<T>&, const FoldArgs<T>&); \
    template bool batch_stats_folded<T, float>(const BatchStatsArgs<T>&, const FoldArgs<T>&,  \
                                               const RunningUpdateArgs<float>&);               \
    template bool batch_stats_folded<T, double>(const BatchStatsArgs<T>&, const FoldArgs<T>&, \
                                                const RunningUpdateArgs<double>&);             \
    template void update_running_stats<T>(const RunningUpdateArgs<T>&);
SIMDNORM_INSTANTIATE(float)
SIMDNORM_INSTANTIATE(double)
#undef SIMDNORM_INSTANTIATE

}  // namespace simdnorm
