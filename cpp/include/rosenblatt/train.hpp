// Whole-network kernels: mlp_forward (predict path) and train_epoch (one epoch of
// minibatch training, Python entered once per epoch).
#pragma once
#include <atomic>
#include <chrono>
#include <cmath>

#include "rosenblatt/dense.hpp"
#include "rosenblatt/dispatch.hpp"
#include "rosenblatt/losses.hpp"
#include "rosenblatt/optimizers.hpp"

namespace rosenblatt {
namespace ROSENBLATT_ISA_NS {

// Row-chunked so the two ping-pong buffers of a large prediction stay cache-sized;
// the workspace is 2 * n * max(width) as in the reference, chunks only use its start.
template <class T>
void mlp_forward(const T* X, idx n, const T* params, const std::int64_t* sizes,
                 const std::int32_t* acts, int L, T* out, T* work, int nt) {
  idx maxw = 0;
  for (int i = 1; i <= L; ++i) maxw = tmax<idx>(maxw, idx(sizes[i]));
  T* buf[2] = {work, work + n * maxw};
  const T* in = X;
  idx off = 0;
  for (int i = 0; i < L; ++i) {
    const idx k = idx(sizes[i]), m = idx(sizes[i + 1]);
    const T* W = params + off;
    const T* b = W + k * m;
    off += k * m + m;
    T* o = (i == L - 1) ? out : buf[i & 1];
    dense_forward<T>(in, W, b, o, nullptr, n, k, m, acts[i], nt);
    in = o;
  }
}

// dst[0, len) = src[0, len): short rows (the small path's inputs and targets) by vector
// moves, not a library call per row.
template <class T>
inline void copy_row(T* dst, const T* src, idx len) {
  if (len > small_width<T>()) {
    std::memcpy(dst, src, sizeof(T) * size_t(len));
    return;
  }
  for (idx j = 0; j < len; j += lanes<T>) {
    const int c = int(tmin<idx>(lanes<T>, len - j));
    vstore_c(dst + j, vload_c(src + j, c), c);
  }
}

// As copy_row, and whether the values copied are all finite (u - u is 0 for a finite u,
// NaN for NaN and the infinities). In the same pass as the copy: a separate pass over X
// before each epoch (all_finite) read it from DRAM once more, 4.6 ms of a 177 ms fashion
// epoch; here the rows are in L1 and the gather waits on the next row's misses anyway.
template <class T>
inline bool copy_row_finite(T* dst, const T* src, idx len) {
  constexpr int L = lanes<T>;
  // four sums: one would be a chain of dependent adds longer than the copy
  vec<T> acc[4] = {};
  idx j = 0;
  for (; j + 4 * L <= len; j += 4 * L) {
    for (int q = 0; q < 4; ++q) {
      const vec<T> u = vload(src + j + q * L);
      vstore(dst + j + q * L, u);
      acc[q] += u - u;
    }
  }
  for (; j < len; j += L) {
    const int c = int(tmin<idx>(L, len - j));
    const vec<T> u = vload_c(src + j, c);  // (the lanes past c are 0)
    vstore_c(dst + j, u, c);
    acc[0] += u - u;
  }
  const vec<T> s = (acc[0] + acc[1]) + (acc[2] + acc[3]);
  bool ok = true;
  for (int l = 0; l < L; ++l) ok = ok && s[l] == T(0);
  return ok;
}

// Values of a batch (rows x (features + targets)) worth splitting its gather over threads.
constexpr idx kGatherPerThread = idx(1) << 15;
// Batches of at most this many values (rows x (features + targets + 1)) have their
// successor gathered into a second buffer while they run (see train_epoch).
constexpr idx kOverlapMaxValues = idx(1) << 20;

template <class T>
double train_epoch(const TrainArgs<T>& a, bool* interrupted) {
  using clock = std::chrono::steady_clock;
  const int L = a.n_layers;
  const idx bs = a.batch_size, d = a.n_features, ko = a.n_outputs;
  const int nt = a.n_threads;
  const double alpha = a.hyper[codes::H_ALPHA], l1 = a.hyper[codes::H_L1];
  const double delta = a.hyper[codes::H_HUBER_DELTA];

  // Workspace: Xb, Yb, swb, then per layer Z, A, dA, dZ (bs x width each).
  T* ws = a.workspace;
  T* Xb = ws;
  T* Yb = Xb + bs * d;
  T* swb = Yb + bs * ko;
  T* layer_base = swb + bs;
  constexpr int kMaxLayers = 64;
  T *Zs[kMaxLayers], *As[kMaxLayers], *dAs[kMaxLayers], *dZs[kMaxLayers];
  const T* Ws[kMaxLayers];
  T *dWs[kMaxLayers], *dbs[kMaxLayers];
  const T* bsv[kMaxLayers];
  idx wseg[2 * kMaxLayers];  // the weights' segments of the flat parameter vector
  // Small networks (every width within small_width) take the small-layer kernels.
  bool small = true;
  {
    T* p = layer_base;
    idx off = 0;
    for (int i = 0; i < L; ++i) {
      const idx k = idx(a.layer_sizes[i]), m = idx(a.layer_sizes[i + 1]);
      Zs[i] = p;
      As[i] = p + bs * m;
      dAs[i] = p + 2 * bs * m;
      dZs[i] = p + 3 * bs * m;
      p += 4 * bs * m;
      Ws[i] = a.params + off;
      wseg[2 * i] = off;
      wseg[2 * i + 1] = off + k * m;
      bsv[i] = a.params + off + k * m;
      dWs[i] = a.grads + off;
      dbs[i] = a.grads + off + k * m;
      off += k * m + m;
      small = small && k <= small_width<T>() && m <= small_width<T>();
    }
  }
  const int out_act = a.activations[L - 1];
  int link = -1;
  if (a.loss == codes::BINARY_LOG_LOSS) link = codes::LOGISTIC;
  if (a.loss == codes::LOG_LOSS) link = codes::SOFTMAX;
  if (a.loss == codes::POISSON) link = codes::EXP;
  const int out_back = (link == out_act) ? int(codes::IDENTITY) : out_act;

  // The penalty terms: the first batch sums the weights, each optimizer step the new ones
  // (while it writes them) for the next batch.
  const bool penalized = alpha != 0.0 || l1 != 0.0;
  // The L2 term of the weights' gradients is added by the optimizer step (WeightSums::l2)
  // rather than by the backward pass - except where the gradients are looked at before the
  // step (grad_norms), where l1 adds its own term after l2's (that order is kept), and in
  // the small-layer path, where it costs nothing.
  const bool fold_l2 = alpha != 0.0 && l1 == 0.0 && !a.grad_norms && !small;
  WeightSums sums;
  sums.seg = wseg;
  sums.nseg = L;
  sums.abs = l1 != 0.0;
  bool sums_current = false;

  double total = 0.0;
  // Ctrl-C: look at most every 20 ms (the check takes the GIL, which other Python threads
  // may hold). The clock itself is read after about 1e5 multiply-adds (tens of
  // microseconds), not after every batch of a small network. Between batches, and inside
  // a batch between layers (a batch of many rows through wide layers can take seconds):
  // a batch stopped there leaves params and step as the previous batch left them.
  auto last_check = clock::now();
  double work = 0.0;  // multiply-adds since the clock was last read
  auto stop_requested = [&](double madds) {
    work += madds;
    if (!a.interrupt.fn || work < 1e5) return false;
    work = 0.0;
    const auto now = clock::now();
    if (now - last_check <= std::chrono::milliseconds(20)) return false;
    last_check = now;
    return a.interrupt.fn(a.interrupt.ctx);
  };
  // With two threads or more, the next batch's rows are gathered by one thread while
  // another runs this batch's work after its first layer up to the last layer's backward
  // pass (the layers after the first, the loss and the last layer's backward products, on
  // one thread; the gathering thread takes a share of the second layer first, see below).
  // The gather waits on scattered rows of X, and at batch 32 it was a tenth of a batch
  // with the other core idle; those layers of a 784-300-100-10 net are small products
  // that two threads split poorly. The next batch goes into a second set of buffers (this
  // one's rows are needed until its step). Every product and sum is the one-thread one,
  // so the results do not depend on this.
  const bool overlap = nt > 1 && L >= 2 && !small && bs * (d + ko + 1) <= kOverlapMaxValues;
  T* alt = overlap ? static_cast<T*>(thread_scratch(4, sizeof(T) * size_t(bs * (d + ko + 1)) + 64))
                   : nullptr;
  const idx m0 = idx(a.layer_sizes[1]);  // the first layer's width
  T *Xc = Xb, *Yc = Yb, *swc = swb;      // this batch's rows
  bool ready = false;                    // this batch's rows gathered by the previous batch
  double S = 0.0, S_next = 0.0;
  std::int64_t bad = -1, bad_next = -1;  // see gather_batch

  // Copies the nb rows at a.order[start...] into x, y and sw on up to `threads` threads;
  // returns the sum of their sample weights. With a.nonfinite_row, bad_row is set to the
  // first of those rows (in batch order) that holds a NaN or an infinity, else to -1.
  const bool check_x = a.nonfinite_row != nullptr;
  if (check_x) *a.nonfinite_row = -1;
  auto gather_batch = [&](idx start, idx nb, T* x, T* y, T* sw, int threads,
                          std::int64_t& bad_row) {
    const std::int64_t* rows = a.order + start;
    // The batch's rows are scattered over X (from DRAM when X is large): with several
    // threads each copies a share, so that more of those misses are in flight at once,
    // and each fetches its next row while it copies one (a row's copy alone waits for its
    // first lines before the hardware prefetcher follows: fashion b200 gather 36 -> 25 us).
    auto fetch = [&](idx r) {
      prefetch_row(a.X + rows[r] * d, d * idx(sizeof(T)));
      __builtin_prefetch(a.Y + rows[r] * ko);
    };
    // returns the first row in [r0, r1) that is not finite, else r1 (always r1 unchecked)
    auto gather = [&](idx r0, idx r1) {
      if (r0 < r1) fetch(r0);
      idx first_bad = r1;
      for (idx r = r0; r < r1; ++r) {
        if (r + 1 < r1) fetch(r + 1);
        if (!check_x)
          copy_row(x + r * d, a.X + rows[r] * d, d);
        else if (!copy_row_finite(x + r * d, a.X + rows[r] * d, d) && first_bad == r1)
          first_bad = r;
        copy_row(y + r * ko, a.Y + rows[r] * ko, ko);
      }
      return first_bad;
    };
    const int ng = nb * (d + ko) >= kGatherPerThread ? tmin<int>(threads, int(nb)) : 1;
    idx first_bad = nb;
    if (ng > 1) {
      std::atomic<idx> found{nb};
      parallel_for(ng, ng, [&](long t) {
        const idx r1 = nb * (t + 1) / ng, f = gather(nb * t / ng, r1);
        for (idx cur = found.load(); f < r1 && f < cur;)
          if (found.compare_exchange_weak(cur, f)) break;
      });
      first_bad = found.load();
    } else {
      first_bad = gather(0, nb);
    }
    bad_row = first_bad < nb ? rows[first_bad] : -1;
    if (!a.sample_weight) return double(nb);
    double s = 0.0;
    for (idx r = 0; r < nb; ++r) {
      sw[r] = a.sample_weight[rows[r]];
      s += double(sw[r]);
    }
    return s;
  };

  // Several epochs in one call (a.epoch_rows), for networks so small that the Python work
  // around each call counts (neural_network.py: _BLOCK_WORK). Batches never straddle two
  // epochs.
  const idx er = a.epoch_rows > 0 ? idx(a.epoch_rows) : a.n_order;
  auto batch_len = [&](idx s) {
    return s < a.n_order ? tmin<idx>(bs, (s / er + 1) * er - s) : idx(0);
  };
  double epoch_total = 0.0;
  idx epoch = 0;
  for (idx start = 0, nb = 0; start < a.n_order; start += nb) {
    nb = batch_len(start);
    const idx next = start + nb;
    const idx nbn = batch_len(next);
    if (ready) {
      S = S_next;
      bad = bad_next;
    } else {
      S = gather_batch(start, nb, Xc, Yc, swc, nt, bad);
    }
    ready = false;
    if (bad >= 0) {  // (nothing of this batch done)
      *a.nonfinite_row = bad;
      return total + epoch_total;
    }
    const T* swp = a.sample_weight ? swc : nullptr;
    // One layer's forward pass on `threads` threads.
    auto forward = [&](int i, const T* in, int threads) {
      const idx k = idx(a.layer_sizes[i]), m = idx(a.layer_sizes[i + 1]);
      const int act = a.activations[i];
      if (small)
        small_dense_forward<T>(in, Ws[i], bsv[i], As[i], Zs[i], nb, k, m, act);
      else
        dense_forward<T>(in, Ws[i], bsv[i], As[i], codes::needs_z(act) ? Zs[i] : nullptr, nb, k, m,
                         act, threads);
    };
    // Outputs [j0, j1) of a layer's forward pass (an elementwise activation), one thread.
    auto forward_cols = [&](int i, const T* in, idx j0, idx j1) {
      const idx k = idx(a.layer_sizes[i]), m = idx(a.layer_sizes[i + 1]);
      const int act = a.activations[i];
      dense_forward_cols<T>(in, Ws[i], bsv[i], As[i], codes::needs_z(act) ? Zs[i] : nullptr, nb, k,
                            m, j0, j1, act, 1);
    };
    // dW += l1 sign(W) over len values (l1's term of the gradient)
    auto add_l1 = [&](T* dW, const T* W, idx len) {
      const T c = T(l1 / S);
      for (idx j = 0; j < len; ++j) {
        const T s = W[j] > T(0) ? T(1) : (W[j] < T(0) ? T(-1) : W[j]);
        dW[j] = dW[j] + c * s;
      }
    };
    const T* dZ0 = nullptr;  // the first layer's dZ, when the second layer's pass computed it
    // One layer's backward pass on `threads` threads (l1's term included); after_dx() as in
    // dense_backward_impl (not on the small-layer path).
    auto backward = [&](int i, int threads, const auto& after_dx) {
      const idx k = idx(a.layer_sizes[i]), m = idx(a.layer_sizes[i + 1]);
      const int act = (i == L - 1) ? out_back : int(a.activations[i]);
      const T* xin = i == 0 ? Xc : As[i - 1];
      T* dX = i > 0 ? dAs[i - 1] : nullptr;
      const double l2 = fold_l2 ? 0.0 : alpha / S;
      if (small)
        small_dense_backward<T>(xin, Ws[i], As[i], Zs[i], dAs[i], dWs[i], dbs[i], dX, nb, k, m, act,
                                alpha / S, dZs[i]);
      else if (i == 0 && dZ0)  // (its dZ and db done: first_dz below)
        dw_product<T>(xin, Ws[0], dZ0, dWs[0], nb, k, m, l2, threads);
      else
        dense_backward_impl<T>(xin, Ws[i], As[i], Zs[i], dAs[i], dWs[i], dbs[i], dX, nb, k, m, act,
                               l2, threads, dZs[i], after_dx);
      if (l1 != 0.0) add_l1(dWs[i], Ws[i], k * m);
    };
    auto madds = [&](int i) {
      return double(nb) * double(a.layer_sizes[i]) * double(a.layer_sizes[i + 1]);
    };
    double value = 0.0;
    // The loss and its gradient, with the penalty terms.
    auto loss = [&](int threads) {
      value = loss_gradient<T>(As[L - 1], Yc, swp, dAs[L - 1], nb, ko, a.loss, delta, threads);
      if (penalized) {
        if (!sums_current) weight_sums<T>(a.params, a.n_params, threads, sums);
        if (alpha != 0.0) value += 0.5 * alpha * sums.sum_sq / S;
        if (l1 != 0.0) value += l1 * sums.sum_abs / S;
      }
    };
    // forward
    forward(0, Xc, nt);
    if (stop_requested(madds(0))) {
      *interrupted = true;
      return total + epoch_total;
    }
    int done_back = L;  // layers from here on have had their backward pass
    // the other set of buffers, for the next batch
    T* xo = Xc == Xb ? alt : Xb;
    T* yo = Xc == Xb ? alt + bs * d : Yb;
    T* swo = Xc == Xb ? alt + bs * (d + ko) : swb;
    if (overlap && nbn > 0) {
      // The gather took less time than the rest (fashion b32: 10 against 12 us; b200: 62
      // against 70 on one thread), so the gathering thread first computes the second
      // layer's last vector of outputs (4 of 100 units) while the other computes the rest
      // of them: the two sides then take about as long at both batch sizes (b200: 74
      // against 69 us; b32: 12.5 against 13). Its last fifth (two vectors) left the
      // gather's side the longer once the output layer's softmax and loss took 10 us
      // instead of 17 (b200 78 against 62; epochs x1.011-1.016 with one vector).
      // Task 0 is claimed first, so the wait of task 1 for it ends even when the pool is
      // busy and one thread runs both.
      const idx m1 = idx(a.layer_sizes[2]);
      constexpr idx V = lanes<T>;
      const idx split =
          L >= 3 && a.activations[1] != codes::SOFTMAX && m1 >= 4 * V ? (m1 - 1) / V * V : 0;
      std::atomic<bool> part_done{false};
      parallel_for(2, 2, [&](long t) {
        if (t == 0) {
          if (split) {
            forward_cols(1, As[0], split, m1);
            part_done.store(true, std::memory_order_release);
          }
          S_next = gather_batch(next, nbn, xo, yo, swo, 1, bad_next);
          return;
        }
        if (split) {
          forward_cols(1, As[0], 0, split);
          while (!part_done.load(std::memory_order_acquire)) cpu_relax();
        } else {
          forward(1, As[0], 1);
        }
        for (int i = 2; i < L; ++i) forward(i, As[i - 1], 1);
        loss(1);
        backward(L - 1, 1, NoHook{});
      });
      double w = 2.0 * madds(L - 1);
      for (int i = 1; i < L; ++i) w += madds(i);
      ready = true;
      done_back = L - 1;
      if (stop_requested(w)) {
        *interrupted = true;
        return total + epoch_total;
      }
    } else {
      for (int i = 1; i < L; ++i) {
        forward(i, As[i - 1], nt);
        if (stop_requested(madds(i))) {
          *interrupted = true;
          return total + epoch_total;
        }
      }
      loss(nt);
    }
    // backward
    // The second layer's dX thread goes on with the first layer's dZ and db, which need
    // only that dX: on two threads the dW product ran longer (fashion b32: 12.3 against
    // 10 us), and the first layer's 1.5 us of single-threaded work before its product fit
    // in that wait.
    auto first_dz = [&] {
      dZ0 = backward_dz<T>(Zs[0], As[0], dAs[0], dbs[0], nb, m0, int(a.activations[0]), 1, dZs[0]);
    };
    for (int i = done_back - 1; i >= 0; --i) {
      if (i == 1 && !small)
        backward(1, nt, first_dz);
      else
        backward(i, nt, NoHook{});
      if (stop_requested(2.0 * madds(i))) {
        *interrupted = true;
        return total + epoch_total;
      }
    }
    // (after the backward pass, so that a batch stopped inside it adds no norms)
    if (a.grad_norms) {
      for (int i = 0; i < L; ++i) {
        const idx len = idx(a.layer_sizes[i]) * idx(a.layer_sizes[i + 1]);
        double sq = 0.0;
        for (idx j = 0; j < len; ++j) sq += double(dWs[i][j]) * double(dWs[i][j]);
        a.grad_norms[i] += std::sqrt(sq);
      }
    }
    sums.l2 = fold_l2 ? alpha / S : 0.0;
    optimizer_step_summing<T>(a.params, a.grads, a.state, a.n_params, a.optimizer, a.hyper, a.step,
                              nt, penalized ? &sums : nullptr);
    sums_current = penalized;
    epoch_total += value * double(nb);
    if (next % er == 0) {  // the epoch's last batch (n_order is whole epochs)
      if (a.epoch_totals) a.epoch_totals[epoch] = epoch_total;
      ++epoch;
      total += epoch_total;
      epoch_total = 0.0;
    }
    if (ready) {
      Xc = xo;
      Yc = yo;
      swc = swo;
    }
    // (not after the last batch: the caller looks between epochs)
    if (next < a.n_order && stop_requested(0.0)) {
      *interrupted = true;
      break;
    }
  }
  return total;
}

}  // namespace ROSENBLATT_ISA_NS
}  // namespace rosenblatt
