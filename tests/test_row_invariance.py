"""A row's forward result does not depend on the other rows of the call (issue: predictions
on a row subset or permutation equal the full batch's).

The compiled core computes every element of a dense layer as one FMA chain over k in order
whichever path takes the product (gemv for few rows, the direct path for small products, the
packed GEMM with k blocks and threads for large ones), and one output column always as the
direct path's dot products: so the equality is bit for bit there, for any number of rows and
any thread count. Prediction over many rows runs in blocks of rows (bounded workspace, and
Ctrl-C lands between blocks), which the same property makes invisible.
"""

import _thread
import itertools
import threading
import time

import numpy as np
import pytest
import rosenblatt.kernels as K
from rosenblatt import MLPClassifier, MLPRegressor

pytest.importorskip("rosenblatt._core")

# (k, m): k beyond one k block of the packed GEMM (407/320 float/double on AVX2, 784 is two
# or more), narrow and single-column outputs, and widths around the register tiles
SHAPES = [(784, 300), (1000, 33), (300, 10), (50, 1), (200, 1), (64, 2), (20, 50), (8, 8),
          (2, 8), (3, 1)]
ROWS = (1, 2, 3, 4, 5, 8, 9, 16, 17, 33, 100, 129, 256, 700, 1500)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("k, m", SHAPES)
def test_dense_forward_rows_do_not_depend_on_the_batch(dtype, k, m):
    rng = np.random.default_rng(k * 1000 + m)
    X = rng.standard_normal((1500, k)).astype(dtype)
    W = rng.standard_normal((k, m)).astype(dtype)
    b = rng.standard_normal(m).astype(dtype)
    full = K.dense_forward(X, W, b, "tanh", backend="cpp", n_threads=1)
    for nt in (1, 2):
        np.testing.assert_array_equal(
            K.dense_forward(X, W, b, "tanh", backend="cpp", n_threads=nt), full)
        for n in ROWS:
            for start in (0, 1500 - n):
                part = K.dense_forward(X[start:start + n], W, b, "tanh", backend="cpp",
                                       n_threads=nt)
                np.testing.assert_array_equal(part, full[start:start + n],
                                              err_msg=f"rows {start}:{start + n}, {nt} threads")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("cls", [MLPClassifier, MLPRegressor])
def test_predictions_on_subsets_and_blocks_equal_the_full_batch(dtype, cls):
    rng = np.random.default_rng(1)
    # a wide first layer (k beyond one packed k block) and one output column
    sizes = [900, 40, 1]
    coefs = [(rng.standard_normal((a, b)) / np.sqrt(a)).astype(dtype)
             for a, b in itertools.pairwise(sizes)]
    ints = [rng.standard_normal(b).astype(dtype) * 0.1 for b in sizes[1:]]
    kw = {"classes": [0, 1]} if cls is MLPClassifier else {}
    est = cls.from_weights(coefs, ints, activation="relu", backend="cpp", **kw)
    X = rng.standard_normal((3000, 900)).astype(dtype)
    out = est.predict_proba if cls is MLPClassifier else est.predict
    full = out(X)
    perm = rng.permutation(3000)
    np.testing.assert_array_equal(out(X[perm]), full[perm])
    for sl in (slice(0, 1), slice(5, 7), slice(2, 5), slice(100, 133), slice(1, 3000)):
        np.testing.assert_array_equal(out(X[sl]), full[sl])
    # blocks of rows of any size give the same
    for rows in (1, 7, 256):
        est._block_rows = rows
        np.testing.assert_array_equal(out(X), full)


def test_mlp_forward_runs_in_blocks_of_rows(monkeypatch):
    # about 1e9 multiply-adds per call, at least 256 rows
    assert K.mlp_block_rows([784, 300, 100, 10]) == int(1e9 // (784 * 300 + 300 * 100 + 1000))
    assert K.mlp_block_rows([100, 4000, 4000, 10]) == 256
    assert K.mlp_block_rows([2, 8, 8, 1]) > 10**6
    calls = []
    rng = np.random.default_rng(2)
    _, total = K.param_offsets([5, 7, 3])
    params = rng.standard_normal(total)
    X = rng.standard_normal((2500, 5))
    for be in K.available_backends():
        whole = K.mlp_forward(X, params, [5, 7, 3], ["tanh", "softmax"], backend=be)
        # blocks of 256 rows: ten calls
        monkeypatch.setattr(K, "_FORWARD_BLOCK_MADDS", 1.0)
        mod = K.get_backend(be)
        real = mod.mlp_forward
        monkeypatch.setattr(mod, "mlp_forward",
                            lambda Xb, *a, real=real: calls.append(Xb.shape[0]) or real(Xb, *a))
        blocked = K.mlp_forward(X, params, [5, 7, 3], ["tanh", "softmax"], backend=be)
        monkeypatch.undo()
        assert calls == [256] * 9 + [196]
        calls.clear()
        if be == "cpp":
            np.testing.assert_array_equal(blocked, whole)
        else:  # BLAS may take other paths for another row count
            np.testing.assert_allclose(blocked, whole, rtol=1e-13)


def test_keyboard_interrupt_inside_a_long_prediction():
    # ~1e11 multiply-adds (seconds): one native call would not return before it is done;
    # in blocks of 256 rows (~1.4e9 multiply-adds each) Ctrl-C lands within one block
    rng = np.random.default_rng(3)
    sizes = [784, 2000, 2000, 10]
    coefs = [(rng.standard_normal((a, b), dtype=np.float32) / np.float32(np.sqrt(a)))
             for a, b in itertools.pairwise(sizes)]
    ints = [np.zeros(b, np.float32) for b in sizes[1:]]
    est = MLPClassifier.from_weights(coefs, ints, classes=np.arange(10), backend="cpp",
                                     n_threads=1)
    X = rng.standard_normal((20000, 784), dtype=np.float32)
    fired = []

    def fire():
        fired.append(time.perf_counter())
        _thread.interrupt_main()

    timer = threading.Timer(0.3, fire)
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            est.predict(X)
    finally:
        timer.cancel()
    assert fired, "the prediction ended before Ctrl-C: make it longer"
    assert time.perf_counter() - fired[0] < 0.5
