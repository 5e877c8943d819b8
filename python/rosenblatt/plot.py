"""Figures for the lecture: activations, decision boundaries, learning curves, networks.

Needs matplotlib (``pip install rosenblatt[plot]``). matplotlib is imported inside each
function, so ``import rosenblatt.plot`` is cheap and works without it until a figure is
drawn. Every function returns the :class:`matplotlib.figure.Figure` it drew on (the
figure of ``ax`` when one is passed) and never calls ``plt.show()``: save it with
``fig.savefig(...)`` or display it in a notebook.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "activation",
    "activation_derivative",
    "plot_activations",
    "plot_decision_boundary",
    "plot_digit_probabilities",
    "plot_learning_curves",
    "plot_network",
    "plot_neuron_activations",
    "plot_regression_fits",
]

# Same constants as the compiled core (see rosenblatt._codes), repeated here so that this
# module stays importable on its own.
_LEAKY_SLOPE = 0.01
_ELU_ALPHA = 1.0
_GELU_C = 0.7978845608028654  # sqrt(2 / pi)
_GELU_K = 0.044715

_LABELS = {
    "identity": "identity",
    "heaviside": "Heaviside step",
    "sign": "sign",
    "logistic": "sigmoid (logistic)",
    "tanh": "tanh",
    "relu": "ReLU",
    "leaky_relu": "leaky ReLU (0.01)",
    "elu": "ELU",
    "softplus": "softplus",
    "gelu": "GELU",
}

# colours of the classes' points, in the order of the sorted labels
_POINT_COLORS = ("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown")


def _sigmoid(z):
    # the two-sided form never overflows exp()
    e = np.exp(-np.abs(z))
    return np.where(z >= 0, 1 / (1 + e), e / (1 + e))


def activation(name: str, z) -> np.ndarray:
    """Value of an activation function.

    Parameters
    ----------
    name : str
        One of ``identity``, ``heaviside``, ``sign``, ``logistic``, ``tanh``, ``relu``,
        ``leaky_relu``, ``elu``, ``softplus``, ``gelu``.
    z : array-like
        Pre-activations.

    Returns
    -------
    ndarray
        ``f(z)``, elementwise. ``heaviside(0) = 1`` and ``sign(0) = 0``, as in the lecture.
    """
    z = np.asarray(z, dtype=float)
    if name == "identity":
        return z.copy()
    if name == "heaviside":
        return (z >= 0).astype(float)
    if name == "sign":
        return np.sign(z)
    if name == "logistic":
        return _sigmoid(z)
    if name == "tanh":
        return np.tanh(z)
    if name == "relu":
        return np.maximum(z, 0.0)
    if name == "leaky_relu":
        return np.where(z > 0, z, _LEAKY_SLOPE * z)
    if name == "elu":
        return np.where(z > 0, z, _ELU_ALPHA * np.expm1(np.minimum(z, 0.0)))
    if name == "softplus":
        return np.maximum(z, 0.0) + np.log1p(np.exp(-np.abs(z)))
    if name == "gelu":
        return 0.5 * z * (1 + np.tanh(_GELU_C * (z + _GELU_K * z**3)))
    raise ValueError(f"unknown activation {name!r}; expected one of {sorted(_LABELS)}")


def activation_derivative(name: str, z) -> np.ndarray:
    """Derivative ``f'(z)`` of an activation function.

    The step functions are flat wherever they are defined, so their derivative is 0
    (and undefined at ``z = 0``): the reason backpropagation replaced them with the
    sigmoid.

    Parameters
    ----------
    name : str
        As in :func:`activation`.
    z : array-like

    Returns
    -------
    ndarray
    """
    z = np.asarray(z, dtype=float)
    if name == "identity":
        return np.ones_like(z)
    if name in ("heaviside", "sign"):
        return np.zeros_like(z)
    if name == "logistic":
        s = _sigmoid(z)
        return s * (1 - s)
    if name == "tanh":
        return 1 - np.tanh(z) ** 2
    if name == "relu":
        return (z > 0).astype(float)
    if name == "leaky_relu":
        return np.where(z > 0, 1.0, _LEAKY_SLOPE)
    if name == "elu":
        return np.where(z > 0, 1.0, _ELU_ALPHA * np.exp(np.minimum(z, 0.0)))
    if name == "softplus":
        return _sigmoid(z)
    if name == "gelu":
        u = _GELU_C * (z + _GELU_K * z**3)
        t = np.tanh(u)
        return 0.5 * (1 + t) + 0.5 * z * (1 - t**2) * _GELU_C * (1 + 3 * _GELU_K * z**2)
    raise ValueError(f"unknown activation {name!r}; expected one of {sorted(_LABELS)}")


def _figure(**kw):
    """A new Figure that is not registered with pyplot.

    Creating :class:`matplotlib.figure.Figure` directly needs no GUI backend (``savefig``
    renders with Agg), leaves no global state behind to leak memory across a long run,
    and still displays in a notebook when returned.
    """
    try:
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise ImportError("rosenblatt.plot needs matplotlib: pip install 'rosenblatt[plot]'"
                          ) from exc
    return Figure(**kw)


def _new_axes(ax, nrows=1, ncols=1, figsize=None, **kw):
    """Return (fig, axes) either from ``ax`` or from a new figure."""
    if ax is not None:
        axes = ax
        first = np.ravel(np.asarray(ax, dtype=object))[0]
        return first.figure, axes
    fig = _figure(figsize=figsize)
    axes = fig.subplots(nrows, ncols, **kw)
    return fig, axes


def plot_activations(names=("heaviside", "logistic", "tanh", "relu"), *, z=None, ax=None,
                     title=None):
    """The chapter's figure: activation functions (left) and their derivatives (right).

    Parameters
    ----------
    names : sequence of str, default=("heaviside", "logistic", "tanh", "relu")
        Activations to draw (see :func:`activation`).
    z : array-like, optional
        Pre-activation values; default 801 points on [-5, 5].
    ax : pair of Axes, optional
        Where to draw the functions and the derivatives.
    title : str, optional
        Figure title.

    Returns
    -------
    matplotlib.figure.Figure
    """
    z = np.linspace(-5, 5, 801) if z is None else np.asarray(z, dtype=float)
    fig, axes = _new_axes(ax, 1, 2, figsize=(11, 4.2))
    ax_f, ax_d = axes[0], axes[1]
    styles = ["-", "--", "-.", ":"]
    for i, name in enumerate(names):
        label = _LABELS.get(name, name)
        ls = styles[i % len(styles)]
        f = _break_jumps(activation(name, z))
        d = _break_jumps(activation_derivative(name, z))
        line, = ax_f.plot(z, f, ls, lw=2, label=label)
        ax_d.plot(z, d, ls, lw=2, label=label, color=line.get_color())
        if name in ("heaviside", "sign"):
            # the value at the jump matters (heaviside(0) = 1, sgn(0) = 0): a filled dot
            ax_f.plot([0], [float(activation(name, 0.0))], "o", color=line.get_color(), ms=7)
            # the derivative does not exist at the jump
            ax_d.plot([0], [0], "o", mfc="white", color=line.get_color(), ms=7)
    for a, t in ((ax_f, "Activation functions f(z)"), (ax_d, "Derivatives f'(z)")):
        a.axhline(0, color="grey", lw=0.6)
        a.axvline(0, color="grey", lw=0.6)
        a.grid(True, alpha=0.3)
        a.set_xlabel("z (weighted sum of inputs)")
        a.set_title(t)
        a.legend(loc="upper left", fontsize=9)
    ax_f.set_ylabel("f(z)")
    ax_d.set_ylabel("f'(z)")
    # the chapter's ranges: ReLU leaves the top of the frame, as in the book
    ax_f.set_ylim(-1.2, 1.6)
    ax_d.set_ylim(-0.2, 1.2)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def _break_jumps(v, tol=0.2):
    """Insert gaps at discontinuities so a step is not drawn as a steep line."""
    v = np.array(v, dtype=float)
    v[1:][np.abs(np.diff(v)) > tol] = np.nan
    return v


def _grid(X, resolution, padding):
    X = np.asarray(X, dtype=float)
    lo = X.min(axis=0) - padding
    hi = X.max(axis=0) + padding
    xx, yy = np.meshgrid(np.linspace(lo[0], hi[0], resolution),
                         np.linspace(lo[1], hi[1], resolution))
    return xx, yy, np.c_[xx.ravel(), yy.ravel()]


def _linear_coefs(est):
    """(W, b) of a linear classifier with 2 features, or None."""
    coef = getattr(est, "coef_", None)
    if coef is None:
        return None
    coef = np.atleast_2d(np.asarray(coef, dtype=float))
    if coef.shape[1] != 2:
        return None
    return coef, np.atleast_1d(np.asarray(est.intercept_, dtype=float))


def plot_decision_boundary(est, X, y=None, *, ax=None, resolution=250, padding=0.5,
                           line=True, proba=True, feature_names=None, class_names=None,
                           title=None, scatter_kw=None):
    """Decision regions of a fitted classifier on two features, with the data on top.

    For a binary classifier with ``predict_proba`` the background is the predicted
    probability of the positive class (the 0.5 contour is the boundary); otherwise it is
    the predicted class. For a linear model (``coef_`` and ``intercept_``, e.g. a
    Perceptron), the line ``w . x + b = 0`` is drawn as well.

    Parameters
    ----------
    est : fitted classifier
        Must accept 2-feature input.
    X : array-like of shape (n, 2)
        Points to draw; also set the plotted range.
    y : array-like of shape (n,), optional
        Their classes (colours and legend).
    ax : Axes, optional
    resolution : int, default=250
        Grid points per axis.
    padding : float, default=0.5
        Margin around the data, in feature units.
    line : bool, default=True
        Draw the linear boundary of a linear model.
    proba : bool, default=True
        Shade by probability when available (binary only).
    feature_names : pair of str, optional
        Axis labels (default "x1", "x2").
    class_names : sequence of str, optional
        Legend names for the classes (default: the values in ``est.classes_``).
    title : str, optional
    scatter_kw : dict, optional
        Extra arguments for the scatter plot.

    Returns
    -------
    matplotlib.figure.Figure
    """
    fig, ax = _new_axes(ax, figsize=(6.2, 5))
    X = np.asarray(X, dtype=float)
    xx, yy, G = _grid(X, resolution, padding)
    classes = getattr(est, "classes_", None)
    binary = classes is not None and np.ndim(classes) == 1 and len(classes) == 2
    cmap_pts = _POINT_COLORS
    markers = ["o", "s", "^", "D", "v", "P"]
    if proba and binary and hasattr(est, "predict_proba"):
        P = est.predict_proba(G)[:, 1].reshape(xx.shape)
        cs = ax.contourf(xx, yy, P, levels=np.linspace(0, 1, 11), cmap="RdBu_r", alpha=0.55)
        cb = fig.colorbar(cs, ax=ax)
        name = class_names[1] if class_names is not None else classes[1]
        cb.set_label(f"P(class = {name})")
        if P.min() < 0.5 < P.max():
            ax.contour(xx, yy, P, levels=[0.5], colors="k", linewidths=1.5)
    else:
        pred = est.predict(G)
        if classes is not None and np.ndim(classes) == 1:
            idx = np.searchsorted(np.asarray(classes), pred).reshape(xx.shape)
            n = len(classes)
        else:
            idx = np.asarray(pred, dtype=float).reshape(xx.shape)
            n = int(idx.max()) + 1
        from matplotlib.colors import ListedColormap

        cmap = ListedColormap(cmap_pts[:max(n, 2)])
        ax.contourf(xx, yy, idx, levels=np.arange(-0.5, max(n, 2)), cmap=cmap, alpha=0.25)
        if n >= 2 and idx.min() != idx.max():
            ax.contour(xx, yy, idx, levels=np.arange(0.5, n - 0.5), colors="k",
                       linewidths=1.2)
    lin = _linear_coefs(est) if line else None
    if lin is not None:
        W, b = lin
        xs = np.linspace(xx.min(), xx.max(), 2)
        for k in range(W.shape[0]):
            w0, w1 = W[k]
            if W.shape[0] == 1:
                label, color = "w . x + b = 0", "k"
            else:
                # one TLU per class: its own line, in its class's colour
                name = class_names[k] if class_names is not None else f"output {k}"
                label, color = f"TLU '{name}': w . x + b = 0", cmap_pts[k % 6]
            if abs(w1) > 1e-12:
                ax.plot(xs, -(w0 * xs + b[k]) / w1, "--", color=color, lw=2, label=label)
            elif abs(w0) > 1e-12:
                ax.axvline(-b[k] / w0, color=color, ls="--", lw=2, label=label)
            else:
                # all-zero weights: no line exists; say so rather than draw nothing silently
                ax.plot([], [], " ", label="weights are all zero: no line")
    if y is not None:
        y = np.asarray(y)
        values = list(classes) if classes is not None and np.ndim(classes) == 1 \
            else list(np.unique(y))
        for i, c in enumerate(values):
            m = y == c
            if not np.any(m):
                continue
            name = class_names[i] if class_names is not None else str(c)
            kw = {"s": 35, "edgecolor": "k", "linewidths": 0.6}
            kw.update(scatter_kw or {})
            ax.scatter(X[m, 0], X[m, 1], c=cmap_pts[i % 6], marker=markers[i % 6],
                       label=name, **kw)
    ax.set_xlim(xx.min(), xx.max())
    ax.set_ylim(yy.min(), yy.max())
    fn = feature_names or ("x1", "x2")
    ax.set_xlabel(fn[0])
    ax.set_ylabel(fn[1])
    ax.set_title(title or f"Decision boundary of {type(est).__name__}")
    ax.legend(loc="best", fontsize=9, framealpha=0.85)
    fig.tight_layout()
    return fig


def _curves(run):
    """Per-epoch curves of an estimator or a dict."""
    if isinstance(run, dict):
        get = run.get
    else:
        def get(key):
            return getattr(run, key, None)
    return {
        "loss": get("loss_curve_") if get("loss_curve_") is not None else get("loss"),
        "val_loss": get("validation_loss_curve_") if get("validation_loss_curve_") is not None
        else get("val_loss"),
        "val_score": get("validation_scores_") if get("validation_scores_") is not None
        else get("val_score"),
        "train_score": get("train_score"),
        "best_epoch": get("best_epoch"),
    }


def plot_learning_curves(runs, *, ax=None, title=None, score_name="validation score",
                         loss_name="loss", log_loss_axis=False):
    """Training and validation loss and validation score per epoch, for one or more runs.

    Parameters
    ----------
    runs : estimator, dict of name -> estimator, or dict of name -> dict
        Fitted MLPs (read ``loss_curve_``, ``validation_loss_curve_``,
        ``validation_scores_``), or dicts with keys ``loss``, ``val_loss``,
        ``val_score`` and optionally ``train_score`` and ``best_epoch`` (1-based, marked
        with a star).
    ax : pair of Axes, optional
        Where to draw the losses and the scores.
    title : str, optional
    score_name : str, default="validation score"
        Label of the score axis (e.g. "accuracy", "R^2").
    loss_name : str, default="loss"
        Label of the loss axis.
    log_loss_axis : bool, default=False
        Logarithmic loss axis.

    Returns
    -------
    matplotlib.figure.Figure
    """
    if not isinstance(runs, dict):
        runs = {type(runs).__name__: runs}
    fig, axes = _new_axes(ax, 1, 2, figsize=(11, 4.2))
    ax_l, ax_s = axes[0], axes[1]
    colors = [f"C{i}" for i in range(10)]
    any_score = False
    for i, (name, run) in enumerate(runs.items()):
        c = _curves(run)
        col = colors[i % 10]
        if c["loss"] is not None:
            ep = np.arange(1, len(c["loss"]) + 1)
            ax_l.plot(ep, c["loss"], "-", color=col, lw=1.8, label=f"{name}: training")
        if c["val_loss"] is not None and len(c["val_loss"]):
            ep = np.arange(1, len(c["val_loss"]) + 1)
            ax_l.plot(ep, c["val_loss"], "--", color=col, lw=1.8, label=f"{name}: validation")
        if c["train_score"] is not None and len(c["train_score"]):
            any_score = True
            ep = np.arange(1, len(c["train_score"]) + 1)
            ax_s.plot(ep, c["train_score"], "-", color=col, lw=1.8, label=f"{name}: training")
        if c["val_score"] is not None and len(c["val_score"]):
            any_score = True
            ep = np.arange(1, len(c["val_score"]) + 1)
            ax_s.plot(ep, c["val_score"], "--", color=col, lw=1.8,
                      label=f"{name}: validation")
        if c["best_epoch"] is not None and c["val_loss"] is not None:
            b = int(c["best_epoch"])
            ax_l.plot([b], [c["val_loss"][b - 1]], "*", color=col, ms=14, mec="k",
                      label=f"{name}: best epoch ({b})")
            for a in (ax_l, ax_s):
                a.axvline(b, color=col, ls=":", lw=1)
    ax_l.set_title("Loss per epoch")
    ax_l.set_xlabel("epoch")
    ax_l.set_ylabel(loss_name)
    if log_loss_axis:
        ax_l.set_yscale("log")
    ax_s.set_title("Score per epoch")
    ax_s.set_xlabel("epoch")
    ax_s.set_ylabel(score_name)
    if not any_score:
        ax_s.text(0.5, 0.5, "no validation set recorded", ha="center", va="center",
                  transform=ax_s.transAxes, color="grey")
    for a in (ax_l, ax_s):
        a.grid(True, alpha=0.3)
        if a.get_legend_handles_labels()[0]:
            a.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def _weights_of(est_or_coefs, intercepts=None):
    if isinstance(est_or_coefs, (list, tuple)):
        coefs = [np.asarray(W, dtype=float) for W in est_or_coefs]
        ints = [np.zeros(W.shape[1]) for W in coefs] if intercepts is None \
            else [np.asarray(b, dtype=float) for b in intercepts]
        return coefs, ints
    est = est_or_coefs
    if hasattr(est, "coefs_"):
        return ([np.asarray(W, dtype=float) for W in est.coefs_],
                [np.asarray(b, dtype=float) for b in est.intercepts_])
    if hasattr(est, "coef_"):
        # a linear model stores (n_outputs, n_features); a layer is (n_in, n_out)
        return ([np.atleast_2d(np.asarray(est.coef_, dtype=float)).T],
                [np.atleast_1d(np.asarray(est.intercept_, dtype=float))])
    raise TypeError("expected a fitted MLP (coefs_), a linear model (coef_) or a list of "
                    f"weight matrices, got {type(est).__name__}")


def plot_network(est_or_coefs, intercepts=None, *, ax=None, input_names=None,
                 output_names=None, hidden_names=None, layer_names=None, max_neurons=16,
                 show_values=None, title=None):
    """Draw a small network: neurons as circles, weights as edges.

    Edge width is proportional to ``|w|`` and colour gives the sign (red positive, blue
    negative); each neuron shows its bias. Layers wider than ``max_neurons`` show their
    first ``max_neurons`` units only (the diagram is for small networks).

    Parameters
    ----------
    est_or_coefs : fitted MLP, fitted linear model, or list of arrays
        ``coefs_``/``intercepts_`` of an MLP, ``coef_``/``intercept_`` of a linear model
        (drawn as a one-layer network), or weight matrices of shape (n_in, n_out).
    intercepts : list of arrays, optional
        Biases when ``est_or_coefs`` is a list.
    ax : Axes, optional
    input_names, output_names : sequence of str, optional
        Labels of the input and output neurons.
    hidden_names : list of sequences of str, optional
        Short labels written inside the hidden neurons, one sequence per hidden layer.
    layer_names : sequence of str, optional
        One caption per layer (default "input", "hidden 1", ..., "output").
    max_neurons : int, default=16
    show_values : bool, optional
        Write each weight on its edge; default when the network has at most 12 edges.
    title : str, optional

    Returns
    -------
    matplotlib.figure.Figure
    """
    coefs, ints = _weights_of(est_or_coefs, intercepts)
    sizes = [coefs[0].shape[0]] + [W.shape[1] for W in coefs]
    shown = [min(s, max_neurons) for s in sizes]
    n_edges = sum(shown[i] * shown[i + 1] for i in range(len(coefs)))
    if show_values is None:
        show_values = n_edges <= 12
    fig, ax = _new_axes(ax, figsize=(2.6 * len(sizes) + 1.5, max(3.5, 0.55 * max(shown) + 1.5)))
    wmax = max(float(np.max(np.abs(W))) for W in coefs) or 1.0
    ypos = [np.linspace(0, 1, n + 2)[1:-1][::-1] if n > 1 else np.array([0.5]) for n in shown]
    for li, W in enumerate(coefs):
        for i in range(shown[li]):
            for j in range(shown[li + 1]):
                w = W[i, j]
                if w == 0:
                    continue  # no connection (e.g. a McCulloch-Pitts neuron ignoring B)
                color = "tab:red" if w > 0 else "tab:blue"
                x0, x1 = li, li + 1
                y0, y1 = ypos[li][i], ypos[li + 1][j]
                ax.plot([x0, x1], [y0, y1], color=color, lw=0.3 + 4.5 * abs(w) / wmax,
                        alpha=0.35 + 0.6 * abs(w) / wmax, zorder=1)
                if show_values:
                    # spread the labels along x by target neuron, so the labels of
                    # edges that cross or fan out do not sit on top of each other
                    n_to = shown[li + 1]
                    t = 0.5 if n_to == 1 else 0.22 + 0.56 * j / (n_to - 1)
                    ax.text(x0 + t * (x1 - x0), y0 + t * (y1 - y0), f"{w:+.2g}", fontsize=8,
                            ha="center", va="center", zorder=3,
                            bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none",
                                  "alpha": 0.85})
    for li, n in enumerate(shown):
        for i in range(n):
            ax.scatter([li], [ypos[li][i]], s=700, c="white", edgecolors="k", zorder=2)
            if li == 0:
                txt = input_names[i] if input_names is not None else f"x{i + 1}"
            elif li == len(shown) - 1 and output_names is not None:
                txt = output_names[i]
            else:
                txt = ""
            if txt:
                side = -0.12 if li == 0 else 0.12
                ax.text(li + side, ypos[li][i], txt, ha="right" if li == 0 else "left",
                        va="center", fontsize=9)
            if 0 < li < len(shown) - 1 and hidden_names is not None:
                ax.text(li, ypos[li][i], hidden_names[li - 1][i], ha="center", va="center",
                        fontsize=9, weight="bold", zorder=3)
            if li > 0:
                # below the circle: inside it, long biases would not fit
                ax.annotate(f"b={ints[li - 1][i]:+.3g}", (li, ypos[li][i]),
                            xytext=(0, -17), textcoords="offset points", ha="center",
                            va="top", fontsize=7, zorder=3,
                            bbox={"boxstyle": "round,pad=0.1", "fc": "white", "ec": "none",
                                  "alpha": 0.8})
        if sizes[li] > n:
            ax.text(li, -0.02, f"(+{sizes[li] - n} more)", ha="center", va="top", fontsize=8)
    names = layer_names or (["input"] + [f"hidden {k}" for k in range(1, len(sizes) - 1)]
                            + ["output"])
    for li, name in enumerate(names):
        units = "unit" if sizes[li] == 1 else "units"
        ax.text(li, 1.04, f"{name}\n({sizes[li]} {units})", ha="center", va="bottom",
                fontsize=9, weight="bold")
    from matplotlib.lines import Line2D

    ax.legend(handles=[Line2D([], [], color="tab:red", lw=3, label="positive weight"),
                       Line2D([], [], color="tab:blue", lw=3, label="negative weight")],
              loc="lower center", bbox_to_anchor=(0.5, -0.12), ncol=2, fontsize=8,
              frameon=False)
    ax.set_xlim(-0.7, len(sizes) - 0.3)
    ax.set_ylim(-0.1, 1.18)
    ax.axis("off")
    ax.set_title(title or "Network weights (edge width = |w|)")
    fig.tight_layout()
    return fig


_ACT_ATTR_DEFAULT = "relu"


def _forward_layers(est, X):
    """Activations of every layer, input first: ``est.forward`` or a NumPy fallback."""
    if hasattr(est, "forward"):
        return [np.asarray(a) for a in est.forward(X)]
    # scikit-learn's MLPs have no forward(); recompute from the weights
    acts = est.activation
    n_hidden = len(est.coefs_) - 1
    acts = [acts] * n_hidden if isinstance(acts, str) else list(acts)
    out = [np.asarray(X, dtype=float)]
    for k, (W, b) in enumerate(zip(est.coefs_, est.intercepts_)):
        z = out[-1] @ W + b
        if k < n_hidden:
            out.append(activation(acts[k], z))
        else:
            name = getattr(est, "out_activation_", "identity")
            if name == "softmax":
                e = np.exp(z - z.max(axis=1, keepdims=True))
                out.append(e / e.sum(axis=1, keepdims=True))
            else:
                out.append(activation(name, z))
    return out


def plot_neuron_activations(est, X=None, y=None, *, layers=None, resolution=120,
                            padding=0.5, extent=None, max_neurons=8, feature_names=None,
                            title=None):
    """What every neuron of a 2-input network computes, drawn over the input plane.

    One panel per neuron: its activation at every point of a grid over the two inputs.
    Neurons of the first hidden layer can only draw one straight boundary each (a
    ridge along ``w . x + b = 0``); later layers combine them into curved regions.

    Parameters
    ----------
    est : fitted MLP with 2 input features
        Uses ``est.forward`` (rosenblatt) or recomputes the layers from ``coefs_``.
    X, y : array-like, optional
        Data drawn on each panel (and used for the plotted range).
    layers : sequence of int, optional
        Which layers to show, 1 = first hidden layer; default all hidden layers and the
        output layer.
    resolution : int, default=120
    padding : float, default=0.5
    extent : (xmin, xmax, ymin, ymax), optional
        Plotted range when ``X`` is not given.
    max_neurons : int, default=8
        Panels per layer at most.
    feature_names : pair of str, optional
    title : str, optional

    Returns
    -------
    matplotlib.figure.Figure
    """
    if X is not None:
        xx, yy, G = _grid(X, resolution, padding)
    else:
        x0, x1, y0, y1 = extent or (-1.5, 1.5, -1.5, 1.5)
        xx, yy = np.meshgrid(np.linspace(x0, x1, resolution), np.linspace(y0, y1, resolution))
        G = np.c_[xx.ravel(), yy.ravel()]
    acts = _forward_layers(est, G)
    n_layers = len(acts) - 1
    layers = list(range(1, n_layers + 1)) if layers is None else list(layers)
    # wrap wide layers onto several rows of at most `ncols` panels
    counts = [min(acts[k].shape[1], max_neurons) for k in layers]
    ncols = min(max(counts), 4)
    rows_of = [int(np.ceil(c / ncols)) for c in counts]
    nrows = sum(rows_of)
    fig = _figure(figsize=(2.9 * ncols + 0.8, 2.5 * nrows + 0.7))
    axes = fig.subplots(nrows, ncols, squeeze=False)
    ext = (xx.min(), xx.max(), yy.min(), yy.max())
    fn = feature_names or ("x1", "x2")
    r0 = 0
    for k, count, nr in zip(layers, counts, rows_of):
        A = acts[k]
        lname = "output" if k == n_layers else f"hidden layer {k}"
        # one colour scale per layer, so neurons of a layer can be compared
        vmin, vmax = float(A[:, :count].min()), float(A[:, :count].max())
        for j in range(nr * ncols):
            a = axes[r0 + j // ncols, j % ncols]
            if j >= count:
                a.axis("off")
                continue
            img = A[:, j].reshape(xx.shape)
            im = a.imshow(img, origin="lower", extent=ext, aspect="auto", cmap="viridis",
                          vmin=vmin, vmax=vmax)
            if X is not None and y is not None:
                Xa = np.asarray(X)
                # the class colours of plot_decision_boundary (blue, orange, ...)
                _, cls = np.unique(np.asarray(y), return_inverse=True)
                a.scatter(Xa[:, 0], Xa[:, 1], c=[_POINT_COLORS[c % len(_POINT_COLORS)]
                                                 for c in cls.ravel()],
                          s=7, edgecolor="k", linewidths=0.3)
            a.set_title(f"{lname}, neuron {j + 1}", fontsize=9)
            a.tick_params(labelsize=7)
            if j % ncols == 0:
                a.set_ylabel(fn[1], fontsize=8)
            a.set_xlabel(fn[0], fontsize=8)
            # a colour bar on every panel keeps the panels the same width
            cb = fig.colorbar(im, ax=a, fraction=0.05, pad=0.03)
            cb.ax.tick_params(labelsize=7)
            if j % ncols == ncols - 1 or j == count - 1:
                cb.set_label("activation", fontsize=8)
        r0 += nr
    fig.suptitle(title or "Activation of each neuron over the input plane (colour = output)")
    fig.tight_layout()
    return fig


def plot_digit_probabilities(images, proba, y_true=None, *, class_names=None,
                             multilabel=False, image_titles=None, title=None):
    """Images with the classifier's predicted probability for each class underneath.

    Parameters
    ----------
    images : array-like of shape (n, h, w)
    proba : array-like of shape (n, n_outputs)
        ``predict_proba`` of the images.
    y_true : array-like of shape (n,) or (n, n_outputs), optional
        True classes (or, multilabel, the 0/1 label rows), written in the titles.
    class_names : sequence of str, optional
        Names of the classes or labels.
    multilabel : bool, default=False
        Each output is an independent probability: the predicted labels are those above
        0.5 (drawn as a dashed line), not the argmax.
    image_titles : sequence of str, optional
        A first title line per image (e.g. the digit shown).
    title : str, optional

    Returns
    -------
    matplotlib.figure.Figure
    """
    images = np.asarray(images)
    proba = np.asarray(proba)
    n, k = proba.shape
    names = list(class_names) if class_names is not None else [str(i) for i in range(k)]
    fig = _figure(figsize=(max(3.0 * n, 7), 5.4))
    axes = fig.subplots(2, n, squeeze=False, gridspec_kw={"height_ratios": [1.2, 1]})
    for i in range(n):
        a = axes[0, i]
        a.imshow(images[i], cmap="binary", interpolation="nearest")
        a.set_xticks([])
        a.set_yticks([])
        if multilabel:
            on = proba[i] > 0.5
            pred = ", ".join(nm for nm, o in zip(names, on) if o) or "no label"
            t = f"predicted: {pred}"
            if y_true is not None:
                truth = ", ".join(nm for nm, o in zip(names, np.asarray(y_true[i]) > 0.5)
                                  if o) or "no label"
                t = f"true: {truth}\n" + t
            chosen = on
        else:
            j = int(np.argmax(proba[i]))
            t = f"predicted {names[j]}"
            if y_true is not None:
                t = f"true {names[int(y_true[i])]}, " + t
            chosen = np.arange(k) == j
        if image_titles is not None:
            t = f"{image_titles[i]}\n{t}"
        a.set_title(t, fontsize=9)
        b = axes[1, i]
        colors = ["tab:green" if c else "tab:grey" for c in chosen]
        b.bar(range(k), proba[i], color=colors)
        b.set_xticks(range(k))
        b.set_xticklabels(names, fontsize=8)
        b.set_ylim(0, 1.05)
        b.set_xlabel("label" if multilabel else "class")
        if multilabel:
            b.axhline(0.5, color="k", ls="--", lw=1)
        if i == 0:
            b.set_ylabel("predicted probability")
        b.grid(True, axis="y", alpha=0.3)
    fig.suptitle(title or "Test images and predict_proba")
    fig.tight_layout()
    return fig


def plot_regression_fits(X, y, models, *, y_clean=None, is_outlier=None, ax=None,
                         title=None, xlabel="x", ylabel="y"):
    """Data of a one-feature regression and the curves of several fitted models.

    Parameters
    ----------
    X : array-like of shape (n, 1)
    y : array-like of shape (n,)
    models : dict of name -> fitted regressor
    y_clean : array-like of shape (n,), optional
        The noiseless relation, drawn as a thin black line.
    is_outlier : array-like of bool, optional
        Marks outliers with a different symbol.
    ax : Axes, optional
    title, xlabel, ylabel : str, optional

    Returns
    -------
    matplotlib.figure.Figure
    """
    fig, ax = _new_axes(ax, figsize=(7.5, 4.8))
    X = np.asarray(X, dtype=float)
    y = np.asarray(y, dtype=float)
    x = X[:, 0]
    if is_outlier is not None:
        m = np.asarray(is_outlier, dtype=bool)
        ax.scatter(x[~m], y[~m], s=10, c="grey", alpha=0.6, label="data")
        ax.scatter(x[m], y[m], s=28, marker="x", c="k", label="outliers")
    else:
        ax.scatter(x, y, s=10, c="grey", alpha=0.6, label="data")
    order = np.argsort(x)
    if y_clean is not None:
        ax.plot(x[order], np.asarray(y_clean)[order], "k-", lw=1, label="true relation")
    xs = np.linspace(x.min(), x.max(), 400)[:, None]
    for i, (name, model) in enumerate(models.items()):
        ax.plot(xs[:, 0], model.predict(xs), lw=2.2, color=f"C{i}", label=name)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title or "Regression fits")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=9)
    fig.tight_layout()
    return fig
