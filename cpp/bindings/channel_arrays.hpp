// The per-channel arguments of channel_affine (center, scale, offset), each starting on a cache
// line. The kernels reload them for every row, and on rows layouts (NHWC, N x F) vector loads that
// straddle cache lines cost ~25 %: 8x256x14x14 NHWC eval with AVX-512 took 37 us with 64-byte
// aligned arrays and 48 us at every other offset (separately malloc'd vectors land on either).
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace simdnorm::bindings {

constexpr std::size_t kCacheLineBytes = 64;

template <class T>
struct ChannelArrays {
    T* center;
    T* scale;
    T* offset;
};

// Three arrays of `channels` values carved out of `storage` (grown when too small), each on a
// cache line. Contents are unspecified; they persist between calls with the same `channels` as
// long as `storage` is not otherwise touched (same storage address, same carving).
template <class T>
ChannelArrays<T> cache_aligned_arrays(std::vector<T>& storage, std::size_t channels) {
    constexpr std::size_t line = kCacheLineBytes / sizeof(T);
    const std::size_t stride = (channels + line - 1) / line * line;
    if (storage.size() < 3 * stride + line) storage.resize(3 * stride + line);
    T* first = storage.data();
    const std::size_t past_line = (reinterpret_cast<std::uintptr_t>(first) / sizeof(T)) % line;
    first += (line - past_line) % line;
    return {first, first + stride, first + 2 * stride};
}

// Storage for ChannelArrays of either dtype, reused across calls.
class ChannelArrayStorage {
public:
    // center, scale, offset of `channels` values each (contents unspecified; see cache_aligned_arrays).
    template <class T>
    ChannelArrays<T> arrays(std::size_t channels) {
        if constexpr (sizeof(T) == 4) {
            return cache_aligned_arrays(f32_, channels);
        } else {
            return cache_aligned_arrays(f64_, channels);
        }
    }

private:
    std::vector<float> f32_;
    std::vector<double> f64_;
};

}  // namespace simdnorm::bindings
