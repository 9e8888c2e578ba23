// Per-thread buffers for per-channel values (batch moments, folded center / scale / offset),
// reused across calls: a BatchNorm call allocates nothing for them once its thread has seen as many
// channels. At 1x768 the per-call std::vectors of the old code were ~10 % of a 4 us call.
#pragma once

#include <cstddef>
#include <memory>
#include <vector>

#include "channel_arrays.hpp"
#include "fold_memo.hpp"

namespace simdnorm::bindings {

struct ChannelWorkspace {
    std::vector<double> moments;  // training: batch mean and M2
    ChannelArrayStorage folded;  // storage of folded_for
    FoldMemo eval_fold;  // functional batch_norm in eval mode (kept workspaces only)

    // `count` doubles of moments (contents unspecified).
    double* moments_for(std::size_t count) {
        if (moments.size() < count) moments.resize(count);
        return moments.data();
    }
    // center, scale, offset of `channels` values each (contents unspecified).
    template <class T>
    ChannelArrays<T> folded_for(std::size_t channels) {
        return folded.arrays<T>(channels);
    }
};

// Exclusive use of a workspace for the lifetime of one call: the calling thread's own, or a fresh
// one when that is already in use (a NumPy callback in the middle of a call re-entering simdnorm on
// the same thread) or when the call has more than kKeptChannels channels (kept buffers stay small:
// at most ~2 MB a thread, moments and float64 folds). A fresh workspace costs its allocation and
// first touch every call: with the kept size at 4096 channels, BatchNorm training 8x8192 (N, F)
// took 187 us at 1 thread against 53 with the thread's own (8x4096: 27).
class WorkspaceLease {
public:
    static constexpr std::size_t kKeptChannels = std::size_t(1) << 15;

    explicit WorkspaceLease(std::size_t channels);
    ~WorkspaceLease();
    WorkspaceLease(const WorkspaceLease&) = delete;
    WorkspaceLease& operator=(const WorkspaceLease&) = delete;

    ChannelWorkspace& operator*() const { return *workspace_; }
    ChannelWorkspace* operator->() const { return workspace_; }
    // Whether this is the thread's own workspace (it outlives the call, so memos in it pay off).
    bool kept() const { return !owned_; }

private:
    ChannelWorkspace* workspace_;
    std::unique_ptr<ChannelWorkspace> owned_;  // set when workspace_ is not the thread's own
};

}  // namespace simdnorm::bindings
