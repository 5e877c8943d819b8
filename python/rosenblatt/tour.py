"""The lecture, runnable: ``python -m rosenblatt tour [--out DIR] [--quick]``.

Runs every concept of the chapter in order (McCulloch-Pitts neurons, the TLU and the
perceptron rule, the iris perceptron, XOR, activation functions, regression and
classification MLPs, the training tools), writes one PNG per figure and a report
(``report.md`` and a self-contained ``report.html``) in which every figure is followed by
what it shows and why, with the numbers printed along the way.

Everything is offline: the chapter's downloads are replaced by the stand-ins of
:mod:`rosenblatt.datasets`. ``--quick`` shrinks data and epochs (for tests); the facts
the tests check (truth tables, XOR, the iris perceptron) are identical in both modes.
"""

from __future__ import annotations

import argparse
import base64
import html
import io
import json
import os
import pickle
import re
import sys
import time
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field
from itertools import pairwise

import numpy as np

__all__ = ["Checkpoint", "EarlyStopping", "History", "Report", "main", "run"]


# --------------------------------------------------------------------------------------
# the report: a list of blocks rendered twice, to Markdown and to self-contained HTML
# --------------------------------------------------------------------------------------

@dataclass
class Report:
    """Collects the tour's text, tables and figures, then writes report.md / report.html.

    Parameters
    ----------
    out : str
        Output directory (created if missing).
    verbose : bool
        Print progress and the numbers as they are produced.
    dpi : int
        Resolution of the saved figures.
    """

    out: str
    verbose: bool = True
    dpi: int = 100
    blocks: list = field(default_factory=list)
    figures: list = field(default_factory=list)

    def __post_init__(self):
        os.makedirs(self.out, exist_ok=True)

    def say(self, text: str) -> None:
        """Print to the console only."""
        if self.verbose:
            print(text, flush=True)

    def heading(self, text: str, level: int = 2) -> None:
        """A heading; level 2 is a section (listed in the HTML contents)."""
        self.blocks.append(("h", level, text))

    def text(self, text: str) -> None:
        """A paragraph (inline Markdown: `code`, **bold**, *italic*)."""
        self.blocks.append(("p", " ".join(text.split())))

    def script(self, name: str) -> None:
        """Point to the example script with the same content."""
        self.blocks.append(("p", f"The same as a short script: `examples/{name}`."))

    def bullets(self, items) -> None:
        """A bulleted list, one string per item."""
        self.blocks.append(("ul", [" ".join(i.split()) for i in items]))

    def code(self, text: str) -> None:
        """A preformatted block (printed numbers, source snippets); echoed to the console."""
        text = text.rstrip("\n")
        self.blocks.append(("code", text))
        if self.verbose:
            print("    " + text.replace("\n", "\n    "), flush=True)

    def table(self, headers, rows) -> None:
        """A table (numbers formatted to 4 significant digits); echoed to the console."""
        rows = [[_fmt(v) for v in r] for r in rows]
        self.blocks.append(("table", [str(h) for h in headers], rows))
        if self.verbose:
            widths = [max(len(str(h)), *(len(r[i]) for r in rows)) for i, h in
                      enumerate(headers)]
            print("    " + "  ".join(str(h).rjust(w) for h, w in zip(headers, widths)))
            for r in rows:
                print("    " + "  ".join(v.rjust(w) for v, w in zip(r, widths)), flush=True)

    def figure(self, fig, name: str, caption: str, explanation: str) -> str:
        """Save ``fig`` as ``name``.png, then put it and its explanation in the report."""
        fname = f"{name}.png"
        fig.savefig(os.path.join(self.out, fname), dpi=self.dpi)
        # Figures are not registered with pyplot (see rosenblatt.plot), so dropping the
        # reference frees them; clear anyway to release the canvas at once.
        fig.clear()
        self.figures.append(fname)
        self.blocks.append(("fig", fname, caption, " ".join(explanation.split())))
        self.say(f"    wrote {fname}")
        return fname

    # -- rendering --------------------------------------------------------------------
    def to_markdown(self) -> str:
        """The report as Markdown; figures are linked by file name."""
        out = []
        for b in self.blocks:
            kind = b[0]
            if kind == "h":
                out.append("#" * b[1] + " " + b[2])
            elif kind == "p":
                out.append(b[1])
            elif kind == "ul":
                out.append("\n".join(f"- {i}" for i in b[1]))
            elif kind == "code":
                out.append("```\n" + b[1] + "\n```")
            elif kind == "table":
                lines = ["| " + " | ".join(b[1]) + " |",
                         "|" + "|".join("---:" for _ in b[1]) + "|"]
                lines += ["| " + " | ".join(r) + " |" for r in b[2]]
                out.append("\n".join(lines))
            elif kind == "fig":
                out.append(f"![{b[2]}]({b[1]})\n\n*Figure `{b[1]}`: {b[2]}.* {b[3]}")
        return "\n\n".join(out) + "\n"

    def to_html(self) -> str:
        """The report as one self-contained HTML page (figures embedded as data URIs)."""
        parts = []
        toc = []
        for b in self.blocks:
            kind = b[0]
            if kind == "h":
                anchor = ""
                if b[1] == 2:
                    # sections get anchors and an entry in the contents list
                    anchor = f' id="s{len(toc) + 1}"'
                    toc.append(f'<li><a href="#s{len(toc) + 1}">{_inline(b[2])}</a></li>')
                parts.append(f"<h{b[1]}{anchor}>{_inline(b[2])}</h{b[1]}>")
            elif kind == "p":
                parts.append(f"<p>{_inline(b[1])}</p>")
            elif kind == "ul":
                parts.append("<ul>" + "".join(f"<li>{_inline(i)}</li>" for i in b[1]) + "</ul>")
            elif kind == "code":
                parts.append(f"<pre>{html.escape(b[1])}</pre>")
            elif kind == "table":
                head = "".join(f"<th>{_inline(h)}</th>" for h in b[1])
                body = "".join("<tr>" + "".join(f"<td>{_inline(v)}</td>" for v in r) + "</tr>"
                               for r in b[2])
                parts.append(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody>"
                             "</table>")
            elif kind == "fig":
                with open(os.path.join(self.out, b[1]), "rb") as f:
                    data = base64.b64encode(f.read()).decode("ascii")
                parts.append(
                    f'<figure><img alt="{html.escape(b[2])}" src="data:image/png;base64,'
                    f'{data}"><figcaption><b>{html.escape(b[1])}</b>: {_inline(b[2])}. '
                    f"{_inline(b[3])}</figcaption></figure>")
        style = ("body{font-family:sans-serif;max-width:60em;margin:2em auto;padding:0 1em;"
                 "line-height:1.45;color:#222}img{max-width:100%;border:1px solid #ddd}"
                 "figure{margin:1.5em 0}figcaption{margin-top:.4em;font-size:.95em}"
                 "pre{background:#f5f5f5;padding:.6em;overflow-x:auto}"
                 "code{background:#f5f5f5;padding:0 .2em}table{border-collapse:collapse;"
                 "margin:1em 0}td,th{border:1px solid #ccc;padding:.2em .6em;"
                 "text-align:right}th{background:#eee}")
        if toc and parts and parts[0].startswith("<h1"):
            # the contents follow the title and the introduction
            at = next((i for i, p in enumerate(parts) if p.startswith("<h2")), len(parts))
            parts.insert(at, "<nav><b>Contents</b><ul>" + "".join(toc) + "</ul></nav>")
        return ("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">"
                "<title>rosenblatt: the lecture, runnable</title>"
                f"<style>{style}</style></head><body>\n" + "\n".join(parts)
                + "\n</body></html>\n")

    def write(self) -> None:
        """Write ``report.md`` and ``report.html`` into the output directory."""
        with open(os.path.join(self.out, "report.md"), "w", encoding="utf-8") as f:
            f.write(self.to_markdown())
        with open(os.path.join(self.out, "report.html"), "w", encoding="utf-8") as f:
            f.write(self.to_html())


def _inline(text: str) -> str:
    """The inline Markdown the tour uses (`code`, **bold**, *italic*) as HTML."""
    pieces = re.split(r"(`[^`]*`)", text)
    out = []
    for p in pieces:
        if p.startswith("`") and p.endswith("`") and len(p) >= 2:
            out.append(f"<code>{html.escape(p[1:-1])}</code>")
        else:
            p = html.escape(p)
            p = re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", p)
            p = re.sub(r"(?<![\w*])\*(?!\s)(.+?)(?<!\s)\*(?![\w*])", r"<i>\1</i>", p)
            out.append(p)
    return "".join(out)


def _fmt(v) -> str:
    if isinstance(v, np.ndarray) and v.ndim == 0:
        v = v.item()
    if isinstance(v, (bool, np.bool_)):
        return str(bool(v))
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    if isinstance(v, (float, np.floating)):
        v = float(v)
        if v == int(v) and abs(v) < 1e6:
            return f"{v:.1f}"
        return f"{v:.4g}"
    return str(v)


def _jsonable(v):
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, np.ndarray):
        return v.tolist()
    return str(v)


def _arr(a, precision=3) -> str:
    return np.array2string(np.asarray(a), precision=precision, suppress_small=True,
                           separator=", ")


@contextmanager
def _expected_convergence_warnings():
    """Silence ConvergenceWarning where the tour caps epochs on purpose.

    The tour trains for a fixed, small number of epochs to stay fast (and the chapter
    itself trains for a fixed number of epochs); the reader sees ``n_iter_`` and the
    curves, so the warning would only repeat what the report shows.
    """
    from sklearn.exceptions import ConvergenceWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        yield


# --------------------------------------------------------------------------------------
# settings
# --------------------------------------------------------------------------------------

@dataclass
class Settings:
    """Sizes of the tour; ``quick`` shrinks the expensive parts only."""

    quick: bool = False
    backend: str = "auto"
    seed: int = 42

    @property
    def housing_rows(self):
        return 3000 if self.quick else 20640

    @property
    def housing_epochs(self):
        return 8 if self.quick else 40

    @property
    def small_epochs(self):
        # epochs of the 1-D regressions and the small classifiers
        return 60 if self.quick else 400

    @property
    def digits_epochs(self):
        return 4 if self.quick else 30

    @property
    def es_epochs(self):
        return 15 if self.quick else 200

    @property
    def search_iter(self):
        return 2 if self.quick else 5

    @property
    def search_cv(self):
        return 2 if self.quick else 3

    @property
    def search_epochs(self):
        return 3 if self.quick else 30

    @property
    def resolution(self):
        return 60 if self.quick else 250


def _rb():
    """The rosenblatt package (its estimators are imported lazily on first use)."""
    import rosenblatt

    return rosenblatt


# --------------------------------------------------------------------------------------
# 1. McCulloch-Pitts neurons
# --------------------------------------------------------------------------------------

def section_mcculloch_pitts(rep: Report, cfg: Settings, facts: dict) -> None:
    """Section 1: McCulloch-Pitts neurons as threshold units, truth tables."""
    from . import datasets, plot

    rb = _rb()
    rep.heading("1. McCulloch-Pitts neurons (1943)")
    rep.script("01_mcculloch_pitts.py")
    rep.text("""A McCulloch-Pitts neuron has binary inputs and one binary output that fires
        when at least a threshold of its inputs are active. With the lecture's threshold of
        2, a connection drawn twice counts twice and an inhibitory connection counts
        negatively. As a threshold unit, neuron C computes
        `heaviside(w_A A + w_B B - 2)` with `heaviside(z) = 1 if z >= 0 else 0`:""")
    rep.bullets([
        "`C = A` (identity): A is connected twice, `w = (2, 0)`;",
        "`C = A AND B`: one connection from each, `w = (1, 1)`, so both must fire;",
        "`C = A OR B`: two connections from each, `w = (2, 2)`, so either suffices;",
        "`C = A AND NOT B`: A twice, B inhibitory, `w = (2, -2)`.",
    ])
    rep.text("""The four neurons side by side are one layer of threshold units. It is built
        here without any training with `MLPRegressor.from_weights`: a hidden layer of
        four heaviside units holding the weights above (bias -2, the threshold) and an
        identity output layer that copies them, so `predict` returns the four gates.""")
    W = np.array([[2.0, 1.0, 2.0, 2.0],
                  [0.0, 1.0, 2.0, -2.0]])
    b = np.full(4, -2.0)
    net = rb.MLPRegressor.from_weights([W, np.eye(4)], [b, np.zeros(4)],
                                       activation="heaviside")
    X = datasets.truth_table(2)
    out = np.asarray(net.predict(X)).reshape(4, 4).round().astype(int)
    names = ["C = A", "A AND B", "A OR B", "A AND NOT B"]
    rep.table(["A", "B"] + names, [list(x) + list(o) for x, o in zip(X, out)])
    expected = {"C = A": [0, 0, 1, 1], "A AND B": [0, 0, 0, 1], "A OR B": [0, 1, 1, 1],
                "A AND NOT B": [0, 0, 1, 0]}
    facts["gates"] = {n: out[:, k].tolist() for k, n in enumerate(names)}
    ok = all(facts["gates"][n] == expected[n] for n in names)
    rep.text(f"Every column is the truth table of its gate: **{ok}**.")
    fig = plot.plot_network([W], [b], input_names=["A", "B"], output_names=names,
                            layer_names=["inputs", "threshold units (heaviside)"],
                            title="McCulloch-Pitts neurons as threshold units (threshold 2)")
    rep.figure(fig, "mcp_gates", "Four McCulloch-Pitts neurons as one layer",
               """Each circle on the right is one neuron; its bias `b = -2` is the threshold
               moved to the left side of `w . x >= 2`. Red edges are excitatory
               connections (weight 2 means the connection is drawn twice in the lecture's
               diagram), the blue edge is the inhibitory connection that makes
               `A AND NOT B`, and a missing edge means no connection (`C = A` ignores B).
               The edge widths are the weights' sizes: OR has the thickest edges because
               one active input alone must reach the threshold.""")


# --------------------------------------------------------------------------------------
# 2. TLU, the perceptron rule, a layer of TLUs
# --------------------------------------------------------------------------------------

def _perceptron_rule_trace(X, y, eta=1.0, max_epochs=20):
    """The lecture's rule, one instance at a time, recording every update."""
    w = np.zeros(X.shape[1])
    b = 0.0
    steps = []
    for epoch in range(1, max_epochs + 1):
        n_updates = 0
        for x, t in zip(X, y):
            z = float(x @ w + b)
            yhat = int(z >= 0)  # heaviside
            if yhat != t:
                w_old, b_old = w.copy(), b
                # w_i <- w_i + eta (y - yhat) x_i; the bias is the weight of x_0 = 1
                w = w + eta * (t - yhat) * x
                b = b + eta * (t - yhat)
                steps.append({"epoch": epoch, "x": x.copy(), "y": int(t), "z": z, "yhat": yhat,
                              "w_old": w_old, "b_old": b_old, "w": w.copy(), "b": b})
                n_updates += 1
        if n_updates == 0:
            return w, b, steps, epoch
    return w, b, steps, max_epochs


def section_tlu(rep: Report, cfg: Settings, facts: dict) -> None:
    """Section 2: the TLU's steps, the perceptron rule step by step, a layer of TLUs."""
    from . import datasets, plot

    rb = _rb()
    rep.heading("2. The threshold logic unit and the perceptron (Rosenblatt, 1957)")
    rep.script("02_perceptron_rule.py")
    rep.text("""A TLU has numeric inputs and weights: it computes `z = w . x + b` and then a
        step function. The two steps of the lecture are heaviside (0 if z < 0, else 1) and
        sign (-1, 0 or +1):""")
    z = np.array([-2.0, -0.5, 0.0, 0.5, 2.0])
    rep.table(["z", "heaviside(z)", "sgn(z)"],
              [[zi, int(plot.activation("heaviside", zi)), int(plot.activation("sign", zi))]
               for zi in z])
    fig = plot.plot_activations(("heaviside", "sign"), z=np.linspace(-3, 3, 601),
                                title="The TLU's step functions")
    rep.figure(fig, "tlu_steps", "Heaviside and sign step functions and their derivatives",
               """Both steps jump at `z = 0`; the filled dots are their values there
               (`heaviside(0) = 1`, `sgn(0) = 0`: with heaviside a unit fires when its
               weighted sum is exactly at the threshold). Both are flat everywhere else, so their derivative (right) is zero wherever it exists:
               a small change of a weight never changes the output a little. That is why
               the perceptron needs its own learning rule, and why backpropagation
               (section 5) replaces the step with a smooth function.""")

    # -- the perceptron rule, step by step ----------------------------------------------
    rep.heading("The perceptron learning rule, step by step", 3)
    X = datasets.truth_table(2).astype(float)
    y = np.array([0, 0, 0, 1])
    w, b, steps, epochs = _perceptron_rule_trace(X, y, eta=1.0)
    rep.text(f"""The rule `w_i <- w_i + eta (y - yhat) x_i`, one instance at a time, on the
        four rows of AND, with heaviside, `eta = 1` and all weights starting at 0. Every
        row where the prediction is wrong moves the weights toward (y = 1) or away from
        (y = 0) that input. It made {len(steps)} updates and converged in epoch {epochs}
        (the first epoch without a mistake), as Rosenblatt's theorem promises for linearly
        separable data:""")
    rep.table(["update", "epoch", "x", "y", "z = w.x + b", "yhat", "w after", "b after"],
              [[i + 1, s["epoch"], _arr(s["x"], 0), s["y"], s["z"], s["yhat"],
                _arr(s["w"], 1), s["b"]] for i, s in enumerate(steps)])
    pred = (X @ w + b >= 0).astype(int)
    rep.text(f"Final weights `w = {_arr(w, 1)}`, `b = {b:.1f}`: predictions {pred.tolist()}"
             f" for the targets {y.tolist()}.")
    facts["rule_steps"] = len(steps)
    facts["rule_weights"] = (w.tolist(), b)
    per = rb.Perceptron(rule="rosenblatt", eta0=1.0, shuffle=False, max_iter=epochs,
                        tol=None, backend=cfg.backend)
    per.fit(X, y)
    same_rule = bool(np.allclose(per.coef_, w) and np.allclose(per.intercept_, b))
    facts["rule_matches_library"] = same_rule
    rep.text(f"""`rosenblatt.Perceptron(rule="rosenblatt", shuffle=False, eta0=1)` runs the
        same rule in the compiled core and ends with `coef_ = {_arr(per.coef_, 2)}`,
        `intercept_ = {_arr(per.intercept_, 2)}` (the same weights: **{same_rule}**); its
        predictions on the four rows are
        {np.asarray(per.predict(X)).astype(int).tolist()}.""")

    fig = _plot_rule_steps(X, y, steps)
    rep.figure(fig, "perceptron_rule_steps", "The perceptron rule on AND, one panel per update",
               """Each panel is one update: the circled point is the misclassified row that
               caused it, the dashed line is the boundary `w . x + b = 0` after the update
               (the shaded side is where the unit fires). Early updates swing the line
               across the square; each mistake on (1, 1) drags it toward that corner and
               each mistake on a 0-row pushes it away, until only (1, 1) is on the firing
               side. The rule uses no derivative of the step (it has none worth using), only
               the sign of the error; section 3 shows that this is exactly stochastic
               gradient descent on the perceptron loss, which is why the lecture calls the
               rule a cousin of SGD.""")

    # -- a layer of TLUs as a matrix product ---------------------------------------------
    rep.heading("A perceptron with 2 inputs and 3 outputs is one matrix product", 3)
    Xraw, yi = datasets.load_iris_petals(target=None)
    # Standardised inputs: the rule's step is eta * x, so on raw centimetres the longer
    # feature (petal length, up to 7) dominates every update; scaled, both count alike.
    mean, std = Xraw.mean(axis=0), Xraw.std(axis=0)
    Xi = (Xraw - mean) / std
    per3 = rb.Perceptron(rule="rosenblatt", random_state=cfg.seed, backend=cfg.backend)
    label = 'Perceptron(rule="rosenblatt")'
    per_raw = rb.Perceptron(rule="rosenblatt", random_state=cfg.seed, backend=cfg.backend)
    with _expected_convergence_warnings():
        per3.fit(Xi, yi)
        acc_raw = float(per_raw.fit(Xraw, yi).score(Xraw, yi))
    W3 = np.asarray(per3.coef_).T  # (2 inputs, 3 outputs), as the lecture writes XW + b
    b3 = np.asarray(per3.intercept_)
    rows = Xi[[0, 50, 100]]
    Z = rows @ W3 + b3
    rep.text(f"""The lecture's perceptron has 2 inputs, a bias neuron and 3 output TLUs. For a
        batch `X` (one row per instance) all outputs of all instances are `step(X W + b)`
        with `W` of shape (2, 3). Here `{label}` is trained on iris petal length and width
        (standardised to mean 0 and standard deviation 1) with the three species as
        outputs, one-hot targets, all three TLUs updated together by the rule. For three
        flowers (one per species) the whole layer is one product:""")
    rep.code(f"X =\n{_arr(rows, 2)}\nW (2 x 3) =\n{_arr(W3, 2)}\nb = {_arr(b3, 2)}\n"
             f"X W + b =\n{_arr(Z, 2)}\nheaviside(X W + b) =\n"
             f"{_arr((Z >= 0).astype(int))}\nargmax per row = {Z.argmax(axis=1).tolist()}, "
             f"predict = {np.asarray(per3.predict(rows)).tolist()}")
    acc = float(per3.score(Xi, yi))
    same = bool(np.array_equal(np.asarray(per3.predict(Xi)),
                               np.asarray(per3.classes_)[(Xi @ W3 + b3).argmax(axis=1)]))
    facts["layer_matches_predict"] = same
    facts["iris3_accuracy"] = acc
    fired = (Z >= 0).sum(axis=1)
    several = ("" if np.all(fired == 1) else
               f""" The raw steps can fire for none or several outputs (here
               {fired.tolist()} TLUs fire for the three flowers), so the multiclass
               prediction takes the output with the largest score instead.""")
    rep.text(f"""`predict` is the argmax of the scores `X W + b` for all 150 flowers:
        **{same}**.{several} Training accuracy {acc:.3f} (on raw centimetres the same rule reaches
        only {acc_raw:.3f}: every update adds `eta x`, so the feature with the larger
        numbers dominates; scaling the inputs is as important for the perceptron as for
        MLPs). Setosa is separable from the rest, but versicolor and virginica overlap in
        petal space, so no set of straight lines classifies every flower and the rule
        never settles.""")
    fig = _two_panel(
        lambda ax: plot.plot_network(per3, ax=ax, input_names=["petal length",
                                                                 "petal width"],
                                     output_names=["setosa", "versicolor", "virginica"],
                                     title="2 inputs, 3 TLUs: W is 2 x 3"),
        lambda ax: plot.plot_decision_boundary(
            per3, Xi, yi, ax=ax, resolution=cfg.resolution, padding=0.3,
            class_names=["setosa", "versicolor", "virginica"],
            feature_names=("petal length (standardised)", "petal width (standardised)"),
            title=f"Regions of the argmax of the 3 outputs (accuracy {acc:.2f})"),
        widths=(1.1, 1.0))
    rep.figure(fig, "perceptron_2x3", "A 2-input, 3-output perceptron on iris",
               """Left: the trained layer, one edge per weight (red positive, blue negative,
               width = size), each output's bias under its circle. Right: the class with
               the largest score at every point of the plane (shaded) and the three TLUs'
               own boundaries `w_j . x + b_j = 0` (dashed, in the colour of their class:
               each TLU fires on one side of its line). All boundaries are straight: a
               single layer of TLUs is a linear classifier, and the flowers where the
               orange and green classes mix stay partly misclassified.""")


def _plot_rule_steps(X, y, steps):
    from .plot import _figure

    n = len(steps)
    ncols = 4
    nrows = int(np.ceil(n / ncols))
    fig = _figure(figsize=(3.1 * ncols, 2.9 * nrows + 0.5))
    axes = np.atleast_2d(fig.subplots(nrows, ncols, squeeze=False))
    xx, yy = np.meshgrid(np.linspace(-0.5, 1.5, 101), np.linspace(-0.5, 1.5, 101))
    for k, ax in enumerate(axes.ravel()):
        if k >= n:
            ax.axis("off")
            if k == n:
                ax.text(0.5, 0.5, f"epoch {steps[-1]['epoch'] + 1}:\nno mistakes,\nconverged",
                        ha="center", va="center", fontsize=12, transform=ax.transAxes)
            continue
        s = steps[k]
        w, b = s["w"], s["b"]
        fire = (w[0] * xx + w[1] * yy + b >= 0)
        ax.contourf(xx, yy, fire.astype(float), levels=[-0.5, 0.5, 1.5],
                    colors=["white", "#ffd8a8"])
        xs = np.array([-0.5, 1.5])
        if abs(w[1]) > 1e-12:
            ax.plot(xs, -(w[0] * xs + b) / w[1], "k--", lw=1.5)
        elif abs(w[0]) > 1e-12:
            ax.axvline(-b / w[0], color="k", ls="--", lw=1.5)
        # (the last grid row and column are the square's far edges: a line through the
        # corner (1.5, 1.5) fires there only)
        if not fire[:-1, :-1].any():
            ax.text(0.5, 0.62, "fires nowhere in view", ha="center", fontsize=8,
                    color="grey", transform=ax.transAxes)
        for xi, ti in zip(X, y):
            ax.scatter(*xi, s=60, c="tab:orange" if ti else "tab:blue",
                       marker="s" if ti else "o", edgecolor="k", zorder=3)
        ax.scatter(*s["x"], s=260, facecolors="none", edgecolors="red", linewidths=2,
                   zorder=4)
        ax.set_xlim(-0.5, 1.5)
        ax.set_ylim(-0.5, 1.5)
        ax.set_title(f"update {k + 1} (epoch {s['epoch']}): w=({w[0]:g}, {w[1]:g}), "
                     f"b={b:g}", fontsize=8)
        ax.set_xlabel("x1", fontsize=8)
        ax.set_ylabel("x2", fontsize=8)
        ax.tick_params(labelsize=7)
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    fig.legend(handles=[
        Line2D([], [], marker="o", ls="", mfc="tab:blue", mec="k", label="y = 0"),
        Line2D([], [], marker="s", ls="", mfc="tab:orange", mec="k", label="y = 1"),
        Line2D([], [], marker="o", ls="", mfc="none", mec="red", ms=12,
               label="row that caused the update"),
        Line2D([], [], ls="--", color="k", label="boundary w.x + b = 0"),
        Patch(fc="#ffd8a8", ec="k", label="unit fires (z >= 0)")],
        loc="lower center", ncol=5, fontsize=8, frameon=False)
    fig.suptitle("Perceptron learning rule on AND (heaviside, eta = 1)")
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    return fig


def _two_panel(left, right, widths=(1, 1), figsize=(12.5, 5)):
    from .plot import _figure

    fig = _figure(figsize=figsize)
    axes = fig.subplots(1, 2, gridspec_kw={"width_ratios": list(widths)})
    left(axes[0])
    right(axes[1])
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------------------
# 3. Perceptron on iris
# --------------------------------------------------------------------------------------

def section_iris(rep: Report, cfg: Settings, facts: dict) -> None:
    """Section 3: the chapter's iris perceptron, compared with scikit-learn."""
    from sklearn.linear_model import Perceptron as SkPerceptron
    from sklearn.linear_model import SGDClassifier

    from . import datasets, plot

    rb = _rb()
    rep.heading("3. The perceptron on iris: setosa or not")
    rep.script("03_iris_perceptron.py")
    rep.text("""The chapter's code, with `rosenblatt` in place of `sklearn.linear_model`
        (the default rule is scikit-learn's, so the fitted model must be the same):""")
    rep.code("""from rosenblatt import Perceptron
from rosenblatt.datasets import load_iris_petals
X, y = load_iris_petals("setosa")   # petal length, petal width; y = is setosa
per_clf = Perceptron(random_state=42).fit(X, y)
per_clf.predict([[2, 0.5]])""")
    X, y = datasets.load_iris_petals("setosa")
    per = rb.Perceptron(random_state=42, backend=cfg.backend).fit(X, y)
    sk = SkPerceptron(random_state=42).fit(X, y)
    sgd = SGDClassifier(loss="perceptron", learning_rate="constant", eta0=1.0, penalty=None,
                        random_state=42).fit(X, y)
    pred = np.asarray(per.predict([[2, 0.5], [3, 1]]))
    facts["iris_predict"] = pred.tolist()
    facts["iris_coef"] = np.asarray(per.coef_).tolist()
    facts["iris_intercept"] = np.asarray(per.intercept_).tolist()
    facts["iris_coef_sklearn"] = sk.coef_.tolist()
    facts["backend"] = getattr(per, "backend_", "?")
    rep.code(f"per_clf.predict([[2, 0.5], [3, 1]]) -> {pred.tolist()}")
    rep.table(["model", "coef_", "intercept_", "n_iter_"],
              [["rosenblatt.Perceptron(random_state=42)", _arr(per.coef_, 3),
                _arr(per.intercept_, 3), per.n_iter_],
               ["sklearn Perceptron(random_state=42)", _arr(sk.coef_, 3),
                _arr(sk.intercept_, 3), sk.n_iter_],
               [('SGDClassifier(loss="perceptron", eta0=1, learning_rate="constant", '
                 "penalty=None)"), _arr(sgd.coef_, 3), _arr(sgd.intercept_, 3), sgd.n_iter_]])
    same = bool(np.allclose(per.coef_, sk.coef_) and np.allclose(per.intercept_,
                                                                  sk.intercept_))
    same_sgd = bool(np.allclose(sgd.coef_, sk.coef_))
    facts["iris_same_as_sklearn"] = same
    rep.text(f"""A flower with 2 cm by 0.5 cm petals is predicted setosa (`True`), one with
        3 cm by 1 cm is not (`False`), as in the chapter. Same weights as scikit-learn:
        **{same}**. scikit-learn's `Perceptron` *is* `SGDClassifier` with the perceptron
        loss `max(0, -y z)`, a constant learning rate of 1 and no penalty: the third row
        is identical (**{same_sgd}**). The perceptron rule is stochastic gradient descent on
        that loss, whose gradient is `-y x` on a mistake and 0 otherwise.""")
    # the lecture's listing as written: Perceptron() (random_state=0) and np.int
    per0 = rb.Perceptron(backend=cfg.backend).fit(X, y)
    sk0 = SkPerceptron().fit(X, y)
    z0 = float(np.asarray(per0.decision_function([[2, 0.5]]))[0])
    pred0 = np.asarray(per0.predict([[2, 0.5]])).tolist()
    facts["iris_default_predict"] = pred0
    facts["iris_default_z"] = z0
    facts["iris_default_same_as_sklearn"] = bool(
        np.array_equal(per0.coef_, sk0.coef_) and np.array_equal(per0.intercept_,
                                                                 sk0.intercept_)
        and np.asarray(sk0.predict([[2, 0.5]])).tolist() == pred0)
    rep.text(f"""The lecture's listing itself writes `Perceptron()` and
        `(iris.target == 0).astype(np.int)`. `np.int` was removed in NumPy 1.24: write
        `astype(int)`. Without `random_state=42` the default seed 0 shuffles the rows in
        another order and the perceptron stops at another separating line,
        `w = {_arr(per0.coef_[0], 1)}`, `b = {float(per0.intercept_[0]):.1f}` (scikit-learn
        gives the same: **{facts["iris_default_same_as_sklearn"]}**). The new flower then
        lies *on* that line: `z = w . x + b = {z0:.2g}` (zero up to rounding), and the
        prediction is `{pred0}`. scikit-learn's `predict` fires only for `z > 0`, while the
        lecture's heaviside step fires at `z >= 0`; on this line the two conventions
        disagree. That is why the chapter's results (and this tour) use
        `random_state=42`.""")
    fig = plot.plot_decision_boundary(
        per, X, y, resolution=cfg.resolution, class_names=["not setosa", "setosa"],
        feature_names=("petal length (cm)", "petal width (cm)"), proba=False,
        title="Perceptron(random_state=42): is it Iris setosa?")
    ax = fig.axes[0]
    ax.scatter([2], [0.5], marker="*", s=300, c="gold", edgecolor="k", zorder=5,
               label="new flower [2, 0.5] -> True")
    ax.legend(loc="upper left", fontsize=9)
    z_new = float(np.asarray(per.decision_function([[2, 0.5]]))[0])
    rep.figure(fig, "iris_perceptron", "Perceptron decision boundary on iris petals",
               f"""The dashed line is `w . x + b = 0` with `w = {_arr(per.coef_[0], 1)}` and
               `b = {float(per.intercept_[0]):.1f}`; flowers below-left of it (short, narrow
               petals) are classified setosa. The classes are linearly separable, so the
               perceptron converged (after {per.n_iter_} epochs) with every training flower
               on its side; the line is *a* separating line, not the widest-margin one (an
               SVM would sit in the middle of the gap). The star is the chapter's new flower
               `[2, 0.5]`: `z = w . x + b = {z_new:.2f}`, just on the setosa side of the
               line, so it is predicted setosa, though with little room to spare.""")


# --------------------------------------------------------------------------------------
# 4. XOR
# --------------------------------------------------------------------------------------

XOR_COEFS = [np.array([[1.0, 1.0], [1.0, 1.0]]), np.array([[-1.0], [1.0]])]
XOR_INTERCEPTS = [np.array([-1.5, -0.5]), np.array([-0.5])]


def section_xor(rep: Report, cfg: Settings, facts: dict) -> None:
    """Section 4: XOR, the perceptron's failure, hand-wired and trained networks."""
    from . import datasets, plot

    rb = _rb()
    rep.heading("4. XOR: where one perceptron fails (Minsky and Papert, 1969)")
    rep.script("04_xor.py")
    X4, y4 = datasets.make_xor()
    per4 = rb.Perceptron(random_state=cfg.seed, backend=cfg.backend).fit(X4, y4)
    acc4 = float(per4.score(X4, y4))
    Xc, yc = datasets.make_xor(200, noise=0.15, random_state=cfg.seed)
    perc = rb.Perceptron(random_state=cfg.seed, backend=cfg.backend).fit(Xc, yc)
    accc = float(perc.score(Xc, yc))
    facts["xor_perceptron_accuracy"] = acc4
    facts["xor_perceptron_cloud_accuracy"] = accc
    rep.text(f"""XOR is 1 when exactly one input is 1. No straight line puts (0, 1) and
        (1, 0) on one side and (0, 0) and (1, 1) on the other, so no single TLU and no
        perceptron can represent it. Trained on the four rows, the perceptron reaches
        accuracy **{acc4:.2f}** (its weights end at `{_arr(per4.coef_, 2)}`, bias
        `{_arr(per4.intercept_, 2)}`: the updates cancel each other out forever). On 200
        noisy points around the four corners it reaches **{accc:.2f}**.""")
    fig = plot.plot_decision_boundary(
        perc, Xc, yc, resolution=cfg.resolution, proba=False,
        class_names=["XOR = 0", "XOR = 1"],
        title=f"Perceptron on noisy XOR: accuracy {accc:.2f}")
    rep.figure(fig, "xor_perceptron", "The perceptron on XOR",
               """Whatever line the perceptron settles on (dashed), each side holds points of
               both classes: at best three of the four corners can be right. The rule never
               stops making mistakes, so the weights keep jumping until `max_iter` or the
               stopping tolerance ends training.""")

    # -- the lecture's hand-wired network ------------------------------------------------
    rep.heading("The lecture's two-layer network of TLUs", 3)
    heav = rb.MLPClassifier.from_weights(XOR_COEFS, XOR_INTERCEPTS, classes=[0, 1],
                                         activation="heaviside", out_activation="heaviside")
    layers = heav.forward(X4)
    A, B = np.asarray(layers[1]).T
    T = np.asarray(layers[2])[:, 0]  # the output TLU's step, read from the network
    out = np.asarray(heav.predict(X4)).astype(int)
    facts["xor_handwired_heaviside"] = out.tolist()
    rep.text("""The lecture wires two hidden TLUs and one output by hand: A fires when
        `x1 + x2 - 1.5 >= 0` (both inputs on, an AND), B fires when `x1 + x2 - 0.5 >= 0`
        (at least one on, an OR), and the output fires when `-A + B - 0.5 >= 0` (OR but not
        AND, which is XOR). Built with `MLPClassifier.from_weights(coefs, intercepts,
        classes=[0, 1], activation="heaviside", out_activation="heaviside")`: every unit a
        TLU. `forward` returns each layer's output:""")
    rep.table(["x1", "x2", "A: x1+x2-1.5", "B: x1+x2-0.5", "output: -A+B-0.5", "predict"],
              [[int(X4[i, 0]), int(X4[i, 1]), f"{X4[i].sum() - 1.5:+.1f} -> {int(A[i])}",
                f"{X4[i].sum() - 0.5:+.1f} -> {int(B[i])}",
                f"{-A[i] + B[i] - 0.5:+.1f} -> {int(T[i])}", out[i]]
               for i in range(4)])
    rep.text(f"Outputs {out.tolist()}: XOR, with two layers where one was impossible.")

    # the same network with sigmoids needs steeper weights
    k = 10.0
    sig = rb.MLPClassifier.from_weights([k * W for W in XOR_COEFS],
                                        [k * b for b in XOR_INTERCEPTS], classes=[0, 1],
                                        activation="logistic")
    out_s = np.asarray(sig.predict(X4)).astype(int)
    p_s = sig.predict_proba(X4)[:, 1]
    weak = rb.MLPClassifier.from_weights(XOR_COEFS, XOR_INTERCEPTS, classes=[0, 1],
                                         activation="logistic")
    out_w = np.asarray(weak.predict(X4)).astype(int)
    facts["xor_handwired_sigmoid"] = out_s.tolist()  # weights x k
    facts["xor_handwired_sigmoid_same_weights"] = out_w.tolist()
    rep.text(f"""Replacing the steps by sigmoids (the change that makes backpropagation
        possible) with the *same* weights gives {out_w.tolist()}: `sigmoid(-1.5) = 0.18` and
        `sigmoid(0.5) = 0.62` are far from 0 and 1, so the output layer no longer sees clean
        bits. Multiplying every weight and bias by {k:g} makes each sigmoid steep, close to a
        step, and the network again computes XOR: {out_s.tolist()} with
        `P(y = 1) = {_arr(p_s, 3)}`.""")
    fig = _two_panel(
        lambda ax: plot.plot_decision_boundary(
            heav, X4, y4, ax=ax, padding=0.5, resolution=cfg.resolution,
            class_names=["XOR = 0", "XOR = 1"], scatter_kw={"s": 90},
            title="Hand-wired TLUs (heaviside): output 0 or 1"),
        lambda ax: plot.plot_decision_boundary(
            sig, X4, y4, ax=ax, padding=0.5, resolution=cfg.resolution,
            class_names=["XOR = 0", "XOR = 1"], scatter_kw={"s": 90},
            title=f"Same network with sigmoids, weights x {k:g}: P(y=1)"))
    rep.figure(fig, "xor_handwired", "The lecture's XOR network: heaviside and sigmoid",
               """The network's output over the plane. Left: every unit a step, so the
               output is exactly 0 or 1: the two hidden lines `x1 + x2 = 1.5` and
               `x1 + x2 = 0.5` cut the plane into three bands and only the middle band
               (B on, A off) is class 1. Right: sigmoid units (and the default logistic
               output, `P = sigmoid(-A + B - 0.5)` with the weights x 10) make the same band
               with soft edges; the probability changes smoothly, so it has a gradient
               everywhere, which training needs.""")
    fig = plot.plot_network(heav, input_names=["x1", "x2"], output_names=["XOR"],
                            hidden_names=[["A", "B"]],
                            layer_names=["inputs", "hidden TLUs (A, B)", "output TLU"],
                            title="The lecture's XOR network (weights and biases)")
    rep.figure(fig, "xor_network", "Weights of the hand-wired XOR network",
               """Hidden unit A (top, bias -1.5) and B (bottom, bias -0.5) both add the inputs
               with weight 1; only their thresholds differ. The output subtracts A (blue,
               -1) from B (red, +1) with bias -0.5: "at least one, but not both".""")

    # -- a trained MLP -------------------------------------------------------------------
    rep.heading("A trained MLP solves XOR too", 3)
    mlp = rb.MLPClassifier(hidden_layer_sizes=(4,), activation="tanh", solver="adam",
                           learning_rate_init=0.05, max_iter=500, random_state=cfg.seed,
                           backend=cfg.backend)
    with _expected_convergence_warnings():
        mlp.fit(X4, y4)
    acc_mlp = float(mlp.score(X4, y4))
    facts["xor_mlp_accuracy"] = acc_mlp
    # the 2-neuron networks of exercise 11-2 (c): sometimes stuck
    n_seeds = 4 if cfg.quick else 10
    stuck = {}
    for h in (2, 4):
        accs = []
        for s in range(n_seeds):
            m = rb.MLPClassifier(hidden_layer_sizes=(h,), activation="tanh", solver="adam",
                                 learning_rate_init=0.05, max_iter=500, random_state=s,
                                 backend=cfg.backend)
            with _expected_convergence_warnings():
                accs.append(float(m.fit(X4, y4).score(X4, y4)))
        stuck[h] = accs
    rep.text(f"""`MLPClassifier(hidden_layer_sizes=(4,), activation="tanh", solver="adam",
        learning_rate_init=0.05)` learns the four rows by backpropagation: training accuracy
        **{acc_mlp:.2f}**, `P(y = 1) = {_arr(mlp.predict_proba(X4)[:, 1], 3)}`. How often
        training finds a solution depends on the width (compare exercise 11-2 c-e, which
        asks the same of the playground's circle data): over
        {n_seeds} random initialisations, 2 hidden neurons reach accuracies
        {stuck[2]} (stuck in a local minimum when below 1), 4 hidden neurons {stuck[4]}.""")
    mlp_c = rb.MLPClassifier(hidden_layer_sizes=(8,), activation="tanh", solver="adam",
                             learning_rate_init=0.03, max_iter=cfg.small_epochs,
                             random_state=cfg.seed, backend=cfg.backend)
    with _expected_convergence_warnings():
        mlp_c.fit(Xc, yc)
    acc_c = float(mlp_c.score(Xc, yc))
    facts["xor_mlp_cloud_accuracy"] = acc_c
    fig = plot.plot_decision_boundary(
        mlp_c, Xc, yc, resolution=cfg.resolution, class_names=["XOR = 0", "XOR = 1"],
        title=f"MLP (8 tanh units) on noisy XOR: accuracy {acc_c:.2f}")
    rep.figure(fig, "xor_mlp", "A trained MLP's decision boundary on noisy XOR",
               f"""The same 200 points as the perceptron's figure. With one hidden layer of 8
               tanh units the boundary (black, probability 0.5) bends around the corners and
               separates the classes (training accuracy {acc_c:.2f}, against {accc:.2f} for
               the perceptron). The hidden layer has turned XOR into a problem the output
               unit can solve with a straight line in its own input space.""")
    fig = plot.plot_neuron_activations(
        mlp_c, Xc, yc, resolution=max(40, cfg.resolution // 3),
        title="What each neuron of the XOR MLP computes")
    rep.figure(fig, "xor_mlp_neurons", "Per-neuron activation maps of the XOR MLP",
               """One panel per neuron, the data on top (orange XOR = 1, blue XOR = 0). The
               first two rows: each of the 8 hidden tanh units over the input plane (yellow
               +1, purple -1). Every one is a soft step across one straight line,
               `w . x + b = 0`: a hidden neuron alone is still a linear classifier. Last
               row: the output neuron's probability, a weighted vote of the hidden maps, is
               the first map with a curved region that holds both red clusters and neither
               blue one. Deeper layers build richer patterns from simpler ones in the same
               way, which exercise 11-2 a asks you to watch in the playground (below).""")
    rep.text("""**Exercise 11-2 (the TensorFlow Playground).** `rosenblatt` ships a local
        playground trained by this library: `python -m rosenblatt playground` serves it on
        127.0.0.1 (nothing is loaded from the internet). `python -m rosenblatt playground
        --experiments --out DIR` runs the exercise's parts a-f reproducibly and writes a
        report with figures and answers; see the README's Playground section. One of its
        findings contradicts the lecture: in part f the lower layer's gradient is not
        smaller than the output layer's, and the long plateau, not a vanishing gradient,
        is what slows training there.""")


# --------------------------------------------------------------------------------------
# 5. activation functions, why nonlinearity
# --------------------------------------------------------------------------------------

def _backprop_by_hand(rep: Report, facts: dict) -> None:
    """One forward and one backward pass of a 2-2-1 network, checked by finite
    differences, then one gradient-descent step."""
    from . import kernels as K

    x, y = np.array([[1.0, 0.5]]), np.array([[1.0]])
    W1, b1 = np.array([[0.3, -0.2], [0.4, 0.1]]), np.array([0.0, 0.1])
    W2, b2 = np.array([[0.5], [-0.6]]), np.array([0.2])

    def loss(W1, b1, W2, b2):
        h = K.dense_forward(x, W1, b1, "logistic")
        out = K.dense_forward(h, W2, b2, "identity")
        return 0.5 * float(((out - y) ** 2).sum()), h, out

    L0, h, out = loss(W1, b1, W2, b2)
    # backward: dL/dout = out - y, then each layer's dense_backward applies the chain rule
    dW2, db2, dh = K.dense_backward(h, W2, out, out - y, "identity")
    dW1, db1, _ = K.dense_backward(x, W1, h, dh, "logistic", need_dX=False)
    params, grads = [W1, b1, W2, b2], [dW1, db1, dW2, db2]
    names = ["W1", "b1", "W2", "b2"]
    rows, worst, eps = [], 0.0, 1e-6
    for i, (name, P, G) in enumerate(zip(names, params, grads)):
        for idx in np.ndindex(P.shape):
            up = [p.copy() for p in params]
            dn = [p.copy() for p in params]
            up[i][idx] += eps
            dn[i][idx] -= eps
            fd = (loss(*up)[0] - loss(*dn)[0]) / (2 * eps)
            worst = max(worst, abs(fd - G[idx]))
            rows.append([f"{name}{list(idx)}", P[idx], G[idx], fd])
    eta = 0.5
    L1 = loss(*[p - eta * g for p, g in zip(params, grads)])[0]
    facts["backprop_max_abs_diff_fd"] = worst
    facts["backprop_loss_before_after"] = [L0, L1]
    rep.heading("Backpropagation on one example", 3)
    rep.text(f"""A 2-2-1 network (two logistic hidden units, one linear output) and one
        example `x = [1, 0.5]`, `y = 1`, squared error `L = (out - y)^2 / 2`. The forward
        pass keeps every layer's output: hidden `h = sigmoid(x W1 + b1) = {_arr(h[0], 4)}`,
        output `{out[0, 0]:.4f}`, loss `{L0:.5f}`. The backward pass starts from
        `dL/dout = out - y = {out[0, 0] - 1:.4f}` and applies the chain rule layer by
        layer, output to input: `dW2 = h^T dout`, `dh = dout W2^T`, then through the
        sigmoid's derivative `h (1 - h)` to `dW1 = x^T (dh * h (1 - h))` (each step one
        `kernels.dense_backward` call). Every gradient agrees with a finite difference
        `(L(w + e) - L(w - e)) / 2e` (largest difference {worst:.1e}):""")
    rep.table(["parameter", "value", "backprop dL/dw", "finite difference"], rows)
    rep.text(f"""One gradient-descent step `w <- w - {eta:g} dL/dw` on every weight at once
        lowers the loss from {L0:.5f} to {L1:.5f}. Training repeats this over batches of
        examples: two passes per batch, whatever the number of weights.""")


def section_activations(rep: Report, cfg: Settings, facts: dict) -> None:
    """Section 5: activation functions, derivatives, collapse of linear layers."""
    from . import datasets, plot

    rb = _rb()
    rep.heading("5. Activation functions, and why they must be nonlinear")
    rep.script("05_activations.py")
    rep.text("""Backpropagation (Rumelhart, Hinton and Williams, 1986) computes the gradient
        of the error for every weight with one forward and one backward pass, then gradient
        descent takes a step.""")
    _backprop_by_hand(rep, facts)
    rep.heading("Smooth activations", 3)
    rep.text("""The backward pass multiplies by each activation's derivative. The step
        function's is zero wherever it exists, so no error signal would pass: MLPs use smooth
        activations instead, the logistic sigmoid `1 / (1 + exp(-z))`, `tanh(z) =
        2 sigmoid(2z) - 1`, or ReLU `max(0, z)`.""")
    z = np.array([-2.0, 0.0, 2.0])
    rep.table(["z", "sigmoid", "tanh", "2 sigmoid(2z) - 1", "ReLU"],
              [[zi, plot.activation("logistic", zi), np.tanh(zi),
                2 * plot.activation("logistic", 2 * zi) - 1, max(zi, 0.0)] for zi in z])
    fig = plot.plot_activations()
    rep.figure(fig, "activations", "Activation functions and their derivatives (the chapter's figure)",
               """Left: the step is flat with a jump; sigmoid and tanh are smooth S-curves
               (sigmoid in (0, 1), tanh in (-1, 1) and centred on 0); ReLU is 0 then the
               identity. Right: the derivatives gradient descent multiplies by. The step's
               is 0 everywhere, so no error signal passes. The sigmoid's peaks at only 0.25
               and both S-curves' derivatives vanish for large |z| (saturation, the source
               of vanishing gradients in deep nets). ReLU's is exactly 1 for every positive
               z, cheap and non-saturating, which is why modern MLPs use it.""")
    fig = plot.plot_activations(("leaky_relu", "elu", "softplus", "gelu"),
                                title="More activations available in rosenblatt")
    rep.figure(fig, "activations_more", "Leaky ReLU, ELU, softplus and GELU",
               """Variants that keep ReLU's slope of 1 for positive z but are not flat for
               negative z (leaky ReLU 0.01 z, ELU `exp(z) - 1`) so a unit that went negative
               can still learn; softplus `log(1 + exp(z))` and GELU are smooth versions of
               ReLU. All are accepted as `activation=` (per layer as a tuple) in
               rosenblatt's MLPs.""")

    # -- collapse of linear layers --------------------------------------------------------
    rep.heading("Stacked linear layers collapse into one", 3)
    x = np.array([-1.0, 0.0, 1.0, 2.0])
    fg = 2 * (5 * x - 1) + 3
    rep.text(f"""With `f(x) = 2x + 3` and `g(x) = 5x - 1`, `f(g(x)) = 2(5x - 1) + 3 = 10x +
        1`: at x = {x.tolist()} both give {fg.tolist()} and {(10 * x + 1).tolist()}. The
        same holds for whole layers: `(X W1 + b1) W2 + b2 = X (W1 W2) + (b1 W2 + b2)`.
        A network of three layers with the identity activation is built from random
        weights and compared with the single layer whose weights are the products:""")
    rng = np.random.RandomState(cfg.seed)
    sizes = [2, 5, 4, 1]
    Ws = [rng.normal(size=(a, b)) for a, b in pairwise(sizes)]
    bs = [rng.normal(size=b) for b in sizes[1:]]
    deep = rb.MLPRegressor.from_weights(Ws, bs, activation="identity")
    W = Ws[0] @ Ws[1] @ Ws[2]
    b = (bs[0] @ Ws[1] + bs[1]) @ Ws[2] + bs[2]
    Xr = rng.normal(size=(1000, 2))
    p_deep = np.asarray(deep.predict(Xr)).ravel()
    p_one = (Xr @ W + b).ravel()
    diff = float(np.max(np.abs(p_deep - p_one)))
    facts["linear_collapse_max_diff"] = diff
    rep.code(f"2-5-4-1 identity network: {sum(w.size for w in Ws) + sum(len(v) for v in bs)} "
             f"parameters\nequivalent single layer: W = W1 W2 W3 = {_arr(W.ravel(), 4)}, "
             f"b = {_arr(b, 4)} (3 parameters)\nmax |difference| over 1000 random inputs: "
             f"{diff:.2e}")
    X4, y4 = datasets.make_xor()
    lin = rb.MLPClassifier(hidden_layer_sizes=(8, 8), activation="identity",
                           learning_rate_init=0.05, max_iter=500, random_state=cfg.seed,
                           backend=cfg.backend)
    with _expected_convergence_warnings():
        lin.fit(X4, y4)
    acc_lin = float(lin.score(X4, y4))
    facts["xor_identity_mlp_accuracy"] = acc_lin
    rep.text(f"""The difference is rounding error: depth adds nothing without a nonlinearity.
        Consequently an MLP with two hidden layers of 8 *identity* units is still a linear
        classifier and fails on XOR like the perceptron (accuracy {acc_lin:.2f}), whereas
        4 tanh units solved it above.""")


# --------------------------------------------------------------------------------------
# 6. regression MLPs
# --------------------------------------------------------------------------------------

def section_regression(rep: Report, cfg: Settings, facts: dict) -> None:
    """Section 6: regression MLPs, losses with outliers, positive outputs."""
    from sklearn.metrics import r2_score

    from . import datasets, plot

    rb = _rb()
    rep.heading("6. Regression MLPs")
    rep.script("06_regression.py")
    rep.text("""A regression MLP has one output neuron per predicted value (2 for a point,
        4 for a bounding box) and usually no output activation; the loss is the mean
        squared error. The chapter trains a 50-50-50 ReLU network on California housing.
        Offline, `load_housing_standin()` provides a table of the same size and width
        (Friedman's function with 8 features, 5 of them informative), split like the
        chapter into training, validation and test sets and standardised with the
        training statistics.""")
    d = datasets.load_housing_standin(n_samples=cfg.housing_rows, random_state=cfg.seed)
    rep.code(f"{d.description}\ntrain {d.X_train.shape}, valid {d.X_valid.shape}, "
             f"test {d.X_test.shape}; target range {d.y_train.min():.2f} .. "
             f"{d.y_train.max():.2f}")
    runs = {}
    results = []
    for name, kw in (("sgd, lr 0.01", {"solver": "sgd", "learning_rate_init": 0.01,
                                       "momentum": 0.0}),
                     ("adam, lr 0.001", {"solver": "adam", "learning_rate_init": 1e-3})):
        reg = rb.MLPRegressor(hidden_layer_sizes=(50, 50, 50), activation="relu",
                              max_iter=cfg.housing_epochs, batch_size=32,
                              random_state=cfg.seed, backend=cfg.backend, **kw)
        t0 = time.perf_counter()
        with _expected_convergence_warnings():
            reg.fit(d.X_train, d.y_train, validation_data=(d.X_valid, d.y_valid))
        dt = time.perf_counter() - t0
        rmse_v = float(np.sqrt(np.mean((reg.predict(d.X_valid) - d.y_valid) ** 2)))
        rmse_t = float(np.sqrt(np.mean((reg.predict(d.X_test) - d.y_test) ** 2)))
        runs[name] = reg
        results.append([name, reg.n_iter_, f"{dt:.1f} s", rmse_v, rmse_t,
                        reg.score(d.X_test, d.y_test)])
    facts["housing_rmse_valid"] = results[-1][3]  # the last row of the table
    facts["housing_rmse_valid_by_run"] = {r[0]: r[3] for r in results}
    rep.table(["optimizer", "epochs", "fit time", "valid RMSE", "test RMSE", "test R^2"],
              results)
    rep.text(f"""Both runs use the chapter's 50-50-50 ReLU network and batches of 32. The
        target's standard deviation is {d.y_test.std():.2f}, and it contains noise of
        standard deviation 0.2 that no model can predict, so 0.2 is the best possible
        RMSE. The chapter reports a validation RMSE of about 0.51 on the real housing data
        (target standard deviation about 1.15); the data differ, so compare the shape of
        the curves and the gap to the best possible error, not the numbers.""")
    fig = plot.plot_learning_curves(runs, score_name="validation R^2",
                                    loss_name="loss (half the mean squared error)",
                                    log_loss_axis=True,
                                    title="MLPRegressor 50-50-50 on the housing stand-in")
    rep.figure(fig, "housing_learning_curves", "Learning curves of the regression MLP",
               """Solid lines: the training loss, averaged over each epoch's minibatches;
               dashed: the loss on the validation set after each epoch (scikit-learn's
               squared loss is half the MSE). Both fall quickly and then flatten. The
               validation curve staying close to the training curve means the network is
               not overfitting yet; a widening gap would be the signal to stop (section 8).
               Adam reaches a low loss in fewer epochs than plain SGD at the chapter's
               learning rate.""")

    # -- several outputs ------------------------------------------------------------------
    rep.heading("Several values at once: one output neuron each", 3)
    rng = np.random.default_rng(cfg.seed)
    n = 1000
    angle = rng.uniform(0.2, 1.35, n)  # launch angle (rad)
    speed = rng.uniform(5.0, 15.0, n)  # m/s
    g = 9.81
    Yb = np.column_stack([speed ** 2 * np.sin(2 * angle) / g,           # range (m)
                          (speed * np.sin(angle)) ** 2 / (2 * g)])      # peak height (m)
    Yb += rng.normal(0.0, 0.1, Yb.shape)
    Xb = np.column_stack([angle, speed])
    mu, sd = Xb[:800].mean(0), Xb[:800].std(0)
    ball = rb.MLPRegressor(hidden_layer_sizes=(32, 32), activation="tanh",
                           learning_rate_init=0.01, max_iter=cfg.small_epochs,
                           random_state=cfg.seed, backend=cfg.backend)
    with _expected_convergence_warnings():
        ball.fit((Xb[:800] - mu) / sd, Yb[:800])
    Pb = np.asarray(ball.predict((Xb[800:] - mu) / sd))
    r2 = r2_score(Yb[800:], Pb, multioutput="raw_values").tolist()
    facts["multioutput_r2"] = r2
    facts["multioutput_shapes"] = [list(ball.coefs_[-1].shape), list(Pb.shape)]
    rep.text(f"""A thrown ball: from the launch angle and speed, predict where it lands
        (range) and how high it gets (peak height), two targets in one `y` of shape
        `(n, 2)`. `MLPRegressor` sees two columns and builds two output neurons: the last
        weight matrix is {tuple(ball.coefs_[-1].shape)} and `predict` returns
        {tuple(Pb.shape)} for the {Pb.shape[0]} held-out throws. One network, one loss (the
        squared errors of both outputs added), held-out R^2 {r2[0]:.3f} for the range and
        {r2[1]:.3f} for the height. A bounding box is the same with four outputs.""")

    # -- MSE vs MAE vs Huber with outliers ----------------------------------------------
    rep.heading("Outliers: mean squared error versus mean absolute error (and Huber)", 3)
    X, y, y_clean, is_out = datasets.make_regression_outliers(400, random_state=cfg.seed)
    models = {}
    rows = []
    for loss in ("squared_error", "absolute_error", "huber"):
        reg = rb.MLPRegressor(hidden_layer_sizes=(32, 32), activation="tanh", loss=loss,
                              learning_rate_init=0.01, max_iter=cfg.small_epochs,
                              random_state=cfg.seed, backend=cfg.backend)
        with _expected_convergence_warnings():
            reg.fit(X, y)
        p = reg.predict(X)
        models[f"loss={loss}"] = reg
        rows.append([loss, float(np.sqrt(np.mean((p - y_clean)[~is_out] ** 2))),
                     float(np.mean(p - y_clean))])
    facts["outlier_rmse"] = {r[0]: r[1] for r in rows}
    rep.text(f"""{is_out.sum()} of {len(y)} points ({is_out.mean():.0%}) get a large upward
        error. The same 32-32 tanh network is trained with each loss and compared with
        the noiseless relation at the clean points:""")
    rep.table(["loss", "RMSE to the true relation", "mean bias"], rows)
    fig = plot.plot_regression_fits(X, y, models, y_clean=y_clean, is_outlier=is_out,
                                    title="Regression with 10 % outliers: choice of loss")
    rep.figure(fig, "regression_outliers", "MSE, MAE and Huber losses with outliers",
               """Crosses are the outliers, all above the data. Squared error grows with the
               square of a residual, so the few large residuals dominate the loss and pull
               the MSE curve upward everywhere (its mean bias is the largest). The absolute
               error counts every residual linearly: the MAE fit follows the median of the
               data and ignores the outliers, as the chapter recommends when the training
               set has many of them. Huber is squared for small residuals and linear for
               large ones: smooth near the data and robust far from it.""")

    # -- positive outputs -----------------------------------------------------------------
    rep.heading("Positive targets: ReLU or softplus on the output", 3)
    Xp, yp = datasets.make_positive_regression(600, random_state=cfg.seed)
    models = {}
    rows = []
    grid = np.linspace(Xp.min(), Xp.max(), 2000)[:, None]
    for act in ("identity", "relu", "softplus"):
        reg = rb.MLPRegressor(hidden_layer_sizes=(32, 32), activation="tanh",
                              out_activation=act, learning_rate_init=0.01,
                              max_iter=cfg.small_epochs, random_state=cfg.seed,
                              backend=cfg.backend)
        with _expected_convergence_warnings():
            reg.fit(Xp, yp)
        p = np.asarray(reg.predict(grid))
        models[f"out_activation={act}"] = reg
        rows.append([act, float(p.min()), float(np.mean(p < 0)),
                     float(np.sqrt(np.mean((reg.predict(Xp) - yp) ** 2)))])
    facts["positive_min_prediction"] = {r[0]: r[1] for r in rows}
    rmse = {r[0]: r[3] for r in rows}
    # how often the ReLU output gets stuck: the same fit from other initialisations
    seeds = range(3 if cfg.quick else 8)
    stuck = 0
    for s in seeds:
        fits = {}
        for act in ("relu", "softplus"):
            reg = rb.MLPRegressor(hidden_layer_sizes=(32, 32), activation="tanh",
                                  out_activation=act, learning_rate_init=0.01,
                                  max_iter=cfg.small_epochs, random_state=s,
                                  backend=cfg.backend)
            with _expected_convergence_warnings():
                reg.fit(Xp, yp)
            fits[act] = float(np.sqrt(np.mean((reg.predict(Xp) - yp) ** 2)))
        stuck += fits["relu"] > 2 * fits["softplus"]
    facts["positive_relu_stuck_seeds"] = [int(stuck), len(seeds)]
    how_often = f"""With random_state 0 to {len(seeds) - 1} the ReLU output ended with more
        than twice softplus's train RMSE {stuck} times out of {len(seeds)}."""
    if rmse["relu"] > 2 * rmse["softplus"]:
        dead = f"""Here the ReLU output shows the danger: its train RMSE is
            {rmse['relu']:.3f} against {rmse['softplus']:.3f} for softplus, because for a
            whole range of inputs its pre-activation went negative early in training, the
            output is stuck at 0 there and, with zero gradient, never recovers (part of the
            curve is simply not learned). {how_often}"""
    else:
        dead = f"""In this run all three fit the data (train RMSE {rmse['relu']:.3f} for ReLU,
            {rmse['softplus']:.3f} for softplus); a ReLU output can get stuck at 0 over a
            range of inputs, where its gradient is zero. {how_often}"""
    rep.text("""The targets are never negative and half of them sit near zero (think prices,
        counts, a box's width). Same network, three output activations; predictions on a
        fine grid over the inputs:""")
    rep.table(["out_activation", "smallest prediction", "fraction negative", "train RMSE"],
              rows)
    fig = plot.plot_regression_fits(Xp, yp, models,
                                    title="Non-negative targets: output activation")
    rep.figure(fig, "regression_positive", "Identity, ReLU and softplus outputs",
               """Where the data are zero, the identity output is free to wiggle below zero
               (see its smallest prediction in the table); a ReLU output clips at exactly 0
               and a softplus output approaches 0 smoothly, so neither can predict a
               negative value. ReLU's flat part has zero gradient, which can stall learning
               for inputs stuck there; softplus keeps a small gradient everywhere. """ + dead)


# --------------------------------------------------------------------------------------
# 7. classification MLPs
# --------------------------------------------------------------------------------------

def section_classification(rep: Report, cfg: Settings, facts: dict) -> None:
    """Section 7: binary, multilabel and multiclass classification MLPs."""
    from . import datasets, plot

    rb = _rb()
    rep.heading("7. Classification MLPs")
    rep.script("07_classification.py")

    # -- binary --------------------------------------------------------------------------
    rep.heading("Binary: one logistic output", 3)
    d = datasets.load_breast_cancer(random_state=cfg.seed)
    clf = rb.MLPClassifier(hidden_layer_sizes=(30,), max_iter=cfg.small_epochs // 2,
                           random_state=cfg.seed, backend=cfg.backend)
    with _expected_convergence_warnings():
        clf.fit(d.X_train, d.y_train)
    proba = clf.predict_proba(d.X_test)
    acc = float(clf.score(d.X_test, d.y_test))
    facts["breast_cancer_accuracy"] = acc
    rep.text(f"""Breast cancer (569 tumours, 30 standardised features). With two classes the
        network has **one** output neuron with the `{clf.out_activation_}` activation
        (`out_activation_`); its value is read as the estimated probability of the
        positive class, here "benign". `predict_proba` returns that value and its
        complement. Test accuracy **{acc:.3f}**.""")
    rep.code("predict_proba(X_test[:5]) =\n" + _arr(proba[:5], 3)
             + f"\ntrue classes: {d.y_test[:5].tolist()}")
    fig = _proba_histogram(proba[:, 1], d.y_test, d.target_names)
    rep.figure(fig, "breast_cancer_proba", "Predicted probabilities on the breast-cancer test set",
               """The logistic output for every test tumour, split by the true class. Most
               are near 0 or 1: the network is confident and right. The few bars on the wrong
               side of 0.5 (the decision threshold, dashed) are the errors; moving the
               threshold trades false alarms for missed cases, which matters when the two
               mistakes have different costs.""")

    # -- multilabel -----------------------------------------------------------------------
    rep.heading("Multilabel: one logistic output per label", 3)
    m = datasets.load_digits_multilabel(random_state=cfg.seed)
    ml = rb.MLPClassifier(hidden_layer_sizes=(100,), max_iter=cfg.small_epochs // 4,
                          random_state=cfg.seed, backend=cfg.backend)
    with _expected_convergence_warnings():
        ml.fit(m.X_train, m.y_train)
    P = ml.predict_proba(m.X_test)
    Yp = np.asarray(ml.predict(m.X_test))
    per_label = (Yp == m.y_test).mean(axis=0)
    exact = float(np.mean(np.all(Yp == m.y_test, axis=1)))
    facts["multilabel_exact"] = exact
    rep.text(f"""Each digit image gets two independent yes/no labels, "is odd" and "is >= 5"
        (7 is both, 4 neither). Given a 2-column 0/1 target, `MLPClassifier` builds two
        output neurons with the `{ml.out_activation_}` activation, one per label; their
        probabilities do not sum to 1. Per-label test accuracy {_arr(per_label, 3)}, both
        labels right for {exact:.3f} of the images.""")
    idx = _pick_examples(m.digit_test, [7, 3, 6, 4])
    fig = plot.plot_digit_probabilities(
        m.images_test[idx], P[idx], class_names=list(m.target_names), multilabel=True,
        y_true=m.y_test[idx], image_titles=[f"digit {d}" for d in m.digit_test[idx]],
        title="Multilabel outputs: two independent sigmoids per image")
    rep.figure(fig, "digits_multilabel", "Multilabel predictions for four digits",
               """One bar per label, each the output of its own logistic neuron; labels
               with probability above 0.5 (dashed) are predicted (green). The four digits
               cover the four combinations: a 7 should light up both bars, a 3 only "is
               odd", a 6 only "is >= 5", a 4 neither. Unlike softmax outputs, the two
               probabilities do not compete: both can be high at once, or both low.""")

    # -- multiclass: the chapter's 300-100 network ---------------------------------------
    rep.heading("Multiclass: softmax over 10 classes, the chapter's 300-100 network", 3)
    g = datasets.load_digits(random_state=cfg.seed)
    rep.text(f"""The chapter classifies Fashion-MNIST (28x28 images, 10 classes) with a
        784-300-100-10 network of 266,610 parameters. The offline stand-in is the digits
        set: 8x8 images, 10 classes, pixels scaled to [0, 1], split {len(g.y_train)}
        train, {len(g.y_valid)} validation, {len(g.y_test)} test. `summary()` of the
        chapter's network (built from zero weights, so no training needed):""")
    sizes = [784, 300, 100, 10]
    big = rb.MLPClassifier.from_weights(
        [np.zeros((a, b)) for a, b in pairwise(sizes)],
        [np.zeros(b) for b in sizes[1:]], classes=list(range(10)), activation="relu")
    rep.code(big.summary())
    facts["summary_784"] = big.summary()
    runs = {}
    rows = []
    for name, kw in (("sgd lr 0.01 (the chapter)", {"solver": "sgd",
                                                   "learning_rate_init": 0.01,
                                                   "momentum": 0.0}),
                     ("adam lr 0.001", {"solver": "adam", "learning_rate_init": 1e-3})):
        clf = rb.MLPClassifier(hidden_layer_sizes=(300, 100), activation="relu",
                               batch_size=32, max_iter=cfg.digits_epochs,
                               random_state=cfg.seed, backend=cfg.backend, **kw)
        t0 = time.perf_counter()
        with _expected_convergence_warnings():
            clf.fit(g.X_train, g.y_train, validation_data=(g.X_valid, g.y_valid))
        dt = time.perf_counter() - t0
        runs[name] = clf
        rows.append([name, clf.n_iter_, f"{dt:.2f} s", clf.validation_scores_[-1],
                     clf.score(g.X_test, g.y_test)])
    facts["digits_test_accuracy"] = {r[0]: r[4] for r in rows}
    rep.text("Network on the digits (64 inputs): `summary()`")
    rep.code(runs["adam lr 0.001"].summary())
    rep.table(["run", "epochs", "fit time", "valid accuracy", "test accuracy"], rows)
    rep.text("""The chapter reaches about 0.89 validation and 0.886 test accuracy on
        Fashion-MNIST after 30 epochs of SGD; digits are an easier problem, so the numbers
        here are higher, but the training behaves the same way.""")
    fig = plot.plot_learning_curves(runs, score_name="accuracy",
                                    loss_name="log loss (cross-entropy)",
                                    title="MLPClassifier 300-100 on digits: two optimizers")
    rep.figure(fig, "digits_learning_curves", "Learning curves of the 300-100 classifier",
               """The chapter's `pd.DataFrame(history.history).plot()`. Left: training loss
               (solid) and validation loss (dashed) per epoch; right: validation accuracy.
               Plain SGD at lr 0.01 improves steadily but slowly; Adam adapts a step size
               per weight and gets there in a few epochs. When the validation loss stops
               falling while the training loss keeps going down, the network has started
               to memorise the training set.""")
    clf = runs["adam lr 0.001"]
    idx = np.arange(3)
    P3 = clf.predict_proba(g.X_test[idx])
    facts["digits_three_proba_sums"] = P3.sum(axis=1).tolist()
    rep.text(f"""`predict_proba` of the first three test images (the chapter's
        `model.predict(X_new)`), rounded, from the Adam run (the SGD run of the chapter's
        settings is still far from done after these epochs); each row sums to 1 because
        the output layer is a `{clf.out_activation_}`:""")
    rep.code(_arr(P3, 2) + f"\npredict -> {np.asarray(clf.predict(g.X_test[idx])).tolist()}"
             f", true -> {g.y_test[idx].tolist()}")
    fig = plot.plot_digit_probabilities(g.images_test[idx], P3, g.y_test[idx],
                                        title="Three test images and their softmax outputs")
    rep.figure(fig, "digits_probabilities", "Predicted class probabilities for three test images",
               """Top: the 8x8 images. Bottom: the ten softmax outputs, the predicted class in
               green. The probabilities compete: raising one lowers the others, and a
               confident prediction puts nearly all the mass on one class. Smaller second
               bars show which digits the network finds similar.""")


def _pick_examples(labels, wanted):
    idx = []
    for w in wanted:
        hits = np.flatnonzero(np.asarray(labels) == w)
        if len(hits):
            idx.append(int(hits[0]))
    return np.array(idx)


def _proba_histogram(p, y, names):
    from .plot import _figure

    fig = _figure(figsize=(7, 4.2))
    ax = fig.subplots()
    bins = np.linspace(0, 1, 21)
    for c, col in ((0, "tab:red"), (1, "tab:blue")):
        ax.hist(p[y == c], bins=bins, alpha=0.6, color=col, label=f"true: {names[c]}")
    ax.axvline(0.5, color="k", ls="--", label="threshold 0.5")
    ax.set_xlabel(f"predicted P({names[1]})")
    ax.set_ylabel("number of test tumours")
    ax.set_title("Binary MLP: logistic output on the test set")
    ax.legend(loc="upper center")
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------------------
# 8. training tools
# --------------------------------------------------------------------------------------

class Checkpoint:
    """A callback that pickles the model whenever the validation loss improves.

    The chapter's ``ModelCheckpoint(save_best_only=True)``: pass it in ``callbacks=`` and
    ``path`` always holds the best model seen so far.

    Parameters
    ----------
    path : str
        File to write.
    """

    def __init__(self, path):
        self.path = path
        self.best = np.inf
        self.saved_epochs = []

    def __call__(self, estimator, logs):
        val = logs.get("val_loss")
        if val is not None and val < self.best:
            self.best = val
            with open(self.path, "wb") as f:
                pickle.dump(estimator, f)
            self.saved_epochs.append(logs["epoch"])
        # never stop training


class EarlyStopping:
    """A callback that stops training when the validation loss stops improving.

    The chapter's ``EarlyStopping(patience=10)``: returning True from a callback ends
    ``fit`` after that epoch. Combine with ``restore_best_weights=True`` to keep the
    weights of the best epoch rather than the last.

    Parameters
    ----------
    patience : int
        Epochs without a new lowest validation loss before stopping.
    """

    def __init__(self, patience=10):
        self.patience = patience
        self.best = np.inf
        self.wait = 0

    def __call__(self, estimator, logs):
        val = logs.get("val_loss")
        if val is None:
            return None
        if val < self.best:
            self.best, self.wait = val, 0
            return None
        self.wait += 1
        return self.wait >= self.patience


class History:
    """A callback that records the epoch logs, plus the training score.

    The chapter's ``history = model.fit(...)``: after ``fit``, ``logs`` is a list with
    one dict per epoch.

    Parameters
    ----------
    X_train, y_train : array-like, optional
        When given, each epoch's ``estimator.score`` on them is added as ``train_score``
        (scikit-learn's MLPs only record the training loss).
    """

    def __init__(self, X_train=None, y_train=None):
        self.X_train, self.y_train = X_train, y_train
        self.logs = []

    def __call__(self, estimator, logs):
        logs = dict(logs)
        if self.X_train is not None:
            logs["train_score"] = float(estimator.score(self.X_train, self.y_train))
        self.logs.append(logs)


def section_training(rep: Report, cfg: Settings, facts: dict) -> None:
    """Section 8: validation curves, early stopping, checkpoints, saving, search."""
    from scipy.stats import loguniform
    from sklearn.model_selection import RandomizedSearchCV

    from . import datasets, plot

    rb = _rb()
    rep.heading("8. The chapter's training tools")
    rep.script("08_training_tools.py")
    g = datasets.load_digits(random_state=cfg.seed)
    # a deliberately over-sized, unregularised network on a small training set overfits
    # visibly, which is what early stopping is for
    n_small = 300
    Xs, ys = g.X_train[:n_small], g.y_train[:n_small]
    ckpt_path = os.path.join(rep.out, "checkpoint_best.pkl")
    ckpt = Checkpoint(ckpt_path)
    hist = History(Xs, ys)
    patience = 5 if cfg.quick else 10
    stopper = EarlyStopping(patience=patience)
    clf = rb.MLPClassifier(hidden_layer_sizes=(300, 100), alpha=0.0, max_iter=cfg.es_epochs,
                           learning_rate_init=3e-3, batch_size=32,
                           restore_best_weights=True, callbacks=[hist, ckpt, stopper],
                           random_state=cfg.seed, backend=cfg.backend)
    with _expected_convergence_warnings():
        clf.fit(Xs, ys, validation_data=(g.X_valid, g.y_valid))
    vl = np.asarray(clf.validation_loss_curve_)
    best = int(np.argmin(vl)) + 1
    stopped = clf.n_iter_ < cfg.es_epochs
    if stopped:
        ran = (f"`EarlyStopping` ended training after epoch {clf.n_iter_} of at most "
               f"{cfg.es_epochs}.")
        story = f"""Early stopping ends training {clf.n_iter_ - best} epochs after the best
            one (the dotted line) and `restore_best_weights` puts the best epoch's weights
            back, so the extra epochs cost a little time but no quality."""
    else:
        ran = (f"Training reached the limit of {cfg.es_epochs} epochs before the patience "
               "ran out (a larger `max_iter` lets the overfitting show).")
        story = """Here training hit `max_iter` first; `restore_best_weights` still keeps
            the best epoch's weights (the dotted line)."""
    final_val_loss = _val_loss(clf, g.X_valid, g.y_valid)
    facts["early_stopping"] = {"n_iter": int(clf.n_iter_), "best_epoch": best,
                               "checkpoints": list(ckpt.saved_epochs)}
    rep.text(f"""**Early stopping with the best weights restored.** A 300-100 network without
        regularisation (`alpha=0`) is trained on only {n_small} digits, with the validation
        set passed as `fit(X, y, validation_data=(X_valid, y_valid))` and
        `restore_best_weights=True`, and three callbacks: `History` records each epoch,
        `Checkpoint` saves the best model (below), and `EarlyStopping(patience={patience})`
        returns `True`, which stops `fit`, once the validation loss has not improved for
        {patience} epochs (the chapter's `keras.callbacks.EarlyStopping`; scikit-learn's own
        `early_stopping=True` watches the validation *accuracy* instead). {ran} The
        validation loss was lowest at epoch {best} ({vl[best - 1]:.4f}) and ended at
        {vl[-1]:.4f}. After `fit`, the model holds the weights of the best epoch: its
        validation loss is {final_val_loss:.4f}.""")
    logs = hist.logs
    curves = {"this run": {"loss": [lg["loss"] for lg in logs],
                           "val_loss": [lg["val_loss"] for lg in logs],
                           "val_score": [lg["val_score"] for lg in logs],
                           "train_score": [lg["train_score"] for lg in logs],
                           "best_epoch": best}}
    fig = plot.plot_learning_curves(curves, score_name="accuracy",
                                    loss_name="log loss (cross-entropy)",
                                    title=f"Training vs validation, {n_small} training images")
    rep.figure(fig, "early_stopping", "Validation curves and early stopping",
               f"""Recorded by a callback after every epoch (`logs` holds the epoch, loss,
               validation loss and score, learning rate and time). Left: the training loss
               keeps falling toward zero while the validation loss reaches its minimum (star,
               epoch {best}) and then flattens or rises: from there on the network
               memorises the {n_small} training images instead of learning digits. Right:
               training accuracy approaches 1.0 while validation accuracy stalls. """
               + story)
    n_ck = len(ckpt.saved_epochs)
    with open(ckpt_path, "rb") as f:
        restored = pickle.load(f)
    ck_loss = _val_loss(restored, g.X_valid, g.y_valid)
    rep.text(f"""**A checkpoint callback.** `Checkpoint(path)` (in `rosenblatt.tour`, ten lines)
        is called as `cb(estimator, logs)` after each epoch and pickles the model whenever
        the validation loss improves, like Keras' `ModelCheckpoint(save_best_only=True)`.
        It saved {n_ck} times, last at epoch {ckpt.saved_epochs[-1] if n_ck else '-'};
        the file reloads to a model with validation loss {ck_loss:.4f}. A callback that
        returns `True` stops training after that epoch.""")
    rep.code("""class Checkpoint:
    def __init__(self, path):
        self.path, self.best = path, float("inf")
    def __call__(self, estimator, logs):
        if logs["val_loss"] < self.best:
            self.best = logs["val_loss"]
            with open(self.path, "wb") as f:
                pickle.dump(estimator, f)""")

    # -- saving and reloading --------------------------------------------------------------
    buf = io.BytesIO()
    pickle.dump(clf, buf)
    size = buf.tell()
    buf.seek(0)
    clone = pickle.load(buf)
    same = bool(np.array_equal(clf.predict_proba(g.X_test), clone.predict_proba(g.X_test)))
    facts["reload_identical"] = same
    rep.text(f"""**Saving and reloading.** `pickle.dump(model, f)` / `pickle.load(f)` (or
        `joblib`) stores the fitted network ({size / 1024:.0f} KiB here); the reloaded model's
        `predict_proba` on the {len(g.y_test)} test images is bit-for-bit identical:
        **{same}**.""")

    # -- randomized search -----------------------------------------------------------------
    params = {
        "hidden_layer_sizes": [(50,), (100,), (300,), (100, 50), (300, 100)],
        "learning_rate_init": loguniform(3e-4, 3e-2),
    }
    search = RandomizedSearchCV(
        rb.MLPClassifier(max_iter=cfg.search_epochs, random_state=cfg.seed,
                         backend=cfg.backend),
        params, n_iter=cfg.search_iter, cv=cfg.search_cv, n_jobs=1, random_state=cfg.seed)
    t0 = time.perf_counter()
    with _expected_convergence_warnings():
        search.fit(g.X_train, g.y_train)
    dt = time.perf_counter() - t0
    res = search.cv_results_
    rows = sorted(
        [[str(res["param_hidden_layer_sizes"][i]), float(res["param_learning_rate_init"][i]),
          res["mean_test_score"][i], res["std_test_score"][i], int(res["rank_test_score"][i])]
         for i in range(len(res["mean_test_score"]))], key=lambda r: r[4])
    test_acc = float(search.score(g.X_test, g.y_test))
    facts["search_best"] = {k: (float(v) if isinstance(v, (float, np.floating)) else v)
                            for k, v in search.best_params_.items()}
    rep.text(f"""**Hyperparameter search.** `RandomizedSearchCV` tries
        {cfg.search_iter} random combinations of the number of hidden layers and neurons
        (`hidden_layer_sizes`) and the learning rate (log-uniform between 3e-4 and 3e-2),
        each with {cfg.search_cv}-fold cross-validation and {cfg.search_epochs} epochs, in
        {dt:.1f} s. The estimators are scikit-learn compatible, so the search needs no
        wrapper (the chapter needs `KerasRegressor` for this).""")
    rep.table(["hidden_layer_sizes", "learning_rate_init", "mean CV accuracy", "std", "rank"],
              rows)
    bp = search.best_params_
    rep.text(f"""Best: `hidden_layer_sizes={bp['hidden_layer_sizes']}`,
        `learning_rate_init={float(bp['learning_rate_init']):.3g}`, refitted on the whole
        training set: test accuracy {test_acc:.3f}.""")
    fig = _search_plot(rows)
    rep.figure(fig, "random_search", "Randomized search over architecture and learning rate",
               """Each point is one sampled combination: its learning rate (log scale) and
               mean cross-validated accuracy, with the error bar one standard deviation
               over the folds and the label its hidden layers. With a fixed epoch budget the
               learning rate matters most: too small and the network has not converged
               yet, too large and it bounces around. A random search covers such a
               continuous range better than a grid with the same number of fits.""")


def _val_loss(clf, X, y):
    from sklearn.metrics import log_loss

    return float(log_loss(y, clf.predict_proba(X), labels=clf.classes_))


def _search_plot(rows):
    from .plot import _figure

    fig = _figure(figsize=(7.5, 4.5))
    ax = fig.subplots()
    lr = np.array([r[1] for r in rows])
    score = np.array([r[2] for r in rows])
    std = np.array([r[3] for r in rows])
    ax.errorbar(lr, score, yerr=std, fmt="o", capsize=4, ms=8)
    # a label goes to the right of its point, or to the left when the next point to the
    # right is close enough for the two labels to collide
    order = np.argsort(lr)
    for i, j in enumerate(order):
        r = rows[j]
        crowded = i + 1 < len(order) and lr[order[i + 1]] / lr[j] < 2.0
        ax.annotate(f"{r[0]} (rank {r[4]})", (r[1], r[2]), textcoords="offset points",
                    xytext=(-8, 6) if crowded else (8, 6), ha="right" if crowded else "left",
                    fontsize=8)
    ax.set_xscale("log")
    ax.set_xlabel("learning_rate_init (log scale; shaded: the range searched)")
    ax.set_ylabel("mean cross-validated accuracy")
    ax.set_title("RandomizedSearchCV over MLPClassifier on digits")
    ax.grid(True, alpha=0.3)
    # the whole sampled range, so the reader sees where the draws fell within it
    ax.axvspan(3e-4, 3e-2, color="tab:green", alpha=0.07)
    ax.set_xlim(2e-4, 5e-2)
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------------------
# driver
# --------------------------------------------------------------------------------------

SECTIONS = [
    ("McCulloch-Pitts neurons", section_mcculloch_pitts),
    ("TLU and the perceptron rule", section_tlu),
    ("Perceptron on iris", section_iris),
    ("XOR", section_xor),
    ("Activation functions", section_activations),
    ("Regression MLPs", section_regression),
    ("Classification MLPs", section_classification),
    ("Training tools", section_training),
]


def run(out: str = "rosenblatt_tour", *, quick: bool = False, backend: str = "auto",
        verbose: bool = True) -> dict:
    """Run the whole tour, write the figures and the reports, return the key facts.

    Parameters
    ----------
    out : str, default="rosenblatt_tour"
        Output directory for the PNG figures, ``report.md`` and ``report.html``.
    quick : bool, default=False
        Smaller data and fewer epochs (about half the time); the logic facts,
        XOR and the iris perceptron are the same.
    backend : str, default="auto"
        Backend of every estimator (``"auto"`` picks the fastest available).
    verbose : bool, default=True
        Print progress and numbers.

    Returns
    -------
    dict
        The facts the report states (truth tables, predictions, accuracies, the list of
        figure files under ``"figures"``, the elapsed time under ``"seconds"``), also
        written to ``facts.json`` in ``out``.
    """
    cfg = Settings(quick=quick, backend=backend)
    # quick mode is for tests: smaller images render faster and are checked, not read
    rep = Report(out, verbose=verbose, dpi=72 if quick else 100)
    facts: dict = {}
    t_start = time.perf_counter()
    rep.heading("rosenblatt: the lecture, runnable", 1)
    rep.text("""Exercise 11-1 of the lecture *Introduction to Artificial Neural Networks with
        Keras* (chapter 10 of Geron's *Hands-On Machine Learning*): run the whole chapter and
        analyse every result and every graph. Produced offline by `python -m rosenblatt
        tour`; each figure is followed by what it shows and why.""")
    from . import __version__, kernels

    rep.say(f"rosenblatt {__version__} tour -> {os.path.abspath(out)}"
            f"{' (quick mode)' if quick else ''}, backend {kernels.resolve_backend(backend)}")
    errors = {}
    timings = []
    cpu_start = time.process_time()
    for i, (title, fn) in enumerate(SECTIONS, 1):
        t0 = time.perf_counter()
        c0 = time.process_time()
        rep.say(f"[{i}/{len(SECTIONS)}] {title} ...")
        try:
            fn(rep, cfg, facts)
        except Exception as exc:  # noqa: BLE001 - reported below, exit status 1
            # One broken section should not hide the others: record it in the report,
            # print the traceback, carry on, and fail the exit status at the end.
            import traceback

            tb = traceback.format_exc()
            errors[title] = f"{type(exc).__name__}: {exc}"
            rep.text(f"**This section failed**: `{errors[title]}`")
            rep.code(tb)
            print(tb, file=sys.stderr, flush=True)
        timings.append([title, time.perf_counter() - t0, time.process_time() - c0])
        rep.say(f"[{i}/{len(SECTIONS)}] {title}: {timings[-1][1]:.1f} s")
    facts["errors"] = errors
    seconds = time.perf_counter() - t_start
    cpu = time.process_time() - cpu_start
    rep.heading("About this run", 2)
    rep.text(f"""Backend `{facts.get('backend', '?')}`, {'quick' if quick else 'full'} mode,
        {len(rep.figures)} figures, {seconds:.1f} s wall-clock ({cpu:.1f} s of CPU time;
        the two differ when other programs share the processor or the core uses several
        threads).""")
    rep.table(["section", "wall-clock s", "CPU s"], timings)
    rep.write()
    facts["figures"] = list(rep.figures)
    facts["seconds"] = seconds
    facts["cpu_seconds"] = cpu
    facts["out"] = os.path.abspath(out)
    # the same facts, machine-readable, for tests and for comparing runs
    with open(os.path.join(out, "facts.json"), "w", encoding="utf-8") as f:
        json.dump(facts, f, indent=1, default=_jsonable)
    rep.say(f"done in {seconds:.1f} s: {len(rep.figures)} figures, "
            f"{os.path.join(out, 'report.md')} and report.html")
    return facts


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point of ``python -m rosenblatt tour``.

    Parameters
    ----------
    argv : list of str or None
        Arguments after ``tour``; ``None`` reads ``sys.argv[1:]``.

    Returns
    -------
    int
        Exit status: 0 on success, 1 if any section failed (the others still ran and the
        report says which failed and why), 2 without matplotlib.
    """
    parser = argparse.ArgumentParser(
        prog="python -m rosenblatt tour",
        description="Run the lecture (perceptrons and MLPs) offline: figures plus "
                    "report.md and report.html.")
    parser.add_argument("--out", default="rosenblatt_tour",
                        help="output directory (default: ./rosenblatt_tour)")
    parser.add_argument("--quick", action="store_true",
                        help="reduced data and epochs (what the tests run)")
    parser.add_argument("--backend", default="auto", choices=["auto", "cpp", "numba", "numpy"],
                        help="backend of every estimator (default: the fastest available)")
    parser.add_argument("--quiet", action="store_true", help="print nothing")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    try:
        import matplotlib  # noqa: F401 - only to fail early with a clear message
    except ImportError:
        print("the tour draws figures and needs matplotlib: pip install 'rosenblatt[plot]'",
              file=sys.stderr)
        return 2
    facts = run(args.out, quick=args.quick, backend=args.backend, verbose=not args.quiet)
    if facts["errors"]:
        print(f"tour: {len(facts['errors'])} section(s) failed: "
              f"{', '.join(facts['errors'])}", file=sys.stderr)
        return 1
    return 0
