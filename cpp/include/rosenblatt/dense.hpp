// Dense layer forward/backward and the elementwise kernels, on top of gemm.hpp.
#pragma once
#include <type_traits>

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
      softmax_rows<T>(Z + r0 * cols, cols, A + r0 * cols, cols, r1 - r0, cols);
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

// True when every value of x[0, n) is finite: x - x is 0 for a finite x and NaN for NaN
// and the infinities, and a sum of zeros stays 0. The estimators check a training set on
// every fit call (fashion's 188 MB: 11 ms in NumPy's isfinite(X).all(), which also writes
// a temporary of n booleans); this reads x once at memory speed, about 5 ms. One thread:
// a second one measured no faster (the reads are what limits it).
template <class T>
bool all_finite(const T* x, idx n) {
  constexpr int L = lanes<T>;
  vec<T> a = {}, b = {};
  // up to a vector boundary first (6.5 ms instead of 4.6 over fashion's X)
  idx i = lanes_to_boundary(x, n);
  if (i > 0) {
    const vec<T> u = vload_c(x, int(i));
    a += u - u;
  }
  for (; i + 2 * L <= n; i += 2 * L) {
    const vec<T> u = vload(x + i), v = vload(x + i + L);
    a += u - u;
    b += v - v;
  }
  for (; i < n; i += L) {
    const vec<T> u = vload_c(x + i, int(tmin<idx>(L, n - i)));
    a += u - u;
  }
  a += b;
  bool ok = true;
  for (int l = 0; l < L; ++l) ok = ok && a[l] == T(0);
  return ok;
}

// Outputs [j0, j1) of dense_forward (A, Z and W with m columns). Each output is the same
// FMA chain whichever columns a call computes (gemm.hpp), so parts computed apart are the
// whole product's bits. A row-wise activation (SOFTMAX) needs all of them: j0 = 0, j1 = m.
template <class T>
void dense_forward_cols(const T* X, const T* W, const T* b, T* A, T* Z, idx n, idx k, idx m, idx j0,
                        idx j1, int act, int nt) {
  GemmArgs<T> g{n, j1 - j0, k, X, k, 1, W + j0, m, 1, A + j0, m, {}};
  g.epi.bias = b ? b + j0 : nullptr;
  g.epi.z = Z ? Z + j0 : nullptr;
  g.epi.ldz = m;
  g.epi.act = act;
  gemm<T>(g, nt);
}

template <class T>
void dense_forward(const T* X, const T* W, const T* b, T* A, T* Z, idx n, idx k, idx m, int act,
                   int nt) {
  dense_forward_cols<T>(X, W, b, A, Z, n, k, m, 0, m, act, nt);
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

// dst (cols x rows) = src^T, src (rows x cols) row-major, in tiles that stay in L1.
template <class T>
void transpose_into(const T* src, idx rows, idx cols, T* dst) {
  idx i_done = 0;
#ifdef ROSENBLATT_HAVE_TRANSPOSE
  // G x G blocks through registers (gemm.hpp's packers' transposes), the ragged edges by
  // the scalar tiles below: a scalar transpose of 784 x 32 floats was 8% of a batch-32
  // dense_backward.
  constexpr int G = kGroup<T>;
  const idx jg = cols / G * G;
  for (; i_done + G <= rows; i_done += G) {
    for (idx j0 = 0; j0 < jg; j0 += G)
      transpose_block<T>(src + i_done * cols + j0, cols, G, dst + j0 * rows + i_done, rows);
    for (idx j = jg; j < cols; ++j)
      for (idx i = i_done; i < i_done + G; ++i) dst[j * rows + i] = src[i * cols + j];
  }
#endif
  constexpr idx kTile = 16;
  for (idx i0 = i_done; i0 < rows; i0 += kTile)
    for (idx j0 = 0; j0 < cols; j0 += kTile) {
      const idx i1 = tmin(rows, i0 + kTile), j1 = tmin(cols, j0 + kTile);
      for (idx j = j0; j < j1; ++j)
        for (idx i = i0; i < i1; ++i) dst[j * rows + i] = src[i * cols + j];
    }
}

// dX (n x k) = dZ (n x m) W^T (m x k), with W^T(p, j) = W[j * m + p].
//
// Few rows of dZ (a batch of 32): the product's B operand W^T would be packed whole (a
// transpose of all of W) for little arithmetic, and that packing cost about as much as the
// FMAs (dX of 32x784x300 at 0.65-0.7x numpy). The transposed product dX^T = W dZ^T takes W
// as its A operand, read in place by rows (gemm.hpp: row-major A against few B panels), and
// packs only dZ^T; the (k x n) result is then transposed into dX. Every element is the same
// chain of FMAs over the same k blocks either way (the blocking depends on m, and on the
// thread count through the flops, both unchanged), so the bits are those of the direct form.
//
// Up to 8 B panels of rows, and at most 128: with AVX-512 float32 (NR = 32) the transposed
// form lost at 256 and 200 rows (dense_backward 256x300x100 -14%, 200x784x300 -6%).
template <class T>
void dx_product(const T* dZ, const T* W, T* dX, idx n, idx k, idx m, int nt) {
  constexpr idx kFewRows = 8 * Blocking<T>::NR < 128 ? 8 * Blocking<T>::NR : 128;
  // n, k > 2 and m > 4 with enough flops keep both forms on the packed path (gemm.hpp:
  // gemm_is_small), where the bits agree
  const bool transposed = n > 2 && n <= kFewRows && k > 2 && m > 4 &&
                          (m * idx(sizeof(T))) % 4096 != 0 && !gemm_is_small<T>(n, k, m);
  if (!transposed) {
    GemmArgs<T> gx{n, k, m, dZ, m, 1, W, 1, m, dX, k, {}};
    gemm<T>(gx, nt);
    return;
  }
  T* t = static_cast<T*>(thread_scratch(3, sizeof(T) * size_t(k) * size_t(n) + 64));
  GemmArgs<T> gt{k, n, m, W, m, 1, dZ, 1, m, t, n, {}};
  gemm<T>(gt, nt);
  transpose_into<T>(t, k, n, dX);
}

// Columns [j0, j1) of backward_dz in one pass over the rows: dZ = dA f'(Z, A) (not written
// for the identity, whose dZ is dA) and db += each row of dZ, db's running sums staying in L1.
// Before, db was a second pass walking down dZ's columns, a tenth of a 1024^3 float64
// backward's time outside the products. Rows are added in order from zero, as
// column_sums adds them: the same bits, however the columns are split. ACT < 0: f taken at
// run time from act (with_fixed_act).
template <class T, int ACT>
void dz_sums_cols(const T* Z, const T* A, const T* dA, T* dZ, T* db, idx n, idx m, idx j0, idx j1,
                  int act) {
  constexpr int L = lanes<T>;
  const int f = ACT < 0 ? act : ACT;
  const bool nz = codes::needs_z(f);
  for (idx j = j0; j < j1; ++j) db[j] = T(0);
  for (idx i = 0; i < n; ++i) {
    const idx o = i * m;
    for (idx j = j0; j < j1; j += L) {
      const int c = int(tmin<idx>(L, j1 - j));
      vec<T> x = vload_c(dA + o + j, c);
      if (f != codes::IDENTITY) {
        const vec<T> zv = nz ? vload_c(Z + o + j, c) : vec<T>{};
        x = x * dact_vec<T>(f, zv, vload_c(A + o + j, c));
        vstore_c(dZ + o + j, x, c);
      }
      vstore_c(db + j, vload_c(db + j, c) + x, c);
    }
  }
}

template <class T>
void dz_sums(const T* Z, const T* A, const T* dA, T* dZ, T* db, idx n, idx m, idx j0, idx j1,
             int act) {
  with_fixed_act(act, [&](auto code) {
    dz_sums_cols<T, decltype(code)::value>(Z, A, dA, dZ, db, n, m, j0, j1, act);
  });
}

// dense_backward's first part: dZ = dA f'(Z, A) (into dz_buf, or thread scratch when it is
// null; dA itself for the identity) and db = the column sums of dZ. Returns dZ.
template <class T>
const T* backward_dz(const T* Z, const T* A, const T* dA, T* db, idx n, idx m, int act, int nt,
                     T* dz_buf) {
  // (null for the identity, whose dZ is dA: dz_sums writes no dZ then)
  T* dZ = nullptr;
  if (act != codes::IDENTITY)
    dZ = dz_buf ? dz_buf
                : static_cast<T*>(thread_scratch(2, sizeof(T) * size_t(n) * size_t(m) + 64));
  constexpr int L = lanes<T>;
  const idx nvec = (m + L - 1) / L;
  if (nt <= 1 || double(n) * double(m) < 65536.0) {
    dz_sums<T>(Z, A, dA, dZ, db, n, m, 0, m, act);
  } else if (nvec >= 2 * idx(nt)) {
    // Threads take whole vectors of columns, each all the rows: each column's sum is then
    // one thread's, in row order.
    parallel_for(nt, nt, [&](long t) {
      const idx j0 = tmin<idx>(m, nvec * t / nt * L), j1 = tmin<idx>(m, nvec * (t + 1) / nt * L);
      if (j0 < j1) dz_sums<T>(Z, A, dA, dZ, db, n, m, j0, j1, act);
    });
  } else {
    // Too few columns to share (many rows of a narrow layer): f' on all threads by rows,
    // then the sums on one.
    if (dZ) activation_backward<T>(Z, A, dA, dZ, n, m, act, nt);
    column_sums<T>(dZ ? dZ : dA, db, n, m);
  }
  return dZ ? dZ : dA;
}

// The product of dense_backward's weight gradient: dW (k x m) = X^T (k x n) dZ (n x m)
// + l2 W.
template <class T>
GemmArgs<T> backward_dw_args(const T* X, const T* W, const T* dZ, T* dW, idx n, idx k, idx m,
                             double l2) {
  GemmArgs<T> gw{k, m, n, X, 1, k, dZ, m, 1, dW, m, {}};
  if (l2 != 0.0) {
    gw.epi.addend = W;
    gw.epi.ldd = m;
    gw.epi.beta = T(l2);
  }
  return gw;
}

// dW (k x m) = t^T + l2 W from the transposed product t = dZ^T X (m x k): the product's
// rounded value, then + l2 W, as the GEMM epilogue adds the term (dw_product and the small
// path take that form when the outputs are the narrower side).
template <class T>
void dw_from_transposed(const T* t, const T* W, T* dW, idx k, idx m, double l2) {
  transpose_into<T>(t, m, k, dW);
  if (l2 == 0.0) return;
  const T beta = T(l2);
  for (idx o = 0; o < k * m; ++o) dW[o] = dW[o] + beta * W[o];
}

// dW (k x m) = X^T dZ + l2 W. Outputs that fill a fraction of each row's vectors (the
// 10 of a classifier's output layer take one vector of 16 float lanes, 5/8 used; 100
// take 7, the last one a quarter used) are computed as dW^T = dZ^T X (m x k, vectors along
// the k features) into scratch and transposed with l2's term, when the vector FMAs that
// saves (n per row-vector dropped) outnumber the k m values to transpose: the backward
// pass of fashion's output layer at batch 200 x1.17, of a one-output layer x2.4-2.9, the
// dW of 200x300x100 x1.12. At batch 32 that layer's transpose cost more than it saved
// (x0.91), as at 784 features (x0.95, 1% of the FMAs saved); the direct path's small
// products stay as they are. Each element is the same FMA chain over the rows in order
// either way (gemm.hpp), then + l2 W: the same bits.
template <class T>
void dw_product(const T* X, const T* W, const T* dZ, T* dW, idx n, idx k, idx m, double l2,
                int nt) {
  constexpr idx L = lanes<T>;
  const idx kv = (k + L - 1) / L, mv = (m + L - 1) / L;
  if (n > 0 && n * (k * mv - m * kv) > k * m && !gemm_is_small<T>(k, m, n)) {
    T* t = static_cast<T*>(thread_scratch(3, sizeof(T) * size_t(k) * size_t(m) + 64));
    gemm<T>(GemmArgs<T>{m, k, n, dZ, 1, m, X, k, 1, t, k, {}}, nt);
    dw_from_transposed<T>(t, W, dW, k, m, l2);
    return;
  }
  gemm<T>(backward_dw_args<T>(X, W, dZ, dW, n, k, m, l2), nt);
}

struct NoHook {
  void operator()() const {}
};

// dz_buf: n*m scratch for dZ (null: thread scratch). after_dx() runs on the thread that
// computed dX, as soon as it has (train_epoch starts the layer below's backward pass there).
template <class T, class AfterDx = NoHook>
void dense_backward_impl(const T* X, const T* W, const T* A, const T* Z, const T* dA, T* dW, T* db,
                         T* dX, idx n, idx k, idx m, int act, double l2, int nt, T* dz_buf,
                         const AfterDx& after_dx = AfterDx{}) {
  const T* dZ = backward_dz<T>(Z, A, dA, db, n, m, act, nt, dz_buf);
  if (!dX) {
    dw_product<T>(X, W, dZ, dW, n, k, m, l2, nt);
    return;
  }
  // dW and dX are independent products of equal cost. On two threads (or when each is too
  // small to split well) they run side by side, one thread each: no barrier inside either
  // product, no B packing shared across cores, and layers of a few MFLOP (batch 32) stop
  // running on one core while the other waits. Each product is computed exactly as on one
  // thread, so results do not depend on this choice.
  const double fl = 2.0 * double(n) * double(k) * double(m);
  if (nt == 2 || (nt > 2 && fl < 8e6)) {
    parallel_for(2, 2, [&](long t) {
      if (t == 0) {
        dw_product<T>(X, W, dZ, dW, n, k, m, l2, 1);
      } else {
        dx_product<T>(dZ, W, dX, n, k, m, 1);
        after_dx();
      }
    });
  } else {
    dw_product<T>(X, W, dZ, dW, n, k, m, l2, nt);
    dx_product<T>(dZ, W, dX, n, k, m, nt);
    after_dx();
  }
}

template <class T>
void dense_backward(const T* X, const T* W, const T* A, const T* Z, const T* dA, T* dW, T* db,
                    T* dX, idx n, idx k, idx m, int act, double l2, int nt) {
  dense_backward_impl<T>(X, W, A, Z, dA, dW, db, dX, n, k, m, act, l2, nt, nullptr);
}

// ---------------------------------------------------------------------------------------
// Small layers: every width at most kSmallVecs vectors (the playground's 2-8-8-1 nets).
// A batch then costs a layer a few hundred FLOPs, less than the general path spends on GEMM
// dispatch, a call per row and separate bias and activation passes. Here a row's outputs
// stay in registers until stored, the activation runs over the whole layer with its code
// fixed at compile time, and nothing is dispatched per row. Each output is the sum of the
// direct GEMM path (k terms by FMA from zero, then the bias; dW over the batch rows in
// order, then l2 W; db in row order), except where that path takes dot products (outputs
// of one or two columns): results agree with it to rounding.

// A = f(Z) over a contiguous span, f fixed at compile time, four vectors per step so that
// their independent polynomial and division chains overlap (one row of a small layer is
// a single vector, too short to hide that latency).
template <class T, int ACT>
void act_block(const T* z, T* a, idx len) {
  constexpr int L = lanes<T>;
  idx i = 0;
  for (; i + 4 * L <= len; i += 4 * L) {
    vec<T> v[4];
    for (int u = 0; u < 4; ++u) v[u] = act_vec<T>(ACT, vload(z + i + u * L));
    for (int u = 0; u < 4; ++u) vstore(a + i + u * L, v[u]);
  }
  for (; i < len; i += L) {
    const int c = int(tmin<idx>(L, len - i));
    vstore_c(a + i, act_vec<T>(ACT, vload_c(z + i, c)), c);
  }
}

template <class T>
void small_activation(const T* z, T* a, idx rows, idx cols, int act) {
  if (act == codes::SOFTMAX) {
    softmax_rows<T>(z, cols, a, cols, rows, cols);
    return;
  }
  with_fixed_act(act, [&](auto code) {
    constexpr int ACT = decltype(code)::value;
    if constexpr (ACT < 0)
      act_span<T>(act, z, a, rows * cols);
    else
      act_block<T, ACT>(z, a, rows * cols);
  });
}

// dZ = dA f'(Z, A) over a contiguous span, f fixed at compile time.
template <class T, int ACT>
void dact_block(const T* z, const T* a, const T* da, T* dz, idx len) {
  constexpr int L = lanes<T>;
  for (idx i = 0; i < len; i += L) {
    const int c = int(tmin<idx>(L, len - i));
    const vec<T> zv = codes::needs_z(ACT) ? vload_c(z + i, c) : vec<T>{};
    vstore_c(dz + i, vload_c(da + i, c) * dact_vec<T>(ACT, zv, vload_c(a + i, c)), c);
  }
}

template <class T>
void small_dactivation(const T* z, const T* a, const T* da, T* dz, idx len, int act) {
  with_fixed_act(act, [&](auto code) {
    constexpr int ACT = decltype(code)::value;
    if constexpr (ACT < 0)
      dact_span<T>(act, z, a, da, dz, len);
    else
      dact_block<T, ACT>(z, a, da, dz, len);
  });
}

// db = column sums of dZ, rows added in order.
template <class T, int NV>
void small_db_nv(const T* dZ, T* db, idx n, idx m) {
  constexpr int L = lanes<T>;
  int c[NV];
  vec<T> s[NV];
  for (int v = 0; v < NV; ++v) {
    c[v] = lanes_at<T>(m, v);
    s[v] = vec<T>{};
  }
  for (idx r = 0; r < n; ++r)
    for (int v = 0; v < NV; ++v) s[v] += vload_c(dZ + r * m + v * L, c[v]);
  for (int v = 0; v < NV; ++v) vstore_c(db + v * L, s[v], c[v]);
}

// call(NV) with NV the vectors a row of w values takes (1 <= w <= small_width).
#define RB_SMALL_NV(w, call)                      \
  switch (int(((w) + lanes<T> - 1) / lanes<T>)) { \
    case 1:                                       \
      call(1);                                    \
      break;                                      \
    case 2:                                       \
      call(2);                                    \
      break;                                      \
    case 3:                                       \
      call(3);                                    \
      break;                                      \
    default:                                      \
      call(4);                                    \
      break;                                      \
  }

// dense_forward for widths k, m <= small_width (one thread; Z is always written).
template <class T>
void small_dense_forward(const T* X, const T* W, const T* b, T* A, T* Z, idx n, idx k, idx m,
                         int act) {
  small_mm<T>(X, k, 1, W, m, Z, m, n, k, m, b, nullptr, 0, T(0));
  small_activation<T>(Z, A, n, m, act);
}

// dense_backward_impl for widths k, m <= small_width (one thread).
template <class T>
void small_dense_backward(const T* X, const T* W, const T* A, const T* Z, const T* dA, T* dW, T* db,
                          T* dX, idx n, idx k, idx m, int act, double l2, T* dz_buf) {
  constexpr idx kMax = small_width<T>() * small_width<T>();
  // W^T for dX, written first: its scalar stores have reached the cache by the time dX
  // loads it as vectors (a load straight after them would wait for them)
  alignas(64) T wt[kMax];
  if (dX)
    for (idx j = 0; j < m; ++j)
      for (idx p = 0; p < k; ++p) wt[j * k + p] = W[p * m + j];
  const T* dZ = dA;
  if (act != codes::IDENTITY) {
    small_dactivation<T>(Z, A, dA, dz_buf, n * m, act);  // the rows are contiguous
    dZ = dz_buf;
  }
  // dW = X^T dZ + l2 W, vectors along m; or, when the outputs are the narrower side,
  // dW^T = dZ^T X with vectors along k (the same sums in the same order), then transposed
  const T beta = T(l2);
  const idx mv = (m + lanes<T> - 1) / lanes<T>, kv = (k + lanes<T> - 1) / lanes<T>;
  if (m * kv < k * mv) {
    alignas(64) T gt[kMax];
    small_mm<T>(dZ, 1, m, X, k, gt, k, m, n, k, nullptr, nullptr, 0, T(0));
    dw_from_transposed<T>(gt, W, dW, k, m, l2);
  } else {
    small_mm<T>(X, 1, k, dZ, m, dW, m, k, n, m, nullptr, l2 != 0.0 ? W : nullptr, m, beta);
  }
#define RB_CALL(NV) small_db_nv<T, NV>(dZ, db, n, m)
  RB_SMALL_NV(m, RB_CALL)
#undef RB_CALL
  if (dX) small_mm<T>(dZ, m, 1, wt, k, dX, k, n, m, k, nullptr, nullptr, 0, T(0));
}
#undef RB_SMALL_NV

}  // namespace ROSENBLATT_ISA_NS
}  // namespace rosenblatt
