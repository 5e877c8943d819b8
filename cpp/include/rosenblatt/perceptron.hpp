// Perceptron kernels: Rosenblatt's multi-output rule, and scikit-learn's Perceptron (one
// binary problem per class) reproduced bit for bit.
//
// scikit-learn forms p = w.x + b as float products of w_j x_j (in the input's dtype) added
// one by one to a double. Only the sign of p decides an update, so the dot product here is
// a SIMD sum with a rounding bound; p is recomputed in scikit-learn's sequential order only
// when |p| is inside that bound (for float input: when the double sum is that close to a
// float rounding boundary). The update w += c x is elementwise, so SIMD gives the same bits
// as long as product and sum are not fused (every TU is built with -ffp-contract=off).
//
// The epoch's loss (the stopping rule's input) is a sum of -y p over mistakes. For double
// input its SIMD value carries an error bound; a stopping decision that the bound makes
// ambiguous is settled by replaying that epoch with sequential dot products (so n_iter_
// matches scikit-learn too). float input needs no replay: its p is exact.
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <new>
#include <utility>

#include "rosenblatt/codes.hpp"
#include "rosenblatt/dispatch.hpp"
#include "rosenblatt/simd.hpp"
#include "rosenblatt/threads.hpp"

namespace rosenblatt {
namespace ROSENBLATT_ISA_NS {

// A zero-initialised heap array owned by this ISA's namespace. std::vector (and std::iota)
// would instantiate their members as weak symbols shared by the three ISA objects - the
// ODR pitfall of PERFORMANCE.md - so the linker could hand the baseline path a copy built
// with AVX-512 flags. A class template in this namespace gets one copy per ISA instead.
template <class T>
class IsaBuffer {
 public:
  explicit IsaBuffer(std::size_t n)
      : n_(n), p_(n ? static_cast<T*>(::operator new(n * sizeof(T), kAlign)) : nullptr) {
    for (std::size_t i = 0; i < n_; ++i) p_[i] = T(0);
  }
  IsaBuffer(const IsaBuffer&) = delete;
  IsaBuffer& operator=(const IsaBuffer&) = delete;
  ~IsaBuffer() {
    if (p_) ::operator delete(p_, kAlign);
  }
  T* data() { return p_; }
  const T* data() const { return p_; }
  T& operator[](std::size_t i) { return p_[i]; }
  const T& operator[](std::size_t i) const { return p_[i]; }

 private:
  // Cache-line aligned: the one-pass rule's transposed weights and ring rows are read and
  // written as whole vectors, and its threads update neighbouring rows of the weights.
  static constexpr std::align_val_t kAlign{64};
  std::size_t n_;
  T* p_;
};

// 0, 1, ..., n-1: the unshuffled row order.
inline void iota_order(IsaBuffer<std::int64_t>& order, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i) order[i] = std::int64_t(i);
}

namespace perc {

constexpr double kU = 0x1p-53;   // unit roundoff of double
constexpr idx kAhead = 8;        // rows prefetched ahead of the one being processed
constexpr idx kPollRows = 8192;  // rows between interrupt checks

// s = sum of the rounded products w_j x_j, in double, by SIMD lanes; a = sum of |w_j x_j|.
inline void dot_abs(const double* w, const double* x, idx d, double& s, double& a) {
  using V = vec<double>;
  constexpr int L = lanes<double>;
  V s0 = {}, s1 = {}, a0 = {}, a1 = {};
  idx j = 0;
  for (; j + 2 * L <= d; j += 2 * L) {
    const V p0 = vload(w + j) * vload(x + j);
    const V p1 = vload(w + j + L) * vload(x + j + L);
    s0 += p0;
    s1 += p1;
    a0 += vabs<double>(p0);
    a1 += vabs<double>(p1);
  }
  if (j + L <= d) {
    const V p = vload(w + j) * vload(x + j);
    s0 += p;
    a0 += vabs<double>(p);
    j += L;
  }
  if (j < d) {
    const int r = int(d - j);
    const V p = vload_n(w + j, r) * vload_n(x + j, r);
    s1 += p;
    a1 += vabs<double>(p);
  }
  s0 += s1;
  a0 += a1;
  double ss = 0.0, aa = 0.0;
  for (int l = 0; l < L; ++l) {
    ss += s0[l];
    aa += a0[l];
  }
  s = ss;
  a = aa;
}

// float input: the products are rounded to float (as scikit-learn forms them), then widened.
inline void dot_abs(const float* w, const float* x, idx d, double& s, double& a) {
  constexpr int L = lanes<double>;
  using H = HalfF;
  using V = vec<double>;
  V s0 = {}, s1 = {}, a0 = {}, a1 = {};
  idx j = 0;
  for (; j + 2 * L <= d; j += 2 * L) {
    H w0, x0, w1, x1;
    std::memcpy(&w0, w + j, sizeof w0);
    std::memcpy(&x0, x + j, sizeof x0);
    std::memcpy(&w1, w + j + L, sizeof w1);
    std::memcpy(&x1, x + j + L, sizeof x1);
    const V p0 = widen_half(w0 * x0);
    const V p1 = widen_half(w1 * x1);
    s0 += p0;
    s1 += p1;
    a0 += vabs<double>(p0);
    a1 += vabs<double>(p1);
  }
  double st = 0.0, at = 0.0;
  for (; j < d; ++j) {
    const double p = double(w[j] * x[j]);
    st += p;
    at += std::fabs(p);
  }
  s0 += s1;
  a0 += a1;
  double ss = st, aa = at;
  for (int l = 0; l < L; ++l) {
    ss += s0[l];
    aa += a0[l];
  }
  s = ss;
  a = aa;
}

// scikit-learn's WeightVector.dot: products in T, added in order to a double, rounded to T.
template <class T>
__attribute__((noinline)) double seq_dot(const T* w, const T* x, idx d) {
  double acc = 0.0;
  for (idx j = 0; j < d; ++j) acc += double(T(w[j] * x[j]));
  return double(T(acc));
}

// p = w.x + b as scikit-learn computes it, or a value within *err of it whose sign is
// certain (|p| > *err). *err == 0 means p is scikit-learn's value bit for bit.
template <class T>
inline double margin(const T* w, const T* x, idx d, double b, double* err) {
  double s, a;
  dot_abs(w, x, d, s, a);
  // |s - sequential sum| <= 2 gamma_d a, gamma_d = d u / (1 - d u)
  const double g = 2.02 * double(d) * kU * a;
  if constexpr (sizeof(T) == sizeof(float)) {
    // scikit-learn rounds its double sum to float: when everything within the bound
    // rounds to one float, that float is its dot product exactly.
    const double e = g + 4.0 * kU * std::fabs(s);
    const float lo = float(s - e), hi = float(s + e);
    *err = 0.0;
    return (lo == hi ? double(lo) : seq_dot(w, x, d)) + b;
  } else {
    const double p = s + b;
    const double e = 1.01 * g + 4.0 * kU * std::fabs(p) + 0x1p-1074;
    if (std::fabs(p) > e) {
      *err = e;
      return p;
    }
    *err = 0.0;
    return seq_dot(w, x, d) + b;
  }
}

// scikit-learn's WeightVector.add: w_j += x_j c with the product and the sum in double,
// rounded once to T (for float the double product of two floats is exact). Never fused.
inline void add_scaled(double* w, const double* x, idx d, double c) {
  using V = vec<double>;
  constexpr int L = lanes<double>;
  const V cv = vset<double>(c);
  idx j = 0;
  for (; j + L <= d; j += L) {
    const V prod = vload(x + j) * cv;
    vstore(w + j, vload(w + j) + prod);
  }
  if (j < d) {
    const int r = int(d - j);
    const V prod = vload_n(x + j, r) * cv;
    vstore_n(w + j, vload_n(w + j, r) + prod, r);
  }
}

inline void add_scaled(float* w, const float* x, idx d, float c) {
  constexpr int L = lanes<double>;
  using H = HalfF;
  using V = vec<double>;
  const V cv = vset<double>(double(c));
  idx j = 0;
  for (; j + L <= d; j += L) {
    H wh, xh;
    std::memcpy(&wh, w + j, sizeof wh);
    std::memcpy(&xh, x + j, sizeof xh);
    const V prod = widen_half(xh) * cv;
    const H out = narrow_half(widen_half(wh) + prod);
    std::memcpy(w + j, &out, sizeof out);
  }
  for (; j < d; ++j) w[j] = float(double(w[j]) + double(x[j]) * double(c));
}

template <class T>
inline bool row_finite(const T* x, idx d) {
  for (idx j = 0; j < d; ++j)
    if (!std::isfinite(x[j])) return false;
  return true;
}

template <class T>
inline bool all_finite(const T* w, idx d, double b) {
  if (!std::isfinite(b)) return false;
  for (idx j = 0; j < d; ++j)
    if (!std::isfinite(w[j])) return false;
  return true;
}

// One binary problem of scikit-learn's Perceptron.
template <class T>
struct Problem {
  const T* X;
  idx n, d;
  const double* y;   // (n,) -1/+1, or null: labels
  const double* sw;  // (n,) or null
  double cw_neg, cw_pos;
  double eta0;
  bool fit_intercept;
  const std::int64_t* labels = nullptr;  // (n,): y = +1 where labels == cls, else -1
  std::int64_t cls = 0;

  double target(idx k) const { return y ? y[k] : (labels[k] == cls ? 1.0 : -1.0); }
  const void* target_ptr(idx k) const {
    return y ? static_cast<const void*>(y + k) : static_cast<const void*>(labels + k);
  }
};

struct EpochStats {
  double sumloss = 0.0;  // sum of -y p over mistakes, in visiting order
  double err = 0.0;      // bound on |sumloss - scikit-learn's sumloss| (0: identical)
  idx mistakes = 0;
  bool stopped = false;    // interrupted
  bool bad_input = false;  // met a row of X holding a NaN or an infinity (epoch abandoned)
};

// One epoch over order[0..m). exact_loss: p of every mistake is scikit-learn's value, so
// sumloss is bit-identical (costs a sequential dot product per mistake).
template <class T>
EpochStats run_epoch(const Problem<T>& P, const std::int64_t* order, idx m, T* w, double* b,
                     bool exact_loss, const InterruptCheck* ic) {
  EpochStats st;
  const idx d = P.d;
  const idx row_bytes = d * idx(sizeof(T));
  double bb = *b;
  double sumloss = 0.0, errsum = 0.0;
  idx mistakes = 0;
  for (idx i = 0; i < m; ++i) {
    if (i + kAhead < m) {
      prefetch_row(P.X + order[i + kAhead] * d, row_bytes);
      __builtin_prefetch(P.target_ptr(order[i + kAhead]));
    }
    const idx k = idx(order[i]);
    const T* x = P.X + k * d;
    double err;
    double p = margin(w, x, d, bb, &err);
    // a non-finite x makes p non-finite (so can overflowed weights: the caller checks
    // those after the epoch); the caller reports the row instead of training on it
    if (!(p - p == 0.0) && !row_finite(x, d)) {
      st.bad_input = true;
      break;
    }
    const double yk = P.target(k);
    double z = p * yk;
    if (z <= 0.0) {  // a tie is a mistake; with err > 0 the sign of p is certain
      if (exact_loss && err != 0.0) {
        p = seq_dot(w, x, d) + bb;
        z = p * yk;
        err = 0.0;
      }
      sumloss -= z;
      errsum += err;
      ++mistakes;
      const double sw = P.sw ? P.sw[k] : 1.0;
      const double cw = yk > 0.0 ? P.cw_pos : P.cw_neg;
      // scikit-learn: update = eta y, then update *= class_weight * sample_weight with the
      // weights held in T
      const double u = (P.eta0 * yk) * double(T(T(cw) * T(sw)));
      if (u != 0.0) {
        add_scaled(w, x, d, T(u));
        if (P.fit_intercept) bb += u;
      }
    }
    if (ic && ic->fn && (i % kPollRows) == kPollRows - 1 && ic->fn(ic->ctx)) {
      st.stopped = true;
      break;
    }
  }
  *b = bb;
  st.sumloss = sumloss;
  st.mistakes = mistakes;
  st.err = errsum > 0.0 ? errsum + 2.02 * double(mistakes) * kU * (sumloss + errsum) : 0.0;
  return st;
}

// scikit-learn's SequentialDataset shuffle (xorshift32 Fisher-Yates) of order[0..n).
//
// The swap partners j are drawn kDrawAhead swaps before they are used, and their entries
// prefetched: the draws depend on nothing but the generator, while each swap's random
// access into `order` missed the cache (the epoch before has streamed X through it) and
// the misses ran one after another: 1.4 ms for 100000 rows, 0.6 ms drawn ahead.
inline void shuffle(std::int64_t* order, idx n, std::uint32_t seed) {
  constexpr idx kDrawAhead = 64;
  constexpr idx kRing = 2 * kDrawAhead;  // power of two: the index wraps with a mask
  std::uint32_t s = seed;
  idx ring[kRing];
  const idx swaps = n - 1;  // i = 0 .. n-2
  idx drawn = 0;
  auto draw = [&]() {
    if (s == 0) s = 1;
    s ^= s << 13;
    s ^= s >> 17;
    s ^= s << 5;
    const idx i = drawn++;
    const idx j = i + idx((s % 0x80000000u) % std::uint32_t(n - i));
    __builtin_prefetch(order + j, 1);
    ring[i & (kRing - 1)] = j;
  };
  while (drawn < swaps && drawn < kDrawAhead) draw();
  for (idx i = 0; i < swaps; ++i) {
    if (drawn < swaps) draw();
    const idx j = ring[i & (kRing - 1)];
    const std::int64_t t = order[i];
    order[i] = order[j];
    order[j] = t;
  }
}

// A whole fit of one binary problem with scikit-learn's stopping rule; returns epochs run.
template <class T>
idx fit_problem(const Problem<T>& P, T* w, double* b, std::uint32_t seed, bool shuf, idx max_iter,
                double tol, idx n_iter_no_change, const InterruptCheck* ic, bool* stopped,
                bool* nonfinite, bool* bad_input) {
  const idx n = P.n, d = P.d;
  IsaBuffer<std::int64_t> order{std::size_t(n)};
  iota_order(order, std::size_t(n));
  const bool use_tol = tol > -std::numeric_limits<double>::infinity();
  // snapshots for the rare exact replay (double input only: float losses are exact)
  const bool track = use_tol && sizeof(T) == sizeof(double);
  IsaBuffer<T> w_start(track ? d : 0), w_best(track ? d : 0), w_tmp(track ? d : 0);
  double b_start = 0.0, b_best = 0.0;
  idx e_best = -1;

  auto replay = [&](const std::int64_t* ord, const T* w0, double b0) {
    for (idx j = 0; j < d; ++j) w_tmp[j] = w0[j];  // (empty when not tracking)
    double bt = b0;
    const EpochStats s = run_epoch(P, ord, n, w_tmp.data(), &bt, true, nullptr);
    return s.sumloss / double(n);
  };

  double best = std::numeric_limits<double>::infinity(), best_err = 0.0;
  idx no_imp = 0, epochs = 0, since_poll = 0;
  for (idx e = 0; e < max_iter; ++e) {
    if (shuf) shuffle(order.data(), n, seed);
    if (track) {
      std::memcpy(w_start.data(), w, sizeof(T) * d);
      b_start = *b;
    }
    const EpochStats st = run_epoch(P, order.data(), n, w, b, false, ic);
    ++epochs;
    if (st.bad_input) {
      *bad_input = true;
      break;
    }
    if (st.stopped) {
      *stopped = true;
      break;
    }
    if (!all_finite(w, d, *b)) {
      *nonfinite = true;
      break;
    }
    since_poll += n;
    if (since_poll >= kPollRows && ic && ic->fn) {
      since_poll = 0;
      if (ic->fn(ic->ctx)) {
        *stopped = true;
        break;
      }
    }
    if (!use_tol) continue;
    double obj = st.sumloss / double(n);
    double obj_err = st.err > 0.0 ? 1.01 * st.err / double(n) + 4.0 * kU * obj : 0.0;
    auto ambiguous = [&]() {
      if (obj_err == 0.0 && best_err == 0.0) return false;
      const double thr = best - tol;
      const double thr_err = best_err > 0.0 ? best_err + 4.0 * kU * std::fabs(thr) : 0.0;
      return std::fabs(obj - thr) <= obj_err + thr_err ||
             std::fabs(obj - best) <= obj_err + best_err;
    };
    if (ambiguous()) {
      obj = replay(order.data(), w_start.data(), b_start);
      obj_err = 0.0;
      if (ambiguous()) {
        IsaBuffer<std::int64_t> ord{std::size_t(n)};
        iota_order(ord, std::size_t(n));
        if (shuf)
          for (idx r = 0; r <= e_best; ++r) shuffle(ord.data(), n, seed);
        best = replay(ord.data(), w_best.data(), b_best);
        best_err = 0.0;
      }
    }
    no_imp = obj > best - tol ? no_imp + 1 : 0;
    if (obj < best) {
      best = obj;
      best_err = obj_err;
      if (track) {
        std::memcpy(w_best.data(), w_start.data(), sizeof(T) * d);
        b_best = b_start;
        e_best = e;
      }
    }
    if (no_imp >= n_iter_no_change) break;
  }
  return epochs;
}

}  // namespace perc

// ---- kernel entry points (see dispatch.hpp: PerceptronArgs) -------------------------

inline void xorshift_shuffle(std::int64_t* order, idx n, std::uint32_t seed) {
  perc::shuffle(order, n, seed);
}

// ---- Rosenblatt's rule --------------------------------------------------------------

namespace perc {

// The rule keeps W transposed and padded, Wt (k, dp) with dp = d rounded up to 8: one row
// of features per output, so a mistake updates only the rows of the wrong outputs (one or
// two of ten for one-hot targets) with contiguous vectors.
//
// A score is a dot product of x with a row of Wt over "chunks" of 8 features: 8 partial
// sums s_0..s_7 (s_r over the features j = r mod 8, in increasing j), folded as
// ((s0 + s4) + (s2 + s6)) + ((s1 + s5) + (s3 + s7)). The order depends on no vector width,
// so every ISA (and the Numba twin) computes the same bits. A chunk is NPC native vectors
// CV of 8 / NPC lanes (AVX-512 float uses 8-lane halves).
template <class T>
struct Chunk {
  static constexpr int NL = lanes<T> < 8 ? lanes<T> : 8;  // lanes of CV
  typedef T CV __attribute__((vector_size(NL * sizeof(T))));
  static constexpr int NPC = 8 / NL;
  // most outputs scored together: 12 accumulators (of 16 AVX2 / SSE registers)
  static constexpr int G = 12 / NPC;
};

template <class T, int N>
struct SmallVec;
template <class T>
struct SmallVec<T, 4> {
  typedef T V __attribute__((vector_size(4 * sizeof(T))));
};
template <class T>
struct SmallVec<T, 2> {
  typedef T V __attribute__((vector_size(2 * sizeof(T))));
};

template <class V>
inline V cload(const void* p) {
  V r;
  std::memcpy(&r, p, sizeof r);
  return r;
}
template <class V>
inline void cstore(void* p, V v) {
  std::memcpy(p, &v, sizeof v);
}

// The canonical fold of four outputs' partial sums (NPC vectors of CV each), as one
// vector of their four scores: t_r = s_r + s_r+4, then u_0 = t_0 + t_2 and u_1 = t_1 + t_3,
// then u_0 + u_1 - the order of the comment above Chunk, computed for four outputs at
// once by shuffles instead of one horizontal sum each.
template <class T>
inline typename SmallVec<T, 4>::V fold4(const typename Chunk<T>::CV* a0,
                                        const typename Chunk<T>::CV* a1,
                                        const typename Chunk<T>::CV* a2,
                                        const typename Chunk<T>::CV* a3) {
  using C = Chunk<T>;
  using V4 = typename SmallVec<T, 4>::V;
  auto halves = [](const typename C::CV* a) -> V4 {
    if constexpr (C::NPC == 1)
      return __builtin_shufflevector(a[0], a[0], 0, 1, 2, 3) +
             __builtin_shufflevector(a[0], a[0], 4, 5, 6, 7);
    else if constexpr (C::NPC == 2)
      return a[0] + a[1];
    else  // two lanes per vector: (s0 s1) (s2 s3) (s4 s5) (s6 s7)
      return __builtin_shufflevector(a[0] + a[2], a[1] + a[3], 0, 1, 2, 3);
  };
  const V4 t0 = halves(a0), t1 = halves(a1), t2 = halves(a2), t3 = halves(a3);
  const V4 q01 = __builtin_shufflevector(t0, t1, 0, 1, 4, 5) +
                 __builtin_shufflevector(t0, t1, 2, 3, 6, 7);  // u0 u1 of outputs 0, 1
  const V4 q23 =
      __builtin_shufflevector(t2, t3, 0, 1, 4, 5) + __builtin_shufflevector(t2, t3, 2, 3, 6, 7);
  return __builtin_shufflevector(q01, q23, 0, 2, 4, 6) +
         __builtin_shufflevector(q01, q23, 1, 3, 5, 7);
}

// r[i] = fold4 of accumulators 4i .. 4i+3 (past G: the last one again), for i in Is -
// indices fixed at compile time, so that the accumulators stay in registers (a run-time
// index kept them in memory: each was stored and loaded back before its fold).
template <class T, int G, int... Is>
__attribute__((always_inline)) inline void fold_groups(
    const typename Chunk<T>::CV (*acc)[Chunk<T>::NPC], typename SmallVec<T, 4>::V* r,
    std::integer_sequence<int, Is...>) {
  constexpr auto c = [](int g) { return g < G ? g : G - 1; };
  ((r[Is] = fold4<T>(acc[c(4 * Is)], acc[c(4 * Is + 1)], acc[c(4 * Is + 2)], acc[c(4 * Is + 3)])),
   ...);
}

// Outputs per store unit of the scores: the step reads them back as vectors of lanes<T>,
// and a load that spans two stores waits for both to reach the cache (no store
// forwarding, some 20 cycles a row), so the scores are stored as whole vectors.
template <class T>
constexpr int kScoreUnit = lanes<T> > 4 ? lanes<T> : 4;

// z[0..G) = x . Wt[g] for G rows of Wt (stride dp) over nc chunks of x, a row zero-padded
// to 8 nc (<= dp); z[G..) up to the next multiple of kScoreUnit is overwritten. Not inlined:
// inside the epoch loop GCC keeps the step's constants in vector registers and spills
// accumulators.
template <class T, int G>
__attribute__((noinline)) void scores_group(const T* x, const T* Wt, idx nc, idx dp, T* z) {
  using C = Chunk<T>;
  using CV = typename C::CV;
  using V4 = typename SmallVec<T, 4>::V;
  constexpr int NP = C::NPC, NL = C::NL;
  // The first chunk's products start the sums (nc >= 1): zeroing the accumulators first
  // made GCC clear them in memory with a slow `rep stos` on every call. 0 + p == p, so
  // the sums are the same.
  CV acc[G][NP];
  {
    CV xv[NP];
    for (int p = 0; p < NP; ++p) xv[p] = cload<CV>(x + p * NL);
    for (int g = 0; g < G; ++g)
      for (int p = 0; p < NP; ++p) acc[g][p] = xv[p] * cload<CV>(Wt + g * dp + p * NL);
  }
#pragma GCC unroll 2
  for (idx q = 1; q < nc; ++q) {
    CV xv[NP];
    for (int p = 0; p < NP; ++p) xv[p] = cload<CV>(x + 8 * q + p * NL);
    for (int g = 0; g < G; ++g)
      for (int p = 0; p < NP; ++p) acc[g][p] += xv[p] * cload<CV>(Wt + g * dp + 8 * q + p * NL);
  }
  // four scores per fold (outputs past G repeat the last one), stored in whole units
  constexpr int NQ = (G + 3) / 4, U = kScoreUnit<T>, NU = (4 * NQ + U - 1) / U;
  V4 r[NU * U / 4];
  fold_groups<T, G>(acc, r, std::make_integer_sequence<int, NQ>{});
  for (int i = NQ; i < NU * U / 4; ++i) r[i] = r[NQ - 1];
  for (int u = 0; u < NU; ++u) {
    if constexpr (U == 4) {
      cstore(z + 4 * u, r[u]);
    } else if constexpr (U == 8) {
      cstore(z + 8 * u, __builtin_shufflevector(r[2 * u], r[2 * u + 1], 0, 1, 2, 3, 4, 5, 6, 7));
    } else {
      typedef T V8 __attribute__((vector_size(8 * sizeof(T))));
      const V8 lo = __builtin_shufflevector(r[4 * u], r[4 * u + 1], 0, 1, 2, 3, 4, 5, 6, 7);
      const V8 hi = __builtin_shufflevector(r[4 * u + 2], r[4 * u + 3], 0, 1, 2, 3, 4, 5, 6, 7);
      cstore(z + 16 * u,
             __builtin_shufflevector(lo, hi, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15));
    }
  }
}

// scores_group<T, n> for a run-time n in [1, G], through a table (a chain of tests cost
// more than the call)
template <class T, int... Gs>
inline void scores_n(idx n, const T* x, const T* Wt, idx nc, idx dp, T* z,
                     std::integer_sequence<int, Gs...>) {
  using Fn = void (*)(const T*, const T*, idx, idx, T*);
  static constexpr Fn table[] = {&scores_group<T, Gs + 1>...};
  table[n - 1](x, Wt, nc, dp, z);
}

// All k scores, in as few groups as the registers allow. Every group but the last is a
// whole number of score units (when G allows), so that no vector of scores spans two
// groups' stores. z has room for the last group's padding.
template <class T>
inline void scores(const T* x, const T* Wt, idx k, idx nc, idx dp, T* z) {
  constexpr int G = Chunk<T>::G, U = kScoreUnit<T>;
  constexpr int GU = G >= U ? G / U * U : G;
  idx c = 0;
  for (; k - c > G; c += GU) scores_group<T, GU>(x, Wt + c * dp, nc, dp, z + c);
  scores_n<T>(k - c, x, Wt + c * dp, nc, dp, z + c, std::make_integer_sequence<int, G>{});
}

// w[0..8 nc) += g x (x padded as in scores_group; the product rounded, then the sum: no
// FMA).
template <class T>
inline void update_row(T* w, const T* x, idx nc, T g) {
  using CV = typename Chunk<T>::CV;
  constexpr int NL = Chunk<T>::NL;
  const CV gv = CV{} + g;
  for (idx j = 0; j < 8 * nc; j += NL) cstore(w + j, cload<CV>(w + j) + cload<CV>(x + j) * gv);
}

// Bit l set when lane l of the comparison mask m is set (a movemask).
template <class T>
inline unsigned lane_bits(ivec<T> m) {
#if defined(__AVX512F__)
  if constexpr (sizeof(T) == 8)
    return _mm512_cmpneq_epi64_mask((__m512i)m, _mm512_setzero_si512());
  else
    return _mm512_cmpneq_epi32_mask((__m512i)m, _mm512_setzero_si512());
#elif defined(__AVX2__)
  if constexpr (sizeof(T) == 8)
    return unsigned(_mm256_movemask_pd((__m256d)m));
  else
    return unsigned(_mm256_movemask_ps((__m256)m));
#elif defined(__SSE2__)
  if constexpr (sizeof(T) == 8)
    return unsigned(_mm_movemask_pd((__m128d)m));
  else
    return unsigned(_mm_movemask_ps((__m128)m));
#else
  unsigned bits = 0;
  for (int l = 0; l < lanes<T>; ++l) bits |= unsigned(m[l] != 0) << l;
  return bits;
#endif
}

}  // namespace perc

namespace perc {

// The one-pass rule copies the rows it visits, kLead positions ahead, into a small ring of
// contiguous rows zero-padded to dp features (the dot products need no tail), with the
// source rows prefetched kAhead positions before their copy: random rows of X come
// from DRAM, about 200 ns away on the reference machine. With several threads each takes
// its share of the outputs through all the rows with a ring of its own; they do not wait
// for each other (sharing the fetching with a barrier per block of rows was no faster on a
// quiet machine and up to twice as slow on a busy one, where any stall of one thread
// stopped all).
constexpr idx kRing = 32;  // rows in the ring (13 KiB of float rows of 100 features)
constexpr idx kLead = 16;  // positions between a row's copy and its use

template <class T>
struct OnePass {
  const T* X;
  const T* Y;                  // (n, k) targets, or null
  const std::int64_t* labels;  // (n,) labels, or null
  const std::int64_t* order;   // (m,) rows in visiting order
  idx m, d, k, nc, dp;
  T* Wt;  // (k, dp): the weights, transposed and padded
  T* bt;  // (k,)
  T eta;
  int step;
};

// One thread's ring: position q in slot q mod kRing.
template <class T>
struct Ring {
  IsaBuffer<T> rows, ys;         // (kRing, dp); (kRing, k) when Y is given
  IsaBuffer<std::int64_t> labs;  // (kRing,) when labels are given
  Ring(idx dp, idx k, bool labels)
      : rows(std::size_t(kRing * dp)),
        ys(std::size_t(labels ? 0 : kRing * k)),
        labs(std::size_t(labels ? kRing : 0)) {}
};

template <class T>
__attribute__((always_inline)) inline void prefetch_source(const OnePass<T>& P, idx q) {
  const idx r = idx(P.order[q]);
  prefetch_row(P.X + r * P.d, P.d * idx(sizeof(T)));
  if (P.labels)
    __builtin_prefetch(P.labels + r);
  else
    prefetch_row(P.Y + r * P.k, P.k * idx(sizeof(T)));
}

template <class T>
inline void gather(const OnePass<T>& P, Ring<T>& R, idx q) {
  using CV = typename Chunk<T>::CV;
  constexpr int NL = Chunk<T>::NL;
  const idx r = idx(P.order[q]), s = q % kRing, d = P.d;
  // an inline copy: libc's memcpy costs a call and a size dispatch per row
  const T* src = P.X + r * d;
  T* dst = R.rows.data() + s * P.dp;
  idx j = 0;
  for (; j + NL <= d; j += NL) cstore(dst + j, cload<CV>(src + j));
  if (j < d) {
    if (d >= NL)  // the last NL features, overlapping the ones copied already
      cstore(dst + d - NL, cload<CV>(src + d - NL));
    else
      for (; j < d; ++j) dst[j] = src[j];
  }
  if (P.labels)
    R.labs[s] = P.labels[r];
  else
    std::memcpy(R.ys.data() + s * P.k, P.Y + r * P.k, std::size_t(P.k) * sizeof(T));
}

// Rosenblatt's rule for the outputs [c0, c1): their rows of P.Wt and entries of P.bt
// updated in place. flags[q] (when given) records whether one of these outputs was wrong
// at position q. Returns the positions with a wrong output among these, or -1 at a visited
// row that is not finite.
template <class T>
idx rosenblatt_part(const OnePass<T>& P, idx c0, idx c1, unsigned char* flags) {
  using V = vec<T>;
  using I = ivec<T>;
  using Int = typename VecTraits<T>::Int;
  constexpr int L = lanes<T>;
  const idx m = P.m, kc = c1 - c0, dp = P.dp, nc = P.nc;
  const idx nv = (kc + L - 1) / L, kp = nv * L;  // outputs padded for the vector step
  T* Wc = P.Wt + c0 * dp;
  IsaBuffer<T> bp{std::size_t(kp)}, z{std::size_t(kp + 2 * kScoreUnit<T>)}, g{std::size_t(kp)};
  for (idx c = 0; c < kc; ++c) bp[c] = P.bt[c0 + c];
  const V teta = vset<T>(P.eta), one = vset<T>(T(1));
  const bool heaviside = P.step == codes::HEAVISIDE;
  const V lo = heaviside ? V{} : vset<T>(T(-1));
  I lane;  // output index (from c0) of each lane in the first vector
  for (int l = 0; l < L; ++l) lane[l] = Int(l);
  const idx ktail = kc - (nv - 1) * L;  // outputs in the last vector
  I valid;
  for (int l = 0; l < L; ++l) valid[l] = l < ktail ? -1 : 0;

  Ring<T> R(dp, P.k, P.labels != nullptr);
  const idx lead = m < kLead ? m : kLead;
  for (idx q = 0; q < lead + kAhead && q < m; ++q) prefetch_source(P, q);
  for (idx q = 0; q < lead; ++q) gather(P, R, q);

  idx mistakes = 0;
  for (idx q = 0; q < m; ++q) {
    if (q + kLead + kAhead < m) prefetch_source(P, q + kLead + kAhead);
    if (q + kLead < m) gather(P, R, q + kLead);
    const idx s = q % kRing;
    const T* x = R.rows.data() + s * dp;
    const T* y = P.labels ? nullptr : R.ys.data() + s * P.k + c0;
    const std::int64_t lab = P.labels ? R.labs[s] - c0 : -1;
    const Int cls = lab >= 0 && lab < kc ? Int(lab) : Int(-1);
    scores(x, Wc, kc, nc, dp, z.data());
    // step, error and step-size-scaled error, one vector of outputs at a time; the
    // weights of the wrong outputs are updated at once (every score is computed already)
    I bad = {};
    bool wrong = false;
    for (idx v = 0; v < nv; ++v) {
      const V zc = vload(z.data() + v * L) + vload(bp.data() + v * L);
      bad |= (zc - zc) != V{};  // NaN or infinity
      const V yhat = heaviside ? vselect<T>(zc >= V{}, one, V{})
                               : vselect<T>(zc > V{}, one, V{}) - vselect<T>(zc < V{}, one, V{});
      V yv;
      if (!y)
        yv = vselect<T>(lane + Int(v * L) == cls, one, lo);
      else if (v == nv - 1 && ktail < L)
        yv = vload_n(y + v * L, int(ktail));
      else
        yv = vload(y + v * L);
      V e = yv - yhat;
      if (v == nv - 1) e = vselect<T>(valid, e, V{});
      const V gv = teta * e;
      vstore(g.data() + v * L, gv);
      unsigned bits = lane_bits<T>(e != V{});
      wrong |= bits != 0;
      for (; bits; bits &= bits - 1) {
        const int l = __builtin_ctz(bits);
        update_row(Wc + (v * L + l) * dp, x, nc, gv[l]);
      }
    }
    // a non-finite x makes some score non-finite; so can overflowed weights (the caller
    // checks those), hence the look at the row itself
    if (lane_bits<T>(bad) && !row_finite(x, P.d)) return -1;
    if (flags) flags[q] = wrong;
    if (!wrong) continue;
    ++mistakes;
    for (idx v = 0; v < nv; ++v)
      vstore(bp.data() + v * L, vload(bp.data() + v * L) + vload(g.data() + v * L));
  }
  for (idx c = 0; c < kc; ++c) P.bt[c0 + c] = bp[c];
  return mistakes;
}

}  // namespace perc

// Rosenblatt's rule, all outputs in one pass over order[0..m): yhat = step(x W + b);
// W += eta x^T (y - yhat); b += eta (y - yhat). W is (d, k) row-major. The targets are
// the rows of Y (n, k), or, when labels is given (Y null), one-hot: output c of row r has
// target 1 when labels[r] == c, else 0 (heaviside) or -1 (sign) - no second (n, k) array
// to fetch at random rows. Returns the rows with at least one wrong output, or -1 when a
// visited row of X holds a non-finite value (W and b are then left as they were: the
// epoch runs on a transposed copy, written back at the end).
//
// The rows are read once, through a small ring (see perc::kRing); the scores are dot
// products from L1 (see perc::Chunk for the summation order); a mistake updates only the
// weights of the wrong outputs (adding x * 0 to the others would change nothing). An
// output's weights depend on its own score and target only, so with several threads each
// takes a share of the outputs through all the rows; the result does not depend on the
// thread count.
template <class T>
idx perceptron_epoch(const T* X, const T* Y, const std::int64_t* labels, const std::int64_t* order,
                     idx m, idx d, idx k, T* W, T* b, double eta, int step, int n_threads) {
  if (k == 0) {  // no outputs, no mistakes; no score shows a non-finite row, so look
    for (idx q = 0; q < m; ++q)
      if (!perc::row_finite(X + idx(order[q]) * d, d)) return -1;
    return 0;
  }
  // chunks of 8 features, zero-padded; each row of Wt (and of the rings) starts a cache
  // line: with several threads the outputs of one thread would otherwise share a line with
  // the next thread's (float rows of 100 features are 6.5 lines), and every update of
  // either would move that line between the cores
  constexpr idx kLine = idx(64 / sizeof(T));
  // (no features: one chunk of zeros, so that the scores are the intercepts)
  const idx nc = d > 0 ? (d + 7) / 8 : 1, dp = (8 * nc + kLine - 1) / kLine * kLine;
  IsaBuffer<T> Wt{std::size_t(k * dp)}, bt{std::size_t(k)};
  for (idx j = 0; j < d; ++j)
    for (idx c = 0; c < k; ++c) Wt[c * dp + j] = W[j * k + c];
  for (idx c = 0; c < k; ++c) bt[c] = b[c];
  // threads split the outputs when there are several and enough work to repay a job
  idx nt = resolve_threads(n_threads);
  if (nt > k) nt = k;
  if (double(m) * double(d) * double(k) < 4e6) nt = 1;
  const perc::OnePass<T> P{X,  Y,  labels,    order,     m,      d,   k,
                           nc, dp, Wt.data(), bt.data(), T(eta), step};
  idx result = 0;
  if (nt <= 1) {
    result = perc::rosenblatt_part(P, 0, k, nullptr);
  } else {
    IsaBuffer<unsigned char> flags{std::size_t(nt * m)};
    IsaBuffer<idx> res{std::size_t(nt)};
    parallel_for(long(nt), int(nt), [&](long p) {
      res[p] = perc::rosenblatt_part(P, k * p / nt, k * (p + 1) / nt, flags.data() + p * m);
    });
    for (idx p = 0; p < nt; ++p)
      if (res[p] < 0) result = -1;
    if (result == 0)
      for (idx i = 0; i < m; ++i) {
        unsigned char any = 0;
        for (idx p = 0; p < nt; ++p) any |= flags[p * m + i];
        result += any;
      }
  }
  if (result < 0) return result;
  for (idx j = 0; j < d; ++j)
    for (idx c = 0; c < k; ++c) W[j * k + c] = Wt[c * dp + j];
  for (idx c = 0; c < k; ++c) b[c] = bt[c];
  return result;
}

// One epoch of scikit-learn's update for one binary problem (a.K == 1: a.Y is y, a.W is
// w, a.B is b). Returns the epoch's summed loss (bit-identical to scikit-learn's);
// *mistakes receives the number of mistakes, or -1 when a visited row of X holds a NaN or
// an infinity (the epoch stops there).
template <class T>
double perceptron_epoch_sklearn(const PerceptronArgs<T>& a, const std::int64_t* order, idx m,
                                idx* mistakes) {
  const perc::Problem<T> P{a.X,
                           a.n,
                           a.d,
                           a.Y,
                           a.sample_weight,
                           a.class_weight[0],
                           a.class_weight[1],
                           a.eta0,
                           a.fit_intercept};
  const perc::EpochStats st = perc::run_epoch(P, order, m, a.W, a.B, true, nullptr);
  *mistakes = st.bad_input ? -1 : st.mistakes;
  return st.sumloss;
}

// scikit-learn's whole fit of a.K one-vs-rest problems, split over the thread pool (one
// task per class; a class's result does not depend on the thread that runs it). The
// targets of problem c are row c of a.Y, or +1 where a.labels == c and -1 elsewhere. A class
// that meets a row of X holding a NaN or an infinity stops there with n_iter -1.
template <class T>
void perceptron_fit_sklearn(const PerceptronArgs<T>& a, bool* interrupted, bool* nonfinite) {
  const idx K = a.K;
  int nt = resolve_threads(a.n_threads);
  if (idx(nt) > K) nt = int(K);
  IsaBuffer<char> stop{std::size_t(K)}, bad{std::size_t(K)};
  // The interrupt check acts on the calling thread only (see module.cpp); the idle hook
  // keeps it running while the caller waits for the last classes of the workers.
  const IdleFn poll = [](void* ic) {
    const auto* check = static_cast<const InterruptCheck*>(ic);
    check->fn(check->ctx);
  };
  const bool polled = a.interrupt.fn != nullptr;
  auto fit_class = [&](long c) {
    const perc::Problem<T> P{a.X,
                             a.n,
                             a.d,
                             a.labels ? nullptr : a.Y + c * a.n,
                             a.sample_weight,
                             a.class_weight[2 * c],
                             a.class_weight[2 * c + 1],
                             a.eta0,
                             a.fit_intercept,
                             a.labels,
                             std::int64_t(c)};
    bool s = false, nf = false, bad_x = false;
    // The class trains a private, cache-line aligned copy of its weights and intercept:
    // in place, neighbouring classes on other threads would share the lines at the ends of
    // their rows of W and all of B, and every mistake would move those lines between cores
    IsaBuffer<T> w{std::size_t(a.d)};
    for (idx j = 0; j < a.d; ++j) w[j] = a.W[c * a.d + j];
    double b = a.B[c];
    a.n_iter[c] = perc::fit_problem(
        P, w.data(), &b, std::uint32_t(std::uint64_t(a.seeds[c]) & 0xFFFFFFFFu), a.shuffle,
        a.max_iter, a.tol, a.n_iter_no_change, &a.interrupt, &s, &nf, &bad_x);
    for (idx j = 0; j < a.d; ++j) a.W[c * a.d + j] = w[j];
    a.B[c] = b;
    if (bad_x) a.n_iter[c] = -1;
    stop[c] = s;
    bad[c] = nf;
  };
  parallel_for(long(K), nt, fit_class, polled ? poll : nullptr,
               polled ? const_cast<InterruptCheck*>(&a.interrupt) : nullptr);
  *interrupted = false;
  *nonfinite = false;
  for (idx c = 0; c < K; ++c) {
    *interrupted |= stop[c] != 0;
    *nonfinite |= bad[c] != 0;
  }
}

}  // namespace ROSENBLATT_ISA_NS
}  // namespace rosenblatt
