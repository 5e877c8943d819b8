"""The compiled core's small-network path of ``train_epoch``.

When every layer width (input and output included) fits in four SIMD vectors, the C++
``train_epoch`` runs its small-layer kernels instead of the GEMM-based ones: a different
code path with its own lane edges (1, lanes - 1, lanes, lanes + 1, ..., 4 lanes, then the
general path at 4 lanes + 1) and two orientations for dW (along the outputs, or along the
inputs when the outputs are the narrower side). Each ISA has its own lane count, so the
checks run once per ISA, forced through ``ROSENBLATT_ISA`` in a subprocess. The NumPy
reference is the oracle; the same call twice must give bit-identical results.
"""

import itertools
import os
import subprocess
import sys

import numpy as np
import pytest
from conftest import assert_close

_core = pytest.importorskip("rosenblatt._core")

from rosenblatt import kernels as K

HERE = os.path.dirname(os.path.abspath(__file__))

# (layer sizes, hidden activation, output activation, loss): widths around 2, 4, 8, 16,
# 32 and 64 lanes (baseline, AVX2 and AVX-512 in both precisions), narrow outputs after
# wide layers (dW along the inputs), a softmax head, and nets just past the small limit
NETS = [
    ([2, 8, 8, 1], "tanh", "logistic", "binary_log_loss"),  # the playground
    ([1, 1, 1], "relu", "identity", "squared_error"),
    ([3, 5, 7, 3], "logistic", "softmax", "log_loss"),
    ([9, 15, 17, 2], "tanh", "identity", "huber"),
    ([7, 31, 33, 5], "gelu", "exp", "poisson"),
    ([16, 32, 4], "elu", "tanh", "squared_error"),
    ([20, 64, 3], "softplus", "identity", "absolute_error"),
    ([65, 8, 1], "leaky_relu", "logistic", "binary_log_loss"),
    ([4, 65, 2], "relu", "identity", "squared_error"),
]
# (optimizer, batch, sample weights, grad norms, alpha, l1)
OPTIONS = [
    ("sgd", 10, False, False, 1e-4, 0.0),
    ("nesterov", 7, True, True, 1e-3, 1e-4),
    ("adam", 1, False, True, 0.0, 1e-4),
    ("rmsprop", 64, True, False, 1e-3, 0.0),
]


def _targets(rng, loss, n, k, dt):
    if loss == "binary_log_loss":
        return (rng.random((n, k)) < 0.5).astype(dt)
    if loss == "log_loss":
        return np.eye(k, dtype=dt)[rng.integers(0, k, n)]
    if loss == "poisson":
        return rng.poisson(1.0, (n, k)).astype(dt)
    return rng.standard_normal((n, k)).astype(dt)


def _train(be, dt, net, opt, batch, weighted, norms, alpha, l1, n_threads=1):
    sizes, hidden, out, loss = net
    rng = np.random.default_rng(0)
    n = 53
    X = rng.standard_normal((n, sizes[0])).astype(dt)
    Y = _targets(rng, loss, n, sizes[-1], dt)
    sw = rng.uniform(0.1, 2.0, n).astype(dt) if weighted else None
    parts = []
    for fi, fo in itertools.pairwise(sizes):
        parts += [rng.standard_normal(fi * fo) / np.sqrt(fi), rng.standard_normal(fo) * 0.1]
    params = np.concatenate(parts).astype(dt)
    acts = [hidden] * (len(sizes) - 2) + [out]
    lr = 1e-3 if opt in ("adam", "rmsprop") or loss == "poisson" else 0.01
    tr = K.Trainer(X, Y, params, sizes, acts, loss, opt,
                   {"lr": lr, "alpha": alpha, "l1": l1, "huber_delta": 0.8}, batch,
                   sample_weight=sw, backend=be, n_threads=n_threads, track_grad_norms=norms)
    losses, gnorms = [], []
    for _ in range(3):
        losses.append(tr.run_epoch(rng.permutation(n).astype(np.int64)))
        gnorms.append(None if tr.grad_norms is None else tr.grad_norms.copy())
    return params, tr.state.copy(), np.array(losses), gnorms


def check_all():
    """Every net with every option set, both dtypes, against the reference (this ISA)."""
    for dt in (np.float32, np.float64):
        for net in NETS:
            for i, options in enumerate(OPTIONS):
                # reductions over a few epochs of ~width-long sums
                n = 64 * max(net[0])
                want = _train("numpy", dt, net, *options)
                got = _train("cpp", dt, net, *options)
                again = _train("cpp", dt, net, *options)
                tag = f"{_core.isa()} {np.dtype(dt).name} {net[0]} options {i}"
                for g, a, w, name in zip(got, again, want, ("params", "state", "loss", "gn"),
                                         strict=True):
                    if name == "gn":
                        for gi, ai, wi in zip(g, a, w, strict=True):
                            if wi is None:
                                assert gi is None and ai is None, tag
                            else:
                                np.testing.assert_array_equal(gi, ai, err_msg=tag)
                                assert_close(gi, wi, dt, n, err_msg=f"{tag} {name}")
                        continue
                    np.testing.assert_array_equal(g, a, err_msg=f"{tag} {name} run to run")
                    assert_close(g, w, dt, n, err_msg=f"{tag} {name}")


@pytest.mark.parametrize("isa", _core.available_isas())
def test_small_nets_per_isa(isa):
    env = dict(os.environ, ROSENBLATT_ISA=isa,
               PYTHONPATH=os.pathsep.join([HERE] + [p for p in sys.path if p]))
    code = ("import test_small_net as t; from rosenblatt import _core; "
            f"assert _core.isa() == {isa!r}, _core.isa(); t.check_all(); print('ok')")
    res = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                         text=True, timeout=600, check=False)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "ok" in res.stdout


def test_thread_count_does_not_matter_for_small_nets():
    """Small nets run on the calling thread: any n_threads gives the same bits."""
    outs = [_train("cpp", np.float64, NETS[2], *OPTIONS[1], n_threads=nt) for nt in (1, 2, 0)]
    for got in outs[1:]:
        for g, w in zip(got[:3], outs[0][:3], strict=True):
            np.testing.assert_array_equal(g, w)
