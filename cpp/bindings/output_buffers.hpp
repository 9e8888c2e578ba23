// Large fresh outputs from a bounded cache of reused memory blocks.
//
// A fresh large NumPy array is new memory: glibc serves blocks >= 32 MiB with mmap and unmaps them
// on free, so every allocating call page-faulted (and the kernel zeroed) its whole output again,
// ~2.3 ms per 32 MiB on top of a ~1.8 ms LayerNorm. Blocks of dead outputs are kept, up to a byte
// limit, and handed to the next large output that fits. The array's `base` is a capsule whose
// destructor returns the block, so views keep it alive like any NumPy memory.
#pragma once

#include <cstddef>
#include <string>
#include <utility>
#include <vector>

#include "array_args.hpp"

namespace simdnorm::bindings {

// Outputs of at least this many bytes use the cache; smaller ones are NumPy's (below ~32 MiB
// glibc's heap already reuses freed blocks, and a capsule costs more than a small allocation).
constexpr std::size_t kCachedOutputMinBytes = std::size_t(1) << 20;

// Default bound on the bytes held in blocks no array uses (SIMDNORM_OUTPUT_CACHE_BYTES overrides).
constexpr std::size_t kDefaultOutputCacheBytes = std::size_t(256) << 20;

// A new writeable array of dtype and shape, with byte_strides (empty: C order) that must describe a
// dense block of nbytes. Its memory comes from the cache when the cache is enabled, else from NumPy.
// `input` (may be null) is the array the kernel reads while writing this one: the output starts
// half a page (2 KiB) further in the 4 KiB page than it does (null: than NumPy's large arrays, page
// offset 16), as far from x's page offsets as it can be either way. At equal page offsets x and y
// compete for the same L1 sets and 4K-alias (Zen 5, 1 thread: BatchNorm train 8x256x14x14 52 -> 45
// us, LayerNorm 512x768 47 -> 40 us with y 1 KiB after x). 1 KiB was still too near for the AVX-512
// BatchNorm training pipeline on Zen 4: NCHW 8x256x14x14 67-69 us at 1 KiB, 58 at 2 KiB, where
// no other case measured slower (bench/README.md tuning log 31).
// The output starts on a 64-byte line, except streamed ones (>= simdnorm::stream_output_bytes())
// whose last axis spans >= 1 KiB: those keep x's offset within its line (output_buffers.cpp).
py::array large_output(const py::dtype& dtype, const std::vector<py::ssize_t>& shape,
                       const std::vector<py::ssize_t>& byte_strides, std::size_t nbytes, const void* input = nullptr);

// Outputs of at least this many bytes (and below kCachedOutputMinBytes) start on a 64-byte line:
// NumPy's allocator aligns to 16 bytes, and rows stored off a vector boundary split stores across
// lines. LayerNorm, 1 thread, allocating, old / new builds alternated 7 times: 128x1024 40.3 ->
// 35.3 us, 32x4096 38.8 -> 35.9 (bench/README.md tuning log 26). Smaller outputs stay NumPy's: the
// extra view costs ~0.1 µs (8x768 1.97 -> 2.06 us at a 16 KiB threshold).
constexpr std::size_t kLineAlignedOutputMinBytes = std::size_t(128) << 10;
// A new C-contiguous array of nbytes and shape[0..ndim). Small outputs come straight from NumPy's C
// API with the caller's shape: py::array(dtype, shape) builds a shape and a strides vector, two heap
// allocations on a ~0.4 µs call (bench/README.md tuning log 20). From kLineAlignedOutputMinBytes on,
// the array is a line-aligned view of a NumPy byte buffer (its base).
py::array new_output(const py::dtype& dtype, int ndim, const py::ssize_t* shape, std::size_t nbytes,
                     const void* input = nullptr);

// Bytes the cache may hold in unused blocks; 0 disables it. Lowering the limit frees blocks now
// (oldest first); blocks in use are freed or kept when their arrays die. Returns the previous limit.
std::size_t set_output_cache_limit(std::size_t nbytes);
std::size_t get_output_cache_limit();

// Unused blocks held now: count and bytes (for tests and show_config).
struct OutputCacheStats {
    std::size_t blocks = 0, bytes = 0;
};
OutputCacheStats output_cache_stats();

// Applies SIMDNORM_OUTPUT_CACHE_BYTES; returns a warning text (default kept) when it is not a byte count.
std::string init_output_cache_from_env();

}  // namespace simdnorm::bindings
