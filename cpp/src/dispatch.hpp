// Kernel tables: one per compiled variant; operations call through the active one.
#pragma once

#include "simdnorm/isa.hpp"
#include "simdnorm/kernels.hpp"

namespace simdnorm {

template <class T>
struct TypedKernels {
    void (*layer_norm)(const NormArgs<T>&) noexcept;
    void (*rms_norm)(const NormArgs<T>&) noexcept;
    void (*batch_stats)(const BatchStatsArgs<T>&) noexcept;
    void (*channel_affine)(const ChannelAffineArgs<T>&) noexcept;
    void (*batch_norm_train)(const BatchNormTrainArgs<T>&) noexcept;
    bool (*fold_batch_moments)(const FoldArgs<T>&) noexcept;
    void (*update_running_stats)(const RunningUpdateArgs<T>&) noexcept;  // T: the running statistics' dtype
};

struct KernelTable {
    Isa isa;
    TypedKernels<float> f32;
    TypedKernels<double> f64;

    template <class T>
    const TypedKernels<T>& get() const noexcept;
};
template <> inline const TypedKernels<float>& KernelTable::get<float>() const noexcept { return f32; }
template <> inline const TypedKernels<double>& KernelTable::get<double>() const noexcept { return f64; }

// The table of the active variant (process-wide; see set_active_isa).
const KernelTable& active_table() noexcept;

// The table of a compiled variant, or nullptr.
const KernelTable* find_table(Isa isa) noexcept;

// CPU + OS support for a variant, regardless of whether it was compiled (cpu_features.cpp).
bool cpu_can_run(Isa isa) noexcept;

// Whether CPUID names Intel as the maker (cpu_features.cpp); false off x86.
bool cpu_is_intel() noexcept;

}  // namespace simdnorm
