// Dense layer forward/backward and the elementwise kernels, on top of gemm.hpp.
#pragma once
#include "rosenblatt/gemm.hpp"

namespace rosenblatt {
namespace ROSENBLATT_ISA_NS {

// Splits rows into chunks for elementwise work; small arrays stay on the calling thread.
template <class F>
inline void for_row_chunks(idx rows, idx cols, int nt, F&& f) {
  const double total = double(rows) * double(cols);
  if (nt <= 1 || total < 65536.0 || rows < 2) {
    f(idx(0), rows);
    return;
  }
  const idx chunks = tmin<idx>(rows, 4 * idx(nt));
  parallel_for(chunks, nt, [&](long t) {
    const idx r0 = rows * t / chunks, r1 = rows * (t + 1) / chunks;
    if (r0 < r1) f(r0, r1);
  });
}

template <class T>
void activation_forward(const T* Z, T* A, idx rows, idx cols, int act, int nt) {
  for_row_chunks(rows, cols, nt, [&](idx r0, idx r1) {
    if (act == codes::SOFTMAX) {
      for (idx r = r0; r < r1; ++r) softmax_row<T>(Z + r * cols, A + r * cols, cols);
    } else {
      act_span<T>(act, Z + r0 * cols, A + r0 * cols, (r1 - r0) * cols);
    }
  });
}

template <class T>
void activation_backward(const T* Z, const T* A, const T* dA, T* dZ, idx rows, idx cols, int act,
                         int nt) {
  for_row_chunks(rows, cols, nt, [&](idx r0, idx r1) {
    const idx o = r0 * cols;
    dact_span<T>(act, Z ? Z + o : nullptr, A + o, dA + o, dZ + o, (r1 - r0) * cols);
  });
}

template <class T>
void dense_forward(const T* X, const T* W, const T* b, T* A, T* Z, idx n, idx k, idx m, int act,
                   int nt) {
  GemmArgs<T> g{n, m, k, X, k, 1, W, m, 1, A, m, {}};
  g.epi.bias = b;
  g.epi.z = Z;
  g.epi.ldz = m;
  g.epi.act = act;
  gemm<T>(g, nt);
}

// db[j] = sum_i dZ[i, j], rows added in order (deterministic, vectorised over columns).
template <class T>
void column_sums(const T* dZ, T* db, idx n, idx m) {
  constexpr int L = lanes<T>;
  idx j = 0;
  for (; j + L <= m; j += L) {
    vec<T> s = {};
    for (idx i = 0; i < n; ++i) s += vload(dZ + i * m + j);
    vstore(db + j, s);
  }
  if (j < m) {
    const int r = int(m - j);
    vec<T> s = {};
    for (idx i = 0; i < n; ++i) s += vload_n(dZ + i * m + j, r);
    vstore_n(db + j, s, r);
  }
}

// dz_buf: n*m scratch for dZ (null: thread scratch).
template <class T>
void dense_backward_impl(const T* X, const T* W, const T* A, const T* Z, const T* dA, T* dW, T* db,
                         T* dX, idx n, idx k, idx m, int act, double l2, int nt, T* dz_buf) {
  const T* dZ = dA;
  if (act != codes::IDENTITY) {
    T* buf = dz_buf ? dz_buf
                    : static_cast<T*>(thread_scratch(2, sizeof(T) * size_t(n) * size_t(m) + 64));
    activation_backward<T>(Z, A, dA, buf, n, m, act, nt);
    dZ = buf;
  }
  // dW (k x m) = X^T (k x n) dZ (n x m) + l2 W
  GemmArgs<T> gw{k, m, n, X, 1, k, dZ, m, 1, dW, m, {}};
  if (l2 != 0.0) {
    gw.epi.addend = W;
    gw.epi.ldd = m;
    gw.epi.beta = T(l2);
  }
  if (n == 0) {
    for (idx j = 0; j < m; ++j) db[j] = T(0);
  } else {
    column_sums<T>(dZ, db, n, m);
  }
  if (!dX) {
    gemm<T>(gw, nt);
    return;
  }
  // dX (n x k) = dZ (n x m) W^T (m x k); W^T(p, j) = W[j * m + p]
  GemmArgs<T> gx{n, k, m, dZ, m, 1, W, 1, m, dX, k, {}};
  // dW and dX are independent products of equal cost. On two threads (or when each is too
  // small to split well) they run side by side, one thread each: no barrier inside either
  // product, no B packing shared across cores, and layers of a few MFLOP (batch 32) stop
  // running on one core while the other waits. Each product is computed exactly as on one
  // thread, so results do not depend on this choice.
  const double fl = 2.0 * double(n) * double(k) * double(m);
  if (nt == 2 || (nt > 2 && fl < 8e6)) {
    parallel_for(2, 2, [&](long t) { gemm<T>(t == 0 ? gw : gx, 1); });
  } else {
    gemm<T>(gw, nt);
    gemm<T>(gx, nt);
  }
}

template <class T>
void dense_backward(const T* X, const T* W, const T* A, const T* Z, const T* dA, T* dW, T* db,
                    T* dX, idx n, idx k, idx m, int act, double l2, int nt) {
  dense_backward_impl<T>(X, W, A, Z, dA, dW, db, dX, n, k, m, act, l2, nt, nullptr);
}

}  // namespace ROSENBLATT_ISA_NS
}  // namespace rosenblatt
