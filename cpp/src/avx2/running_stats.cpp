// AVX2+FMA per-sample RunningStats loops. Built with -mavx2 -mfma; reached only through the
// active-ISA check in running_stats.cpp.
#include <cmath>
#include <cstddef>
#include <cstdint>

namespace simdnorm::avx2 {
#include "../running_stats_steps.inl"
}  // namespace simdnorm::avx2
