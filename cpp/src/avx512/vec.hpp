// AVX-512 vector types for the generic kernels (16 x float32, 8 x float64).
// Built with -mavx512f -mavx512dq -mavx512bw -mavx512vl; included only by avx512/kernels.cpp.
#pragma once

#include <immintrin.h>

#include <cstddef>

#include "x86/stream_elements.hpp"

namespace simdnorm::avx512 {
namespace {

template <class T> struct Vec;
template <> struct Vec<float> { __m512 v; static constexpr std::size_t lanes = 16; };
template <> struct Vec<double> { __m512d v; static constexpr std::size_t lanes = 8; };
// Vector registers (32 zmm): kernels that keep many accumulators live check it.
constexpr int kVectorRegisters = 32;

// Double-precision accumulator for one Vec<T> (float32 lanes are widened).
template <class T> struct Acc;
template <> struct Acc<float> { __m512d lo, hi; };
template <> struct Acc<double> { __m512d v; };

inline __mmask16 mask16(std::size_t n) { return static_cast<__mmask16>((1u << n) - 1u); }
inline __mmask8 mask8(std::size_t n) { return static_cast<__mmask8>((1u << n) - 1u); }

inline Vec<float> load(const float* p) { return {_mm512_loadu_ps(p)}; }
inline Vec<double> load(const double* p) { return {_mm512_loadu_pd(p)}; }
// Load of x in a one-pass stream from memory next to non-temporal stores: two 256-bit halves. There a
// 512-bit load straddling two cache lines (x 16 bytes off a line, as NumPy places large arrays) cost
// the measured Zen 5 up to 15 %, depending on y's offset in the page; halves cost nothing measurable,
// aligned or not (bench/README.md tuning log 18). In-cache loops keep load(): there the extra insert
// costs (LayerNorm 512x768 +20 %).
inline Vec<float> load_streaming(const float* p) {
    return {_mm512_insertf32x8(_mm512_castps256_ps512(_mm256_loadu_ps(p)), _mm256_loadu_ps(p + 8), 1)};
}
inline Vec<double> load_streaming(const double* p) {
    return {_mm512_insertf64x4(_mm512_castpd256_pd512(_mm256_loadu_pd(p)), _mm256_loadu_pd(p + 4), 1)};
}
// Masked loads never touch memory past p + n (fault suppression), so tails are page-safe.
inline Vec<float> load_partial(const float* p, std::size_t n) { return {_mm512_maskz_loadu_ps(mask16(n), p)}; }
inline Vec<double> load_partial(const double* p, std::size_t n) { return {_mm512_maskz_loadu_pd(mask8(n), p)}; }
inline void store(float* p, Vec<float> a) { _mm512_storeu_ps(p, a.v); }
inline void store(double* p, Vec<double> a) { _mm512_storeu_pd(p, a.v); }
inline void store_partial(float* p, Vec<float> a, std::size_t n) { _mm512_mask_storeu_ps(p, mask16(n), a.v); }
inline void store_partial(double* p, Vec<double> a, std::size_t n) { _mm512_mask_storeu_pd(p, mask8(n), a.v); }
// Non-temporal store (bypasses the caches; no read-for-ownership). p must be 64-byte aligned;
// a stream_fence() must follow the last one before other threads read the data.
inline void store_stream(float* p, Vec<float> a) { _mm512_stream_ps(p, a.v); }
inline void store_stream(double* p, Vec<double> a) { _mm512_stream_pd(p, a.v); }
// A partial vector's n elements as non-temporal element stores (movnti), p element-aligned
// (x86/stream_elements.hpp says why).
template <class T> inline void store_stream_partial(T* p, Vec<T> a, std::size_t n) {
    alignas(64) T lanes[Vec<T>::lanes];
    store(lanes, a);
    x86::stream_elements(p, lanes, n);
}
inline void stream_fence() { _mm_sfence(); }
inline Vec<float> splat(float s) { return {_mm512_set1_ps(s)}; }
inline Vec<double> splat(double s) { return {_mm512_set1_pd(s)}; }

inline Vec<float> operator+(Vec<float> a, Vec<float> b) { return {_mm512_add_ps(a.v, b.v)}; }
inline Vec<double> operator+(Vec<double> a, Vec<double> b) { return {_mm512_add_pd(a.v, b.v)}; }
inline Vec<float> operator-(Vec<float> a, Vec<float> b) { return {_mm512_sub_ps(a.v, b.v)}; }
inline Vec<double> operator-(Vec<double> a, Vec<double> b) { return {_mm512_sub_pd(a.v, b.v)}; }
inline Vec<float> operator*(Vec<float> a, Vec<float> b) { return {_mm512_mul_ps(a.v, b.v)}; }
inline Vec<double> operator*(Vec<double> a, Vec<double> b) { return {_mm512_mul_pd(a.v, b.v)}; }
inline Vec<double> operator/(Vec<double> a, Vec<double> b) { return {_mm512_div_pd(a.v, b.v)}; }
inline Vec<double> square_root(Vec<double> a) { return {_mm512_sqrt_pd(a.v)}; }
// Whether a <= b in every lane (a NaN lane: false).
inline bool all_less_equal(Vec<double> a, Vec<double> b) { return _mm512_cmp_pd_mask(a.v, b.v, _CMP_LE_OQ) == 0xFF; }
// a * b + c with one rounding.
inline Vec<float> mul_add(Vec<float> a, Vec<float> b, Vec<float> c) { return {_mm512_fmadd_ps(a.v, b.v, c.v)}; }
inline Vec<double> mul_add(Vec<double> a, Vec<double> b, Vec<double> c) { return {_mm512_fmadd_pd(a.v, b.v, c.v)}; }

inline void acc_add(Acc<float>& acc, Vec<float> a) {
    acc.lo = _mm512_add_pd(acc.lo, _mm512_cvtps_pd(_mm512_castps512_ps256(a.v)));
    acc.hi = _mm512_add_pd(acc.hi, _mm512_cvtps_pd(_mm512_extractf32x8_ps(a.v, 1)));
}
inline void acc_add(Acc<double>& acc, Vec<double> a) { acc.v = _mm512_add_pd(acc.v, a.v); }
inline double acc_reduce(const Acc<float>& acc) { return _mm512_reduce_add_pd(_mm512_add_pd(acc.lo, acc.hi)); }
inline double acc_reduce(const Acc<double>& acc) { return _mm512_reduce_add_pd(acc.v); }
inline void acc_store(double* p, const Acc<float>& acc) { _mm512_storeu_pd(p, acc.lo); _mm512_storeu_pd(p + 8, acc.hi); }
inline void acc_store(double* p, const Acc<double>& acc) { _mm512_storeu_pd(p, acc.v); }

// Loads Vec<T>::lanes doubles and rounds them to T.
template <class T> Vec<T> load_rounded(const double* p);
template <> inline Vec<float> load_rounded<float>(const double* p) {
    const __m256 lo = _mm512_cvtpd_ps(_mm512_loadu_pd(p));
    const __m256 hi = _mm512_cvtpd_ps(_mm512_loadu_pd(p + 8));
    return {_mm512_insertf32x8(_mm512_castps256_ps512(lo), hi, 1)};
}
template <> inline Vec<double> load_rounded<double>(const double* p) { return {_mm512_loadu_pd(p)}; }

}  // namespace
}  // namespace simdnorm::avx512
