// The table of kernels one instruction set provides, and the list of compiled ISAs.
// Plain C++ types only: module.cpp (the one pybind11 file) fills the pointers' arguments
// from checked NumPy arrays. Each isa_*.cpp defines kernels() in its own namespace.
#pragma once
#include <cstddef>
#include <cstdint>

namespace rosenblatt {

using index_t = std::ptrdiff_t;

// Called by long kernels between units of work (train_epoch: between minibatches).
// Returns true when the caller must stop (e.g. a pending KeyboardInterrupt).
struct InterruptCheck {
  bool (*fn)(void* ctx) = nullptr;
  void* ctx = nullptr;
};

template <class T>
struct TrainArgs {
  const T* X;
  const T* Y;
  const T* sample_weight;  // null: unit weights
  index_t n_rows, n_features, n_outputs;
  const std::int64_t* order;
  index_t n_order;
  index_t batch_size;
  const std::int64_t* layer_sizes;  // n_layers + 1 widths
  const std::int32_t* activations;  // n_layers codes
  int n_layers;
  int loss;
  T* params;
  T* grads;
  T* state;  // (slots, n_params)
  index_t n_params;
  int optimizer;
  const double* hyper;  // codes::N_HYPER
  std::int64_t* step;   // Adam counter, in/out
  T* workspace;
  index_t workspace_len;
  double* grad_norms;  // n_layers or null
  // Non-null: X's rows are checked for NaN and infinity as they are gathered; the epoch
  // stops before the first batch holding one and stores its row of X here (else -1).
  std::int64_t* nonfinite_row;
  // epoch_rows > 0: order holds n_order / epoch_rows epochs back to back, each batched on
  // its own (its last batch short), and epoch_totals (if not null) receives each one's
  // sum of batch_loss * batch_length. 0: order is one epoch.
  index_t epoch_rows;
  double* epoch_totals;
  int n_threads;
  InterruptCheck interrupt;
};

// ---- perceptron ----
// Arguments of the scikit-learn-compatible perceptron kernels (perceptron.hpp).
template <class T>
struct PerceptronArgs {
  const T* X;  // (n, d)
  index_t n, d;
  const double* Y;              // (K, n) of -1/+1, or null when labels is given
  const std::int64_t* labels;   // (n,) or null: problem c's y is +1 where labels == c
  const double* sample_weight;  // (n,) or null
  const double* class_weight;   // (K, 2): weights of the -1 and the +1 side
  index_t K;
  double eta0;
  bool fit_intercept;
  T* W;       // (K, d), in/out
  double* B;  // (K,), in/out
  // whole fit only
  const std::int64_t* seeds;  // (K,) shuffle seeds
  bool shuffle;
  index_t max_iter;
  double tol;  // -inf: no stopping rule
  index_t n_iter_no_change;
  std::int64_t* n_iter;  // (K,) out
  int n_threads;
  InterruptCheck interrupt;
};
// ---- end perceptron ----

template <class T>
struct KernelSet {
  bool (*all_finite)(const T* x, index_t n);
  void (*activation_forward)(const T* Z, T* A, index_t rows, index_t cols, int act, int nt);
  void (*activation_backward)(const T* Z, const T* A, const T* dA, T* dZ, index_t rows,
                              index_t cols, int act, int nt);
  void (*dense_forward)(const T* X, const T* W, const T* b, T* A, T* Z, index_t n, index_t k,
                        index_t m, int act, int nt);
  void (*dense_backward)(const T* X, const T* W, const T* A, const T* Z, const T* dA, T* dW, T* db,
                         T* dX, index_t n, index_t k, index_t m, int act, double l2, int nt);
  double (*loss_gradient)(const T* P, const T* Y, const T* sw, T* G, index_t n, index_t k, int loss,
                          double huber_delta, int nt);
  void (*sgd_step)(T* p, const T* g, T* vel, index_t len, double lr, double momentum, bool nesterov,
                   int nt);
  void (*adagrad_step)(T* p, const T* g, T* acc, index_t len, double lr, double eps, int nt);
  void (*rmsprop_step)(T* p, const T* g, T* sq, index_t len, double lr, double rho, double eps,
                       int nt);
  void (*adam_step)(T* p, const T* g, T* m, T* v, index_t len, double lr, double beta1,
                    double beta2, double eps, double weight_decay, std::int64_t t, int nt);
  void (*optimizer_step)(T* p, const T* g, T* state, index_t len, int optimizer,
                         const double* hyper, std::int64_t* step, int nt);
  void (*mlp_forward)(const T* X, index_t n, const T* params, const std::int64_t* sizes,
                      const std::int32_t* acts, int n_layers, T* out, T* work, int nt);
  // Returns the accumulated loss; *interrupted set when stopped early by the interrupt check.
  double (*train_epoch)(const TrainArgs<T>& args, bool* interrupted);
  // ---- perceptron kernels (perceptron.hpp) ----
  // Y (n, k) targets, or Y null and labels (n,) for one-hot targets
  index_t (*perceptron_epoch)(const T* X, const T* Y, const std::int64_t* labels,
                              const std::int64_t* order, index_t m, index_t d, index_t k, T* W,
                              T* b, double eta, int step, int nt);
  void (*xorshift_shuffle)(std::int64_t* order, index_t n, std::uint32_t seed);
  double (*perceptron_epoch_sklearn)(const PerceptronArgs<T>& a, const std::int64_t* order,
                                     index_t m, index_t* mistakes);
  void (*perceptron_fit_sklearn)(const PerceptronArgs<T>& a, bool* interrupted, bool* nonfinite);
  // ---- end perceptron ----
  // ---- batchnorm ----
  void (*batchnorm_forward)(const T* Z, const T* gamma, const T* beta, double eps, T* Y, T* Xhat,
                            T* mean, T* invstd, index_t n, index_t k, int nt);
  void (*batchnorm_backward)(const T* dY, const T* Xhat, const T* gamma, const T* invstd, T* dZ,
                             T* dgamma, T* dbeta, index_t n, index_t k, int nt);
  void (*batchnorm_inference)(const T* Z, const T* gamma, const T* beta, const T* running_mean,
                              const T* running_var, double eps, T* Y, index_t n, index_t k, int nt);
  // ---- end batchnorm ----
};

struct IsaKernels {
  const char* name;
  KernelSet<float> f32;
  KernelSet<double> f64;
  // FMA-throughput loop for about `seconds`; returns GFLOP/s of one thread.
  double (*peak_gflops)(bool f64, double seconds);
};

namespace isa_base {
const IsaKernels& kernels();
}
namespace isa_avx2 {
const IsaKernels& kernels();
}
namespace isa_avx512 {
const IsaKernels& kernels();
}

// Compiled ISAs this CPU supports, best first, baseline last.
int supported_isas(const IsaKernels** out, int cap);
// All ISAs compiled into this build (supported or not), best first.
int compiled_isas(const char** names, int cap);

}  // namespace rosenblatt
