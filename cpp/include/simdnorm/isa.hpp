// Instruction-set variants, CPU detection and the process-wide active kernel table.
#pragma once

#include <string>
#include <vector>

namespace simdnorm {

// Best first within each architecture.
enum class Isa { avx512, avx2, neon, scalar };

const char* isa_name(Isa isa) noexcept;

// Parses "scalar", "avx2", "avx512", "neon" (case-insensitive). Returns false for anything else.
bool parse_isa(const std::string& name, Isa* isa) noexcept;

// Variants compiled into this binary, best first.
std::vector<Isa> compiled_isas();

// Compiled variants this CPU and operating system can run (cpuid + XGETBV on x86), best first.
std::vector<Isa> supported_isas();

bool isa_supported(Isa isa) noexcept;

// The variant every operation currently uses (process-wide).
Isa active_isa() noexcept;

// Switches every operation to `isa` (process-wide). Throws std::invalid_argument when the variant
// is not compiled in or the CPU cannot run it.
void set_active_isa(Isa isa);

// While alive, operations on the constructing thread keep the variant that was active when it was
// made, whatever set_active_isa does meanwhile (from any thread): a call made of several
// operations (BatchNorm training channels-last: statistics, then normalization) then runs on one
// variant. Nests; other threads are unaffected.
class PinActiveIsa {
public:
    PinActiveIsa() noexcept;
    ~PinActiveIsa();
    PinActiveIsa(const PinActiveIsa&) = delete;
    PinActiveIsa& operator=(const PinActiveIsa&) = delete;

private:
    bool pinned_here_;
};

// Choices between kernel paths that measured one way on Intel cores and the other on AMD ones
// (bench/README.md, tuning log 32). Process-wide like the variant; the default comes from the
// CPU's make (cpu_default_tuning), and tests set both to check that each keeps the bits.
struct Tuning {
    // LayerNorm / RMSNorm rows of 4-16 KiB in cache (beyond L1) normalize one row while summing the
    // next (interleaved_rows.inl) instead of taking groups of four rows: on Intel (Sapphire
    // Rapids-class, AVX-512 and AVX2) 0.66-0.98x the time in the C++ loop, on AMD Zen 4 1.04-1.18x.
    bool interleave_wide_rows = false;
};
Tuning cpu_default_tuning() noexcept;
Tuning active_tuning() noexcept;
void set_active_tuning(Tuning tuning) noexcept;

// Selects the initial variant: the best supported one, or the SIMDNORM_ISA environment variable's
// when it names a supported variant. Never throws; an unknown or unsupported request falls back to
// the best variant and returns a message the caller should show as a warning (empty otherwise).
std::string init_active_isa_from_env();

}  // namespace simdnorm
