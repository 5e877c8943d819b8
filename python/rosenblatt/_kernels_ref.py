"""NumPy reference backend: the specification of every kernel.

Every backend (``_kernels_numba``, ``_kernels_cpp``) implements these functions with the
same names, the same positional arguments and the same semantics; the tests compare them
against this module. The code here favours clarity over speed.

Conventions shared by all kernels
---------------------------------
* Arrays arrive validated (``kernels.py`` checks them): C-contiguous, one float dtype
  (float32 or float64) for all float arrays of a call, int64 index arrays.
* Outputs are preallocated by the caller and written in place; a kernel returns only
  scalars. Kernels never allocate persistent state, draw random numbers or validate.
* ``W`` has shape ``(fan_in, fan_out)`` (scikit-learn's ``coefs_``), ``b`` ``(fan_out,)``.
* A network's parameters live in ONE flat vector, layer by layer: ``W_0`` (row-major),
  ``b_0``, ``W_1``, ``b_1``, ...  (see :func:`param_offsets`). Gradients and optimizer
  state use the same layout, so an optimizer step is one call over one vector.
* Activation, loss and optimizer arguments are the integer codes of ``_codes``.
* ``n_threads`` is accepted by every kernel and ignored where a backend has no threads.
"""

from itertools import pairwise

import numpy as np

from . import _codes as C

# --------------------------------------------------------------------------------------
# activations


def _logistic(z):
    # exp of a non-positive number never overflows; same formula on both branches
    out = np.empty_like(z)
    pos = z >= 0
    out[pos] = 1.0 / (1.0 + np.exp(-z[pos]))
    e = np.exp(z[~pos])
    out[~pos] = e / (1.0 + e)
    return out


def _apply(z, act):
    """Return f(z) for one activation code (softmax row-wise)."""
    if act == C.IDENTITY:
        return z.copy()
    if act == C.HEAVISIDE:
        return (z >= 0).astype(z.dtype)
    if act == C.SIGN:
        return np.sign(z).astype(z.dtype)
    if act == C.LOGISTIC:
        return _logistic(z)
    if act == C.TANH:
        return np.tanh(z)
    if act == C.RELU:
        return np.maximum(z, 0)
    if act == C.LEAKY_RELU:
        return np.where(z > 0, z, z * z.dtype.type(C.LEAKY_RELU_SLOPE))
    if act == C.ELU:
        return np.where(z > 0, z, np.expm1(np.minimum(z, 0)) * z.dtype.type(C.ELU_ALPHA))
    if act == C.SOFTPLUS:
        return np.maximum(z, 0) + np.log1p(np.exp(-np.abs(z)))
    if act == C.GELU:
        # 0.5 z (1 + tanh u) = z logistic(2 u): 1 + tanh u cancels to 0 for z << 0
        u = z.dtype.type(C.GELU_C) * (z + z.dtype.type(C.GELU_K) * z * z * z)
        return z * _logistic(u + u)
    if act == C.SOFTMAX:
        if z.shape[1] == 0:  # rows of no values (max has no identity)
            return np.empty_like(z)
        e = np.exp(z - z.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)
    if act == C.EXP:
        return np.exp(z)
    raise ValueError(f"unknown activation code {act}")


def _derivative(z, a, act):
    """Return f'(.) elementwise, from A (and Z where f' is not a function of A)."""
    one = a.dtype.type(1)
    if act == C.IDENTITY:
        return np.ones_like(a)
    if act == C.LOGISTIC:
        return a * (one - a)
    if act == C.TANH:
        return one - a * a
    if act == C.RELU:
        return (a > 0).astype(a.dtype)
    if act == C.LEAKY_RELU:
        return np.where(a > 0, one, a.dtype.type(C.LEAKY_RELU_SLOPE))
    if act == C.ELU:
        return np.where(a > 0, one, a + a.dtype.type(C.ELU_ALPHA))
    if act == C.SOFTPLUS:
        return _logistic(z)
    if act == C.GELU:
        # s + 0.5 z (1 - tanh^2 u) u', s = logistic(2 u), 1 - tanh^2 u = 4 e / (1 + e)^2
        # with e = exp(-|2 u|): no cancellation far from 0
        c, k = z.dtype.type(C.GELU_C), z.dtype.type(C.GELU_K)
        u = c * (z + k * z * z * z)
        e = np.exp(-np.abs(u + u))
        d = one + e
        s = np.where(u >= 0, one / d, e / d)
        return s + z.dtype.type(2) * z * (e / (d * d)) * c * (one + 3 * k * z * z)
    if act == C.EXP:
        return a.copy()
    # steps and softmax: the dispatcher rejects them before any kernel runs
    raise ValueError(f"activation code {act} has no elementwise derivative")


def all_finite(X, n_threads=0):
    """Whether every value of the 1-D array ``X`` is finite."""
    return bool(np.isfinite(X).all())


def activation_forward(Z, activation, A, n_threads=0):
    """A = f(Z) elementwise (row-wise for softmax). Z and A have the same shape."""
    A[...] = _apply(Z, activation)


def activation_backward(Z, A, dA, activation, dZ, n_threads=0):
    """dZ = dA * f'(Z) with f' taken from A (or from Z for softplus and gelu)."""
    dZ[...] = dA * _derivative(Z, A, activation)


def softmax(Z, A, n_threads=0):
    """Row-wise softmax with the row maximum subtracted first."""
    A[...] = _apply(Z, C.SOFTMAX)


# --------------------------------------------------------------------------------------
# dense layer


def dense_forward(X, W, b, activation, A, Z, n_threads=0):
    """A = f(X W + b); when Z is not None it receives the pre-activation X W + b.

    Shapes: X (n, k), W (k, m), b (m,), A and Z (n, m).
    """
    z = X @ W
    z += b
    if Z is not None:
        Z[...] = z
    A[...] = _apply(z, activation)


def dense_backward(X, W, A, Z, dA, activation, l2, dW, db, dX, n_threads=0):
    """Backward pass of one dense layer ``A = f(X W + b)``.

    dZ = dA * f'(.)  (A, and Z for softplus/gelu, are the saved forward state);
    dW = X^T dZ + l2 W;  db = sum over rows of dZ;  dX = dZ W^T unless dX is None.

    ``activation`` is the layer's own activation; pass IDENTITY when dA already is the
    gradient w.r.t. the pre-activation (the output layer with a canonical loss link).
    Shapes: X (n, k), W (k, m), A/Z/dA (n, m), dW (k, m), db (m,), dX (n, k) or None.
    """
    dZ = dA if activation == C.IDENTITY else dA * _derivative(Z, A, activation)
    dW[...] = X.T @ dZ
    if l2 != 0.0:
        dW += dW.dtype.type(l2) * W
    db[...] = dZ.sum(axis=0)
    if dX is not None:
        dX[...] = dZ @ W.T


# --------------------------------------------------------------------------------------
# losses


def loss_gradient(P, Y, sample_weight, loss, huber_delta, G, n_threads=0):
    """Return the batch loss and write its gradient into G (see ``_codes`` for formulas).

    P, Y, G: (n, k); sample_weight: (n,) or None. The value follows scikit-learn:
    a sample-weighted average over rows, then the mean over outputs (squared, absolute,
    huber) or the sum over outputs (log losses, poisson). The value is accumulated in
    float64 and returned as a Python float. G = s_i g(p, y) / S, S = sum of weights.
    """
    n = P.shape[0]
    f64 = np.float64
    p = P.astype(f64)
    y = Y.astype(f64)
    s = np.ones(n) if sample_weight is None else sample_weight.astype(f64)
    S = s.sum()
    r = p - y
    if loss == C.SQUARED_ERROR:
        per = 0.5 * r * r
        g = r
    elif loss == C.ABSOLUTE_ERROR:
        per = np.abs(r)
        g = np.sign(r)
    elif loss == C.HUBER:
        d = float(huber_delta)
        ar = np.abs(r)
        per = np.where(ar <= d, 0.5 * r * r, d * (ar - 0.5 * d))
        g = np.clip(r, -d, d)
    elif loss in (C.BINARY_LOG_LOSS, C.LOG_LOSS):
        eps = float(np.finfo(P.dtype).eps)
        pc = np.clip(p, eps, 1 - eps)
        # xlogy semantics: 0 * log(anything) == 0
        per = -np.where(y != 0, y * np.log(pc), 0.0)
        if loss == C.BINARY_LOG_LOSS:
            per -= np.where(y != 1, (1 - y) * np.log(1 - pc), 0.0)
        g = r
    elif loss == C.POISSON:
        # half Poisson deviance with scikit-learn's constant term xlogy(y, y/p) - y
        per = np.where(y != 0, y * np.log(np.where(y != 0, y, 1.0) / p), 0.0) - y + p
        g = r
    else:
        raise ValueError(f"unknown loss code {loss}")
    avg = (s[:, None] * per).sum(axis=0) / S
    value = avg.mean() if loss in (C.SQUARED_ERROR, C.ABSOLUTE_ERROR, C.HUBER) else avg.sum()
    G[...] = (s[:, None] * g / S).astype(G.dtype)
    return float(value)


# --------------------------------------------------------------------------------------
# optimizers: in place on flat vectors; the dtype of the parameters is kept


def sgd_step(params, grads, velocity, lr, momentum, nesterov, n_threads=0):
    """v = momentum v - lr g; p += (momentum v - lr g) if nesterov else v."""
    t = params.dtype.type
    velocity *= t(momentum)
    velocity -= t(lr) * grads
    if nesterov:
        params += t(momentum) * velocity - t(lr) * grads
    else:
        params += velocity


def adagrad_step(params, grads, accum, lr, eps, n_threads=0):
    """s += g^2; p -= lr g / (sqrt(s) + eps)."""
    t = params.dtype.type
    accum += grads * grads
    params -= t(lr) * grads / (np.sqrt(accum) + t(eps))


def rmsprop_step(params, grads, sq, lr, rho, eps, n_threads=0):
    """s = rho s + (1 - rho) g^2; p -= lr g / (sqrt(s) + eps)."""
    t = params.dtype.type
    sq *= t(rho)
    sq += t(1.0 - rho) * grads * grads
    params -= t(lr) * grads / (np.sqrt(sq) + t(eps))


def adam_step(params, grads, m, v, lr, beta1, beta2, eps, weight_decay, t, n_threads=0):
    """One Adam (AdamW when weight_decay > 0) step; ``t`` is the step number after increment.

    m = b1 m + (1-b1) g;  v = b2 v + (1-b2) g^2;
    lr_t = lr sqrt(1 - b2^t) / (1 - b1^t)  (computed in float64, as scikit-learn);
    p -= lr wd p  (decoupled decay, before the moment update);  p -= lr_t m / (sqrt(v) + eps).
    """
    ty = params.dtype.type
    if weight_decay != 0.0:
        params -= ty(lr * weight_decay) * params
    m *= ty(beta1)
    m += ty(1.0 - beta1) * grads
    v *= ty(beta2)
    v += ty(1.0 - beta2) * grads * grads
    lr_t = lr * np.sqrt(1.0 - beta2**t) / (1.0 - beta1**t)
    params -= ty(lr_t) * m / (np.sqrt(v) + ty(eps))


def optimizer_step(params, grads, state, optimizer, hyper, step, n_threads=0):
    """Apply one step of the optimizer ``optimizer`` (code) with the ``hyper`` vector.

    state: (slots, P) optimizer state; step: int64 (1,) Adam counter, incremented here.
    """
    h = hyper
    if optimizer in (C.SGD, C.NESTEROV):
        sgd_step(params, grads, state[0], h[C.H_LR], h[C.H_MOMENTUM],
                 optimizer == C.NESTEROV)
    elif optimizer == C.ADAGRAD:
        adagrad_step(params, grads, state[0], h[C.H_LR], h[C.H_EPS])
    elif optimizer == C.RMSPROP:
        rmsprop_step(params, grads, state[0], h[C.H_LR], h[C.H_RHO], h[C.H_EPS])
    elif optimizer in (C.ADAM, C.ADAMW):
        step[0] += 1
        wd = h[C.H_WEIGHT_DECAY] if optimizer == C.ADAMW else 0.0
        adam_step(params, grads, state[0], state[1], h[C.H_LR], h[C.H_BETA1], h[C.H_BETA2],
                  h[C.H_EPS], wd, int(step[0]))
    else:
        raise ValueError(f"unknown optimizer code {optimizer}")


# --------------------------------------------------------------------------------------
# whole networks


def param_offsets(layer_sizes):
    """Offsets of (W_i, b_i) in the flat parameter vector, and its total length."""
    sizes = [int(v) for v in layer_sizes]  # plain ints: numpy scalars make this slow
    offs = []
    pos = 0
    for fan_in, fan_out in pairwise(sizes):
        w = pos
        pos += fan_in * fan_out
        offs.append((w, pos))
        pos += fan_out
    return offs, pos


def unpack_params(params, layer_sizes):
    """Views (W_i, b_i) into the flat vector (writes through)."""
    offs, _ = param_offsets(layer_sizes)
    out = []
    for (w, bo), fan_in, fan_out in zip(offs, layer_sizes[:-1], layer_sizes[1:]):
        out.append((params[w:bo].reshape(int(fan_in), int(fan_out)),
                    params[bo:bo + int(fan_out)]))
    return out


def train_workspace_size(layer_sizes, batch_size):
    """Length of the flat ``workspace`` that train_epoch needs (identical for every backend).

    Room for the gathered batch (X, Y, sample weights) and four batch-by-width buffers
    per layer (Z, A, dA and a spare for backends that need a transposed copy).
    """
    ls = [int(v) for v in layer_sizes]
    return int(batch_size) * (ls[0] + ls[-1] + 1 + 4 * sum(ls[1:]))


def mlp_workspace_size(layer_sizes, n_rows):
    """Length of the flat ``workspace`` that mlp_forward needs: two ping-pong buffers."""
    return 2 * int(n_rows) * max(int(v) for v in layer_sizes[1:])


def mlp_forward(X, params, layer_sizes, activations, out, workspace, n_threads=0):
    """Forward pass of the whole network: out = f_L(... f_1(X W_1 + b_1) ...).

    activations: int32 (L,) codes per layer (the last is the output activation);
    out: (n, layer_sizes[-1]); workspace: flat, at least mlp_workspace_size.
    """
    a = X
    layers = unpack_params(params, layer_sizes)
    for i, (W, b) in enumerate(layers):
        nxt = np.empty((X.shape[0], W.shape[1]), dtype=X.dtype)
        dense_forward(a, W, b, int(activations[i]), nxt, None)
        a = nxt
    out[...] = a


def _epochs_one_by_one(one_epoch, order, epoch_rows, epoch_totals, nonfinite):
    """train_epoch's ``epoch_rows`` for a backend that trains one epoch per call:
    ``one_epoch(part)`` for each epoch's part of ``order``, the totals stored as
    train_epoch documents (stopping at a non-finite row, with ``nonfinite``)."""
    total = 0.0
    for e in range(order.shape[0] // epoch_rows):
        t = one_epoch(order[e * epoch_rows:(e + 1) * epoch_rows])
        if nonfinite is not None and nonfinite[0] >= 0:
            return total
        if epoch_totals is not None:
            epoch_totals[e] = t
        total += t
    return float(total)


def train_epoch(X, Y, sample_weight, order, batch_size, layer_sizes, activations, loss,
                params, grads, state, optimizer, hyper, step, workspace, grad_norms,
                n_threads=0, nonfinite=None, epoch_rows=0, epoch_totals=None):
    """One epoch of minibatch training, rows visited in ``order`` (or several, see
    ``epoch_rows``).

    X (n, d), Y (n, k), sample_weight (n,) or None, order int64 (m,) row indices
    (m <= n; batches are order[0:bs], order[bs:2bs], ..., the last one short);
    layer_sizes int64 (L+1,); activations int32 (L,) (hidden codes then the output code);
    loss: code; params/grads: flat (P,); state: (slots, P); optimizer: code;
    hyper: float64 (N_HYPER,); step: int64 (1,) Adam counter (in/out);
    workspace: flat, train_workspace_size long (the reference does not need it);
    grad_norms: float64 (L,) or None - when given, the Frobenius norm of each layer's
    dW (before the optimizer step) is added to it once per batch;
    nonfinite: int64 (1,) or None - when given, each batch's rows of X are checked for
    NaN and infinity as they are gathered: the epoch stops before the first batch that
    holds one (the batches before it trained) and its first such row's index in X is
    stored here, else -1. (X is read anyway: no separate pass over it before the epoch.)
    epoch_rows: 0 (order is one epoch), or m / E for E epochs back to back in order (m a
    multiple of it), each batched on its own - the same batches and steps as E calls, for
    one call: epoch_totals, float64 (E,) or None, then receives each epoch's sum of
    batch_loss * batch_length, and grad_norms accumulates over all of them.

    Per batch of weight sum S (batch length without weights):
      forward through every layer; loss value and output gradient G (loss_gradient);
      the output layer's backward uses IDENTITY when the loss has a canonical link with the
      output activation, else the output activation; L2 adds alpha/S * W to each dW and
      0.5 alpha sum ||W||^2 / S to the loss; L1 adds l1/S * sign(W) and l1 sum |W| / S;
      then one optimizer step over the flat vector.
    Returns sum over batches of batch_loss * batch_length, as a float (scikit-learn's
    accumulated loss; divide by m for ``loss_``).
    """
    if epoch_rows:
        return _epochs_one_by_one(
            lambda part: train_epoch(X, Y, sample_weight, part, batch_size, layer_sizes,
                                     activations, loss, params, grads, state, optimizer,
                                     hyper, step, workspace, grad_norms, n_threads,
                                     nonfinite),
            order, epoch_rows, epoch_totals, nonfinite)
    h = hyper
    alpha, l1 = float(h[C.H_ALPHA]), float(h[C.H_L1])
    dt = X.dtype.type
    layers = unpack_params(params, layer_sizes)
    glayers = unpack_params(grads, layer_sizes)
    L = len(layers)
    out_act = int(activations[L - 1])
    out_back = C.IDENTITY if C.CANONICAL_LINK.get(loss) == out_act else out_act
    m = order.shape[0]
    total = 0.0
    if nonfinite is not None:
        nonfinite[0] = -1
    for start in range(0, m, batch_size):
        idx = order[start:start + batch_size]
        nb = idx.shape[0]
        xb = X[idx]
        if nonfinite is not None:
            bad = ~np.isfinite(xb).all(axis=1)
            if bad.any():
                nonfinite[0] = idx[np.argmax(bad)]
                break
        yb = Y[idx]
        swb = None if sample_weight is None else sample_weight[idx]
        S = float(nb) if swb is None else float(swb.astype(np.float64).sum())
        As, Zs = [xb], []
        for i, (W, b) in enumerate(layers):
            A = np.empty((nb, W.shape[1]), dtype=X.dtype)
            Z = np.empty_like(A)
            dense_forward(As[-1], W, b, int(activations[i]), A, Z)
            As.append(A)
            Zs.append(Z)
        G = np.empty_like(As[-1])
        value = loss_gradient(As[-1], yb, swb, loss, float(h[C.H_HUBER_DELTA]), G)
        if alpha != 0.0:
            value += 0.5 * alpha * sum(float(np.dot(W.ravel().astype(np.float64),
                                                    W.ravel().astype(np.float64)))
                                       for W, _ in layers) / S
        if l1 != 0.0:
            value += l1 * sum(float(np.abs(W).astype(np.float64).sum())
                              for W, _ in layers) / S
        total += value * nb
        dA = G
        for i in range(L - 1, -1, -1):
            W, _ = layers[i]
            dW, db = glayers[i]
            act = out_back if i == L - 1 else int(activations[i])
            dX = np.empty_like(As[i]) if i > 0 else None
            dense_backward(As[i], W, As[i + 1], Zs[i], dA, act, alpha / S, dW, db, dX)
            if l1 != 0.0:
                dW += dt(l1 / S) * np.sign(W)
            if grad_norms is not None:
                grad_norms[i] += float(np.sqrt(np.sum(dW.astype(np.float64) ** 2)))
            dA = dX
        optimizer_step(params, grads, state, optimizer, h, step)
    return float(total)


# --------------------------------------------------------------------------------------
# perceptrons


def _step(z, step):
    return (z >= 0).astype(z.dtype) if step == C.HEAVISIDE else np.sign(z).astype(z.dtype)


def perceptron_epoch(X, Y, order, W, b, eta, step, n_threads=0):
    """One online epoch of Rosenblatt's rule over the rows in ``order``; all outputs at once.

    For each row x (in order): yhat = step(x W + b);  W += eta x^T (y - yhat);
    b += eta (y - yhat). ``step`` is HEAVISIDE (targets 0/1) or SIGN (targets -1/+1).
    X (n, d), W (d, k), b (k,). Y is (n, k) targets, or int64 labels (n,) meaning one-hot
    targets: output c of row r has target 1 when Y[r] == c, else 0 (HEAVISIDE) or -1
    (SIGN). Returns the number of rows with at least one wrong output (a mistake, counted
    before that row's update); -1 when a visited row of X holds a NaN or an infinity, with
    W and b left as they were before the call.

    The products x_j W_jc may be summed in any order here; the compiled backends use 8
    partial sums s_r over j = r mod 8, folded ((s0 + s4) + (s2 + s6)) + ((s1 + s5) + (s3 +
    s7)), which no vector width changes.
    """
    mistakes = 0
    e_eta = X.dtype.type(eta)
    k = W.shape[1]
    lo = 0.0 if step == C.HEAVISIDE else -1.0
    W0, b0 = W.copy(), b.copy()
    for r in order:
        x = X[r]
        if not np.isfinite(x).all():
            W[...] = W0
            b[...] = b0
            return -1
        y = Y[r] if Y.ndim == 2 else np.where(np.arange(k) == Y[r], 1.0, lo).astype(X.dtype)
        yhat = _step(x @ W + b, step)
        err = y - yhat
        if np.any(err != 0):
            mistakes += 1
            W += np.outer(x, e_eta * err)
            b += e_eta * err
    return mistakes


def _xorshift_next(s):
    s ^= (s << 13) & 0xFFFFFFFF
    s ^= s >> 17
    s ^= (s << 5) & 0xFFFFFFFF
    return s


def xorshift_shuffle(order, seed, n_threads=0):
    """scikit-learn's SequentialDataset shuffle applied in place to ``order``.

    Fisher-Yates: for i in 0..n-2, j = i + r % (n - i) with r the next xorshift32 value of
    the state started at ``seed`` (0 is replaced by 1), taken modulo 2^31. scikit-learn
    passes the same seed every epoch, so each epoch applies the same permutation again.
    """
    n = order.shape[0]
    s = int(seed) & 0xFFFFFFFF
    for i in range(n - 1):
        if s == 0:
            s = 1
        s = _xorshift_next(s)
        j = i + (s % (1 << 31)) % (n - i)
        order[i], order[j] = order[j], order[i]


def perceptron_epoch_sklearn(X, y, order, w, b, eta0, sample_weight, class_weight,
                             fit_intercept, n_threads=0):
    """One epoch of scikit-learn's Perceptron (hinge at 0, penalty None) for one class.

    y: (n,) float64 of -1/+1; w: (d,) in X's dtype (in/out); b: float64 (1,) (in/out);
    sample_weight: float64 (n,) or None; class_weight: float64 (2,) = (weight of -1,
    weight of +1). For each row k in ``order``: p = w.x + b with the products w_j x_j
    formed in X's dtype and added one by one to a float64 accumulator (then rounded to
    X's dtype, as scikit-learn's dot returns it) plus b in float64; a mistake when
    y p <= 0 (a tie is a mistake); then u = (eta0 y) (cw sw) with cw and sw held in X's
    dtype and their product rounded to it (scikit-learn's class_weight * sample_weight),
    and w_j = dtype(double(w_j) + double(x_j) double(dtype(u))): WeightVector.add forms
    the product and the sum in double and rounds once (not fused; for float32 this
    differs from a float32 product x * u); b += u (float64) if fit_intercept.
    Returns (sum of max(0, -y p) over the epoch, number of mistakes); the number of
    mistakes is -1 when a visited row of X holds a NaN or an infinity (the epoch stops at
    that row, its weights undefined).
    """
    dt = X.dtype.type
    sumloss = 0.0
    mistakes = 0
    for k in order:
        x = X[k]
        if not np.isfinite(x).all():
            return sumloss, -1
        acc = 0.0
        for j in range(x.shape[0]):
            acc += float(dt(w[j]) * dt(x[j]))
        p = float(dt(acc)) + float(b[0])
        yk = float(y[k])
        z = p * yk
        if z <= 0.0:
            sumloss -= z
            mistakes += 1
            sw = 1.0 if sample_weight is None else float(sample_weight[k])
            cw = float(class_weight[1] if yk > 0 else class_weight[0])
            u = (eta0 * yk) * float(dt(dt(cw) * dt(sw)))
            if u != 0.0:
                c = float(dt(u))
                w[...] = (w.astype(np.float64) + x.astype(np.float64) * c).astype(w.dtype)
                if fit_intercept:
                    b[0] += u
    return sumloss, mistakes


def perceptron_fit_sklearn(X, Y, W, B, seeds, eta0, sample_weight, class_weight,
                           fit_intercept, shuffle, max_iter, tol, n_iter_no_change, n_iter,
                           n_threads=0):
    """scikit-learn's whole Perceptron fit for K independent binary problems (one-vs-rest).

    Y: float64 (K, n) of -1/+1, or int64 labels (n,) (problem c: +1 where Y == c, -1
    elsewhere); W: (K, d) in X's dtype; B: float64 (K,); seeds: int64 (K,) shuffle seeds;
    class_weight: float64 (K, 2); n_iter: int64 (K,) out, epochs run per class. Each class
    starts from its row of W/B and runs up to max_iter epochs: the row order starts as
    0..n-1 and, when ``shuffle``, is xorshift-shuffled with that class's seed before each
    epoch; obj = sumloss / n; the no-improvement count grows when
    obj > best - tol, else it resets; best = min(best, obj); the class stops when the
    count reaches n_iter_no_change. tol = -inf disables stopping (scikit-learn's
    tol=None). Rows of zero sample weight never update the weights, but they still count in
    the loss, the mistakes and n (so they are not scikit-learn's skipped early-stopping
    validation rows). Classes are independent (threads may split them). A class that meets
    a row of X holding a NaN or an infinity stops with n_iter -1 (its weights undefined).
    Returns nothing.
    """
    if Y.ndim == 1:  # labels: problem c has +1 where Y == c
        Y = np.where(Y[None, :] == np.arange(W.shape[0])[:, None], 1.0, -1.0)
    n = X.shape[0]
    for c in range(Y.shape[0]):
        order = np.arange(n, dtype=np.int64)
        w = W[c]
        bb = B[c:c + 1]
        best = np.inf
        no_imp = 0
        for epochs in range(1, max_iter + 1):
            if shuffle:
                xorshift_shuffle(order, int(seeds[c]))
            sumloss, m = perceptron_epoch_sklearn(X, Y[c], order, w, bb, eta0,
                                                  sample_weight, class_weight[c],
                                                  fit_intercept)
            # (counted as they end: after Ctrl-C, n_iter holds the epochs completed)
            n_iter[c] = epochs
            if m < 0:  # a row of X holds a NaN or an infinity
                n_iter[c] = -1
                break
            obj = sumloss / n
            if tol > -np.inf:
                no_imp = no_imp + 1 if obj > best - tol else 0
                best = min(best, obj)
                if no_imp >= n_iter_no_change:
                    break


# --------------------------------------------------------------------------------------
# batch normalisation (over the rows of a batch; one statistic per column)


def _column_sums(a, out):
    """out[j] = a[0, j] + a[1, j] + ... in row order: the batch norm kernels' sums.
    (np.sum may sum a column pairwise - it does for a single column - and so differ in
    the last bits; a cumulative sum is sequential.)"""
    out[...] = np.cumsum(a, axis=0, dtype=a.dtype)[-1]


def batchnorm_forward(Z, gamma, beta, eps, Y, Xhat, mean, invstd, n_threads=0):
    """Training-mode batch normalisation of ``Z`` (n, k) with the batch's own statistics.

    Per column j, over the n rows (n >= 1)::

        mean   = sum_i Z[i] / n
        var    = sum_i (Z[i] - mean)^2 / n          (biased, as in training)
        invstd = 1 / sqrt(var + eps)
        Xhat   = (Z - mean) * invstd
        Y      = Xhat * gamma + beta

    gamma, beta, mean, invstd: (k,); Y, Xhat: (n, k); ``eps`` > 0 a Python float.
    Writes Y, Xhat (saved for the backward pass), mean and invstd (saved too, and the
    caller's source for running statistics: var = 1 / invstd^2 - eps).
    """
    n = Z.shape[0]
    _column_sums(Z, mean)
    mean /= n
    np.subtract(Z, mean, out=Xhat)
    _column_sums(Xhat * Xhat, invstd)
    invstd /= n
    invstd += eps
    np.sqrt(invstd, out=invstd)
    np.divide(1, invstd, out=invstd)
    Xhat *= invstd
    np.multiply(Xhat, gamma, out=Y)
    Y += beta


def batchnorm_backward(dY, Xhat, gamma, invstd, dZ, dgamma, dbeta, n_threads=0):
    """Backward of :func:`batchnorm_forward` from its saved ``Xhat`` and ``invstd``.

    With ``dY = dL/dY`` (n, k), per column::

        dbeta  = sum_i dY[i]
        dgamma = sum_i dY[i] * Xhat[i]
        dZ     = (n dY - dbeta - Xhat * dgamma) * (gamma * invstd / n)

    (the mean and the variance depend on every row, hence the two sums in dZ).
    Writes dZ (n, k), dgamma and dbeta (k,).
    """
    n = dY.shape[0]
    _column_sums(dY, dbeta)
    _column_sums(dY * Xhat, dgamma)
    np.multiply(dY, n, out=dZ)
    dZ -= dbeta
    dZ -= Xhat * dgamma
    dZ *= gamma * invstd / n


def batchnorm_inference(Z, gamma, beta, running_mean, running_var, eps, Y, n_threads=0):
    """Inference-mode batch normalisation: running statistics replace the batch's.

    ``Y = (Z - running_mean) * (gamma / sqrt(running_var + eps)) + beta``, an affine map
    per column (``kernels.batchnorm_fold`` merges it into the preceding dense layer).
    Z, Y: (n, k); the other arrays (k,); running_var >= 0.
    """
    scale = gamma / np.sqrt(running_var + Z.dtype.type(eps))
    np.subtract(Z, running_mean, out=Y)
    Y *= scale
    Y += beta
