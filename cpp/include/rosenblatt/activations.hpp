// Activations f and their derivatives over contiguous spans, and the row-wise softmax.
// Every element goes through the same vector code (the tail through a partial vector), so
// a value never depends on its position in the array or on how work was split.
#pragma once
#include <type_traits>

#include "rosenblatt/codes.hpp"
#include "rosenblatt/vmath.hpp"

namespace rosenblatt {
namespace ROSENBLATT_ISA_NS {

template <class T>
inline vec<T> act_vec(int act, vec<T> z) {
  const vec<T> zero = vset<T>(T(0)), one = vset<T>(T(1));
  switch (act) {
    case codes::HEAVISIDE:
      return vselect<T>(z >= zero, one, zero);
    case codes::SIGN:
      return vselect<T>(z > zero, one, vselect<T>(z < zero, -one, z));
    case codes::LOGISTIC:
      return vlogistic<T>(z);
    case codes::TANH:
      return vtanh<T>(z);
    case codes::RELU:
      return vselect<T>(z < zero, zero, z);
    case codes::LEAKY_RELU:
      return vselect<T>(z > zero, z, z * T(codes::LEAKY_RELU_SLOPE));
    case codes::ELU: {
      vec<T> zn = vselect<T>(z < zero, z, zero);
      return vselect<T>(z > zero, z, vexpm1_neg<T>(zn) * T(codes::ELU_ALPHA));
    }
    case codes::SOFTPLUS:
      return vselect<T>(z > zero, z, zero) + vlog1p_unit<T>(vexp<T>(-vabs<T>(z)));
    case codes::GELU: {
      // 0.5 z (1 + tanh u) as z s, s = logistic(2 u) = (1 + tanh u) / 2: 1 + tanh u
      // cancels to 0 far left of 0, where gelu is tiny but not zero (and its gradient
      // then vanished too, which an adaptive step such as adagrad's turns into a full one).
      const vec<T> u = T(codes::GELU_C) * (z + T(codes::GELU_K) * z * z * z);
      return z * vlogistic<T>(u + u);
    }
    case codes::EXP:
      return vexp<T>(z);
    default:  // IDENTITY (SOFTMAX is row-wise and handled by the callers)
      return z;
  }
}

// f'(.) from A (and Z for softplus/gelu).
template <class T>
inline vec<T> dact_vec(int act, vec<T> z, vec<T> a) {
  const vec<T> zero = vset<T>(T(0)), one = vset<T>(T(1));
  switch (act) {
    case codes::LOGISTIC:
      return a * (one - a);
    case codes::TANH:
      return one - a * a;
    case codes::RELU:
      return vselect<T>(a > zero, one, zero);
    case codes::LEAKY_RELU:
      return vselect<T>(a > zero, one, vset<T>(T(codes::LEAKY_RELU_SLOPE)));
    case codes::ELU:
      return vselect<T>(a > zero, one, a + T(codes::ELU_ALPHA));
    case codes::SOFTPLUS:
      return vlogistic<T>(z);
    case codes::GELU: {
      // s + 0.5 z (1 - tanh^2 u) u' with s = (1 + tanh u) / 2 = logistic(2 u) and
      // 1 - tanh^2 u = 4 e / (1 + e)^2, e = exp(-|2 u|): no cancellation (see act_vec).
      const T c = T(codes::GELU_C), k = T(codes::GELU_K);
      const vec<T> u = c * (z + k * z * z * z);
      const vec<T> e = vexp<T>(-vabs<T>(u + u)), d = e + T(1);
      const vec<T> s = vselect<T>(u >= zero, T(1) / d, e / d);
      return s + T(2) * z * (e / (d * d)) * c * (one + T(3) * k * z * z);
    }
    case codes::EXP:
      return a;
    default:  // IDENTITY; steps and softmax never get here (rejected before)
      return one;
  }
}

// a[i] = f(z[i]) for i < n (elementwise activations; a may alias z).
template <class T>
void act_span(int act, const T* z, T* a, idx n) {
  constexpr int L = lanes<T>;
  if (act == codes::IDENTITY) {
    if (a != z) std::memmove(a, z, sizeof(T) * n);
    return;
  }
  idx i = 0;
  for (; i + L <= n; i += L) vstore(a + i, act_vec<T>(act, vload(z + i)));
  if (i < n) {
    int r = static_cast<int>(n - i);
    vstore_n(a + i, act_vec<T>(act, vload_n(z + i, r)), r);
  }
}

// dz[i] = da[i] * f'(.) for i < n; z may be null unless needs_z(act).
template <class T>
void dact_span(int act, const T* z, const T* a, const T* da, T* dz, idx n) {
  constexpr int L = lanes<T>;
  const bool nz = codes::needs_z(act);
  idx i = 0;
  for (; i + L <= n; i += L) {
    vec<T> zv = nz ? vload(z + i) : vec<T>{};
    vstore(dz + i, vload(da + i) * dact_vec<T>(act, zv, vload(a + i)));
  }
  if (i < n) {
    int r = static_cast<int>(n - i);
    vec<T> zv = nz ? vload_n(z + i, r) : vec<T>{};
    vstore_n(dz + i, vload_n(da + i, r) * dact_vec<T>(act, zv, vload_n(a + i, r)), r);
  }
}

// f(std::integral_constant<int, code>{}) for the activations the small kernels specialise
// (relu, tanh, logistic: f and f' fixed at compile time, no switch per vector), and
// f(std::integral_constant<int, -1>{}) for the others (f taken at run time from the code).
template <class F>
inline void with_fixed_act(int act, F&& f) {
  switch (act) {
    case codes::RELU:
      return f(std::integral_constant<int, codes::RELU>{});
    case codes::TANH:
      return f(std::integral_constant<int, codes::TANH>{});
    case codes::LOGISTIC:
      return f(std::integral_constant<int, codes::LOGISTIC>{});
    default:
      return f(std::integral_constant<int, -1>{});
  }
}

// Row-wise softmax of one row: max subtracted, exp, divided by the row sum (a may alias z).
// Sum in a fixed lane order, so the result is the same however rows are split over threads.
template <class T>
void softmax_row(const T* z, T* a, idx n) {
  constexpr int L = lanes<T>;
  T mx = z[0];
  for (idx j = 1; j < n; ++j) mx = tmax(mx, z[j]);
  vec<T> vs = {};
  idx j = 0;
  for (; j + L <= n; j += L) {
    vec<T> e = vexp<T>(vload(z + j) - mx);
    vstore(a + j, e);
    vs += e;
  }
  T s = 0;
  for (int l = 0; l < L; ++l) s += vs[l];
  // The last n mod L values: one exp of a partial vector, its lanes added in order (an exp
  // per value, each in a vector of its own, cost 10 us a batch of 200 rows of 10 classes).
  if (j < n) {
    const int r = int(n - j);
    const vec<T> e = vexp<T>(vload_n(z + j, r) - mx);
    vstore_n(a + j, e, r);
    for (int l = 0; l < r; ++l) s += e[l];
  }
  for (j = 0; j + L <= n; j += L) vstore(a + j, vload(a + j) / s);
  if (j < n) vstore_n(a + j, vload_n(a + j, int(n - j)) / s, int(n - j));
}

// softmax_row over `rows` rows (z and a with row strides ldz and lda; a may alias z).
// Rows narrower than a vector (a classifier's 10 classes) go L at a time with a vector
// along the rows: alone, each is a chain of dependent scalar maxes and adds around one
// exp (200 rows of 10: 8.3 us, most of the output layer's forward). Each row still takes
// the same steps in the same order - max, exp(z - max), sum from 0 over j in order,
// division - so its values do not depend on the rows it is grouped with.
template <class T>
void softmax_rows(const T* z, idx ldz, T* a, idx lda, idx rows, idx n) {
  constexpr int L = lanes<T>;
  idx r = 0;
  if (n > 0 && n < L) {
    T buf[L * L];  // the group's column j at buf + j L
    for (; r + L <= rows; r += L) {
      for (int l = 0; l < L; ++l)
        for (idx j = 0; j < n; ++j) buf[j * L + l] = z[(r + l) * ldz + j];
      vec<T> mx = vload(buf);
      for (idx j = 1; j < n; ++j) {
        const vec<T> v = vload(buf + j * L);
        mx = vselect<T>(mx < v, v, mx);  // as tmax
      }
      vec<T> s = vset<T>(T(0));
      for (idx j = 0; j < n; ++j) {
        const vec<T> e = vexp<T>(vload(buf + j * L) - mx);
        vstore(buf + j * L, e);
        s += e;
      }
      for (idx j = 0; j < n; ++j) vstore(buf + j * L, vload(buf + j * L) / s);
      for (int l = 0; l < L; ++l)
        for (idx j = 0; j < n; ++j) a[(r + l) * lda + j] = buf[j * L + l];
    }
  }
  for (; r < rows; ++r) softmax_row<T>(z + r * ldz, a + r * lda, n);
}

}  // namespace ROSENBLATT_ISA_NS
}  // namespace rosenblatt
