// C = A B with a fused epilogue, for one ISA.
//
// A (m x k) and B (k x n) are given by element strides, so X^T and W^T are read in place
// (no transposed copies): A(i, p) = a[i * rsa + p * csa], B(p, j) = b[p * rsb + j * csb].
//
// Large products: B is packed once into NR-wide column panels per KC-deep block (shared by
// all threads); each thread packs a block of A rows (MC x KC, in L2) and runs a
// register-blocked micro-kernel (MR x NV vectors of accumulators) with one B panel held in
// L1 against all row panels of that block. With few rows of A, B is not packed but read in
// place; against few B panels (narrow layers) row-major A is read in place too. The last k
// block adds the bias/addend and applies the activation while the tile is still in L1.
// Small products (playground layers, batch 1) take a direct unpacked path.
//
// Determinism: threads own disjoint tiles, and each C element is reduced over k in an order
// that does not depend on the thread count. With row-major B (a layer's forward pass) it is
// one FMA chain over k in order (the k blocks continue the chain from C, see micro_kernel),
// then + bias, + beta * addend, then f - the same in the packed, gemv and direct (axpy)
// forms, so a row's result does not depend on the number of rows either; one output column
// takes the direct path's dot products for every m (gemm_is_column). With B read transposed
// (dense_backward's dX = dZ W^T) the direct path transposes B and takes the same chains,
// except for outputs of one or two columns, whose small products take dot products: only
// there may a row's result depend on the row count.
#pragma once
#include "rosenblatt/activations.hpp"
#include "rosenblatt/gemv.hpp"
#include "rosenblatt/threads.hpp"

namespace rosenblatt {
namespace ROSENBLATT_ISA_NS {

template <class T>
struct Epilogue {
  const T* bias = nullptr;    // (n,), added to every row
  const T* addend = nullptr;  // C += beta * D, D with row stride ldd
  idx ldd = 0;
  T beta = T(0);
  T* z = nullptr;  // receives the pre-activation when not null (row stride ldz)
  idx ldz = 0;
  int act = codes::IDENTITY;  // elementwise or SOFTMAX (row-wise, needs full rows)
};

template <class T>
struct GemmArgs {
  idx m, n, k;
  const T* a;
  idx rsa, csa;
  const T* b;
  idx rsb, csb;
  T* c;
  idx ldc;
  Epilogue<T> epi;
};

// Register tile per ISA: MR rows x NV vectors. AVX-512 has 32 registers (14 x 2 = 28
// accumulators); AVX2 16 (6 x 2 = 12); the SSE2/NEON baseline keeps it small enough not to
// spill without FMA.
#if defined(__AVX512F__)
constexpr int kMR = 14;
#elif defined(__AVX2__)
constexpr int kMR = 6;
#elif defined(__aarch64__)
constexpr int kMR = 8;
#else
constexpr int kMR = 4;
#endif
constexpr int kNV = 2;

// A k-block depth: at least 128 (shallower blocks cost a pass over C for little work).
constexpr idx clamp_kc(idx raw, idx most) { return raw < 128 ? 128 : (raw > most ? most : raw); }

template <class T>
struct Blocking {
  static constexpr int L = lanes<T>;
  static constexpr int NR = kNV * L;
#if defined(__AVX512F__)
  // AVX-512 (measured on a Zen 5: 48 KiB L1, full-width FMAs): the deepest blocks win,
  // on one thread and on two, although a deep B panel (128 KiB at 1024 float32) is far
  // beyond L1: every k block costs a pass over C (loads and stores of each tile), and L2
  // feeds the panel fast enough. 1024^3 float32 at 512: +9% (one thread) and +14% (two)
  // against the L1-sized blocks below; 1024 another +2-3%, and 784 features in one block
  // +3-6% on the forward products of MLP shapes (backward unchanged).
  static constexpr idx KC = 1024;
  static constexpr idx KC_mt = 1024;
#else
  // One packed B panel (KC x NR) stays in L1 while A streams through it from L2: between
  // two uses of a B line the kernel reads the whole B panel and one A micro-panel (KC x MR),
  // kept to about 35 KiB. Deeper k blocks mean fewer passes over C (784 features: 2 blocks
  // in float32 instead of 4; 300 features: one). AVX2: KC = 407 float, 320 double.
  static constexpr idx KC = clamp_kc(idx(35840) / ((NR + kMR) * idx(sizeof(T))), 512);
  // With several threads every task of a few row panels streams all B panels of its k
  // block, and two cores share the L3 behind their L2s: there the shallower blocks of a
  // 16 KiB panel measured faster (200x784x300 float32, 2 threads: 0.85x numpy against
  // 0.64x; one thread is the other way round). AVX2: 256.
  static constexpr idx KC_mt = clamp_kc(idx(16384) / (NR * idx(sizeof(T))), 384);
#endif
};

// c = f(src) over one row segment; src holds the pre-activation (Z, or C itself).
template <class T>
inline void finish_row(const Epilogue<T>& e, const T* src, T* crow, idx cols) {
  if (e.act == codes::SOFTMAX) return;  // row-wise: done over whole rows by the caller
  if (src != crow || e.act != codes::IDENTITY) act_span<T>(e.act, src, crow, cols);
}

// The micro-kernel: acc = Apanel (MR x kc) * Bpanel (kc x NV*L), then
//   mode & 1: acc starts from C (an earlier k block);  mode & 2: last block, add bias and
//   addend. rows/cols limit the loads and stores at the edges of C.
// Starting from C's partial sums (rather than adding them afterwards) makes every element of
// C one FMA chain over p = 0, 1, ..., k-1, whatever the k blocking (KC depends on the thread
// count) and whichever path took the product (gemv.hpp and the direct path compute that
// chain too): a row's result does not depend on how many other rows the call has, so
// predictions on a subset of rows equal the full batch's.
// RowA: A is read in place from a row-major matrix, A(r, p) = pa[r * lda + p]; otherwise
// from a packed k-major panel, A(r, p) = pa[p * lda + r].
template <class T, int MR, int NV, bool RowA = false>
inline __attribute__((always_inline)) void micro_kernel(idx kc, const T* __restrict pa, idx lda,
                                                        const T* __restrict pb, idx ldb, T* c,
                                                        idx ldc, int rows, idx cols, int mode,
                                                        const T* bias, const T* add, idx ldd,
                                                        T beta) {
  constexpr int L = lanes<T>;
  int cnt[NV];
#pragma GCC unroll 4
  for (int v = 0; v < NV; ++v) {
    idx left = cols - idx(v) * L;
    cnt[v] = left <= 0 ? 0 : (left >= L ? L : int(left));
  }
  vec<T> acc[MR][NV];
#pragma GCC unroll 32
  for (int r = 0; r < MR; ++r)
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) {
      const T* cp = c + r * ldc + v * L;
      acc[r][v] = !(mode & 1) || r >= rows || !cnt[v] ? vec<T>{}
                  : cnt[v] == L                       ? vload(cp)
                                                      : vload_n(cp, cnt[v]);
    }
  for (idx p = 0; p < kc; ++p) {
    vec<T> bv[NV];
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) bv[v] = vload(pb + v * L);
#pragma GCC unroll 32
    for (int r = 0; r < MR; ++r) {
      vec<T> ar = vset<T>(RowA ? pa[r * lda] : pa[r]);
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) acc[r][v] = vfma(ar, bv[v], acc[r][v]);
    }
    pa += RowA ? 1 : lda;
    pb += ldb;
  }
  vec<T> bvec[NV];
#pragma GCC unroll 4
  for (int v = 0; v < NV; ++v) {
    bvec[v] = !(bias && cnt[v]) ? vec<T>{}
              : cnt[v] == L     ? vload(bias + v * L)
                                : vload_n(bias + v * L, cnt[v]);
  }
#pragma GCC unroll 32
  for (int r = 0; r < MR; ++r) {
    if (r >= rows) break;
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) {
      if (!cnt[v]) break;
      T* cp = c + r * ldc + v * L;
      vec<T> x = acc[r][v];
      if (cnt[v] == L) {
        if (mode & 2) {
          if (bias) x = x + bvec[v];
          if (add) x = x + beta * vload(add + r * ldd + v * L);
        }
        vstore(cp, x);
      } else {
        if (mode & 2) {
          if (bias) x = x + bvec[v];
          if (add) x = x + beta * vload_n(add + r * ldd + v * L, cnt[v]);
        }
        vstore_n(cp, x, cnt[v]);
      }
    }
  }
}

// ---------------------------------------------------------------------------------------
// In-register transposes for the packers (x86 with AVX2, the AVX-512 build included; other
// ISAs take the scalar loops). Packing a row-major operand into k-major panels is a
// transpose; done a scalar at a time it cost 5-10% of a GEMM at MLP shapes (and 30% of
// n = 100 layers' time outside the FMAs). The transposes work on 256-bit groups (8 floats,
// 4 doubles) in both builds: a 16 x 16 float transpose in zmm registers takes more shuffles
// per value, and the AVX-512 panels (14 rows, 32 columns) are whole numbers of groups or
// close to it.

#if defined(__AVX2__)
#define ROSENBLATT_HAVE_TRANSPOSE 1
template <class T>
constexpr int kGroup = 32 / int(sizeof(T));  // lanes of a 256-bit group
template <class T>
struct GroupVec;
template <>
struct GroupVec<float> {
  typedef float V __attribute__((vector_size(32)));
};
template <>
struct GroupVec<double> {
  typedef double V __attribute__((vector_size(32)));
};
template <class T>
using gvec = typename GroupVec<T>::V;

// r[i] holds row i (8 floats); afterwards r[j] holds column j.
inline void transpose8x8(__m256 r[8]) {
  __m256 t[8], u[8];
  for (int i = 0; i < 8; i += 2) {
    t[i] = _mm256_unpacklo_ps(r[i], r[i + 1]);
    t[i + 1] = _mm256_unpackhi_ps(r[i], r[i + 1]);
  }
  for (int i = 0; i < 8; i += 4) {
    u[i] = _mm256_shuffle_ps(t[i], t[i + 2], 0x44);
    u[i + 1] = _mm256_shuffle_ps(t[i], t[i + 2], 0xEE);
    u[i + 2] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0x44);
    u[i + 3] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0xEE);
  }
  for (int i = 0; i < 4; ++i) {
    r[i] = _mm256_permute2f128_ps(u[i], u[i + 4], 0x20);
    r[i + 4] = _mm256_permute2f128_ps(u[i], u[i + 4], 0x31);
  }
}
// r[i] holds row i (4 doubles); afterwards r[j] holds column j.
inline void transpose4x4(__m256d r[4]) {
  __m256d t0 = _mm256_unpacklo_pd(r[0], r[1]), t1 = _mm256_unpackhi_pd(r[0], r[1]);
  __m256d t2 = _mm256_unpacklo_pd(r[2], r[3]), t3 = _mm256_unpackhi_pd(r[2], r[3]);
  r[0] = _mm256_permute2f128_pd(t0, t2, 0x20);
  r[1] = _mm256_permute2f128_pd(t1, t3, 0x20);
  r[2] = _mm256_permute2f128_pd(t0, t2, 0x31);
  r[3] = _mm256_permute2f128_pd(t1, t3, 0x31);
}

// Block of G rows x G columns (G = kGroup): src(i, l) = src[i * ld + l] for i < rows (rows
// past that are not read and come out as zero) -> out[l] = column l (lane i = row i).
template <class T>
inline void load_transposed(const T* src, idx ld, int rows, gvec<T>* out) {
  if constexpr (sizeof(T) == 4) {
    __m256 r[8];
    for (int i = 0; i < 8; ++i)
      r[i] = i < rows ? _mm256_loadu_ps(src + i * ld) : _mm256_setzero_ps();
    transpose8x8(r);
    for (int i = 0; i < 8; ++i) out[i] = (gvec<T>)r[i];
  } else {
    __m256d r[4];
    for (int i = 0; i < 4; ++i)
      r[i] = i < rows ? _mm256_loadu_pd(src + i * ld) : _mm256_setzero_pd();
    transpose4x4(r);
    for (int i = 0; i < 4; ++i) out[i] = (gvec<T>)r[i];
  }
}

// dst[l * ldd + i] = src[i * lds + l] for a G x G block (G = kGroup), zeros for i >= rows.
template <class T>
inline void transpose_block(const T* src, idx lds, int rows, T* dst, idx ldd) {
  gvec<T> t[kGroup<T>];
  load_transposed<T>(src, lds, rows, t);
  for (int l = 0; l < kGroup<T>; ++l) std::memcpy(dst + l * ldd, &t[l], sizeof t[l]);
}
#endif

// dst[p * mr + r] = A(r, p), zero rows past `rows`.
template <class T>
void pack_a(const T* a, idx rsa, idx csa, int rows, idx kc, int mr, T* dst) {
  if (rsa == 1) {
    // A^T stored row-major (X^T of dW = X^T dZ): the panel's values of one k step are
    // contiguous in the source and in the panel. Masked loads read only the panel's rows
    // and give zeros past them; the stores are whole vectors that may run past the k
    // step's mr values into the next one, which is written after it (and past the last
    // one into the slack every A buffer has: at least kMR * kc values).
    constexpr int L = lanes<T>;
    for (idx p = 0; p < kc; ++p) {
      const T* src = a + p * csa;
      T* d = dst + p * mr;
      for (int v = 0; v * L < mr; ++v) {
        const int c = rows - v * L;
        vstore(d + v * L, c >= L ? vload(src + v * L) : c > 0 ? vload_n(src + v * L, c) : vec<T>{});
      }
    }
  } else if (csa == 1) {
    // Row-major A: vector loads along k, lanes scattered into the k-major panel.
    constexpr int L = lanes<T>;
#ifdef ROSENBLATT_HAVE_TRANSPOSE
    {
      // G x G blocks of (row group, k) transposed in registers; each k step then stores its
      // mr values as whole groups. A last group's store may run past the k step's mr values
      // into the next one, which is written after it (and past the last one into the
      // buffer's slack, as above); the rows past `rows` come out of the transpose as zeros.
      constexpr int G = kGroup<T>;
      constexpr int kMaxGroups = (kMR + G - 1) / G;
      const int ng = (mr + G - 1) / G;  // mr <= kMR
      idx p = 0;
      for (; p + G <= kc; p += G) {
        gvec<T> t[kMaxGroups][G];
        for (int q = 0; q < ng; ++q)
          load_transposed<T>(a + q * G * rsa + p, rsa, tmax(0, tmin(rows - q * G, G)), t[q]);
        for (int l = 0; l < G; ++l) {
          T* d = dst + (p + l) * mr;
          for (int q = 0; q < ng; ++q) std::memcpy(d + q * G, &t[q][l], sizeof(gvec<T>));
        }
      }
      for (; p < kc; ++p) {
        T* d = dst + p * mr;
        int r = 0;
        for (; r < rows; ++r) d[r] = a[r * rsa + p];
        for (; r < mr; ++r) d[r] = T(0);
      }
      return;
    }
#endif
    for (int r = 0; r < rows; ++r) {
      const T* src = a + r * rsa;
      idx p = 0;
      for (; p + L <= kc; p += L) {
        vec<T> v = vload(src + p);
#pragma GCC unroll 16
        for (int l = 0; l < L; ++l) dst[(p + l) * mr + r] = v[l];
      }
      for (; p < kc; ++p) dst[p * mr + r] = src[p];
    }
    for (int r = rows; r < mr; ++r)
      for (idx p = 0; p < kc; ++p) dst[p * mr + r] = T(0);
  } else {
    for (int r = 0; r < rows; ++r) {
      const T* src = a + r * rsa;
      for (idx p = 0; p < kc; ++p) dst[p * mr + r] = src[p * csa];
    }
    for (int r = rows; r < mr; ++r)
      for (idx p = 0; p < kc; ++p) dst[p * mr + r] = T(0);
  }
}

// dst[p * w + j] = B(p, j), zero columns past `cols` (w = panel width).
template <class T>
void pack_b(const T* b, idx rsb, idx csb, idx kc, idx cols, idx w, T* dst) {
  constexpr int L = lanes<T>;
  if (csb == 1) {
    // Rows of 1-2 vectors: vector moves, not a memcpy call per row.
    for (idx p = 0; p < kc; ++p) {
      const T* src = b + p * rsb;
      T* d = dst + p * w;
      idx j = 0;
      for (; j + L <= cols; j += L) vstore(d + j, vload(src + j));
      if (j < cols) {
        vstore(d + j, vload_n(src + j, int(cols - j)));
        j += L;
      }
      for (; j < w; j += L) vstore(d + j, vec<T>{});
    }
  } else if (rsb == 1) {
    // B^T row-major (W^T of dX = dZ W^T): vector loads along k, lanes scattered.
    idx j_done = 0;
#ifdef ROSENBLATT_HAVE_TRANSPOSE
    // G x G blocks (G columns x G k steps) transposed in registers; a ragged last group
    // reads only its columns and stores zeros for the others (w is a whole number of
    // groups: a multiple of the vector width).
    constexpr int G = kGroup<T>;
    for (; j_done < cols; j_done += G) {
      const int cg = int(tmin<idx>(G, cols - j_done));
      const T* src = b + j_done * csb;
      idx p = 0;
      for (; p + G <= kc; p += G) transpose_block<T>(src + p, csb, cg, dst + p * w + j_done, w);
      for (; p < kc; ++p)
        for (int l = 0; l < G; ++l) dst[p * w + j_done + l] = l < cg ? src[l * csb + p] : T(0);
    }
#endif
    for (idx j = j_done; j < cols; ++j) {
      const T* src = b + j * csb;
      idx p = 0;
      for (; p + L <= kc; p += L) {
        vec<T> v = vload(src + p);
#pragma GCC unroll 16
        for (int l = 0; l < L; ++l) dst[(p + l) * w + j] = v[l];
      }
      for (; p < kc; ++p) dst[p * w + j] = src[p];
    }
    for (idx j = tmax(cols, j_done); j < w; ++j)
      for (idx p = 0; p < kc; ++p) dst[p * w + j] = T(0);
  } else {
    for (idx j = 0; j < cols; ++j) {
      const T* src = b + j * csb;
      for (idx p = 0; p < kc; ++p) dst[p * w + j] = src[p * rsb];
    }
    for (idx j = cols; j < w; ++j)
      for (idx p = 0; p < kc; ++p) dst[p * w + j] = T(0);
  }
}

// Row-panel heights the micro-kernel is instantiated for: the full MR and a few smaller
// ones so that a short last panel (batch 32 = 2 x 14 + 4) does not multiply zero rows.
inline int panel_rows(idx rows_left) {
  // MR + 1 or MR + 2 rows left: two panels of about half height (AVX2: 7 = 4 + 3,
  // 8 = 4 + 4) instead of MR + a 1- or 2-row panel, whose 2-4 accumulator chains keep the
  // FMA pipes mostly idle (batch 32 = 5 x 6 + 2 lost ~3% to that panel).
  if (rows_left > kMR && rows_left <= kMR + 2) {
    const idx half = (rows_left + 1) / 2;
    const int h = half <= 4 ? 4 : (half <= 8 ? 8 : kMR);
    if (h < kMR && 2 * h >= rows_left) return h;
  }
  if (rows_left >= kMR) return kMR;
  if (rows_left > 8 && kMR > 8) return kMR;
  if (rows_left > 4) return kMR >= 8 ? 8 : kMR;
  if (rows_left > 2) return 4 <= kMR ? 4 : kMR;
  if (rows_left > 1) return 2;
  return 1;
}

// Several row panels of MR rows (consecutive in C) against one B panel in one call: the
// per-call cost (14 arguments, prologue, epilogue set-up) is paid once per B panel.
template <class T, int MR, int NV, bool RowA>
__attribute__((noinline)) void micro_panels(int np, const T* const* pa, const idx* lda, idx kc,
                                            const T* pb, idx ldb, T* c, idx ldc, int rows_last,
                                            idx cols, int mode, const T* bias, const T* add,
                                            idx ldd, T beta) {
  constexpr int L = lanes<T>;
  for (int q = 0; q < np; ++q) {
    // The next panel starts from its C tile of an earlier k block, which is usually out of
    // L2 by now: fetch it while this panel's FMAs run.
    if ((mode & 1) && q + 1 < np) {
      const T* cn = c + idx(q + 1) * MR * ldc;
      const int rn = q + 2 == np ? rows_last : MR;
#pragma GCC unroll 32
      for (int r = 0; r < MR; ++r) {
        if (r >= rn) break;
        __builtin_prefetch(cn + r * ldc, 1);
        __builtin_prefetch(cn + r * ldc + NV * L - 1, 1);
      }
    }
    micro_kernel<T, MR, NV, RowA>(kc, pa[q], lda[q], pb, ldb, c + idx(q) * MR * ldc, ldc,
                                  q == np - 1 ? rows_last : MR, cols, mode, bias,
                                  add ? add + idx(q) * MR * ldd : nullptr, ldd, beta);
  }
}

template <class T, int NV, bool RowA>
inline void run_micro_nv(int mr, int np, const T* const* pa, const idx* lda, idx kc, const T* pb,
                         idx ldb, T* c, idx ldc, int rows, idx cols, int mode, const T* bias,
                         const T* add, idx ldd, T beta) {
#define RB_MICRO(R)                                                                                \
  micro_panels<T, R, NV, RowA>(np, pa, lda, kc, pb, ldb, c, ldc, rows, cols, mode, bias, add, ldd, \
                               beta)
  if (mr == kMR) {
    RB_MICRO(kMR);
  } else if (kMR > 8 && mr == 8) {
    RB_MICRO(8);
  } else if (kMR > 4 && mr == 4) {
    RB_MICRO(4);
  } else if (mr == 2) {
    RB_MICRO(2);
  } else {
    RB_MICRO(1);
  }
#undef RB_MICRO
}

template <class T, bool RowA>
inline void run_micro_a(int mr, int np, int nv, const T* const* pa, const idx* lda, idx kc,
                        const T* pb, idx ldb, T* c, idx ldc, int rows, idx cols, int mode,
                        const T* bias, const T* add, idx ldd, T beta) {
  if (nv == 2)
    run_micro_nv<T, 2, RowA>(mr, np, pa, lda, kc, pb, ldb, c, ldc, rows, cols, mode, bias, add, ldd,
                             beta);
  else
    run_micro_nv<T, 1, RowA>(mr, np, pa, lda, kc, pb, ldb, c, ldc, rows, cols, mode, bias, add, ldd,
                             beta);
}

template <class T>
inline void run_micro(bool row_a, int mr, int np, int nv, const T* const* pa, const idx* lda,
                      idx kc, const T* pb, idx ldb, T* c, idx ldc, int rows, idx cols, int mode,
                      const T* bias, const T* add, idx ldd, T beta) {
  if (row_a)
    run_micro_a<T, true>(mr, np, nv, pa, lda, kc, pb, ldb, c, ldc, rows, cols, mode, bias, add, ldd,
                         beta);
  else
    run_micro_a<T, false>(mr, np, nv, pa, lda, kc, pb, ldb, c, ldc, rows, cols, mode, bias, add,
                          ldd, beta);
}

// ---------------------------------------------------------------------------------------
// Small products: no packing.

// Small products held in registers: rows of C of at most kSmallVecs vectors. The
// direct path below (small products of any width, a block of columns at a time) and the
// small-layer kernels of dense.hpp (every width within small_width) both compute here.
constexpr int kSmallVecs = 4;

template <class T>
constexpr idx small_width() {
  return idx(kSmallVecs) * lanes<T>;
}

// Lanes used by vector v of a row of w values.
template <class T>
inline int lanes_at(idx w, int v) {
  return int(tmin<idx>(lanes<T>, w - idx(v) * lanes<T>));
}

// C = A B + bias (a row vector) or + beta D, w columns (NV vectors, the last possibly
// partial); B (inner x w), C and D (rows x w) have row strides ldb, ldc, ldd, and
// A(i, t) = a[i * rsa + t * csa], so X, X^T and dZ^T are read in place. Each element is
// one FMA chain over t in order from zero, then + bias, then + beta D: the packed path's
// order. R rows are done together: their chains of dependent FMAs overlap (one row alone
// waits on the FMA latency at every step: the 32x100x10 output layer of a 784-300-100-10
// net cost 3 us a call that way), and each loaded vector of B serves all of them.
template <class T, int NV>
void small_mm_nv(const T* a, idx rsa, idx csa, const T* B, idx ldb, T* C, idx ldc, idx rows,
                 idx inner, idx w, const T* bias, const T* D, idx ldd, T beta) {
  constexpr int L = lanes<T>;
  constexpr int R = NV >= 3 ? 2 : 8 / NV;  // R x NV accumulators + NV of B in registers
  int c[NV];
  vec<T> bv[NV];
  for (int v = 0; v < NV; ++v) {
    c[v] = lanes_at<T>(w, v);
    bv[v] = bias ? vload_c(bias + v * L, c[v]) : vec<T>{};
  }
  auto block = [&](idx i0, auto rb) {
    constexpr int RB = decltype(rb)::value;
    vec<T> acc[RB][NV];
#pragma GCC unroll 16
    for (int q = 0; q < RB; ++q)
#pragma GCC unroll 16
      for (int v = 0; v < NV; ++v) acc[q][v] = vec<T>{};
    for (idx t = 0; t < inner; ++t) {
      vec<T> bt[NV];
#pragma GCC unroll 16
      for (int v = 0; v < NV; ++v) bt[v] = vload_c(B + t * ldb + v * L, c[v]);
#pragma GCC unroll 16
      for (int q = 0; q < RB; ++q) {
        const vec<T> x = vset<T>(a[(i0 + q) * rsa + t * csa]);
#pragma GCC unroll 16
        for (int v = 0; v < NV; ++v) acc[q][v] = vfma(x, bt[v], acc[q][v]);
      }
    }
#pragma GCC unroll 16
    for (int q = 0; q < RB; ++q)
#pragma GCC unroll 16
      for (int v = 0; v < NV; ++v) {
        vec<T> y = acc[q][v];
        if (bias) y = y + bv[v];
        if (D) y = y + beta * vload_c(D + (i0 + q) * ldd + v * L, c[v]);
        vstore_c(C + (i0 + q) * ldc + v * L, y, c[v]);
      }
  };
  idx i = 0;
  for (; i + R <= rows; i += R) block(i, std::integral_constant<int, R>{});
  // the rest (< R rows) in blocks of 4, 2, 1
  if constexpr (R > 4) {
    if (i + 4 <= rows) block(i, std::integral_constant<int, 4>{}), i += 4;
  }
  if constexpr (R > 2) {
    if (i + 2 <= rows) block(i, std::integral_constant<int, 2>{}), i += 2;
  }
  if (i < rows) block(i, std::integral_constant<int, 1>{});
}

// small_mm_nv for 1 <= w <= small_width.
template <class T>
void small_mm(const T* a, idx rsa, idx csa, const T* B, idx ldb, T* C, idx ldc, idx rows, idx inner,
              idx w, const T* bias, const T* D, idx ldd, T beta) {
  switch (int((w + lanes<T> - 1) / lanes<T>)) {
    case 1:
      return small_mm_nv<T, 1>(a, rsa, csa, B, ldb, C, ldc, rows, inner, w, bias, D, ldd, beta);
    case 2:
      return small_mm_nv<T, 2>(a, rsa, csa, B, ldb, C, ldc, rows, inner, w, bias, D, ldd, beta);
    case 3:
      return small_mm_nv<T, 3>(a, rsa, csa, B, ldb, C, ldc, rows, inner, w, bias, D, ldd, beta);
    default:
      return small_mm_nv<T, 4>(a, rsa, csa, B, ldb, C, ldc, rows, inner, w, bias, D, ldd, beta);
  }
}

// The direct path's dot-product form: contiguous rows of A against one or two contiguous
// columns of B, one SIMD sum per element. (B read transposed with more columns is first
// transposed by gemm_direct: a dot product of k < lanes terms costs more in its
// horizontal sum than in its FMAs.)
template <class T>
inline bool direct_dots(const GemmArgs<T>& g) {
  return g.rsb == 1 && g.csa == 1 && (g.csb != 1 || g.n <= 2);
}

// Rows [i0, i1) of C by the direct path.
template <class T>
void direct_rows(const GemmArgs<T>& g, idx i0, idx i1) {
  constexpr int L = lanes<T>;
  const Epilogue<T>& e = g.epi;
  auto row_out = [&](idx i) { return e.z ? e.z + i * e.ldz : g.c + i * g.ldc; };
  bool epilogue_done = false;  // bias and addend added in registers
  if (direct_dots<T>(g)) {
    for (idx i = i0; i < i1; ++i) {
      T* crow = row_out(i);
      const T* arow = g.a + i * g.rsa;
      for (idx j = 0; j < g.n; ++j) {
        const T* bcol = g.b + j * g.csb;
        vec<T> s = {};
        idx p = 0;
        for (; p + L <= g.k; p += L) s = vfma(vload(arow + p), vload(bcol + p), s);
        if (p < g.k) {
          int r = int(g.k - p);
          s = vfma(vload_n(arow + p, r), vload_n(bcol + p, r), s);
        }
        T t = 0;
        for (int l = 0; l < L; ++l) t += s[l];
        crow[j] = t;
      }
    }
  } else if (g.csb == 1) {
    // column blocks of small_width
    T* out = row_out(i0);
    const idx ldo = e.z ? e.ldz : g.ldc;
    for (idx j0 = 0; j0 < g.n; j0 += small_width<T>())
      small_mm<T>(g.a + i0 * g.rsa, g.rsa, g.csa, g.b + j0, g.rsb, out + j0, ldo, i1 - i0, g.k,
                  tmin<idx>(small_width<T>(), g.n - j0), e.bias ? e.bias + j0 : nullptr,
                  e.addend ? e.addend + i0 * e.ldd + j0 : nullptr, e.ldd, e.beta);
    epilogue_done = true;
  } else {
    for (idx i = i0; i < i1; ++i) {
      T* crow = row_out(i);
      for (idx j = 0; j < g.n; ++j) {
        T t = 0;
        for (idx p = 0; p < g.k; ++p) t += g.a[i * g.rsa + p * g.csa] * g.b[p * g.rsb + j * g.csb];
        crow[j] = t;
      }
    }
  }
  for (idx i = i0; i < i1; ++i) {
    T* crow = row_out(i);
    if (!epilogue_done) {
      if (e.bias)
        for (idx j = 0; j < g.n; ++j) crow[j] = crow[j] + e.bias[j];
      if (e.addend) {
        const T* d = e.addend + i * e.ldd;
        for (idx j = 0; j < g.n; ++j) crow[j] = crow[j] + e.beta * d[j];
      }
    }
    finish_row<T>(e, crow, g.c + i * g.ldc, g.n);
  }
}

// ---------------------------------------------------------------------------------------

template <class T>
inline bool gemm_is_small(idx m, idx n, idx k) {
  return m <= 2 || k <= 4 || double(m) * double(n) * double(k) <= 32768.0;
}

template <class T>
void gemm_packed(const GemmArgs<T>& g, int nt) {
  using B = Blocking<T>;
  constexpr int L = B::L;
  constexpr int NR = B::NR;
  const idx m = g.m, n = g.n, k = g.k;
  const Epilogue<T>& e = g.epi;
  // The final k block stores Z (or A) first; f is applied from there row segment by row
  // segment while the tile is in L1.
  // k blocks of (nearly) equal depth: 784 = 4 x 196, not 3 x 256 + 16, whose last thin
  // block would cost a full pass over C for little work.
  const idx kc_max = nt > 1 ? B::KC_mt : B::KC;
  const idx nkb = (k + kc_max - 1) / kc_max;
  const idx kcb = ((k + nkb - 1) / nkb + 3) / 4 * 4;
  T* out1 = e.z ? e.z : g.c;
  const idx ld1 = e.z ? e.ldz : g.ldc;

  // Column chunk of packed B kept in scratch at once (bounded for very wide B).
  const idx max_cols =
      tmax<idx>(NR, (idx(16) << 20) / (idx(sizeof(T)) * tmax<idx>(k, 1)) / NR * NR);
  for (idx jc0 = 0; jc0 < n; jc0 += max_cols) {
    const idx ncols = tmin(max_cols, n - jc0);
    const idx npanels = (ncols + NR - 1) / NR;
    const idx npad = (ncols + L - 1) / L * L;
    T* pb_all = static_cast<T*>(thread_scratch(0, sizeof(T) * size_t(k) * size_t(npad) + 64));
    // With few rows of A each B element is used by few micro-kernel calls, and packing B
    // would cost as much as it saves: full-width panels are then read in place (row-major
    // B only); the ragged last panel is always packed so that no load runs past a row.
    // Up to 256 rows too when B fits in an L2 (1 MiB): its rows are then read from L2
    // about as fast as packed panels, and the pack - a pass over B before the product,
    // behind a barrier on two threads - is saved (a training batch packs each layer's new
    // weights: 200x784x300 float32 forward x1.03-1.06 on one thread; fashion b200 epoch
    // on two x1.07). A larger B read in place lost (float64 784x300, 1024^2: 3-6%).
    const bool b_direct =
        g.csb == 1 && (m <= 8 * kMR ||
                       (m <= 256 && double(k) * double(n) * double(sizeof(T)) <= double(1 << 20)));

    // Pack B: block pc occupies k rows [pc, pc+kc) x npad; panel jp sits at kc * jp * NR.
    auto pack_panel = [&](idx jp) {
      const idx j0 = jp * NR;
      const idx cols = tmin<idx>(NR, ncols - j0);
      const idx w = (cols + L - 1) / L * L;
      if (b_direct && cols % L == 0) return;
      for (idx pc = 0; pc < k; pc += kcb) {
        const idx kc = tmin<idx>(kcb, k - pc);
        pack_b<T>(g.b + pc * g.rsb + (jc0 + j0) * g.csb, g.rsb, g.csb, kc, cols, w,
                  pb_all + pc * npad + kc * j0);
      }
    };
    const int nt_pack = (!b_direct && double(k) * double(ncols) > 65536.0) ? nt : 1;
    if (b_direct) {
      pack_panel(npanels - 1);
    } else if (g.csb == 1) {
      // Row-major B: walk its rows in order (long sequential reads the prefetcher follows)
      // and deal each row out to the panels.
      constexpr idx kRowsPerTask = 64;
      const idx ntask = (k + kRowsPerTask - 1) / kRowsPerTask;
      parallel_for(ntask, tmin<int>(nt_pack, int(ntask)), [&](long t) {
        const idx p1 = tmin<idx>(k, (t + 1) * kRowsPerTask);
        for (idx p = t * kRowsPerTask; p < p1; ++p) {
          const idx pc = p / kcb * kcb;
          const idx kc = tmin<idx>(kcb, k - pc);
          const T* src = g.b + p * g.rsb + jc0;
          T* blk = pb_all + pc * npad + (p - pc) * NR;
          idx j0 = 0;
          for (; j0 + NR <= ncols; j0 += NR) {
            T* d = blk + kc * j0;
#pragma GCC unroll 4
            for (int v = 0; v < kNV; ++v) vstore(d + v * L, vload(src + j0 + v * L));
          }
          if (j0 < ncols) {  // last panel: narrower (w = cols rounded up to L), zero-padded
            const idx cols = ncols - j0;
            const idx w = (cols + L - 1) / L * L;
            T* d = pb_all + pc * npad + kc * j0 + (p - pc) * w;
            idx j = 0;
            for (; j + L <= cols; j += L) vstore(d + j, vload(src + j0 + j));
            if (j < cols) vstore(d + j, vload_n(src + j0 + j, int(cols - j)));
          }
        }
      });
    } else {
      parallel_for(npanels, tmin<int>(nt_pack, int(npanels)), pack_panel);
    }

    // Tasks: groups of row panels x groups of column panels.
    const idx rpanels = (m + kMR - 1) / kMR;
    idx rgroups = 1, cgroups = 1;
    bool by_parts = false;  // one task per thread, task p on thread p (parallel_parts)
    bool by_cols = false;   // one share of B's columns per thread (below)
    if (nt > 1 && b_direct && npanels >= idx(nt)) {
      by_cols = true;
      // Few rows, B read in place (a batch of 32 through a 784 x 300 layer): each thread
      // takes its share of B's columns (below), so B - most of the bytes - is read once,
      // not once per row group (forward of that layer on 2 threads: -10%, about 5 us of a
      // batch). (cgroups: for a_rows below, each thread's share of the B panels.)
      cgroups = nt;
    } else if (nt > 1 && g.rsa == 1 && rpanels >= 4 * idx(nt)) {
      // A^T (a weight gradient X^T dZ): one part of consecutive rows per thread, part p on
      // thread p (parallel_parts), as the optimizer step splits the parameters after it
      // (optimizers.hpp, over_chunks)
      rgroups = nt;
      by_parts = true;
    } else if (nt > 1) {
      if (rpanels >= 4 * idx(nt)) {
        rgroups = tmin<idx>(rpanels, 4 * idx(nt));
      } else if (npanels >= 2 * idx(nt)) {
        cgroups = tmin<idx>(npanels, 2 * idx(nt));
        rgroups = tmin<idx>(rpanels, 2);
      } else {
        rgroups = rpanels;
        cgroups = tmin<idx>(npanels, 2);
      }
    }
    // One micro-kernel call: tile rows [i, i+rows) x panel jp, k block [pc, pc+kc).
    // Row panels q0..q0+np (all of height mr, the last one `rows` high, consecutive in C)
    // against B panel jp, k block [pc, pc+kc).
    auto tiles = [&](bool row_a, const T* const* pa, const idx* lda, int mr, int np, idx i,
                     int rows, idx jp, idx pc, idx kc) {
      const bool last = pc + kc >= k;
      const int mode = (pc > 0 ? 1 : 0) | (last ? 2 : 0);
      const idx j = jc0 + jp * NR;
      const idx cols = tmin<idx>(NR, n - j);
      const int nv = int((cols + L - 1) / L);
      const idx nrows = idx(np - 1) * mr + rows;
      T* dst = (last ? out1 + i * ld1 : g.c + i * g.ldc) + j;
      const idx ldst = last ? ld1 : g.ldc;
      // Earlier blocks accumulate in C; when the last one writes Z, it starts from C.
      if (last && pc > 0 && dst != g.c + i * g.ldc + j) {
        for (idx r = 0; r < nrows; ++r)
          std::memcpy(dst + r * ldst, g.c + (i + r) * g.ldc + j, sizeof(T) * cols);
      }
      const bool in_place = b_direct && cols % L == 0;
      const T* pb = in_place ? g.b + pc * g.rsb + j : pb_all + pc * npad + kc * jp * NR;
      const idx ldb = in_place ? g.rsb : idx(nv) * L;
      run_micro<T>(row_a, mr, np, nv, pa, lda, kc, pb, ldb, dst, ldst, rows, cols, mode,
                   e.bias ? e.bias + j : nullptr, e.addend ? e.addend + i * e.ldd + j : nullptr,
                   e.ldd, e.beta);
      if (last && (e.z || e.act != codes::IDENTITY)) {
        for (idx r = 0; r < nrows; ++r)
          finish_row<T>(e, dst + r * ldst, g.c + (i + r) * g.ldc + j, cols);
      }
    };
    // Row-major A against few B panels per task (a layer of 100 units is 7 panels; batch 32
    // on two threads splits 19 panels 4 ways, and every column group would pack the same
    // rows again): packing A costs about as much as it saves (9% of a 200x300x100
    // product), so full row panels are read in place, MR rows at a time. Not when the row
    // stride is a multiple of 4 KiB, which would put every row of a panel in one L1 set.
    // Measured with AVX2 (Zen 4): 7 panels gain 4-8%, 19 panels lose 2-4%. With AVX-512
    // (Zen 5) reading in place never lost: +3.5% at 10 panels (n = 300, float32), +1-2% at
    // 32 and 63 (n = 1000).
    constexpr idx kRowPanelsMax = kVecBytes == 64 ? idx(1) << 40 : 8;
    const bool a_rows = g.csa == 1 && g.rsa != 1 &&
                        (npanels + cgroups - 1) / cgroups <= kRowPanelsMax &&
                        (g.rsa * idx(sizeof(T))) % 4096 != 0;
    // Loop order: a block of A (up to MC rows x KC, a quarter of L2) is packed once per k
    // block; then each B panel (KC x NR, about 16 KiB) stays in L1 while it meets every
    // row panel of that A block, which streams from L2.
    // AVX-512's 1024-deep blocks leave a quarter of L2 only 56 float32 rows (4 panels) and
    // 28 float64 rows: there float64 gets twice the bytes, the same rows, so that a B panel
    // serves 4 row panels each time it comes from L3 (1024^3 +2-3%, MLP shapes +0-4%).
    constexpr idx kBlockBytes = idx(256) * 1024 * (kVecBytes == 64 ? idx(sizeof(T)) / 4 : 1);
    constexpr int kMaxPanels = 256;  // row panels per A block (bounds the bookkeeping below)
    const idx mc_max = tmin<idx>(
        kMaxPanels * kMR, tmax<idx>(kMR, (kBlockBytes / (kcb * idx(sizeof(T)))) / kMR * kMR));
    // (A^T larger than an L2, 1 MiB on Zen 4 and 5, is taken to come from L3 or memory.)
    const bool a_t_from_memory =
        g.rsa == 1 && double(m) * double(k) * double(sizeof(T)) > double(1 << 20);
    // Rows [i0, i_end) against B panels [cp0, cp1).
    auto run = [&](idx i0, idx i_end, idx cp0, idx cp1) {
      if (i0 >= i_end || cp0 >= cp1) return;
      T* pa = static_cast<T*>(thread_scratch(1, sizeof(T) * (mc_max + kMR) * kcb + 64));
      idx pi[kMaxPanels];
      const T* pptr[kMaxPanels];
      idx plda[kMaxPanels];
      int pmr[kMaxPanels], prows[kMaxPanels];
      bool prow[kMaxPanels];
      for (idx pc = 0; pc < k; pc += kcb) {
        const idx kc = tmin<idx>(kcb, k - pc);
        for (idx ic = i0; ic < i_end; ic += mc_max) {
          const idx ic_end = tmin(i_end, ic + mc_max);
          int np = 0;
          idx off = 0;
          for (idx i = ic; i < ic_end;) {
            const int mr = panel_rows(ic_end - i);
            const int rows = int(tmin<idx>(mr, ic_end - i));
            pi[np] = i;
            pmr[np] = mr;
            prows[np] = rows;
            prow[np] = false;
            if (a_rows && rows == mr) {
              pptr[np] = g.a + i * g.rsa + pc;
              plda[np] = g.rsa;
              prow[np] = true;
            } else {
              // A^T stored row-major (X^T of dW = X^T dZ) is packed too: read in place, each
              // k step of a panel sits in another row of X (in another page, and with
              // 4 KiB rows in one L1 set), which cost 25-50% of the product at 784 and
              // 1024 features; packing is a few masked vector moves per k step.
              pack_a<T>(g.a + i * g.rsa + pc * g.csa, g.rsa, g.csa, rows, kc, mr, pa + off);
              pptr[np] = pa + off;
              plda[np] = mr;
              off += idx(mr) * kc;
            }
            ++np;
            i += rows;
          }
          // Panels of full height first (one call per B panel), then a short last one.
          int nfull = 0;
          while (nfull < np && pmr[nfull] == kMR && prows[nfull] == kMR) ++nfull;
          // A^T from memory: the next A block's source lines are fetched into L2 while this
          // block computes, a share before each B panel. Its packing (pack_a's A^T case)
          // walks down X's rows, a row stride apart at every k step; from memory that walk
          // waited on each line (1.3 ms of a 1024^3 float64 dW, 6% of it) and the hardware
          // prefetchers did not run ahead of it. 1024^3 backward: float64 +1.5-2.5%,
          // float32 +1.7%; MLP shapes unchanged. An A that fits in L2 is already there.
          const idx icn = ic_end, icn_end = tmin(i_end, icn + mc_max);
          const bool pf_next = a_t_from_memory && icn < icn_end;
          for (idx jp = cp0; jp < cp1; ++jp) {
            if (pf_next) {
              const idx njp = cp1 - cp0;
              const idx p1 = pc + kc * (jp - cp0 + 1) / njp;
              for (idx p = pc + kc * (jp - cp0) / njp; p < p1; ++p) {
                const char* r = reinterpret_cast<const char*>(g.a + p * g.csa + icn);
                const char* re = reinterpret_cast<const char*>(g.a + p * g.csa + icn_end);
                for (; r < re; r += 64) __builtin_prefetch(r, 0, 1);
                __builtin_prefetch(re - 1, 0, 1);
              }
            }
            if (nfull > 0) tiles(prow[0], pptr, plda, kMR, nfull, pi[0], kMR, jp, pc, kc);
            for (int q = nfull; q < np; ++q)
              tiles(prow[q], pptr + q, plda + q, pmr[q], 1, pi[q], prows[q], jp, pc, kc);
          }
        }
      }
    };
    auto task = [&](long t) {
      const idx rg = t / cgroups, cg = t % cgroups;
      const idx rp0 = rpanels * rg / rgroups, rp1 = rpanels * (rg + 1) / rgroups;
      const idx cp0 = npanels * cg / cgroups, cp1 = npanels * (cg + 1) / cgroups;
      run(rp0 * kMR, tmin<idx>(m, rp1 * kMR), cp0, cp1);
    };
    const long ntasks = long(rgroups * cgroups);
    if (by_cols) {
      // Shares of B's vectors x rows as equal as whole row panels allow (a vector of L
      // columns is the micro-kernel's unit of work): a share may end inside a B panel,
      // whose rows are then split at a multiple of MR. Whole panels split the 19 vectors
      // of a 300-unit layer 10:9 (200x784x300 float32 on two threads: split panel x1.03,
      // 256x300x100 x1.04-1.05). Not for few rows, where reading B is most of the work
      // and a split panel is read by both threads (32x784x300: x0.97, 20 rows x0.95): the
      // shares then end at the panel boundary nearest the even split.
      // Share boundary x (in vector-rows) -> (panel, first row of the later share).
      const idx nvec = (ncols + L - 1) / L;
      const idx gran = m > 8 * kMR ? kMR : m;
      auto boundary = [&](idx x, idx& jp, idx& row) {
        jp = npanels;
        row = 0;
        if (x >= nvec * m) return;
        jp = x / m / kNV;                          // x is in vector x / m
        const idx v0 = jp * kNV;                   // first vector of panel jp
        const idx nv = tmin<idx>(kNV, nvec - v0);  // its vectors
        const idx r = (x - v0 * m) / nv;           // rows of jp before x
        row = (r + gran / 2) / gran * gran;
        if (row >= m) {
          ++jp;
          row = 0;
        }
      };
      parallel_for(nt, nt, [&](long t) {
        idx ja, ra, jb, rb;
        boundary(nvec * m * t / nt, ja, ra);
        boundary(nvec * m * (t + 1) / nt, jb, rb);
        if (ja == jb) {
          run(ra, rb, ja, ja + 1);
          return;
        }
        run(ra, m, ja, ja + 1);
        run(0, m, ja + 1, jb);
        if (jb < npanels) run(0, rb, jb, jb + 1);
      });
    } else if (by_parts) {
      parallel_parts(int(ntasks), nt, [&](int p) { task(p); });
    } else {
      parallel_for(ntasks, tmin<int>(nt, int(ntasks)), task);
    }
  }
}

// One column of contiguous A rows against a contiguous B column (the output layer of a
// binary classifier or of a one-target regressor): the direct path's dot products whatever
// m. The packed path would fill one lane of each NR-wide panel, and one form for every m
// keeps a row's result independent of how many rows the call has (the dot products sum in
// another order than the packed path's FMA chains).
template <class T>
inline bool gemm_is_column(const GemmArgs<T>& g) {
  return g.n == 1 && direct_dots<T>(g);
}

// The direct path (small products, k == 0, one-column outputs), rows split over threads
// in chunks of 32 when there is enough work.
template <class T>
void gemm_direct(const GemmArgs<T>& g0, int nt) {
  GemmArgs<T> g = g0;
  if (g.rsb == 1 && g.csb != 1 && g.n > 2 && g.k > 0) {
    // B^T row-major (dX = dZ W^T of a small layer) with more than two columns: transposed
    // into scratch (k x n, a few KiB at most here), so that C is computed by the FMA chains
    // above rather than by one dot product per element (dX of 32x10 @ 10x100: 16 -> 1 us)
    T* bt = static_cast<T*>(thread_scratch(0, sizeof(T) * size_t(g.k) * size_t(g.n) + 64));
    for (idx j = 0; j < g.n; ++j)
      for (idx p = 0; p < g.k; ++p) bt[p * g.n + j] = g.b[p + j * g.csb];
    g.b = bt;
    g.rsb = g.n;
    g.csb = 1;
  }
  const int use = (g.m >= 64 && double(g.m) * g.n * tmax<idx>(g.k, 1) > 1e6) ? nt : 1;
  const idx chunk = 32;
  const idx nchunks = (g.m + chunk - 1) / chunk;
  parallel_for(nchunks, tmin<int>(use, int(nchunks)),
               [&](long t) { direct_rows<T>(g, t * chunk, tmin<idx>(g.m, (t + 1) * chunk)); });
}

// Threads worth using for 2 m n k flops: roughly 1 per 2 MFLOP (about 20 us of work).
inline int gemm_threads(int nt, idx m, idx n, idx k) {
  double fl = 2.0 * double(m) * double(n) * double(k);
  int useful = int(fl / 2e6);
  return tmax(1, tmin(nt, useful));
}

template <class T>
void gemm(const GemmArgs<T>& g, int nt) {
  if (g.m <= 0 || g.n <= 0) return;
  if (gemv_suits<T>(g)) {  // few rows of A, or tiny: gemv.hpp
    gemv<T>(g, nt);
  } else if (gemm_is_small<T>(g.m, g.n, g.k) || g.k == 0 || gemm_is_column<T>(g)) {
    gemm_direct<T>(g, nt);
  } else {
    gemm_packed<T>(g, gemm_threads(nt, g.m, g.n, g.k));
  }
  if (g.epi.act == codes::SOFTMAX) {
    const T* zsrc = g.epi.z ? g.epi.z : g.c;
    const idx ldz = g.epi.z ? g.epi.ldz : g.ldc;
    softmax_rows<T>(zsrc, ldz, g.c, g.ldc, g.m, g.n);
  }
}

}  // namespace ROSENBLATT_ISA_NS
}  // namespace rosenblatt
