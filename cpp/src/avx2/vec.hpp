// AVX2+FMA vector types for the generic kernels (8 x float32, 4 x float64).
// Built with -mavx2 -mfma; included only by avx2/kernels.cpp.
#pragma once

#include <immintrin.h>

#include <cstddef>

#include "x86/stream_elements.hpp"

namespace simdnorm::avx2 {
namespace {

template <class T> struct Vec;
template <> struct Vec<float> { __m256 v; static constexpr std::size_t lanes = 8; };
template <> struct Vec<double> { __m256d v; static constexpr std::size_t lanes = 4; };
// Vector registers (16 ymm): kernels that keep many accumulators live check it.
constexpr int kVectorRegisters = 16;

// Double-precision accumulator for one Vec<T> (float32 lanes are widened).
template <class T> struct Acc;
template <> struct Acc<float> { __m256d lo, hi; };
template <> struct Acc<double> { __m256d v; };

// Lane i is active when i < n (all-ones mask in the sign bit, as vmaskmov wants).
inline __m256i first_lanes_32(std::size_t n) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(n)), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}
inline __m256i first_lanes_64(std::size_t n) {
    return _mm256_cmpgt_epi64(_mm256_set1_epi64x(static_cast<long long>(n)), _mm256_setr_epi64x(0, 1, 2, 3));
}

inline Vec<float> load(const float* p) { return {_mm256_loadu_ps(p)}; }
inline Vec<double> load(const double* p) { return {_mm256_loadu_pd(p)}; }
// x of a one-pass stream from memory (avx512/vec.hpp splits it; here a plain load).
template <class T> inline Vec<T> load_streaming(const T* p) { return load(p); }
// vmaskmov suppresses faults on inactive lanes, so tails are page-safe.
inline Vec<float> load_partial(const float* p, std::size_t n) { return {_mm256_maskload_ps(p, first_lanes_32(n))}; }
inline Vec<double> load_partial(const double* p, std::size_t n) { return {_mm256_maskload_pd(p, first_lanes_64(n))}; }
inline void store(float* p, Vec<float> a) { _mm256_storeu_ps(p, a.v); }
inline void store(double* p, Vec<double> a) { _mm256_storeu_pd(p, a.v); }
// The first n < lanes elements as at most three plain stores (16, 8, 4 bytes). AMD's vmaskmov to
// memory is microcoded: ~2 ns more a store on Zen 3 (a loop of 4-lane partial stores 4.4-5.4 ns
// against 2.6-3.1), paid once per partial run (NCHW runs of 196, columns-layout tiles).
inline void store_partial(float* p, Vec<float> a, std::size_t n) {
    __m128 part = _mm256_castps256_ps128(a.v);
    if (n >= 4) {
        _mm_storeu_ps(p, part);
        part = _mm256_extractf128_ps(a.v, 1);
        p += 4;
        n -= 4;
    }
    if (n >= 2) {
        _mm_storel_pi(reinterpret_cast<__m64*>(p), part);
        part = _mm_movehl_ps(part, part);
        p += 2;
        n -= 2;
    }
    if (n >= 1) _mm_store_ss(p, part);
}
inline void store_partial(double* p, Vec<double> a, std::size_t n) {
    __m128d part = _mm256_castpd256_pd128(a.v);
    if (n >= 2) {
        _mm_storeu_pd(p, part);
        part = _mm256_extractf128_pd(a.v, 1);
        p += 2;
        n -= 2;
    }
    if (n >= 1) _mm_store_sd(p, part);
}
// Non-temporal store (bypasses the caches; no read-for-ownership). p must be 32-byte aligned;
// a stream_fence() must follow the last one before other threads read the data.
inline void store_stream(float* p, Vec<float> a) { _mm256_stream_ps(p, a.v); }
inline void store_stream(double* p, Vec<double> a) { _mm256_stream_pd(p, a.v); }
// A partial vector's n elements as non-temporal element stores (movnti), p element-aligned
// (x86/stream_elements.hpp says why).
template <class T> inline void store_stream_partial(T* p, Vec<T> a, std::size_t n) {
    alignas(32) T lanes[Vec<T>::lanes];
    store(lanes, a);
    x86::stream_elements(p, lanes, n);
}
inline void stream_fence() { _mm_sfence(); }
inline Vec<float> splat(float s) { return {_mm256_set1_ps(s)}; }
inline Vec<double> splat(double s) { return {_mm256_set1_pd(s)}; }

inline Vec<float> operator+(Vec<float> a, Vec<float> b) { return {_mm256_add_ps(a.v, b.v)}; }
inline Vec<double> operator+(Vec<double> a, Vec<double> b) { return {_mm256_add_pd(a.v, b.v)}; }
inline Vec<float> operator-(Vec<float> a, Vec<float> b) { return {_mm256_sub_ps(a.v, b.v)}; }
inline Vec<double> operator-(Vec<double> a, Vec<double> b) { return {_mm256_sub_pd(a.v, b.v)}; }
inline Vec<float> operator*(Vec<float> a, Vec<float> b) { return {_mm256_mul_ps(a.v, b.v)}; }
inline Vec<double> operator*(Vec<double> a, Vec<double> b) { return {_mm256_mul_pd(a.v, b.v)}; }
inline Vec<double> operator/(Vec<double> a, Vec<double> b) { return {_mm256_div_pd(a.v, b.v)}; }
inline Vec<double> square_root(Vec<double> a) { return {_mm256_sqrt_pd(a.v)}; }
// Whether a <= b in every lane (a NaN lane: false).
inline bool all_less_equal(Vec<double> a, Vec<double> b) {
    return _mm256_movemask_pd(_mm256_cmp_pd(a.v, b.v, _CMP_LE_OQ)) == 0xF;
}
// a * b + c with one rounding.
inline Vec<float> mul_add(Vec<float> a, Vec<float> b, Vec<float> c) { return {_mm256_fmadd_ps(a.v, b.v, c.v)}; }
inline Vec<double> mul_add(Vec<double> a, Vec<double> b, Vec<double> c) { return {_mm256_fmadd_pd(a.v, b.v, c.v)}; }

inline void acc_add(Acc<float>& acc, Vec<float> a) {
    acc.lo = _mm256_add_pd(acc.lo, _mm256_cvtps_pd(_mm256_castps256_ps128(a.v)));
    acc.hi = _mm256_add_pd(acc.hi, _mm256_cvtps_pd(_mm256_extractf128_ps(a.v, 1)));
}
inline void acc_add(Acc<double>& acc, Vec<double> a) { acc.v = _mm256_add_pd(acc.v, a.v); }
inline double horizontal_sum(__m256d v) {
    const __m128d pair = _mm_add_pd(_mm256_castpd256_pd128(v), _mm256_extractf128_pd(v, 1));
    return _mm_cvtsd_f64(_mm_add_sd(pair, _mm_unpackhi_pd(pair, pair)));
}
inline double acc_reduce(const Acc<float>& acc) { return horizontal_sum(_mm256_add_pd(acc.lo, acc.hi)); }
inline double acc_reduce(const Acc<double>& acc) { return horizontal_sum(acc.v); }
inline void acc_store(double* p, const Acc<float>& acc) { _mm256_storeu_pd(p, acc.lo); _mm256_storeu_pd(p + 4, acc.hi); }
inline void acc_store(double* p, const Acc<double>& acc) { _mm256_storeu_pd(p, acc.v); }

// Loads Vec<T>::lanes doubles and rounds them to T.
template <class T> Vec<T> load_rounded(const double* p);
template <> inline Vec<float> load_rounded<float>(const double* p) {
    const __m128 lo = _mm256_cvtpd_ps(_mm256_loadu_pd(p));
    const __m128 hi = _mm256_cvtpd_ps(_mm256_loadu_pd(p + 4));
    return {_mm256_insertf128_ps(_mm256_castps128_ps256(lo), hi, 1)};
}
template <> inline Vec<double> load_rounded<double>(const double* p) { return {_mm256_loadu_pd(p)}; }

}  // namespace
}  // namespace simdnorm::avx2
