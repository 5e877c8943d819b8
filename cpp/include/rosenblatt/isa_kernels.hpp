// Builds the KernelSet table of one ISA. Included once by each cpp/src/isa_*.cpp, after it
// has defined ROSENBLATT_ISA_NS (the namespace) and ROSENBLATT_ISA_NAME.
#pragma once
#include <chrono>
#if defined(__unix__) || defined(__APPLE__)
#include <time.h>
#endif

#include "rosenblatt/dispatch.hpp"
#include "rosenblatt/train.hpp"
// ---- perceptron ----
#include "rosenblatt/perceptron.hpp"
// ---- end perceptron ----
// ---- batchnorm ----
#include "rosenblatt/batchnorm.hpp"
// ---- end batchnorm ----

namespace rosenblatt {
namespace ROSENBLATT_ISA_NS {

template <class T>
constexpr KernelSet<T> make_kernel_set() {
  KernelSet<T> s{};
  s.all_finite = &all_finite<T>;
  s.activation_forward = &activation_forward<T>;
  s.activation_backward = &activation_backward<T>;
  s.dense_forward = &dense_forward<T>;
  s.dense_backward = &dense_backward<T>;
  s.loss_gradient = &loss_gradient<T>;
  s.sgd_step = &sgd_step<T>;
  s.adagrad_step = &adagrad_step<T>;
  s.rmsprop_step = &rmsprop_step<T>;
  s.adam_step = &adam_step<T>;
  s.optimizer_step = &optimizer_step<T>;
  s.mlp_forward = &mlp_forward<T>;
  s.train_epoch = &train_epoch<T>;
  // ---- perceptron ----
  s.perceptron_epoch = &perceptron_epoch<T>;
  s.xorshift_shuffle = &xorshift_shuffle;
  s.perceptron_epoch_sklearn = &perceptron_epoch_sklearn<T>;
  s.perceptron_fit_sklearn = &perceptron_fit_sklearn<T>;
  // ---- end perceptron ----
  // ---- batchnorm ----
  s.batchnorm_forward = &batchnorm_forward<T>;
  s.batchnorm_backward = &batchnorm_backward<T>;
  s.batchnorm_inference = &batchnorm_inference<T>;
  // ---- end batchnorm ----
  return s;
}

// Independent FMA chains (more than latency x throughput) on register data: the ISA's
// peak FLOP rate on one core, for benchmark reports as a fraction of it.
// CPU time of the calling thread where the OS has it: on a shared machine the probe then
// measures the core, not the share of it this process got.
inline double thread_seconds() {
#if defined(CLOCK_THREAD_CPUTIME_ID)
  timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return double(ts.tv_sec) + 1e-9 * double(ts.tv_nsec);
#else
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
#endif
}

template <class T>
__attribute__((noinline)) double peak_probe(double seconds) {
  // Enough chains to cover FMA latency x throughput, few enough to stay in registers
  // (32 vector registers with AVX-512, 16 otherwise).
  constexpr int kChains = kVecBytes == 64 ? 24 : 12;
  constexpr long kInner = 4096;
  vec<T> acc[kChains];
  for (int c = 0; c < kChains; ++c) acc[c] = vset<T>(T(c) * T(1e-3));
  const vec<T> mul = vset<T>(T(0.999999)), add = vset<T>(T(1e-7));
  long iters = 0;
  const double t0 = thread_seconds();
  double elapsed = 0.0;
  do {
    for (long i = 0; i < kInner; ++i) {
      // Fully unrolled, so that acc[] lives in registers: a partial unroll (16 of 24)
      // indexes acc[] with a variable and keeps it in memory, which measured half the
      // peak on a Zen 5 (124 against 250 GFLOP/s float32).
#pragma GCC unroll 32
      for (int c = 0; c < kChains; ++c) acc[c] = vfma(acc[c], mul, add);
    }
    iters += kInner;
    elapsed = thread_seconds() - t0;
  } while (elapsed < seconds);
  T sink = 0;
  for (int c = 0; c < kChains; ++c) sink += acc[c][0];
  volatile T keep = sink;
  (void)keep;
  return 2.0 * lanes<T> * kChains * double(iters) / elapsed * 1e-9;
}

inline double peak_gflops(bool f64, double seconds) {
  return f64 ? peak_probe<double>(seconds) : peak_probe<float>(seconds);
}

const IsaKernels& kernels() {
  static const IsaKernels k{ROSENBLATT_ISA_NAME, make_kernel_set<float>(),
                            make_kernel_set<double>(), &peak_gflops};
  return k;
}

}  // namespace ROSENBLATT_ISA_NS
}  // namespace rosenblatt
