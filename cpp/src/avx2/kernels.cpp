// AVX2+FMA kernels. Built with -mavx2 -mfma; reached only through dispatch.
// The bodies are the generic ones in cpp/src/generic/, instantiated here for this variant's Vec.
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "simdnorm/kernels.hpp"
#include "avx2/vec.hpp"

namespace simdnorm::avx2 {
#include "generic/reductions.inl"
#include "generic/kernels.inl"
}  // namespace simdnorm::avx2
