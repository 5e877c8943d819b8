// In-place optimizer steps over flat vectors. The arithmetic follows the NumPy reference
// operation by operation in the parameter dtype (no FMA: the file is built with
// -ffp-contract=off), so results match it to the last bit where sqrt and division are
// correctly rounded, as they are here - except for subnormal numbers, which the steps
// flush to zero (see FlushSubnormals).
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>
#include <optional>
#include <type_traits>

#include "rosenblatt/codes.hpp"
#include "rosenblatt/simd.hpp"
#include "rosenblatt/threads.hpp"

namespace rosenblatt {
namespace ROSENBLATT_ISA_NS {

// Subnormal inputs and results count as zero while one of these exists on a thread (x86:
// MXCSR's flush-to-zero and denormals-are-zero; aarch64: FPCR.FZ), as XLA runs its CPU
// kernels. The optimizer state is where they arise: Adam's first moment of a weight whose
// gradient stays zero (a dead ReLU unit, a constant input feature) shrinks by beta1 every
// step, into float32's subnormal range after some 800 steps, and a product with a
// subnormal result costs a microcode assist: an Adam step over such values took 1.5-2.2x
// as long (Zen 5), and at batch 32 the step of a 784-300-100-10 net took 86-106 us instead
// of 48 (one thread; 16% of the epoch). What the flush changes is below 1.2e-38 (float32)
// or 2.2e-308 (float64): a moment that small moves a weight by less than lr * 1e-30. The
// previous mode is restored on destruction. The mode is written only when it changes:
// a write of MXCSR is microcoded and orders the floating-point operations around it, and
// a step that set it for each of its spans (two per layer) spent half of its time there
// on a playground-sized net (105 values; 11% of the epoch). A step that stays on the
// calling thread sets it once there, for all of its spans; a threaded step sets it in each
// span (a pool thread started inside a flushing region would inherit the mode, and keep
// it for every later kernel - the first threaded step of a process starts the pool).
class FlushSubnormals {
 public:
#if defined(__SSE2__)
  FlushSubnormals() : saved_(_mm_getcsr()) {
    if ((saved_ & kFlush) != kFlush) _mm_setcsr(saved_ | kFlush);
  }
  ~FlushSubnormals() {
    if ((saved_ & kFlush) != kFlush) _mm_setcsr(saved_);
  }

 private:
  static constexpr unsigned kFlush = 0x8040u;  // FTZ | DAZ
  unsigned saved_;
#elif defined(__aarch64__)
  FlushSubnormals() {
    asm volatile("mrs %0, fpcr" : "=r"(saved_));
    if (!(saved_ & kFz)) {
      const std::uint64_t fz = saved_ | kFz;
      asm volatile("msr fpcr, %0" : : "r"(fz));
    }
  }
  ~FlushSubnormals() {
    if (!(saved_ & kFz)) asm volatile("msr fpcr, %0" : : "r"(saved_));
  }

 private:
  static constexpr std::uint64_t kFz = std::uint64_t(1) << 24;
  std::uint64_t saved_;
#else
  FlushSubnormals() {}
#endif
  FlushSubnormals(const FlushSubnormals&) = delete;
  FlushSubnormals& operator=(const FlushSubnormals&) = delete;
};

// Values per task when a step is split over threads: 32768 (a multiple of every vector
// length), more for vectors of over 256 such chunks so that the per-chunk sums of
// WeightSums fit on the stack. Steps over fewer than kStepThreadsMin values stay on the
// calling thread.
constexpr int kMaxStepChunks = 256;
constexpr idx kStepThreadsMin = idx(1) << 16;
inline bool step_threaded(idx len, int nt) { return nt > 1 && len >= kStepThreadsMin; }
inline idx step_chunk(idx len) {
  const idx base = idx(1) << 15;
  const idx even = (len + kMaxStepChunks - 1) / kMaxStepChunks;
  return even <= base ? base : (even + 63) / 64 * 64;
}

// Sums of w^2 and |w| over the weights (not the biases) that a step has just written.
// train_epoch needs them for the next batch's penalty terms (alpha, l1): gathered while the
// new values are in registers, they spare a single-threaded pass over every weight per
// batch (4-6% of a batch-32 epoch of a 784-300-100-10 network). Each chunk of
// step_chunk(len) values has its own accumulators and the chunks add up in order, so the
// sums do not depend on the thread count.
//
// l2: the L2 penalty's gradient l2 w, added to the gradient of every weight (not the biases)
// by the step itself when the caller has left it out of the gradients (train_epoch). The
// step reads w anyway; the GEMM epilogue that would otherwise add it read all weights once
// more, a strided walk that cost 20 us of a 32-row batch of a 784-300-100-10 net on one
// thread. g + l2 w is computed as that epilogue does (the product rounded, then the sum),
// so the bits do not change.
struct WeightSums {
  const idx* seg = nullptr;  // the weights: segments [seg[2 s], seg[2 s + 1]), ascending
  int nseg = 0;
  bool abs = false;                    // gather sum |w| too (sum w^2 always)
  double l2 = 0.0;                     // see above
  double sum_sq = 0.0, sum_abs = 0.0;  // the results
};

// Accumulates w^2 (and |w| when kAbs) of vectors of T in double lanes, one chain per
// vector of doubles. w^2 is added by FMA: unlike the steps themselves, these sums only feed
// the reported loss and are held to the reference by tolerance, not bit for bit.
template <class T, bool kAbs>
struct WidenedSums {
  static constexpr int P = kWideParts<T>;
  vec<double> sq[P] = {}, ab[P] = {};
  double tail_sq = 0.0, tail_ab = 0.0;  // the lanes of partial vectors

  void add(vec<T> v, int c) {
    if (c == lanes<T>) {
      vec<double> d[P];
      vwiden<T>(v, d);
#pragma GCC unroll 2
      for (int u = 0; u < P; ++u) {
        sq[u] = vfma(d[u], d[u], sq[u]);
        if (kAbs) ab[u] += vabs<double>(d[u]);
      }
      return;
    }
    const T* x = reinterpret_cast<const T*>(&v);
    for (int l = 0; l < c; ++l) {
      const double w = double(x[l]);
      tail_sq += w * w;
      if (kAbs) tail_ab += std::fabs(w);
    }
  }
  static double total(const vec<double>* a, double tail) {
    double s = 0.0;
    for (int u = 0; u < P; ++u)
      for (int l = 0; l < lanes<double>; ++l) s += a[u][l];
    return s + tail;
  }
};

// Runs span(i0, i1, acc) over [0, len) in chunks of step_chunk(len) values, split over
// threads from kStepThreadsMin values on. Without sums, acc is nullptr throughout. With
// sums, each chunk has its own WidenedSums, passed as acc over the weight segments (nullptr
// over the rest), and the chunks' sums add up in order into *sums.
//
// With threads, thread p takes the p-th of nt runs of consecutive chunks (parallel_parts):
// train_epoch's weight gradients are computed in the same parts (gemm.hpp: products of
// A^T), so the step finds most of them in its own core's caches.
template <class T, class Span>
void over_chunks(idx len, int nt, WeightSums* sums, const Span& span) {
  const idx chunk = step_chunk(len);
  const idx nch = (len + chunk - 1) / chunk;
  const bool threaded = step_threaded(len, nt);
  const int parts = int(tmin<idx>(nt, nch));
  auto by_parts = [&](auto&& run_chunk) {
    parallel_parts(parts, parts, [&](int p) {
      for (idx t = nch * p / parts; t < nch * (p + 1) / parts; ++t) run_chunk(long(t));
    });
  };
  if (!sums) {
    auto run_chunk = [&](long t) { span(t * chunk, tmin<idx>(len, (t + 1) * chunk), nullptr); };
    if (!threaded) {
      span(0, len, nullptr);
    } else {
      by_parts(run_chunk);
    }
    return;
  }
  double part_sq[kMaxStepChunks], part_abs[kMaxStepChunks];
  auto run = [&](long t, auto abs_flag) {
    const idx i0 = t * chunk, i1 = tmin<idx>(len, i0 + chunk);
    WidenedSums<T, decltype(abs_flag)::value> acc;
    int s = 0;
    while (s < sums->nseg && sums->seg[2 * s + 1] <= i0) ++s;
    for (idx i = i0; i < i1;) {
      if (s < sums->nseg && i >= sums->seg[2 * s]) {  // in weight segment s
        const idx e = tmin<idx>(i1, sums->seg[2 * s + 1]);
        span(i, e, &acc);
        if (e == sums->seg[2 * s + 1]) ++s;
        i = e;
      } else {  // biases (or anything else) up to the next weight segment
        const idx e = s < sums->nseg ? tmin<idx>(i1, sums->seg[2 * s]) : i1;
        span(i, e, nullptr);
        i = e;
      }
    }
    part_sq[t] = acc.total(acc.sq, acc.tail_sq);
    part_abs[t] = acc.total(acc.ab, acc.tail_ab);
  };
  // |w| only when asked for (l1 is rare; alpha, scikit-learn's L2, is on by default)
  auto run_chunk = [&](long t) {
    if (sums->abs)
      run(t, std::true_type{});
    else
      run(t, std::false_type{});
  };
  if (!threaded) {
    for (idx t = 0; t < nch; ++t) run_chunk(long(t));
  } else {
    by_parts(run_chunk);
  }
  sums->sum_sq = sums->sum_abs = 0.0;
  for (idx t = 0; t < nch; ++t) {
    sums->sum_sq += part_sq[t];
    sums->sum_abs += part_abs[t];
  }
}

// Runs rule(i, c, l2) over [0, len) a vector at a time (c lanes, the last vector possibly
// partial) and stores the new parameters it returns; with sums, also gathers their sums
// over the weight segments, where l2 is sums->l2 (elsewhere 0).
template <class T, class Rule>
void apply_step(T* p, idx len, int nt, WeightSums* sums, const Rule& rule) {
  constexpr int L = lanes<T>;
  // set once on the calling thread when it runs every span (see FlushSubnormals)
  std::optional<FlushSubnormals> flush;
  if (!step_threaded(len, nt)) flush.emplace();
  const T l2w = sums ? T(sums->l2) : T(0);
  // (acc is a template argument so that the loop without sums is the plain one)
  over_chunks<T>(len, nt, sums, [&](idx i0, idx i1, auto acc) {
    constexpr bool kSum = !std::is_same<decltype(acc), std::nullptr_t>::value;
    // Local copies: the stores through p could alias the caller's objects as far as the
    // compiler knows, which made it reload every constant and pointer per vector (1.3x).
    const FlushSubnormals span_flush;  // (already set when the step is not threaded)
    const Rule r0 = rule;
    const T l2 = kSum ? l2w : T(0);
    auto r = [&](idx i, int c) { return r0(i, c, l2); };
    typename std::remove_pointer<decltype(acc)>::type a{};
    if constexpr (kSum) a = *acc;
    idx i = i0;
    // A partial vector first, up to p's next vector-size boundary: numpy's large arrays
    // sit 16 bytes past one, and with 64-byte vectors every load and store of a misaligned
    // stream then spans two cache lines. Aligning p aligns the other streams too when they
    // share its offset, as numpy's allocations do: Adam over 266610 float32 values took
    // 100 us misaligned, 47 us aligned (one thread, AVX-512, Zen 5). The rules are
    // elementwise, so the new parameters do not change. Not with sums: their lanes would
    // then depend on the address, and so would the bits of the loss (train_epoch's
    // Trainer allocates its vectors aligned instead).
    const int head = kSum ? 0 : int(lanes_to_boundary(p + i, i1 - i));
    if (head > 0) {
      vstore_n(p + i, r(i, head), head);
      i += head;
    }
    for (; i + L <= i1; i += L) {
      const vec<T> v = r(i, L);
      vstore(p + i, v);
      if constexpr (kSum) a.add(v, L);
    }
    if (i < i1) {
      const int c = int(i1 - i);
      const vec<T> v = r(i, c);
      vstore_n(p + i, v, c);
      if constexpr (kSum) a.add(v, c);
    }
    if constexpr (kSum) *acc = a;
  });
}

// The sums of WeightSums over the parameters as they are (before the first step), in the
// order a step gathers them.
template <class T>
void weight_sums(const T* p, idx len, int nt, WeightSums& sums) {
  constexpr int L = lanes<T>;
  over_chunks<T>(len, nt, &sums, [&](idx i0, idx i1, auto acc) {
    if constexpr (!std::is_same<decltype(acc), std::nullptr_t>::value) {
      auto a = *acc;
      idx i = i0;
      for (; i + L <= i1; i += L) a.add(vload(p + i), L);
      if (i < i1) a.add(vload_n(p + i, int(i1 - i)), int(i1 - i));
      *acc = a;
    }
  });
}

// The rules, a vector of lanes at a time: rule(i, c, l2) updates the state of values
// [i, i + c) and returns their new parameters (apply_step stores them); their gradient is
// g + l2 p (see WeightSums::l2).
template <class T>
inline vec<T> step_grad(const T* g, idx i, int c, vec<T> pv, T l2) {
  const vec<T> gv = vload_c(g + i, c);
  return l2 != T(0) ? gv + l2 * pv : gv;
}

template <class T>
auto sgd_rule(const T* p, const T* g, T* vel, double lr, double momentum, bool nesterov) {
  const T mu = T(momentum), eta = T(lr);
  return [=](idx i, int c, T l2) {
    const vec<T> pv = vload_c(p + i, c);
    const vec<T> gv = step_grad(g, i, c, pv, l2);
    vec<T> v = vload_c(vel + i, c) * mu;
    v = v - eta * gv;
    vstore_c(vel + i, v, c);
    return nesterov ? pv + (mu * v - eta * gv) : pv + v;
  };
}

template <class T>
auto adagrad_rule(const T* p, const T* g, T* acc, double lr, double eps) {
  const T eta = T(lr), ep = T(eps);
  return [=](idx i, int c, T l2) {
    const vec<T> pv = vload_c(p + i, c);
    const vec<T> gv = step_grad(g, i, c, pv, l2);
    vec<T> a = vload_c(acc + i, c) + gv * gv;
    vstore_c(acc + i, a, c);
    return pv - eta * gv / (vsqrt<T>(a) + ep);
  };
}

template <class T>
auto rmsprop_rule(const T* p, const T* g, T* sq, double lr, double rho, double eps) {
  const T eta = T(lr), r = T(rho), r1 = T(1.0 - rho), ep = T(eps);
  return [=](idx i, int c, T l2) {
    const vec<T> pv = vload_c(p + i, c);
    const vec<T> gv = step_grad(g, i, c, pv, l2);
    vec<T> s = vload_c(sq + i, c) * r;
    s = s + r1 * gv * gv;
    vstore_c(sq + i, s, c);
    return pv - eta * gv / (vsqrt<T>(s) + ep);
  };
}

template <class T>
auto adam_rule(const T* p, const T* g, T* m, T* v, double lr, double beta1, double beta2,
               double eps, double weight_decay, std::int64_t t) {
  const T b1 = T(beta1), b1c = T(1.0 - beta1), b2 = T(beta2), b2c = T(1.0 - beta2);
  const T ep = T(eps), decay = T(lr * weight_decay);
  const double lr_t =
      lr * std::sqrt(1.0 - std::pow(beta2, double(t))) / (1.0 - std::pow(beta1, double(t)));
  const T lt = T(lr_t);
  const bool wd = weight_decay != 0.0;
  return [=](idx i, int c, T l2) {
    vec<T> pv = vload_c(p + i, c);
    const vec<T> gv = step_grad(g, i, c, pv, l2);  // (of the weights before the decay)
    if (wd) pv = pv - decay * pv;
    vec<T> mv = vload_c(m + i, c) * b1;
    mv = mv + b1c * gv;
    vec<T> vv = vload_c(v + i, c) * b2;
    vv = vv + b2c * gv * gv;
    vstore_c(m + i, mv, c);
    vstore_c(v + i, vv, c);
    return pv - lt * mv / (vsqrt<T>(vv) + ep);
  };
}

template <class T>
void sgd_step(T* p, const T* g, T* vel, idx len, double lr, double momentum, bool nesterov,
              int nt) {
  apply_step<T>(p, len, nt, nullptr, sgd_rule<T>(p, g, vel, lr, momentum, nesterov));
}

template <class T>
void adagrad_step(T* p, const T* g, T* acc, idx len, double lr, double eps, int nt) {
  apply_step<T>(p, len, nt, nullptr, adagrad_rule<T>(p, g, acc, lr, eps));
}

template <class T>
void rmsprop_step(T* p, const T* g, T* sq, idx len, double lr, double rho, double eps, int nt) {
  apply_step<T>(p, len, nt, nullptr, rmsprop_rule<T>(p, g, sq, lr, rho, eps));
}

template <class T>
void adam_step(T* p, const T* g, T* m, T* v, idx len, double lr, double beta1, double beta2,
               double eps, double weight_decay, std::int64_t t, int nt) {
  apply_step<T>(p, len, nt, nullptr,
                adam_rule<T>(p, g, m, v, lr, beta1, beta2, eps, weight_decay, t));
}

// One step of the optimizer code `opt` with its hyperparameters h; with sums (train_epoch),
// also the sums of the new weights.
template <class T>
void optimizer_step_summing(T* p, const T* g, T* state, idx len, int opt, const double* h,
                            std::int64_t* step, int nt, WeightSums* sums) {
  switch (opt) {
    case codes::SGD:
    case codes::NESTEROV:
      apply_step<T>(
          p, len, nt, sums,
          sgd_rule<T>(p, g, state, h[codes::H_LR], h[codes::H_MOMENTUM], opt == codes::NESTEROV));
      break;
    case codes::ADAGRAD:
      apply_step<T>(p, len, nt, sums,
                    adagrad_rule<T>(p, g, state, h[codes::H_LR], h[codes::H_EPS]));
      break;
    case codes::RMSPROP:
      apply_step<T>(p, len, nt, sums,
                    rmsprop_rule<T>(p, g, state, h[codes::H_LR], h[codes::H_RHO], h[codes::H_EPS]));
      break;
    default: {  // ADAM, ADAMW
      step[0] += 1;
      const double wd = opt == codes::ADAMW ? h[codes::H_WEIGHT_DECAY] : 0.0;
      apply_step<T>(p, len, nt, sums,
                    adam_rule<T>(p, g, state, state + len, h[codes::H_LR], h[codes::H_BETA1],
                                 h[codes::H_BETA2], h[codes::H_EPS], wd, step[0]));
      break;
    }
  }
}

template <class T>
void optimizer_step(T* p, const T* g, T* state, idx len, int opt, const double* h,
                    std::int64_t* step, int nt) {
  optimizer_step_summing<T>(p, g, state, len, opt, h, step, nt, nullptr);
}

}  // namespace ROSENBLATT_ISA_NS
}  // namespace rosenblatt
