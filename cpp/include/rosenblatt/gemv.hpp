// C = f(A B + bias) for products with few rows of A (predict on one row: 1 x 784 @ 784 x 300)
// and for tiny products (playground layers: 10 x 2 @ 2 x 8), for one ISA. Row-major B only;
// A is read as scalars (any strides, so X^T of a dW works too).
//
// Two forms of the same arithmetic, by depth k:
// - deep (k >= kGemvStreamK): B is the data, read once. Rows of B are streamed whole and in
//   order (KU rows at a time: KU sequential streams the prefetchers follow), accumulating
//   into a row buffer in L1: acc[j] = fma(a_p, B(p, j), acc[j]), an axpy per row of B.
// - shallow: a block of MR rows x NV vectors of C lives in registers for the whole k loop,
//   with no buffer to initialise and pass over (10 x 2 @ 2 x 8 is 20 FMAs per row).
// The bias and addend are added while the values are in registers, then stored; the
// activation runs afterwards over whole row segments (gemv_cols).
//
// Threads split the columns of C only (at cache-line multiples): with one row of A the work
// is reading B, and two cores hold two halves of a ~1 MB B in their private L2s, where one
// core's L2 cannot hold all of it next to everything else.
//
// Determinism: every element of C is the same sequence of operations whatever the form,
// block shape or thread count: acc = 0, acc = fma(A(i, p), B(p, j), acc) for p = 0, 1, ...,
// k-1, then acc + bias, + beta * addend, then f. So results do not depend on the thread
// count, and they are those of gemm.hpp's direct and packed paths for the same element
// (same operations, same order): a row's result does not depend on how many rows the call
// has, hence on which path took it.
#pragma once
#include "rosenblatt/activations.hpp"
#include "rosenblatt/threads.hpp"

namespace rosenblatt {
namespace ROSENBLATT_ISA_NS {

template <class T>
struct GemmArgs;

// Largest block: registers hold MR x NV accumulators plus a broadcast and a loaded vector
// (16 vector registers on AVX2 and SSE2; AVX-512 could hold more, but B's bandwidth, not
// the FMA latency, limits one-row products there too).
template <int MR>
constexpr int gemv_nv() {
  return MR == 1 ? 8 : MR == 2 ? 4 : MR == 3 ? 3 : 2;
}
constexpr int kGemvMaxRows = 4;

// Bias and addend of one vector of C (cnt lanes), then the store to Z (given) or C.
template <class T>
inline __attribute__((always_inline)) void gemv_store(const GemmArgs<T>& g, idx i, idx j, vec<T> x,
                                                      int cnt) {
  constexpr int L = lanes<T>;
  const auto& e = g.epi;
  if (e.bias) x = x + (cnt == L ? vload(e.bias + j) : vload_n(e.bias + j, cnt));
  if (e.addend) {
    const T* d = e.addend + i * e.ldd + j;
    x = x + e.beta * (cnt == L ? vload(d) : vload_n(d, cnt));
  }
  T* o = e.z ? e.z + i * e.ldz + j : g.c + i * g.ldc + j;
  if (cnt == L)
    vstore(o, x);
  else
    vstore_n(o, x, cnt);
}

// Shallow form: rows [i0, i0 + MR) x columns [j0, j0 + cols), cols in ((NV - 1) L, NV L].
template <class T, int MR, int NV>
__attribute__((noinline)) void gemv_block(const GemmArgs<T>& g, idx i0, idx j0, idx cols) {
  constexpr int L = lanes<T>;
  const int last = int(cols - idx(NV - 1) * L);  // lanes of the last vector, 1..L
  const T* a = g.a + i0 * g.rsa;
  const T* b = g.b + j0;
  vec<T> acc[MR][NV];
#pragma GCC unroll 4
  for (int r = 0; r < MR; ++r)
#pragma GCC unroll 8
    for (int v = 0; v < NV; ++v) acc[r][v] = vec<T>{};
  if (last == L) {
    for (idx p = 0; p < g.k; ++p, b += g.rsb) {
      vec<T> bv[NV];
#pragma GCC unroll 8
      for (int v = 0; v < NV; ++v) bv[v] = vload(b + v * L);
#pragma GCC unroll 4
      for (int r = 0; r < MR; ++r) {
        const vec<T> ar = vset<T>(a[r * g.rsa + p * g.csa]);
#pragma GCC unroll 8
        for (int v = 0; v < NV; ++v) acc[r][v] = vfma(ar, bv[v], acc[r][v]);
      }
    }
  } else {
    for (idx p = 0; p < g.k; ++p, b += g.rsb) {
      vec<T> bv[NV];
#pragma GCC unroll 8
      for (int v = 0; v < NV - 1; ++v) bv[v] = vload(b + v * L);
      bv[NV - 1] = vload_n(b + (NV - 1) * L, last);
#pragma GCC unroll 4
      for (int r = 0; r < MR; ++r) {
        const vec<T> ar = vset<T>(a[r * g.rsa + p * g.csa]);
#pragma GCC unroll 8
        for (int v = 0; v < NV; ++v) acc[r][v] = vfma(ar, bv[v], acc[r][v]);
      }
    }
  }
#pragma GCC unroll 8
  for (int v = 0; v < NV; ++v)
#pragma GCC unroll 4
    for (int r = 0; r < MR; ++r)
      gemv_store<T>(g, i0 + r, j0 + idx(v) * L, acc[r][v], v == NV - 1 ? last : L);
}

// Depth from which B is streamed row by row (the deep form above).
constexpr idx kGemvStreamK = 32;

// Deep form: rows [i0, i0 + MR) x columns [j0, j1), KU rows of B per pass over the buffer
// (4 for one or two rows of A; 2 for more, so that the MR x KU broadcasts stay in registers).
template <class T, int MR>
__attribute__((noinline)) void gemv_stream(const GemmArgs<T>& g, idx i0, idx j0, idx j1) {
  constexpr int L = lanes<T>;
  constexpr int KU = MR <= 2 ? 4 : 2;
  constexpr idx CB = 4096 / idx(sizeof(T));  // columns per pass: 4 KiB of each row of B
  alignas(64) T buf[MR][CB];
  const T* a = g.a + i0 * g.rsa;
  for (idx jb = j0; jb < j1; jb += CB) {
    const idx cols = tmin<idx>(CB, j1 - jb);
    const idx nfull = cols / L;
    const int rem = int(cols - nfull * L);
    const idx nv = nfull + (rem ? 1 : 0);
    for (int r = 0; r < MR; ++r)
      for (idx v = 0; v < nv; ++v) vstore(&buf[r][v * L], vec<T>{});
    const T* b = g.b + jb;
    idx p = 0;
    for (; p + KU <= g.k; p += KU) {
      vec<T> av[MR][KU];
      const T* bq[KU];
#pragma GCC unroll 4
      for (int q = 0; q < KU; ++q) {
        bq[q] = b + (p + q) * g.rsb;
#pragma GCC unroll 4
        for (int r = 0; r < MR; ++r) av[r][q] = vset<T>(a[r * g.rsa + (p + q) * g.csa]);
      }
      for (idx v = 0; v < nv; ++v) {
        vec<T> w[KU];
        if (v < nfull) {
#pragma GCC unroll 4
          for (int q = 0; q < KU; ++q) w[q] = vload(bq[q] + v * L);
        } else {
#pragma GCC unroll 4
          for (int q = 0; q < KU; ++q) w[q] = vload_n(bq[q] + v * L, rem);
        }
#pragma GCC unroll 4
        for (int r = 0; r < MR; ++r) {
          vec<T> y = vload(&buf[r][v * L]);
#pragma GCC unroll 4
          for (int q = 0; q < KU; ++q) y = vfma(av[r][q], w[q], y);
          vstore(&buf[r][v * L], y);
        }
      }
    }
    for (; p < g.k; ++p) {
      const T* b0 = b + p * g.rsb;
#pragma GCC unroll 4
      for (int r = 0; r < MR; ++r) {
        const vec<T> ar = vset<T>(a[r * g.rsa + p * g.csa]);
        for (idx v = 0; v < nv; ++v) {
          const vec<T> w = v < nfull ? vload(b0 + v * L) : vload_n(b0 + v * L, rem);
          vstore(&buf[r][v * L], vfma(ar, w, vload(&buf[r][v * L])));
        }
      }
    }
    for (int r = 0; r < MR; ++r)
      for (idx v = 0; v < nv; ++v)
        gemv_store<T>(g, i0 + r, jb + v * L, vload(&buf[r][v * L]), v < nfull ? L : rem);
  }
}

// Rows [i0, i0 + MR) x columns [j0, j1): the deep form, or blocks of NV vectors and one
// narrower block.
template <class T, int MR>
void gemv_rows(const GemmArgs<T>& g, idx i0, idx j0, idx j1) {
  constexpr int L = lanes<T>;
  constexpr int NV = gemv_nv<MR>();
  if (g.k >= kGemvStreamK) {
    gemv_stream<T, MR>(g, i0, j0, j1);
    return;
  }
  idx j = j0;
  for (; j + NV * L <= j1; j += NV * L) gemv_block<T, MR, NV>(g, i0, j, NV * L);
  const idx cols = j1 - j;
  if (cols <= 0) return;
  const int nv = int((cols + L - 1) / L);
#define RB_GEMV_NV(N)                                            \
  case N:                                                        \
    if constexpr (N <= NV) gemv_block<T, MR, N>(g, i0, j, cols); \
    break;
  switch (nv) {
    RB_GEMV_NV(1)
    RB_GEMV_NV(2)
    RB_GEMV_NV(3)
    RB_GEMV_NV(4)
    RB_GEMV_NV(5)
    RB_GEMV_NV(6)
    RB_GEMV_NV(7)
    RB_GEMV_NV(8)
    default:
      break;
  }
#undef RB_GEMV_NV
}

// All rows (in groups of up to kGemvMaxRows) x columns [j0, j1), then the activation.
template <class T>
void gemv_cols(const GemmArgs<T>& g, idx j0, idx j1) {
  idx i = 0;
  for (; i + 4 <= g.m; i += 4) gemv_rows<T, 4>(g, i, j0, j1);
  switch (g.m - i) {
    case 3:
      gemv_rows<T, 3>(g, i, j0, j1);
      break;
    case 2:
      gemv_rows<T, 2>(g, i, j0, j1);
      break;
    case 1:
      gemv_rows<T, 1>(g, i, j0, j1);
      break;
    default:
      break;
  }
  // f from the stored pre-activation (Z, else C in place); softmax needs whole rows and is
  // applied by gemm() afterwards.
  const auto& e = g.epi;
  if (e.act == codes::SOFTMAX || (!e.z && e.act == codes::IDENTITY)) return;
  const T* src = e.z ? e.z : g.c;
  const idx lds = e.z ? e.ldz : g.ldc;
  if (j0 == 0 && j1 == g.n && lds == g.n && g.ldc == g.n) {
    act_span<T>(e.act, src, g.c, g.m * g.n);  // one pass over contiguous rows
    return;
  }
  for (idx r = 0; r < g.m; ++r)
    act_span<T>(e.act, src + r * lds + j0, g.c + r * g.ldc + j0, j1 - j0);
}

// The products this path takes: row-major B, and either few rows of A (each row of B is
// then used by few FMAs and is best streamed once, in place) or a product so small that
// packing or per-row set-up would cost more than the arithmetic. Narrow C (n <= 2) stays
// with the dot-product form of the direct path (one lane per column here would waste the
// vector).
template <class T>
inline bool gemv_suits(const GemmArgs<T>& g) {
  if (g.csb != 1 || g.n <= 2 || g.k <= 0) return false;
  return g.m <= kGemvMaxRows || double(g.m) * double(g.n) * double(g.k) <= 8192.0;
}

// Threads worth using: one per 256 KiB of B, at least 4 vectors of columns each, and only
// while the pool's workers are awake. Splitting the 940 KB first layer of a 784-300-100-10
// net over two cores (each core's L2 then keeps its half from call to call) measured ~25%
// faster back to back, but handing work to a sleeping worker (requests apart by more than
// its 150 us spin) made one-row predict 5x slower at the median: then the call runs on one
// thread and only wakes the workers, so that the next call of a prediction loop splits.
template <class T>
inline int gemv_threads(const GemmArgs<T>& g, int nt) {
  constexpr int L = lanes<T>;
  if (nt <= 1 || g.m > kGemvMaxRows) return 1;
  const double bytes = double(g.k) * double(g.n) * double(sizeof(T));
  const int by_size = int(bytes / (256.0 * 1024.0));
  const int by_cols = int(g.n / (4 * L));
  const int use = tmax(1, tmin(nt, tmin(by_size, by_cols)));
  if (use <= 1) return 1;
  if (idle_spinning_workers() > 0) return use;
  // Workers asleep: this call stays on one thread (a wake-up would cost more than the
  // split saves) but rouses them, so that the next call of a prediction loop splits.
  wake_workers(use);
  return 1;
}

template <class T>
void gemv(const GemmArgs<T>& g, int nt) {
  const int use = gemv_threads<T>(g, nt);
  if (use <= 1) {
    gemv_cols<T>(g, 0, g.n);
    return;
  }
  // Column ranges split at cache-line multiples (no line of C written by two threads).
  constexpr idx kLine = 64 / idx(sizeof(T)) > idx(lanes<T>) ? 64 / idx(sizeof(T)) : lanes<T>;
  const idx units = (g.n + kLine - 1) / kLine;
  parallel_for(use, use, [&](long t) {
    const idx j0 = tmin<idx>(g.n, units * t / use * kLine);
    const idx j1 = tmin<idx>(g.n, units * (t + 1) / use * kLine);
    if (j0 < j1) gemv_cols<T>(g, j0, j1);
  });
}

}  // namespace ROSENBLATT_ISA_NS
}  // namespace rosenblatt
