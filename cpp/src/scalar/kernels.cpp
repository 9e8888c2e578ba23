// Scalar (portable reference) kernels. Built with the baseline flags; the fallback on every CPU.
// The bodies are the generic ones in cpp/src/generic/, instantiated here for this variant's Vec.
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "simdnorm/kernels.hpp"
#include "scalar/vec.hpp"

namespace simdnorm::scalar {
#include "generic/reductions.inl"
#include "generic/kernels.inl"
}  // namespace simdnorm::scalar
