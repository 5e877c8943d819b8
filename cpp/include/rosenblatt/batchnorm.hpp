// Batch normalisation over the rows of a batch Z (n, k): training forward, its backward,
// and the inference map with running statistics (the NumPy reference is the spec).
//
// Every reduction runs over the rows of one block of columns held in one vector: lane j sums
// Z[0, j], Z[1, j], ... in row order, so a column's result never depends on its position,
// on the ISA's vector width or on the thread count (tasks are column blocks). No FMA is used
// (the file is compiled with -ffp-contract=off), so the arithmetic is the reference's
// operation by operation with a sequential sum per column.
#pragma once
#include "rosenblatt/simd.hpp"
#include "rosenblatt/threads.hpp"

namespace rosenblatt {
namespace ROSENBLATT_ISA_NS {

// f(j0, c) for each block of c <= lanes columns starting at j0; blocks are independent tasks.
template <class T, class F>
inline void bn_column_blocks(idx n, idx k, int nt, F&& f) {
  constexpr idx L = lanes<T>;
  const idx blocks = (k + L - 1) / L;
  auto task = [&](long t) {
    const idx j0 = idx(t) * L;
    f(j0, int(tmin<idx>(L, k - j0)));
  };
  if (nt <= 1 || blocks < 2 || double(n) * double(k) < 65536.0) {
    for (idx t = 0; t < blocks; ++t) task(long(t));
    return;
  }
  parallel_for(long(blocks), nt, task);
}

template <class T>
void batchnorm_forward(const T* Z, const T* gamma, const T* beta, double eps, T* Y, T* Xhat,
                       T* mean, T* invstd, idx n, idx k, int nt) {
  const vec<T> nf = vset<T>(T(n)), ep = vset<T>(T(eps)), one = vset<T>(T(1));
  bn_column_blocks<T>(n, k, nt, [&](idx j0, int c) {
    vec<T> s = vset<T>(T(0));
    for (idx i = 0; i < n; ++i) s = s + vload_c(Z + i * k + j0, c);
    const vec<T> mu = s / nf;
    vec<T> v = vset<T>(T(0));
    for (idx i = 0; i < n; ++i) {
      const vec<T> d = vload_c(Z + i * k + j0, c) - mu;
      v = v + d * d;
    }
    const vec<T> inv = one / vsqrt<T>(v / nf + ep);
    vstore_c(mean + j0, mu, c);
    vstore_c(invstd + j0, inv, c);
    const vec<T> g = vload_c(gamma + j0, c), b = vload_c(beta + j0, c);
    for (idx i = 0; i < n; ++i) {
      const vec<T> xh = (vload_c(Z + i * k + j0, c) - mu) * inv;
      vstore_c(Xhat + i * k + j0, xh, c);
      vstore_c(Y + i * k + j0, xh * g + b, c);
    }
  });
}

template <class T>
void batchnorm_backward(const T* dY, const T* Xhat, const T* gamma, const T* invstd, T* dZ,
                        T* dgamma, T* dbeta, idx n, idx k, int nt) {
  const vec<T> nf = vset<T>(T(n));
  bn_column_blocks<T>(n, k, nt, [&](idx j0, int c) {
    vec<T> sb = vset<T>(T(0)), sg = vset<T>(T(0));
    for (idx i = 0; i < n; ++i) {
      const vec<T> dy = vload_c(dY + i * k + j0, c);
      sb = sb + dy;
      sg = sg + dy * vload_c(Xhat + i * k + j0, c);
    }
    vstore_c(dbeta + j0, sb, c);
    vstore_c(dgamma + j0, sg, c);
    const vec<T> cc = vload_c(gamma + j0, c) * vload_c(invstd + j0, c) / nf;
    for (idx i = 0; i < n; ++i) {
      const vec<T> dy = vload_c(dY + i * k + j0, c), xh = vload_c(Xhat + i * k + j0, c);
      vstore_c(dZ + i * k + j0, (dy * nf - sb - xh * sg) * cc, c);
    }
  });
}

template <class T>
void batchnorm_inference(const T* Z, const T* gamma, const T* beta, const T* running_mean,
                         const T* running_var, double eps, T* Y, idx n, idx k, int nt) {
  const vec<T> ep = vset<T>(T(eps));
  bn_column_blocks<T>(n, k, nt, [&](idx j0, int c) {
    const vec<T> sc = vload_c(gamma + j0, c) / vsqrt<T>(vload_c(running_var + j0, c) + ep);
    const vec<T> rm = vload_c(running_mean + j0, c), b = vload_c(beta + j0, c);
    for (idx i = 0; i < n; ++i)
      vstore_c(Y + i * k + j0, (vload_c(Z + i * k + j0, c) - rm) * sc + b, c);
  });
}

}  // namespace ROSENBLATT_ISA_NS
}  // namespace rosenblatt
