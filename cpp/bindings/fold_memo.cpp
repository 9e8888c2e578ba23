// Byte-keyed memo of the last eval fold; see fold_memo.hpp.
#include "fold_memo.hpp"

#include <cstring>

namespace simdnorm::bindings {

bool FoldMemo::matches(const FoldMemoKey& key) const {
    if (!valid_ || key.channels != channels_ || key.x_itemsize != x_itemsize_ ||
        key.stats_itemsize != stats_itemsize_ || key.eps != eps_) {
        return false;
    }
    std::size_t at = 0;
    for (int i = 0; i < 4; ++i) {
        if (key.present[i] != present_[i]) return false;
        if (key.bytes[i] != 0 && std::memcmp(inputs_.data() + at, key.arrays[i], key.bytes[i]) != 0) return false;
        at += key.bytes[i];
    }
    return true;
}

void FoldMemo::remember(const FoldMemoKey& key, bool centered) {
    std::size_t total = 0;
    for (std::size_t b : key.bytes) total += b;
    inputs_.resize(total);
    std::size_t at = 0;
    for (int i = 0; i < 4; ++i) {
        if (key.bytes[i] != 0) std::memcpy(inputs_.data() + at, key.arrays[i], key.bytes[i]);
        at += key.bytes[i];
        present_[i] = key.present[i];
    }
    channels_ = key.channels;
    x_itemsize_ = key.x_itemsize;
    stats_itemsize_ = key.stats_itemsize;
    eps_ = key.eps;
    centered_ = centered;
    valid_ = true;
}

}  // namespace simdnorm::bindings
