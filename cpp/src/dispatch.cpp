// Kernel tables and the process-wide choice among them. Compiled with baseline flags.
#include "dispatch.hpp"

#include <atomic>
#include <cctype>
#include <cstdlib>
#include <stdexcept>
#include <string>

namespace simdnorm {
namespace {

template <class T>
constexpr TypedKernels<T> typed_kernels(void (*layer_norm)(const NormArgs<T>&) noexcept,
                                        void (*rms_norm)(const NormArgs<T>&) noexcept,
                                        void (*batch_stats)(const BatchStatsArgs<T>&) noexcept,
                                        void (*channel_affine)(const ChannelAffineArgs<T>&) noexcept,
                                        void (*batch_norm_train)(const BatchNormTrainArgs<T>&) noexcept,
                                        bool (*fold_batch_moments)(const FoldArgs<T>&) noexcept,
                                        void (*update_running_stats)(const RunningUpdateArgs<T>&) noexcept) {
    return {layer_norm, rms_norm, batch_stats, channel_affine, batch_norm_train, fold_batch_moments,
            update_running_stats};
}

#define SIMDNORM_TABLE(ns)                                                                           \
    KernelTable {                                                                                    \
        Isa::ns,                                                                                     \
            typed_kernels<float>(&ns::layer_norm<float>, &ns::rms_norm<float>, &ns::batch_stats<float>, \
                                 &ns::channel_affine<float>, &ns::batch_norm_train<float>,           \
                                 &ns::fold_batch_moments<float>, &ns::update_running_stats<float>),  \
            typed_kernels<double>(&ns::layer_norm<double>, &ns::rms_norm<double>,                    \
                                  &ns::batch_stats<double>, &ns::channel_affine<double>,             \
                                  &ns::batch_norm_train<double>, &ns::fold_batch_moments<double>,    \
                                  &ns::update_running_stats<double>)                                 \
    }

// Best first; guarded by build defines, never by the compiler's own ISA macros.
const KernelTable kTables[] = {
#if SIMDNORM_HAVE_AVX512
    SIMDNORM_TABLE(avx512),
#endif
#if SIMDNORM_HAVE_AVX2
    SIMDNORM_TABLE(avx2),
#endif
#if SIMDNORM_HAVE_NEON
    SIMDNORM_TABLE(neon),
#endif
    SIMDNORM_TABLE(scalar),
};
#undef SIMDNORM_TABLE

const KernelTable* best_table() noexcept {
    for (const KernelTable& table : kTables) {
        if (cpu_can_run(table.isa)) return &table;
    }
    return &kTables[sizeof(kTables) / sizeof(kTables[0]) - 1];  // scalar
}

std::atomic<const KernelTable*> g_active{nullptr};
std::atomic<int> g_interleave_wide_rows{-1};  // -1: the CPU's default
thread_local const KernelTable* t_pinned = nullptr;  // PinActiveIsa

}  // namespace

const char* isa_name(Isa isa) noexcept {
    switch (isa) {
        case Isa::avx512: return "avx512";
        case Isa::avx2: return "avx2";
        case Isa::neon: return "neon";
        case Isa::scalar: return "scalar";
    }
    return "unknown";
}

bool parse_isa(const std::string& name, Isa* isa) noexcept {
    std::string lower;
    for (char c : name) lower.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
    for (Isa candidate : {Isa::avx512, Isa::avx2, Isa::neon, Isa::scalar}) {
        if (lower == isa_name(candidate)) {
            *isa = candidate;
            return true;
        }
    }
    return false;
}

const KernelTable* find_table(Isa isa) noexcept {
    for (const KernelTable& table : kTables) {
        if (table.isa == isa) return &table;
    }
    return nullptr;
}

std::vector<Isa> compiled_isas() {
    std::vector<Isa> result;
    for (const KernelTable& table : kTables) result.push_back(table.isa);
    return result;
}

std::vector<Isa> supported_isas() {
    std::vector<Isa> result;
    for (const KernelTable& table : kTables) {
        if (cpu_can_run(table.isa)) result.push_back(table.isa);
    }
    return result;
}

bool isa_supported(Isa isa) noexcept { return find_table(isa) != nullptr && cpu_can_run(isa); }

const KernelTable& active_table() noexcept {
    if (const KernelTable* pinned = t_pinned) return *pinned;
    const KernelTable* table = g_active.load(std::memory_order_acquire);
    if (table == nullptr) {  // first use without init_active_isa_from_env(): the best variant
        const KernelTable* expected = nullptr;
        g_active.compare_exchange_strong(expected, best_table(), std::memory_order_acq_rel);
        table = g_active.load(std::memory_order_acquire);
    }
    return *table;
}

Isa active_isa() noexcept { return active_table().isa; }

Tuning cpu_default_tuning() noexcept {
    Tuning tuning;
    tuning.interleave_wide_rows = cpu_is_intel();
    return tuning;
}

Tuning active_tuning() noexcept {
    const int interleave = g_interleave_wide_rows.load(std::memory_order_relaxed);
    if (interleave < 0) return cpu_default_tuning();
    Tuning tuning;
    tuning.interleave_wide_rows = interleave != 0;
    return tuning;
}

void set_active_tuning(Tuning tuning) noexcept {
    g_interleave_wide_rows.store(tuning.interleave_wide_rows ? 1 : 0, std::memory_order_relaxed);
}

PinActiveIsa::PinActiveIsa() noexcept : pinned_here_(t_pinned == nullptr) {
    if (pinned_here_) t_pinned = &active_table();
}

PinActiveIsa::~PinActiveIsa() {
    if (pinned_here_) t_pinned = nullptr;
}

void set_active_isa(Isa isa) {
    const KernelTable* table = find_table(isa);
    if (table == nullptr) {
        throw std::invalid_argument(std::string("ISA '") + isa_name(isa) + "' is not compiled into this build of simdnorm");
    }
    if (!cpu_can_run(isa)) {
        throw std::invalid_argument(std::string("ISA '") + isa_name(isa) +
                                    "' is not supported by this CPU or operating system");
    }
    g_active.store(table, std::memory_order_release);
}

std::string init_active_isa_from_env() {
    g_active.store(best_table(), std::memory_order_release);
    const char* requested = std::getenv("SIMDNORM_ISA");
    if (requested == nullptr || *requested == '\0') return {};
    Isa isa;
    if (!parse_isa(requested, &isa)) {
        return std::string("SIMDNORM_ISA='") + requested + "' is not a known ISA (scalar, avx2, avx512, neon); using '" +
               isa_name(active_isa()) + "'";
    }
    if (!isa_supported(isa)) {
        return std::string("SIMDNORM_ISA='") + requested + "' is not " +
               (find_table(isa) ? "supported by this CPU" : "compiled into this build") + "; using '" +
               isa_name(active_isa()) + "'";
    }
    g_active.store(find_table(isa), std::memory_order_release);
    return {};
}

}  // namespace simdnorm
