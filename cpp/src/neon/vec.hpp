// NEON (AArch64 Advanced SIMD) vector types for the generic kernels (4 x float32, 2 x float64).
// AdvSIMD is part of the armv8-a baseline, so no extra flags; included only by neon/kernels.cpp.
#pragma once

#include <arm_neon.h>

#include <cstddef>

namespace simdnorm::neon {
namespace {

template <class T> struct Vec;
template <> struct Vec<float> { float32x4_t v; static constexpr std::size_t lanes = 4; };
template <> struct Vec<double> { float64x2_t v; static constexpr std::size_t lanes = 2; };
// Vector registers (32 q): kernels that keep many accumulators live check it.
constexpr int kVectorRegisters = 32;

// Double-precision accumulator for one Vec<T> (float32 lanes are widened).
template <class T> struct Acc;
template <> struct Acc<float> { float64x2_t lo, hi; };
template <> struct Acc<double> { float64x2_t v; };

inline Vec<float> load(const float* p) { return {vld1q_f32(p)}; }
inline Vec<double> load(const double* p) { return {vld1q_f64(p)}; }
// x of a one-pass stream from memory (avx512/vec.hpp splits it; here a plain load).
template <class T> inline Vec<T> load_streaming(const T* p) { return load(p); }
// NEON has no masked loads or stores: a full vld1q/vst1q at the tail could cross into an unmapped
// page (or, for stores, clobber a neighbour), so tails go through a lane buffer with scalar copies.
// Inactive lanes read as zero, as the generic reductions require.
inline Vec<float> load_partial(const float* p, std::size_t n) {
    alignas(16) float lanes_buffer[4] = {0.0f, 0.0f, 0.0f, 0.0f};
    for (std::size_t i = 0; i < n; ++i) lanes_buffer[i] = p[i];
    return {vld1q_f32(lanes_buffer)};
}
inline Vec<double> load_partial(const double* p, std::size_t n) {
    alignas(16) double lanes_buffer[2] = {0.0, 0.0};
    for (std::size_t i = 0; i < n; ++i) lanes_buffer[i] = p[i];
    return {vld1q_f64(lanes_buffer)};
}
inline void store(float* p, Vec<float> a) { vst1q_f32(p, a.v); }
inline void store(double* p, Vec<double> a) { vst1q_f64(p, a.v); }
inline void store_partial(float* p, Vec<float> a, std::size_t n) {
    alignas(16) float lanes_buffer[4];
    vst1q_f32(lanes_buffer, a.v);
    for (std::size_t i = 0; i < n; ++i) p[i] = lanes_buffer[i];
}
inline void store_partial(double* p, Vec<double> a, std::size_t n) {
    alignas(16) double lanes_buffer[2];
    vst1q_f64(lanes_buffer, a.v);
    for (std::size_t i = 0; i < n; ++i) p[i] = lanes_buffer[i];
}
// No non-temporal store intrinsic in AdvSIMD (STNP needs inline asm): plain stores.
inline void store_stream(float* p, Vec<float> a) { vst1q_f32(p, a.v); }
inline void store_stream(double* p, Vec<double> a) { vst1q_f64(p, a.v); }
template <class T> inline void store_stream_partial(T* p, Vec<T> a, std::size_t n) { store_partial(p, a, n); }
inline void stream_fence() {}
inline Vec<float> splat(float s) { return {vdupq_n_f32(s)}; }
inline Vec<double> splat(double s) { return {vdupq_n_f64(s)}; }

inline Vec<float> operator+(Vec<float> a, Vec<float> b) { return {vaddq_f32(a.v, b.v)}; }
inline Vec<double> operator+(Vec<double> a, Vec<double> b) { return {vaddq_f64(a.v, b.v)}; }
inline Vec<float> operator-(Vec<float> a, Vec<float> b) { return {vsubq_f32(a.v, b.v)}; }
inline Vec<double> operator-(Vec<double> a, Vec<double> b) { return {vsubq_f64(a.v, b.v)}; }
inline Vec<float> operator*(Vec<float> a, Vec<float> b) { return {vmulq_f32(a.v, b.v)}; }
inline Vec<double> operator*(Vec<double> a, Vec<double> b) { return {vmulq_f64(a.v, b.v)}; }
inline Vec<double> operator/(Vec<double> a, Vec<double> b) { return {vdivq_f64(a.v, b.v)}; }
inline Vec<double> square_root(Vec<double> a) { return {vsqrtq_f64(a.v)}; }
// Whether a <= b in every lane (a NaN lane: false).
inline bool all_less_equal(Vec<double> a, Vec<double> b) {
    const uint64x2_t le = vcleq_f64(a.v, b.v);
    return (vgetq_lane_u64(le, 0) & vgetq_lane_u64(le, 1)) != 0;
}
// a * b + c with one rounding (FMLA; note vfmaq takes the addend first).
inline Vec<float> mul_add(Vec<float> a, Vec<float> b, Vec<float> c) { return {vfmaq_f32(c.v, a.v, b.v)}; }
inline Vec<double> mul_add(Vec<double> a, Vec<double> b, Vec<double> c) { return {vfmaq_f64(c.v, a.v, b.v)}; }

inline void acc_add(Acc<float>& acc, Vec<float> a) {
    acc.lo = vaddq_f64(acc.lo, vcvt_f64_f32(vget_low_f32(a.v)));
    acc.hi = vaddq_f64(acc.hi, vcvt_high_f64_f32(a.v));
}
inline void acc_add(Acc<double>& acc, Vec<double> a) { acc.v = vaddq_f64(acc.v, a.v); }
inline double acc_reduce(const Acc<float>& acc) { return vaddvq_f64(vaddq_f64(acc.lo, acc.hi)); }
inline double acc_reduce(const Acc<double>& acc) { return vaddvq_f64(acc.v); }
inline void acc_store(double* p, const Acc<float>& acc) {
    vst1q_f64(p, acc.lo);
    vst1q_f64(p + 2, acc.hi);
}
inline void acc_store(double* p, const Acc<double>& acc) { vst1q_f64(p, acc.v); }

// Loads Vec<T>::lanes doubles and rounds them to T (FCVTN/FCVTN2: round to nearest, like a cast).
template <class T> Vec<T> load_rounded(const double* p);
template <> inline Vec<float> load_rounded<float>(const double* p) {
    return {vcvt_high_f32_f64(vcvt_f32_f64(vld1q_f64(p)), vld1q_f64(p + 2))};
}
template <> inline Vec<double> load_rounded<double>(const double* p) { return {vld1q_f64(p)}; }

}  // namespace
}  // namespace simdnorm::neon
