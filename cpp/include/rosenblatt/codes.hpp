// Integer codes shared with python/rosenblatt/_codes.py (the single source of truth).
// tests/test_cpp_core.py compares kCodeTable against the Python module, so a change on one
// side without the other fails the test suite.
#pragma once

namespace rosenblatt {
namespace codes {

enum Activation : int {
  IDENTITY = 0,
  HEAVISIDE = 1,
  SIGN = 2,
  LOGISTIC = 3,
  TANH = 4,
  RELU = 5,
  LEAKY_RELU = 6,
  ELU = 7,
  SOFTPLUS = 8,
  GELU = 9,
  SOFTMAX = 10,
  EXP = 11,
  N_ACTIVATIONS = 12,
};

constexpr double LEAKY_RELU_SLOPE = 0.01;
constexpr double ELU_ALPHA = 1.0;
constexpr double GELU_C = 0.7978845608028654;  // sqrt(2 / pi)
constexpr double GELU_K = 0.044715;

enum Loss : int {
  SQUARED_ERROR = 0,
  ABSOLUTE_ERROR = 1,
  HUBER = 2,
  BINARY_LOG_LOSS = 3,
  LOG_LOSS = 4,
  POISSON = 5,
  N_LOSSES = 6,
};

enum Optimizer : int {
  SGD = 0,
  NESTEROV = 1,
  ADAGRAD = 2,
  RMSPROP = 3,
  ADAM = 4,
  ADAMW = 5,
  N_OPTIMIZERS = 6,
};

// Layout of the float64 hyper-parameter vector of train_epoch.
enum Hyper : int {
  H_LR = 0,
  H_MOMENTUM = 1,
  H_BETA1 = 2,
  H_BETA2 = 3,
  H_EPS = 4,
  H_RHO = 5,
  H_WEIGHT_DECAY = 6,
  H_ALPHA = 7,
  H_L1 = 8,
  H_HUBER_DELTA = 9,
  N_HYPER = 10,
};

constexpr bool needs_z(int act) {
  return act == SOFTPLUS || act == GELU;
}
constexpr bool is_step(int act) {
  return act == HEAVISIDE || act == SIGN;
}
constexpr int optimizer_slots(int opt) {
  return (opt == ADAM || opt == ADAMW) ? 2 : 1;
}

struct CodeEntry {
  const char* name;
  double value;
  bool is_float = false;
};

// Names exactly as in _codes.py.
constexpr CodeEntry kCodeTable[] = {
    {"IDENTITY", IDENTITY},
    {"HEAVISIDE", HEAVISIDE},
    {"SIGN", SIGN},
    {"LOGISTIC", LOGISTIC},
    {"TANH", TANH},
    {"RELU", RELU},
    {"LEAKY_RELU", LEAKY_RELU},
    {"ELU", ELU},
    {"SOFTPLUS", SOFTPLUS},
    {"GELU", GELU},
    {"SOFTMAX", SOFTMAX},
    {"EXP", EXP},
    {"LEAKY_RELU_SLOPE", LEAKY_RELU_SLOPE, true},
    {"ELU_ALPHA", ELU_ALPHA, true},
    {"GELU_C", GELU_C, true},
    {"GELU_K", GELU_K, true},
    {"SQUARED_ERROR", SQUARED_ERROR},
    {"ABSOLUTE_ERROR", ABSOLUTE_ERROR},
    {"HUBER", HUBER},
    {"BINARY_LOG_LOSS", BINARY_LOG_LOSS},
    {"LOG_LOSS", LOG_LOSS},
    {"POISSON", POISSON},
    {"SGD", SGD},
    {"NESTEROV", NESTEROV},
    {"ADAGRAD", ADAGRAD},
    {"RMSPROP", RMSPROP},
    {"ADAM", ADAM},
    {"ADAMW", ADAMW},
    {"H_LR", H_LR},
    {"H_MOMENTUM", H_MOMENTUM},
    {"H_BETA1", H_BETA1},
    {"H_BETA2", H_BETA2},
    {"H_EPS", H_EPS},
    {"H_RHO", H_RHO},
    {"H_WEIGHT_DECAY", H_WEIGHT_DECAY},
    {"H_ALPHA", H_ALPHA},
    {"H_L1", H_L1},
    {"H_HUBER_DELTA", H_HUBER_DELTA},
    {"N_HYPER", N_HYPER},
    // perceptron codes (perceptron.hpp) are appended here by whoever adds that kernel.
};

}  // namespace codes
}  // namespace rosenblatt
