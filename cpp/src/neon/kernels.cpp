// NEON (AArch64 Advanced SIMD) kernels. Built with the armv8-a baseline flags (AdvSIMD is
// mandatory there); reached only through dispatch.
// The bodies are the generic ones in cpp/src/generic/, instantiated here for this variant's Vec.
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "simdnorm/kernels.hpp"
#include "neon/vec.hpp"

namespace simdnorm::neon {
#include "generic/reductions.inl"
#include "generic/kernels.inl"
}  // namespace simdnorm::neon
