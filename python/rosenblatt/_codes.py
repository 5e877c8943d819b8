"""Integer codes shared by every backend (NumPy, Numba, C++).

The compiled core and the Numba kernels receive plain integers, never strings, so that
one table here is the single source of truth. ``cpp/include/rosenblatt/codes.hpp`` mirrors
these numbers and a test checks that both tables agree.
"""

# --- activations -------------------------------------------------------------------------
# f(z) and f'(.) for each; the derivative is evaluated from the saved forward state
# (A = f(Z), and Z itself for the activations whose derivative is not a function of A).
IDENTITY = 0      # f = z                          f' = 1
HEAVISIDE = 1     # f = 0 if z < 0 else 1          forward only (no useful gradient)
SIGN = 2          # f = -1, 0, +1                  forward only (no useful gradient)
LOGISTIC = 3      # f = 1 / (1 + exp(-z))          f' = a (1 - a)
TANH = 4          # f = tanh z                     f' = 1 - a^2
RELU = 5          # f = max(z, 0)                  f' = 1 if a > 0 else 0  (sklearn: a == 0 -> 0)
LEAKY_RELU = 6    # f = z if z > 0 else 0.01 z     f' = 1 if a > 0 else 0.01
ELU = 7           # f = z if z > 0 else exp(z) - 1 f' = 1 if a > 0 else a + 1
SOFTPLUS = 8      # f = max(z,0) + log1p(exp(-|z|)) f' = logistic(z)          (needs Z)
GELU = 9          # tanh approximation:            f' from z                (needs Z)
                  # f = 0.5 z (1 + tanh(c (z + 0.044715 z^3))), c = sqrt(2 / pi)
SOFTMAX = 10      # row-wise, max-subtracted; output layer only (paired with log_loss)
EXP = 11          # f = exp(z); output layer only (paired with poisson)

LEAKY_RELU_SLOPE = 0.01
ELU_ALPHA = 1.0
GELU_C = 0.7978845608028654  # sqrt(2 / pi)
GELU_K = 0.044715

ACTIVATIONS = {
    "identity": IDENTITY,
    "heaviside": HEAVISIDE,
    "sign": SIGN,
    "logistic": LOGISTIC,
    "tanh": TANH,
    "relu": RELU,
    "leaky_relu": LEAKY_RELU,
    "elu": ELU,
    "softplus": SOFTPLUS,
    "gelu": GELU,
    "softmax": SOFTMAX,
    "exp": EXP,
}
ACTIVATION_NAMES = {code: name for name, code in ACTIVATIONS.items()}
# activations whose derivative needs the pre-activation Z (the rest use A only)
NEEDS_Z = frozenset({SOFTPLUS, GELU})
# step functions: forward only
STEPS = frozenset({HEAVISIDE, SIGN})
# elementwise activations usable in hidden layers
HIDDEN = frozenset(ACTIVATIONS[n] for n in (
    "identity", "heaviside", "sign", "logistic", "tanh", "relu", "leaky_relu", "elu",
    "softplus", "gelu"))

# --- losses ------------------------------------------------------------------------------
# Batch value as scikit-learn computes it: a sample-weighted average over rows, then
# the mean over outputs (squared/absolute/huber) or the sum over outputs (log losses,
# poisson). The gradient G written by loss_gradient is  s_i * g(p, y) / S  with
# S = sum of the batch's sample weights (the batch length without weights), where g is
#   squared_error   p - y                       (w.r.t. P; identity output: = w.r.t. Z)
#   absolute_error  sign(p - y)                 (w.r.t. P)
#   huber           clip(p - y, -delta, delta)  (w.r.t. P)
#   binary_log_loss p - y                       (w.r.t. Z of a logistic output)
#   log_loss        p - y                       (w.r.t. Z of a softmax output)
#   poisson         p - y                       (w.r.t. Z of an exp output)
# Like scikit-learn, the per-output gradients of the "mean over outputs" losses are not
# divided by the number of outputs.
SQUARED_ERROR = 0
ABSOLUTE_ERROR = 1
HUBER = 2
BINARY_LOG_LOSS = 3
LOG_LOSS = 4
POISSON = 5

LOSSES = {
    "squared_error": SQUARED_ERROR,
    "absolute_error": ABSOLUTE_ERROR,
    "huber": HUBER,
    "binary_log_loss": BINARY_LOG_LOSS,
    "log_loss": LOG_LOSS,
    "poisson": POISSON,
}
LOSS_NAMES = {code: name for name, code in LOSSES.items()}
# loss -> the output activation whose Z-gradient the loss writes directly (canonical link)
CANONICAL_LINK = {BINARY_LOG_LOSS: LOGISTIC, LOG_LOSS: SOFTMAX, POISSON: EXP}

# --- optimizers --------------------------------------------------------------------------
SGD = 0        # v = mu v - lr g; p += v (mu = 0: plain sgd)
NESTEROV = 1   # v = mu v - lr g; p += mu v - lr g
ADAGRAD = 2    # s += g^2; p -= lr g / (sqrt(s) + eps)
RMSPROP = 3    # s = rho s + (1 - rho) g^2; p -= lr g / (sqrt(s) + eps)
ADAM = 4       # t += 1; m, v moments; lr_t = lr sqrt(1-b2^t)/(1-b1^t); p -= lr_t m/(sqrt(v)+eps)
ADAMW = 5      # p -= lr wd p, then the adam step (decoupled weight decay)

OPTIMIZERS = {
    "sgd": SGD,
    "nesterov": NESTEROV,
    "adagrad": ADAGRAD,
    "rmsprop": RMSPROP,
    "adam": ADAM,
    "adamw": ADAMW,
}
OPTIMIZER_NAMES = {code: name for name, code in OPTIMIZERS.items()}
# number of state vectors (each as long as the flat parameter vector) per optimizer
OPTIMIZER_SLOTS = {SGD: 1, NESTEROV: 1, ADAGRAD: 1, RMSPROP: 1, ADAM: 2, ADAMW: 2}

# Layout of the float64 ``hyper`` vector that train_epoch receives.
H_LR = 0            # learning rate
H_MOMENTUM = 1      # sgd / nesterov momentum
H_BETA1 = 2         # adam
H_BETA2 = 3         # adam
H_EPS = 4           # adam, adagrad, rmsprop
H_RHO = 5           # rmsprop decay
H_WEIGHT_DECAY = 6  # adamw decoupled decay
H_ALPHA = 7         # L2 penalty: loss += 0.5 alpha sum ||W||^2 / S; dW += alpha W / S
H_L1 = 8            # L1 penalty: loss += l1 sum |W| / S; dW += l1 sign(W) / S
H_HUBER_DELTA = 9   # huber threshold
N_HYPER = 10

# --- perceptron --------------------------------------------------------------------------
# The Rosenblatt rule's output step: HEAVISIDE (targets 0/1) or SIGN (targets -1/+1).
