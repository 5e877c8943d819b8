// Vectorised exp, expm1, log1p, tanh and logistic, accurate to a few ulp in both precisions.
// Written once over the vector type; each ISA translation unit compiles its own copy.
// Range reduction: x = n ln2 + r, |r| <= ln2/2, with ln2 split in two so n ln2 is exact
// enough; expm1(r) by its Taylor series (degree 8 fp32, 13 fp64: truncation error below
// half an ulp on that interval); 2^n built in the exponent field.
#pragma once
#include "rosenblatt/simd.hpp"

namespace rosenblatt {
namespace ROSENBLATT_ISA_NS {

template <class T>
struct MathConst;
template <>
struct MathConst<float> {
  static constexpr float log2e = 1.44269504088896341f;
  static constexpr float ln2_hi = 0.693145751953125f;  // 12 significant bits: n ln2_hi exact
  static constexpr float ln2_lo = 1.42860682030941723212e-6f;
  static constexpr float round_magic = 12582912.0f;  // 1.5 * 2^23
  static constexpr std::int32_t magic_bits = 0x4B400000;
  static constexpr int mant_bits = 23;
  static constexpr std::int32_t bias = 127;
  static constexpr float exp_hi = 89.0f;     // beyond: +inf
  static constexpr float exp_lo = -104.0f;   // beyond: 0
  static constexpr float expm1_lo = -20.0f;  // beyond: -1 to within half an ulp
  static constexpr int exp_degree = 8;
  static constexpr int log_terms = 5;
};
template <>
struct MathConst<double> {
  static constexpr double log2e = 1.4426950408889634074;
  static constexpr double ln2_hi = 6.93147180369123816490e-01;  // fdlibm split
  static constexpr double ln2_lo = 1.90821492927058770002e-10;
  static constexpr double round_magic = 6755399441055744.0;  // 1.5 * 2^52
  static constexpr std::int64_t magic_bits = 0x4338000000000000LL;
  static constexpr int mant_bits = 52;
  static constexpr std::int64_t bias = 1023;
  static constexpr double exp_hi = 710.0;
  static constexpr double exp_lo = -746.0;
  static constexpr double expm1_lo = -40.0;
  static constexpr int exp_degree = 13;
  static constexpr int log_terms = 11;
};

// expm1(r) for |r| <= ln2/2 (and any smaller |r|): r + r^2 (1/2! + r (1/3! + ...)).
template <class T>
inline vec<T> expm1_poly(vec<T> r) {
  using M = MathConst<T>;
  double c[16];
  double f = 1.0;
  for (int i = 2; i <= M::exp_degree; ++i) {
    f *= i;
    c[i] = 1.0 / f;
  }
  vec<T> p = vset<T>(T(c[M::exp_degree]));
  for (int i = M::exp_degree - 1; i >= 2; --i) p = vfma(p, r, vset<T>(T(c[i])));
  return vfma(p * r, r, r);
}

// Splits x into n (as a vector of rounded values) and the reduced argument r.
template <class T>
inline void reduce_ln2(vec<T> x, vec<T>& n, ivec<T>& ni, vec<T>& r) {
  using M = MathConst<T>;
  vec<T> t = x * vset<T>(M::log2e) + vset<T>(M::round_magic);
  ni = (ivec<T>)t - (typename VecTraits<T>::Int)M::magic_bits;
  n = t - vset<T>(M::round_magic);
  r = x - n * vset<T>(M::ln2_hi);
  r = r - n * vset<T>(M::ln2_lo);
}

template <class T>
inline vec<T> pow2i(ivec<T> ni) {
  using M = MathConst<T>;
  return (vec<T>)((ni + (typename VecTraits<T>::Int)M::bias) << M::mant_bits);
}

template <class T>
inline vec<T> vexp(vec<T> x) {
  using M = MathConst<T>;
  vec<T> xc = vselect<T>(x > vset<T>(M::exp_hi), vset<T>(M::exp_hi), x);
  xc = vselect<T>(xc < vset<T>(M::exp_lo), vset<T>(M::exp_lo), xc);
  vec<T> n, r;
  ivec<T> ni;
  reduce_ln2<T>(xc, n, ni, r);
  vec<T> p = expm1_poly<T>(r) + T(1);
  // 2^n in two factors so that both over- and underflow (to subnormals) round correctly.
  ivec<T> n1 = ni >> 1;
  return p * pow2i<T>(n1) * pow2i<T>(ni - n1);
}

// expm1(x) for x <= 0 (all that elu and tanh need).
template <class T>
inline vec<T> vexpm1_neg(vec<T> x) {
  using M = MathConst<T>;
  vec<T> xc = vselect<T>(x < vset<T>(M::expm1_lo), vset<T>(M::expm1_lo), x);
  vec<T> n, r;
  ivec<T> ni;
  reduce_ln2<T>(xc, n, ni, r);
  vec<T> p = expm1_poly<T>(r);
  vec<T> s = pow2i<T>(ni);
  // 2^n (1 + p) - 1 = 2^n p + (2^n - 1); for n = 0 this is p itself, no cancellation.
  return s * p + (s - T(1));
}

// log1p(u) for 0 <= u <= 1: w = 1 + u, scaled into [sqrt(1/2), sqrt(2)], log via
// 2 atanh(f / (2 + f)), plus the rounding error of 1 + u as a first-order correction.
template <class T>
inline vec<T> vlog1p_unit(vec<T> u) {
  using M = MathConst<T>;
  vec<T> w = u + T(1);
  vec<T> corr = (u - (w - T(1))) / w;
  ivec<T> big = w > vset<T>(T(1.41421356237309504880));
  vec<T> m = vselect<T>(big, w * T(0.5), w);
  vec<T> k = vselect<T>(big, vset<T>(T(1)), vset<T>(T(0)));
  vec<T> f = m - T(1);
  vec<T> s = f / (f + T(2));
  vec<T> s2 = s * s;
  vec<T> q = vset<T>(T(2.0 / (2 * M::log_terms + 1)));
  for (int j = M::log_terms - 1; j >= 1; --j) q = vfma(q, s2, vset<T>(T(2.0 / (2 * j + 1))));
  vec<T> logm = vfma(s * s2, q, s + s);
  return k * vset<T>(M::ln2_hi) + (logm + (corr + k * vset<T>(M::ln2_lo)));
}

template <class T>
inline vec<T> vtanh(vec<T> x) {
  vec<T> em = vexpm1_neg<T>(T(-2) * vabs<T>(x));
  vec<T> t = -em / (em + T(2));
  return vor<T>(vabs<T>(t), vsign_bit<T>(x));
}

template <class T>
inline vec<T> vlogistic(vec<T> z) {
  vec<T> e = vexp<T>(-vabs<T>(z));
  vec<T> d = e + T(1);
  return vselect<T>(z >= vset<T>(T(0)), T(1) / d, e / d);
}

}  // namespace ROSENBLATT_ISA_NS
}  // namespace rosenblatt
