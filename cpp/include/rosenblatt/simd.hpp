// Portable SIMD layer: GCC/Clang vector extensions sized by the ISA flags of the translation
// unit that includes it (set in CMake), plus explicit FMA where the ISA has one.
// Include only from an isa_*.cpp translation unit, which defines ROSENBLATT_ISA_NS.
#pragma once
#ifndef ROSENBLATT_ISA_NS
#error "rosenblatt/simd.hpp is compiled per ISA: include it from cpp/src/isa_*.cpp only"
#endif

#include <cstddef>
#include <cstdint>
#include <cstring>
#if defined(__SSE2__)
#include <immintrin.h>
#endif

namespace rosenblatt {
namespace ROSENBLATT_ISA_NS {

using idx = std::ptrdiff_t;

#if defined(__AVX512F__)
constexpr int kVecBytes = 64;
#elif defined(__AVX2__)
constexpr int kVecBytes = 32;
#else
constexpr int kVecBytes = 16;
#endif

template <class T>
struct VecTraits;
template <>
struct VecTraits<float> {
  typedef float V __attribute__((vector_size(kVecBytes)));
  typedef std::int32_t I __attribute__((vector_size(kVecBytes)));
  typedef std::int32_t Int;
  static constexpr int lanes = kVecBytes / 4;
};
template <>
struct VecTraits<double> {
  typedef double V __attribute__((vector_size(kVecBytes)));
  typedef std::int64_t I __attribute__((vector_size(kVecBytes)));
  typedef std::int64_t Int;
  static constexpr int lanes = kVecBytes / 8;
};

template <class T>
using vec = typename VecTraits<T>::V;
template <class T>
using ivec = typename VecTraits<T>::I;
template <class T>
constexpr int lanes = VecTraits<T>::lanes;

// Broadcast. Not `vec{} + s` (turns -0.0 into +0.0), not a lane loop (GCC builds it from
// inserts); the intrinsics give one vbroadcast, which can even fold into the FMA operand.
template <class T>
inline vec<T> vset(T s) {
#if defined(__AVX512F__)
  if constexpr (sizeof(T) == 4)
    return (vec<T>)_mm512_set1_ps(s);
  else
    return (vec<T>)_mm512_set1_pd(s);
#elif defined(__AVX__)
  if constexpr (sizeof(T) == 4)
    return (vec<T>)_mm256_set1_ps(s);
  else
    return (vec<T>)_mm256_set1_pd(s);
#elif defined(__SSE2__)
  if constexpr (sizeof(T) == 4)
    return (vec<T>)_mm_set1_ps(s);
  else
    return (vec<T>)_mm_set1_pd(s);
#elif defined(__clang__)
  vec<T> r;
  for (int i = 0; i < lanes<T>; ++i) r[i] = s;
  return r;
#else
  vec<T> r = {};
  r[0] = s;
  return __builtin_shuffle(r, ivec<T>{});
#endif
}
template <class T>
inline vec<T> vload(const T* p) {
  vec<T> r;
  std::memcpy(&r, p, sizeof r);
  return r;
}
template <class T>
inline void vstore(T* p, vec<T> v) {
  std::memcpy(p, &v, sizeof v);
}

// Loads/stores of the first cnt lanes (0 < cnt <= lanes); the other lanes read as zero.
#if defined(__AVX512F__)
inline vec<float> vload_n(const float* p, int cnt) {
  return (vec<float>)_mm512_maskz_loadu_ps((__mmask16)((1u << cnt) - 1u), p);
}
inline vec<double> vload_n(const double* p, int cnt) {
  return (vec<double>)_mm512_maskz_loadu_pd((__mmask8)((1u << cnt) - 1u), p);
}
inline void vstore_n(float* p, vec<float> v, int cnt) {
  _mm512_mask_storeu_ps(p, (__mmask16)((1u << cnt) - 1u), (__m512)v);
}
inline void vstore_n(double* p, vec<double> v, int cnt) {
  _mm512_mask_storeu_pd(p, (__mmask8)((1u << cnt) - 1u), (__m512d)v);
}
#elif defined(__AVX2__)
// Masked loads (vmaskmov) at the ragged edge of every row, no byte-wise memcpy call; but
// partial stores by halves (4, 2, 1 lanes of floats; 2, 1 of doubles): a masked store is
// microcoded on AMD cores (6.5 ns each against 0.8 ns for a plain store, measured on the
// Zen 4 here), while a masked load costs about as much as a plain one.
inline __m256i lane_mask32(int cnt) {
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(cnt), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}
inline __m256i lane_mask64(int cnt) {
  return _mm256_cmpgt_epi64(_mm256_set1_epi64x(cnt), _mm256_setr_epi64x(0, 1, 2, 3));
}
inline vec<float> vload_n(const float* p, int cnt) {
  return (vec<float>)_mm256_maskload_ps(p, lane_mask32(cnt));
}
inline vec<double> vload_n(const double* p, int cnt) {
  return (vec<double>)_mm256_maskload_pd(p, lane_mask64(cnt));
}
// The first cnt lanes (0 <= cnt) of an N-lane vector: whole if cnt >= N, else its low
// half if cnt >= N / 2, then the rest of the lanes from the next half down.
template <class T, int N, class V>
inline void store_by_halves(T* p, V v, int cnt) {
  if (cnt >= N) {
    std::memcpy(p, &v, sizeof v);
    return;
  }
  if constexpr (N > 1) {
    typedef T H __attribute__((vector_size(sizeof(V) / 2)));
    H h;
    std::memcpy(&h, &v, sizeof h);
    if (cnt >= N / 2) {
      std::memcpy(p, &h, sizeof h);
      std::memcpy(&h, reinterpret_cast<const char*>(&v) + sizeof h, sizeof h);
      p += N / 2;
      cnt -= N / 2;
    }
    store_by_halves<T, N / 2>(p, h, cnt);
  }
}
inline void vstore_n(float* p, vec<float> v, int cnt) { store_by_halves<float, 8>(p, v, cnt); }
inline void vstore_n(double* p, vec<double> v, int cnt) { store_by_halves<double, 4>(p, v, cnt); }
#else
template <class T>
inline vec<T> vload_n(const T* p, int cnt) {
  vec<T> r = {};
  std::memcpy(&r, p, sizeof(T) * cnt);
  return r;
}
template <class T>
inline void vstore_n(T* p, vec<T> v, int cnt) {
  std::memcpy(p, &v, sizeof(T) * cnt);
}
#endif

// The first c lanes (0 < c <= lanes) of a row's last, possibly partial, vector: a full
// vector takes the plain move, a partial one the masked move.
template <class T>
inline vec<T> vload_c(const T* p, int c) {
  return c == lanes<T> ? vload(p) : vload_n(p, c);
}
template <class T>
inline void vstore_c(T* p, vec<T> v, int c) {
  if (c == lanes<T>)
    vstore(p, v);
  else
    vstore_n(p, v, c);
}

// a * b + c. A single rounding where the ISA has FMA; the baseline rounds twice (the file is
// compiled with -ffp-contract=off, so nothing else is fused behind our back).
#if defined(__AVX512F__)
inline vec<float> vfma(vec<float> a, vec<float> b, vec<float> c) {
  return (vec<float>)_mm512_fmadd_ps((__m512)a, (__m512)b, (__m512)c);
}
inline vec<double> vfma(vec<double> a, vec<double> b, vec<double> c) {
  return (vec<double>)_mm512_fmadd_pd((__m512d)a, (__m512d)b, (__m512d)c);
}
#elif defined(__AVX2__) && defined(__FMA__)
inline vec<float> vfma(vec<float> a, vec<float> b, vec<float> c) {
  return (vec<float>)_mm256_fmadd_ps((__m256)a, (__m256)b, (__m256)c);
}
inline vec<double> vfma(vec<double> a, vec<double> b, vec<double> c) {
  return (vec<double>)_mm256_fmadd_pd((__m256d)a, (__m256d)b, (__m256d)c);
}
#else
template <class V>
inline V vfma(V a, V b, V c) {
  return a * b + c;
}
#endif

template <class T>
inline vec<T> vsqrt(vec<T> x) {
#if defined(__AVX512F__)
  if constexpr (sizeof(T) == 4)
    return (vec<T>)_mm512_sqrt_ps((__m512)x);
  else
    return (vec<T>)_mm512_sqrt_pd((__m512d)x);
#elif defined(__AVX2__)
  if constexpr (sizeof(T) == 4)
    return (vec<T>)_mm256_sqrt_ps((__m256)x);
  else
    return (vec<T>)_mm256_sqrt_pd((__m256d)x);
#else
  vec<T> r;
  for (int i = 0; i < lanes<T>; ++i) {
    if constexpr (sizeof(T) == 4)
      r[i] = __builtin_sqrtf(x[i]);
    else
      r[i] = __builtin_sqrt(x[i]);
  }
  return r;
#endif
}

// A half-width float vector (as many lanes as vec<double>) widened to doubles, and back
// (rounded to nearest). __builtin_convertvector splits these into halves and re-inserts
// them on AVX2; the intrinsics give the single instruction.
typedef float HalfF __attribute__((vector_size(lanes<double> * sizeof(float))));

inline vec<double> widen_half(HalfF h) {
#if defined(__AVX512F__)
  return (vec<double>)_mm512_cvtps_pd((__m256)h);
#elif defined(__AVX__)
  return (vec<double>)_mm256_cvtps_pd((__m128)h);
#else
  return __builtin_convertvector(h, vec<double>);
#endif
}

inline HalfF narrow_half(vec<double> v) {
#if defined(__AVX512F__)
  return (HalfF)_mm512_cvtpd_ps((__m512d)v);
#elif defined(__AVX__)
  return (HalfF)_mm256_cvtpd_ps((__m256d)v);
#else
  return __builtin_convertvector(v, HalfF);
#endif
}

// The lanes of a vector of T as vectors of doubles: two for float (low half first), one for
// double.
template <class T>
constexpr int kWideParts = lanes<T> / lanes<double>;
template <class T>
inline void vwiden(vec<T> v, vec<double>* out) {
  if constexpr (sizeof(T) == 8) {
    out[0] = v;
  } else {
    HalfF h[2];
    std::memcpy(h, &v, sizeof h);
    out[0] = widen_half(h[0]);
    out[1] = widen_half(h[1]);
  }
}

template <class T>
inline vec<T> vabs(vec<T> x) {
  return (vec<T>)((ivec<T>)x & ~(ivec<T>)vset<T>(T(-0.0)));
}
template <class T>
inline vec<T> vsign_bit(vec<T> x) {
  return (vec<T>)((ivec<T>)x & (ivec<T>)vset<T>(T(-0.0)));
}
template <class T>
inline vec<T> vor(vec<T> a, vec<T> b) {
  return (vec<T>)((ivec<T>)a | (ivec<T>)b);
}
// m ? a : b with m a lane mask from a comparison.
template <class T>
inline vec<T> vselect(ivec<T> m, vec<T> a, vec<T> b) {
  return m ? a : b;
}

template <class T>
inline T tmin(T a, T b) {
  return b < a ? b : a;
}
template <class T>
inline T tmax(T a, T b) {
  return a < b ? b : a;
}

// Values from p up to its next vector-size boundary, at most n (0 when p is on one, or not
// even on a value boundary). NumPy's large arrays start 16 bytes past a 64-byte boundary,
// and every 64-byte load or store from there spans two cache lines: streaming kernels
// take this many values as a partial vector first.
template <class T>
inline idx lanes_to_boundary(const T* p, idx n) {
  const idx off = idx(reinterpret_cast<std::uintptr_t>(p) % kVecBytes);
  if (off == 0 || off % idx(sizeof(T)) != 0) return 0;
  return tmin<idx>(n, (kVecBytes - off) / idx(sizeof(T)));
}

// Prefetches [p, p + bytes) into L1, two lines a step (the loop's bookkeeping cost as much
// as the prefetches); the second may fall past the range, which is harmless: a prefetch
// never faults. Always inlined: a call to a function that only prefetches has no effect
// GCC can see, so once the function is found "pure" the call is deleted as dead code.
__attribute__((always_inline)) inline void prefetch_row(const void* p, idx bytes) {
  const char* c = static_cast<const char*>(p);
  for (idx o = 0; o < bytes; o += 128) {
    __builtin_prefetch(c + o, 0, 3);
    __builtin_prefetch(c + o + 64, 0, 3);
  }
}

}  // namespace ROSENBLATT_ISA_NS
}  // namespace rosenblatt
