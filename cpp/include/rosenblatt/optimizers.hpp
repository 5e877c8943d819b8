// In-place optimizer steps over flat vectors. The arithmetic follows the NumPy reference
// operation by operation in the parameter dtype (no FMA: the file is built with
// -ffp-contract=off), so results match it to the last bit where sqrt and division are
// correctly rounded, as they are here.
#pragma once
#include <cmath>

#include "rosenblatt/codes.hpp"
#include "rosenblatt/simd.hpp"
#include "rosenblatt/threads.hpp"

namespace rosenblatt {
namespace ROSENBLATT_ISA_NS {

// f(i0, i1) over chunks of [0, len) that are multiples of the vector length.
template <class F>
inline void for_chunks(idx len, int nt, F&& f) {
  constexpr idx kChunk = 1 << 15;
  if (nt <= 1 || len < 2 * kChunk) {
    f(idx(0), len);
    return;
  }
  const idx chunks = (len + kChunk - 1) / kChunk;
  parallel_for(chunks, nt, [&](long t) { f(t * kChunk, tmin<idx>(len, (t + 1) * kChunk)); });
}

// Runs op(vector lanes) over [i0, i1) with a partial last vector.
template <class T, class Op>
inline void vec_loop(idx i0, idx i1, Op&& op) {
  constexpr int L = lanes<T>;
  idx i = i0;
  for (; i + L <= i1; i += L) op(i, L);
  if (i < i1) op(i, int(i1 - i));
}


template <class T>
void sgd_step(T* p, const T* g, T* vel, idx len, double lr, double momentum, bool nesterov,
              int nt) {
  const T mu = T(momentum), eta = T(lr);
  for_chunks(len, nt, [&](idx i0, idx i1) {
    vec_loop<T>(i0, i1, [&](idx i, int c) {
      vec<T> gv = vload_c(g + i, c);
      vec<T> v = vload_c(vel + i, c) * mu;
      v = v - eta * gv;
      vstore_c(vel + i, v, c);
      vec<T> pv = vload_c(p + i, c);
      pv = nesterov ? pv + (mu * v - eta * gv) : pv + v;
      vstore_c(p + i, pv, c);
    });
  });
}

template <class T>
void adagrad_step(T* p, const T* g, T* acc, idx len, double lr, double eps, int nt) {
  const T eta = T(lr), ep = T(eps);
  for_chunks(len, nt, [&](idx i0, idx i1) {
    vec_loop<T>(i0, i1, [&](idx i, int c) {
      vec<T> gv = vload_c(g + i, c);
      vec<T> a = vload_c(acc + i, c) + gv * gv;
      vstore_c(acc + i, a, c);
      vstore_c(p + i, vload_c(p + i, c) - eta * gv / (vsqrt<T>(a) + ep), c);
    });
  });
}

template <class T>
void rmsprop_step(T* p, const T* g, T* sq, idx len, double lr, double rho, double eps, int nt) {
  const T eta = T(lr), r = T(rho), r1 = T(1.0 - rho), ep = T(eps);
  for_chunks(len, nt, [&](idx i0, idx i1) {
    vec_loop<T>(i0, i1, [&](idx i, int c) {
      vec<T> gv = vload_c(g + i, c);
      vec<T> s = vload_c(sq + i, c) * r;
      s = s + r1 * gv * gv;
      vstore_c(sq + i, s, c);
      vstore_c(p + i, vload_c(p + i, c) - eta * gv / (vsqrt<T>(s) + ep), c);
    });
  });
}

template <class T>
void adam_step(T* p, const T* g, T* m, T* v, idx len, double lr, double beta1, double beta2,
               double eps, double weight_decay, std::int64_t t, int nt) {
  const T b1 = T(beta1), b1c = T(1.0 - beta1), b2 = T(beta2), b2c = T(1.0 - beta2);
  const T ep = T(eps), decay = T(lr * weight_decay);
  const double lr_t =
      lr * std::sqrt(1.0 - std::pow(beta2, double(t))) / (1.0 - std::pow(beta1, double(t)));
  const T lt = T(lr_t);
  const bool wd = weight_decay != 0.0;
  for_chunks(len, nt, [&](idx i0, idx i1) {
    vec_loop<T>(i0, i1, [&](idx i, int c) {
      vec<T> gv = vload_c(g + i, c);
      vec<T> pv = vload_c(p + i, c);
      if (wd) pv = pv - decay * pv;
      vec<T> mv = vload_c(m + i, c) * b1;
      mv = mv + b1c * gv;
      vec<T> vv = vload_c(v + i, c) * b2;
      vv = vv + b2c * gv * gv;
      vstore_c(m + i, mv, c);
      vstore_c(v + i, vv, c);
      vstore_c(p + i, pv - lt * mv / (vsqrt<T>(vv) + ep), c);
    });
  });
}

template <class T>
void optimizer_step(T* p, const T* g, T* state, idx len, int opt, const double* h,
                    std::int64_t* step, int nt) {
  switch (opt) {
    case codes::SGD:
    case codes::NESTEROV:
      sgd_step<T>(p, g, state, len, h[codes::H_LR], h[codes::H_MOMENTUM], opt == codes::NESTEROV,
                  nt);
      break;
    case codes::ADAGRAD:
      adagrad_step<T>(p, g, state, len, h[codes::H_LR], h[codes::H_EPS], nt);
      break;
    case codes::RMSPROP:
      rmsprop_step<T>(p, g, state, len, h[codes::H_LR], h[codes::H_RHO], h[codes::H_EPS], nt);
      break;
    default: {  // ADAM, ADAMW
      step[0] += 1;
      const double wd = opt == codes::ADAMW ? h[codes::H_WEIGHT_DECAY] : 0.0;
      adam_step<T>(p, g, state, state + len, len, h[codes::H_LR], h[codes::H_BETA1],
                   h[codes::H_BETA2], h[codes::H_EPS], wd, step[0], nt);
      break;
    }
  }
}

}  // namespace ROSENBLATT_ISA_NS
}  // namespace rosenblatt
