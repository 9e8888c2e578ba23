// AVX-512 (F/DQ/BW/VL) kernels. Built with -mavx512*; reached only through dispatch.
// The bodies are the generic ones in cpp/src/generic/, instantiated here for this variant's Vec.
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "simdnorm/kernels.hpp"
#include "avx512/vec.hpp"

namespace simdnorm::avx512 {
#include "generic/reductions.inl"
#include "generic/kernels.inl"
}  // namespace simdnorm::avx512
