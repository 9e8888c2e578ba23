// Non-temporal element stores (movnti) shared by the AVX2 and AVX-512 vector layers.
//
// Streamed rows that do not start on a vector boundary write their partial vectors with these, so
// every byte of a streamed y goes through the write-combining buffers: an ordinary store to a line
// that non-temporal stores also write (the tail of one row, the head of the next) waits for that
// line from memory (bench/README.md tuning log 19). Needs only SSE2 on x86-64.
#pragma once

#include <emmintrin.h>

#include <cstddef>
#include <cstdint>
#include <cstring>

namespace simdnorm::x86 {

// Writes lanes[0..n) to p[0..n) with one non-temporal store per element; p element-aligned.
template <class T> inline void stream_elements(T* p, const T* lanes, std::size_t n) {
    static_assert(sizeof(T) == 4 || sizeof(T) == 8, "movnti stores 32- or 64-bit elements");
    for (std::size_t i = 0; i < n; ++i) {
        if constexpr (sizeof(T) == 4) {
            std::int32_t bits;
            std::memcpy(&bits, lanes + i, sizeof bits);
            _mm_stream_si32(reinterpret_cast<int*>(p + i), bits);
        } else {
            long long bits;
            std::memcpy(&bits, lanes + i, sizeof bits);
            _mm_stream_si64(reinterpret_cast<long long*>(p + i), bits);
        }
    }
}

}  // namespace simdnorm::x86
