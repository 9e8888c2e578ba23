// One-lane "vectors" for the generic kernels: the portable reference variant, compiled for the
// baseline architecture. Same algorithm and accumulation order per lane as the SIMD variants.
#pragma once

#include <cmath>
#include <cstddef>

namespace simdnorm::scalar {
namespace {

template <class T> struct Vec { T v; static constexpr std::size_t lanes = 1; };
template <class T> struct Acc { double v; };
// Vector registers (baseline x86-64: 16 xmm): kernels that keep many accumulators live check it.
constexpr int kVectorRegisters = 16;

template <class T> inline Vec<T> load(const T* p) { return {*p}; }
// x of a one-pass stream from memory (avx512/vec.hpp splits it; here a plain load).
template <class T> inline Vec<T> load_streaming(const T* p) { return load(p); }
template <class T> inline Vec<T> load_partial(const T*, std::size_t) { return {T(0)}; }  // n < 1 lane: empty
template <class T> inline void store(T* p, Vec<T> a) { *p = a.v; }
template <class T> inline void store_partial(T*, Vec<T>, std::size_t) {}
// No portable non-temporal store in the baseline: a plain store.
template <class T> inline void store_stream(T* p, Vec<T> a) { *p = a.v; }
template <class T> inline void store_stream_partial(T* p, Vec<T> a, std::size_t n) { store_partial(p, a, n); }
inline void stream_fence() {}
template <class T> inline Vec<T> splat(T s) { return {s}; }

template <class T> inline Vec<T> operator+(Vec<T> a, Vec<T> b) { return {a.v + b.v}; }
template <class T> inline Vec<T> operator-(Vec<T> a, Vec<T> b) { return {a.v - b.v}; }
template <class T> inline Vec<T> operator*(Vec<T> a, Vec<T> b) { return {a.v * b.v}; }
template <class T> inline Vec<T> operator/(Vec<T> a, Vec<T> b) { return {a.v / b.v}; }
template <class T> inline Vec<T> square_root(Vec<T> a) { return {std::sqrt(a.v)}; }
// Whether a <= b in every lane (a NaN lane: false).
template <class T> inline bool all_less_equal(Vec<T> a, Vec<T> b) { return a.v <= b.v; }
// Unfused a * b + c: the baseline has no FMA instruction and a libm fma call would be slow.
template <class T> inline Vec<T> mul_add(Vec<T> a, Vec<T> b, Vec<T> c) { return {a.v * b.v + c.v}; }

template <class T> inline void acc_add(Acc<T>& acc, Vec<T> a) { acc.v += static_cast<double>(a.v); }
template <class T> inline double acc_reduce(const Acc<T>& acc) { return acc.v; }
template <class T> inline void acc_store(double* p, const Acc<T>& acc) { *p = acc.v; }
template <class T> inline Vec<T> load_rounded(const double* p) { return {static_cast<T>(*p)}; }

}  // namespace
}  // namespace simdnorm::scalar
