"""Typed stub of the compiled core ``rosenblatt._core``.

Kernels take the arguments of the NumPy reference (``_kernels_ref``) in the same order;
arrays must be C-contiguous, aligned, of one float dtype (float32 or float64) per call,
outputs writable. ``n_threads`` <= 0 or None means the library default
(:func:`get_num_threads`). Bad arrays raise TypeError/ValueError.
"""

from typing import TypeAlias

import numpy as np
from numpy.typing import NDArray

_F: TypeAlias = NDArray[np.floating]
_I64: TypeAlias = NDArray[np.int64]
_I32: TypeAlias = NDArray[np.int32]

def activation_forward(Z: _F, activation: int, A: _F, n_threads: int | None = 0) -> None: ...
def activation_backward(
    Z: _F | None, A: _F, dA: _F, activation: int, dZ: _F, n_threads: int | None = 0
) -> None: ...
def softmax(Z: _F, A: _F, n_threads: int | None = 0) -> None: ...
def all_finite(X: _F, n_threads: int | None = 0) -> bool: ...
def dense_forward(
    X: _F, W: _F, b: _F, activation: int, A: _F, Z: _F | None = None,
    n_threads: int | None = 0,
) -> None: ...
def dense_backward(
    X: _F, W: _F, A: _F, Z: _F | None, dA: _F, activation: int, l2: float, dW: _F, db: _F,
    dX: _F | None, n_threads: int | None = 0,
) -> None: ...
def loss_gradient(
    P: _F, Y: _F, sample_weight: _F | None, loss: int, huber_delta: float, G: _F,
    n_threads: int | None = 0,
) -> float: ...
def sgd_step(
    params: _F, grads: _F, velocity: _F, lr: float, momentum: float, nesterov: bool,
    n_threads: int | None = 0,
) -> None: ...
def adagrad_step(
    params: _F, grads: _F, accum: _F, lr: float, eps: float, n_threads: int | None = 0
) -> None: ...
def rmsprop_step(
    params: _F, grads: _F, sq: _F, lr: float, rho: float, eps: float,
    n_threads: int | None = 0,
) -> None: ...
def adam_step(
    params: _F, grads: _F, m: _F, v: _F, lr: float, beta1: float, beta2: float, eps: float,
    weight_decay: float, t: int, n_threads: int | None = 0,
) -> None: ...
def optimizer_step(
    params: _F, grads: _F, state: _F, optimizer: int, hyper: NDArray[np.float64], step: _I64,
    n_threads: int | None = 0,
) -> None: ...
def mlp_forward(
    X: _F, params: _F, layer_sizes: _I64, activations: _I32, out: _F, workspace: _F,
    n_threads: int | None = 0,
) -> None: ...
def train_epoch(
    X: _F, Y: _F, sample_weight: _F | None, order: _I64, batch_size: int,
    layer_sizes: _I64, activations: _I32, loss: int, params: _F, grads: _F, state: _F,
    optimizer: int, hyper: NDArray[np.float64], step: _I64, workspace: _F,
    grad_norms: NDArray[np.float64] | None, n_threads: int | None = 0,
    nonfinite: _I64 | None = None,
) -> float:
    """One epoch; raises KeyboardInterrupt (params consistent) on Ctrl-C between batches.
    With ``nonfinite`` (shape (1,)), stops before the first batch holding a NaN or an
    infinity of X and stores that row's index there (else -1)."""

def batchnorm_forward(
    Z: _F, gamma: _F, beta: _F, eps: float, Y: _F, Xhat: _F, mean: _F, invstd: _F,
    n_threads: int | None = 0,
) -> None: ...
def batchnorm_backward(
    dY: _F, Xhat: _F, gamma: _F, invstd: _F, dZ: _F, dgamma: _F, dbeta: _F,
    n_threads: int | None = 0,
) -> None: ...
def batchnorm_inference(
    Z: _F, gamma: _F, beta: _F, running_mean: _F, running_var: _F, eps: float, Y: _F,
    n_threads: int | None = 0,
) -> None: ...

def isa() -> str:
    """Name of the instruction set in use: "avx512", "avx2" or "baseline"."""

def available_isas() -> list[str]:
    """ISAs this build can run on this CPU, best first, "baseline" last."""

def compiled_isas() -> list[str]:
    """ISAs compiled into this build, best first."""

def set_num_threads(n: int) -> None:
    """Default thread count for kernels called with n_threads <= 0 (n <= 0: all cores)."""

def get_num_threads() -> int: ...
def hardware_threads() -> int: ...
def peak_flops_probe(
    isa: str | None = None, dtype: str = "float32", seconds: float = 0.2
) -> float:
    """Single-thread FMA throughput of an ISA in GFLOP/s (thread CPU time)."""

def codes() -> dict[str, int | float]:
    """The codes compiled into the core, named as in ``rosenblatt._codes``."""

def _shutdown_threads() -> None: ...
