// The last eval fold of functional batch_norm on this thread, keyed by the exact bytes of its
// inputs. Inference calls batch_norm with the same running statistics, weight and bias again and
// again; the fold (a double sqrt and division per channel, ~1 us at 768 channels with the
// bindings' baseline SSE2) costs more than the rest of the call, while comparing 4 x 768 floats
// costs ~50 ns. A byte-equal key gives the same fold by construction, so a hit changes no bit,
// and in-place changes to the arrays between calls are seen (no pointer identity involved).
#pragma once

#include <cstddef>
#include <vector>

#include "channel_arrays.hpp"

namespace simdnorm::bindings {

// The inputs a fold depends on: running_mean, running_var (dtype S), weight, bias (dtype T, may be
// absent), eps. Pointers are contiguous data; the sizes are in bytes (0 for an absent array).
struct FoldMemoKey {
    std::size_t channels = 0;
    std::size_t x_itemsize = 0, stats_itemsize = 0;
    double eps = 0.0;
    const void* arrays[4] = {};
    std::size_t bytes[4] = {};
    bool present[4] = {};
};

class FoldMemo {
public:
    // Whether the remembered fold was computed from exactly these inputs.
    bool matches(const FoldMemoKey& key) const;
    // Records key's inputs for the fold just written into folded_for<T>(key.channels).
    void remember(const FoldMemoKey& key, bool centered);
    // Drops the remembered fold (before folded_for's buffer is overwritten).
    void forget() { valid_ = false; }
    bool centered() const { return centered_; }

    // center, scale, offset of the remembered fold (the same memory for the same channels).
    template <class T>
    ChannelArrays<T> folded_for(std::size_t channels) {
        return folded_.arrays<T>(channels);
    }

private:

    bool valid_ = false, centered_ = false;
    std::size_t channels_ = 0, x_itemsize_ = 0, stats_itemsize_ = 0;
    double eps_ = 0.0;
    bool present_[4] = {};
    std::vector<unsigned char> inputs_;  // the four arrays' bytes, concatenated
    ChannelArrayStorage folded_;
};

}  // namespace simdnorm::bindings
