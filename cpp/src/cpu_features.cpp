// CPU feature detection. Compiled with baseline flags: it must run on every CPU.
// On x86 a variant needs both the instructions (CPUID) and the operating system's support for
// saving its registers (XGETBV): AVX state for AVX2, opmask + ZMM state for AVX-512.
#include "dispatch.hpp"

#if defined(__x86_64__) || defined(_M_X64) || defined(__i386__)
#define SIMDNORM_X86 1
#if defined(_MSC_VER)
#include <intrin.h>
#else
#include <cpuid.h>
#endif
#endif

#include <cstdint>

namespace simdnorm {
namespace {

#if SIMDNORM_X86
struct CpuidRegisters {
    std::uint32_t eax = 0, ebx = 0, ecx = 0, edx = 0;
};

CpuidRegisters cpuid(std::uint32_t leaf, std::uint32_t subleaf) {
    CpuidRegisters r;
#if defined(_MSC_VER)
    int regs[4];
    __cpuidex(regs, static_cast<int>(leaf), static_cast<int>(subleaf));
    r = {std::uint32_t(regs[0]), std::uint32_t(regs[1]), std::uint32_t(regs[2]), std::uint32_t(regs[3])};
#else
    if (!__get_cpuid_count(leaf, subleaf, &r.eax, &r.ebx, &r.ecx, &r.edx)) r = {};
#endif
    return r;
}

// XCR0: which register states the OS saves on context switch. Only valid when OSXSAVE is set.
std::uint64_t read_xcr0() {
#if defined(_MSC_VER)
    return _xgetbv(0);
#else
    std::uint32_t eax = 0, edx = 0;
    __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
    return (std::uint64_t(edx) << 32) | eax;
#endif
}

constexpr bool bit(std::uint32_t reg, int index) { return (reg >> index) & 1u; }

struct X86Features {
    bool avx2 = false, avx512 = false;
};

X86Features detect_x86() {
    X86Features f;
    if (cpuid(0, 0).eax < 7) return f;
    const CpuidRegisters leaf1 = cpuid(1, 0);
    const bool osxsave = bit(leaf1.ecx, 27), avx = bit(leaf1.ecx, 28), fma = bit(leaf1.ecx, 12);
    if (!osxsave || !avx) return f;
    const std::uint64_t xcr0 = read_xcr0();
    const bool os_avx = (xcr0 & 0x6) == 0x6;            // XMM | YMM
    const bool os_avx512 = (xcr0 & 0xE6) == 0xE6;       // XMM | YMM | opmask | ZMM_Hi256 | Hi16_ZMM
    const CpuidRegisters leaf7 = cpuid(7, 0);
    const bool avx2 = bit(leaf7.ebx, 5);
    const bool avx512f = bit(leaf7.ebx, 16), avx512dq = bit(leaf7.ebx, 17);
    const bool avx512bw = bit(leaf7.ebx, 30), avx512vl = bit(leaf7.ebx, 31);
    f.avx2 = os_avx && avx2 && fma;
    f.avx512 = f.avx2 && os_avx512 && avx512f && avx512dq && avx512bw && avx512vl;
    return f;
}
#endif

}  // namespace

bool cpu_is_intel() noexcept {
#if SIMDNORM_X86
    static const bool intel = [] {
        const CpuidRegisters leaf0 = cpuid(0, 0);  // the maker's name in ebx, edx, ecx
        return leaf0.ebx == 0x756e6547u && leaf0.edx == 0x49656e69u && leaf0.ecx == 0x6c65746eu;  // "GenuineIntel"
    }();
    return intel;
#else
    return false;
#endif
}

bool cpu_can_run(Isa isa) noexcept {
    switch (isa) {
        case Isa::scalar:
            return true;
#if SIMDNORM_X86
        case Isa::avx2: {
            static const bool ok = detect_x86().avx2;
            return ok;
        }
        case Isa::avx512: {
            static const bool ok = detect_x86().avx512;
            return ok;
        }
#endif
#if defined(__aarch64__) || defined(_M_ARM64)
        case Isa::neon:
            return true;  // Advanced SIMD is mandatory in ARMv8-A
#endif
        default:
            return false;
    }
}

}  // namespace simdnorm
