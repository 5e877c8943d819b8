"""Exercise 11-2 answered headless: steps a-f of the TensorFlow Playground exercise.

``python -m rosenblatt playground --experiments [--out DIR] [--quick] [--seeds N]`` trains
every configuration over many seeds with the Playground's own engine (the same code the
page uses) and writes ``DIR/report.md`` with figures (PNG) and ``DIR/results.json``. Every
sentence of the report that states a finding is generated from the numbers printed beside
it, so a different outcome gives a different sentence.

A run's *seed* sets both the data (``seed``) and the initial weights (``init_seed``). A run
*converges* at the first epoch whose test loss is at or below the threshold of its
experiment; it is *stuck* when it has not converged within the epoch budget.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import engine as en

__all__ = ["Budget", "run", "train_runs"]


@dataclass(frozen=True)
class Budget:
    seeds: int = 20          # seeds per configuration, steps b-e
    seeds_f: int = 10        # seeds per configuration, step f
    epochs: int = 600        # epoch budget, steps a-e
    epochs_f: int = 1500     # epoch budget, step f
    threshold: float = 0.02  # test loss that counts as solved (circle)
    threshold_f: float = 0.1  # test loss that counts as solved (spiral)
    plateau: float = 0.4     # spiral: the plateau is left when test loss < this


FULL = Budget()
QUICK = Budget(seeds=2, seeds_f=1, epochs=15, epochs_f=10)

SPIRAL = {"dataset": "spiral", "layers": [8, 8, 8, 8]}
SPIRAL_NAMES = {"o50": "original, batch 50", "bn10": "batch norm, batch 10",
                "bn50": "batch norm, batch 50"}
SPIRAL_SETUPS = {
    "original (U(-0.5,0.5), bias 0.1, SGD 0.03)": {},
    "He init": {"init": "he"},
    "Glorot init": {"init": "glorot"},
    "Adam (lr 0.01)": {"optimizer": "adam", "learning_rate": 0.01},
    "AdaGrad (lr 0.1)": {"optimizer": "adagrad", "learning_rate": 0.1},
    SPIRAL_NAMES["o50"]: {"batch_size": 50},
    SPIRAL_NAMES["bn10"]: {"batch_norm": True},
    SPIRAL_NAMES["bn50"]: {"batch_norm": True, "batch_size": 50},
}


@dataclass
class RunResult:
    seed: int
    converged_at: int | None   # first epoch with test loss <= threshold
    best_test: float
    final_test: float
    final_train: float
    test: list
    grad_norms: list | None


def train_runs(config: dict, seeds, epochs: int, threshold: float, *, keep_going=False,
               grad_norms=False, plateau: float | None = None) -> list[RunResult]:
    """Train ``config`` once per seed; stop a run at convergence unless ``keep_going``."""
    out = []
    for seed in seeds:
        s = en.Session(dict(config) | {"seed": seed, "init_seed": seed})
        s.track_grad_norms = grad_norms
        conv = None
        while s.epoch < epochs:
            s.step(1)
            if s.status == "diverged":
                break
            if conv is None and s.history["test"][-1] <= threshold:
                conv = s.epoch
                if not keep_going:
                    break
        test = s.history["test"]
        out.append(RunResult(seed, conv, float(np.nanmin(test)), float(test[-1]),
                             float(s.history["train"][-1]), list(test),
                             s.history["grad_norms"] if grad_norms else None))
    return out


def _stats(values):
    v = np.asarray([x for x in values if x is not None], dtype=float)
    if v.size == 0:
        return {"n": 0, "median": None, "mean": None, "q1": None, "q3": None, "min": None,
                "max": None}
    return {"n": int(v.size), "median": float(np.median(v)), "mean": float(v.mean()),
            "q1": float(np.percentile(v, 25)), "q3": float(np.percentile(v, 75)),
            "min": float(v.min()), "max": float(v.max())}


def _summary(runs: list[RunResult]) -> dict:
    conv = [r.converged_at for r in runs]
    return {
        "seeds": len(runs),
        "converged": sum(c is not None for c in conv),
        "stuck": sum(c is None for c in conv),
        "fraction_stuck": sum(c is None for c in conv) / max(len(runs), 1),
        "epochs": _stats(conv),
        "best_test": _stats([r.best_test for r in runs]),
        "final_train": _stats([r.final_train for r in runs]),
        "per_seed": [{"seed": r.seed, "converged_at": r.converged_at,
                      "best_test": round(r.best_test, 5)} for r in runs],
    }


def _fmt(x, nd=3):
    if x is None:
        return "-"
    if isinstance(x, float) and not x.is_integer():
        return f"{x:.{nd}f}"
    return f"{x:.0f}" if isinstance(x, float) else str(x)


FIGURES = {"on": True}


class _NoFigure:
    """Stands in for a matplotlib figure when figures are off (fast tests)."""

    def __getattr__(self, name):
        return self

    def __call__(self, *args, **kwargs):
        return self


def _figure(w=8, h=4):
    if not FIGURES["on"]:
        return _NoFigure()
    from matplotlib.figure import Figure

    return Figure(figsize=(w, h), dpi=100)


def _cmap():
    if not FIGURES["on"]:
        return None
    from matplotlib.colors import LinearSegmentedColormap

    return LinearSegmentedColormap.from_list("playground", ["#f59322", "#e8eaeb", "#0877bd"])


def _linearity(m, grid):
    """R^2 of a linear fit in (x1, x2) of atanh(map): 1 for a straight boundary family."""
    z = np.arctanh(np.clip(m.ravel(), -0.999999, 0.999999))
    A = np.column_stack([grid, np.ones(len(grid))])
    coef, *_ = np.linalg.lstsq(A, z, rcond=None)
    resid = z - A @ coef
    tot = np.sum((z - z.mean()) ** 2)
    return float(1 - resid @ resid / tot) if tot > 0 else 1.0


def _output_preactivation(s: en.Session):
    """The output unit's pre-activation z over the 100 x 100 grid."""
    _, F = s._grid()
    cache = en._Cache()
    s._forward(F, train=False, cache=cache)
    a = cache.inputs[-1]
    la = s.layers[-1]
    return (a @ la.W + la.b)[:, 0].reshape(en.DENSITY, en.DENSITY)


def _piecewise_linear_fraction(z, tol=1e-7):
    """Share of grid cells where both second differences of z vanish (locally linear)."""
    dxx = np.abs(z[:, 2:] - 2 * z[:, 1:-1] + z[:, :-2])[1:-1, :]
    dyy = np.abs(z[2:, :] - 2 * z[1:-1, :] + z[:-2, :])[:, 1:-1]
    scale = max(float(np.abs(z).max()), 1e-12)
    return float(np.mean((dxx < tol * scale) & (dyy < tol * scale)))


# --- the steps -----------------------------------------------------------------------------
def step_a(out: Path, b: Budget) -> tuple[dict, str]:
    s = en.Session({"seed": 0, "init_seed": 0})
    s.track_grad_norms = False
    conv = None
    while s.epoch < b.epochs:
        s.step(1)
        if conv is None and s.history["test"][-1] <= b.threshold:
            conv = s.epoch
    raw, _ = s._grid()
    inputs, hidden, output = s.maps()
    maps = [("input", j, inputs[:, :, j]) for j in range(inputs.shape[2])]
    for li, h in enumerate(hidden):
        maps += [(f"layer {li + 1}", j, h[:, :, j]) for j in range(h.shape[2])]
    maps.append(("output", 0, output))
    fig = _figure(2.0 * len(maps), 2.4)
    for k, (name, j, m) in enumerate(maps):
        ax = fig.add_subplot(1, len(maps), k + 1)
        lim = 1.0 if name != "input" else max(float(np.abs(m).max()), 1e-9)
        ax.imshow(m, cmap=_cmap(), vmin=-lim, vmax=lim, extent=(-6, 6, -6, 6))
        ax.set_title(f"{name} #{j + 1}", fontsize=8)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    fig.savefig(out / "a_activation_maps.png")
    rows, lin = [], {}
    out_flat = output.ravel()
    for li, h in enumerate(hidden):
        for j in range(h.shape[2]):
            m = h[:, :, j]
            r2 = _linearity(m, raw)
            corr = float(np.corrcoef(m.ravel(), out_flat)[0, 1]) if m.std() > 0 else 0.0
            W = s.layers[li].W[:, j]
            rows.append({"layer": li + 1, "neuron": j + 1, "linear_r2": r2,
                         "corr_with_output": corr,
                         "weights": [float(w) for w in W], "bias": float(s.layers[li].b[j])})
            lin.setdefault(li + 1, []).append(r2)
    pred = np.sign(s.predict_raw(s.data.X_test))
    acc = float(np.mean(pred == s.data.y_test))
    res = {"epochs": s.epoch, "converged_at": conv, "test_loss": s.history["test"][-1],
           "test_accuracy": acc, "neurons": rows}
    l1 = min(lin.get(1, [1.0]))
    l2 = max(lin.get(2, [0.0])) if 2 in lin else None
    text = [
        "## (a) What the default network learns",
        "",
        ("Circle data, features x1 and x2, hidden layers [4, 2], tanh, learning rate 0.03, "
        f"batch 10, seed 0, {s.epoch} epochs (test loss {s.history['test'][-1]:.4f}, "
        f"test accuracy {acc:.3f}; first at or below {b.threshold} at epoch "
        f"{_fmt(conv)})."),
        "",
        "![activation maps](a_activation_maps.png)",
        "",
        ("| layer | neuron | w (from previous layer) | bias | R^2 of a linear fit of atanh(map) "
        "| correlation with the output map |"),
        "|---|---|---|---|---|---|",
        *(f"| {r['layer']} | {r['neuron']} | {', '.join(f'{w:+.2f}' for w in r['weights'])} | "
          f"{r['bias']:+.2f} | {r['linear_r2']:.4f} | {r['corr_with_output']:+.3f} |"
          for r in rows),
        "",
        (f"Layer 1: every neuron is tanh of a linear function of (x1, x2), so each map is a "
        f"soft half-plane (its atanh is exactly linear: smallest R^2 {l1:.4f}); the neurons "
        "differ only in the orientation and offset of their line (the weights above)."),
    ]
    if l2 is not None:
        text.append(
            f"Layer 2 combines those half-planes into curved regions: no layer-2 map is a "
            f"half-plane any more (largest R^2 {l2:.3f} < {l1:.3f})" if l2 < l1 - 1e-3 else
            f"Layer 2 maps stay close to half-planes here (largest R^2 {l2:.3f}).")
        best = max((r for r in rows if r["layer"] == 2),
                   key=lambda r: abs(r["corr_with_output"]))
        shape = ("is the closed circular region" if acc >= 0.95 else
                 f"does not separate the circle yet (test accuracy {acc:.3f})")
        text[-1] += (f"; the output, a weighted sum of them, {shape} "
                     f"(layer-2 neuron {best['neuron']} alone correlates "
                     f"{best['corr_with_output']:+.3f} with it).")
    text.append("")
    return res, "\n".join(text)


def _conv_table(names_runs, b: Budget, threshold):
    lines = [("| setup | seeds | converged | stuck | epochs to test loss <= "
             f"{threshold}: median (IQR) | min - max | best test loss: median | "
             "final train loss: median |"), "|---|---|---|---|---|---|---|---|"]
    for name, summ in names_runs:
        e = summ["epochs"]
        iqr = f"{_fmt(e['median'], 1)} ({_fmt(e['q1'], 1)} - {_fmt(e['q3'], 1)})" \
            if e["n"] else "-"
        mm = f"{_fmt(e['min'])} - {_fmt(e['max'])}" if e["n"] else "-"
        lines.append(f"| {name} | {summ['seeds']} | {summ['converged']} | {summ['stuck']} | "
                     f"{iqr} | {mm} | {_fmt(summ['best_test']['median'], 4)} | "
                     f"{_fmt(summ['final_train']['median'], 4)} |")
    return lines


def _hist(out, name, series, budget, title):
    fig = _figure(7, 3)
    ax = fig.add_subplot(1, 1, 1)
    bins = np.linspace(0, budget + 1, 31)
    for label, runs in series:
        vals = [r.converged_at if r.converged_at is not None else budget + 0.5
                for r in runs]
        ax.hist(vals, bins=bins, alpha=0.6, label=label)
    ax.axvline(budget, color="k", lw=0.8, ls="--")
    ax.set_xlabel(f"epochs to converge (bar at {budget}: not converged)")
    ax.set_ylabel("seeds")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / name)


def step_b(out: Path, b: Budget) -> tuple[dict, str]:
    seeds = range(b.seeds)
    runs = {act: train_runs({"activation": act}, seeds, b.epochs, b.threshold)
            for act in ("tanh", "relu")}
    summ = {act: _summary(r) for act, r in runs.items()}
    # boundary shape at seed 0 after the budget (or convergence)
    shape, fig = {}, _figure(7, 3.4)
    for k, act in enumerate(("tanh", "relu")):
        s = en.Session({"activation": act, "seed": 0, "init_seed": 0})
        s.track_grad_norms = False
        s.step(max(runs[act][0].converged_at or b.epochs, 1))
        z = _output_preactivation(s)
        shape[act] = _piecewise_linear_fraction(z)
        ax = fig.add_subplot(1, 2, k + 1)
        ax.imshow(np.tanh(z), cmap=_cmap(), vmin=-1, vmax=1, extent=(-6, 6, -6, 6))
        ax.contour(np.linspace(-6, 6, en.DENSITY), np.linspace(6, -6, en.DENSITY), z, [0],
                   colors="k", linewidths=1)
        ax.set_title(f"{act}: locally linear share {shape[act]:.2f}", fontsize=9)
    fig.tight_layout()
    fig.savefig(out / "b_boundaries.png")
    _hist(out, "b_epochs.png", [(a, runs[a]) for a in runs], b.epochs,
          "circle [4, 2]: epochs to converge")
    mt, mr = summ["tanh"]["epochs"]["median"], summ["relu"]["epochs"]["median"]
    faster = None if mt is None or mr is None else ("ReLU" if mr < mt else "tanh")
    text = ["## (b) tanh versus ReLU", "",
            f"Default network on circle data, {b.seeds} seeds, budget {b.epochs} epochs.",
            "", *_conv_table([(a, summ[a]) for a in summ], b, b.threshold), "",
            "![epochs](b_epochs.png)", "", "![boundaries](b_boundaries.png)", ""]
    if faster:
        text.append(f"{faster} reaches the threshold faster: median {_fmt(mr, 1)} epochs "
                    f"with ReLU against {_fmt(mt, 1)} with tanh.")
    text.append(
        f"Boundary shape (seed 0): the output's pre-activation is locally linear (both "
        f"second differences zero) on {shape['relu']:.1%} of the 100 x 100 grid with ReLU "
        f"and {shape['tanh']:.1%} with tanh: "
        + ("ReLU's boundary is piecewise linear (straight segments with corners), tanh's "
           "is smooth." if shape["relu"] > shape["tanh"] + 0.5 else
           "the difference is smaller than expected here."))
    text.append("")
    return {"summary": summ, "locally_linear_share": shape}, "\n".join(text)


def step_cde(out: Path, b: Budget) -> tuple[dict, str]:
    seeds = range(b.seeds)
    cfgs = {
        "3 neurons, tanh": {"layers": [3], "activation": "tanh"},
        "3 neurons, ReLU": {"layers": [3], "activation": "relu"},
        "2 neurons, tanh": {"layers": [2], "activation": "tanh"},
        "2 neurons, ReLU": {"layers": [2], "activation": "relu"},
        "8 neurons, tanh": {"layers": [8], "activation": "tanh"},
        "8 neurons, ReLU": {"layers": [8], "activation": "relu"},
    }
    runs = {k: train_runs(c, seeds, b.epochs, b.threshold) for k, c in cfgs.items()}
    summ = {k: _summary(r) for k, r in runs.items()}
    _hist(out, "c_epochs_3.png", [(k, runs[k]) for k in runs if k.startswith("3")],
          b.epochs, "one hidden layer of 3: epochs to converge")
    _hist(out, "e_epochs_8.png", [(k, runs[k]) for k in runs if k.startswith("8")],
          b.epochs, "one hidden layer of 8: epochs to converge")
    table = _conv_table([(k, summ[k]) for k in summ], b, b.threshold)
    text = ["## (c, d, e) One hidden layer of 3, 2 and 8 neurons", "",
            (f"Circle data, x1 and x2, learning rate 0.03, batch 10, {b.seeds} seeds, budget "
            f"{b.epochs} epochs, converged = test loss <= {b.threshold}."), "", *table, "",
            "![3 neurons](c_epochs_3.png)", "", "![8 neurons](e_epochs_8.png)", ""]
    for act in ("tanh", "ReLU"):
        s3 = summ[f"3 neurons, {act}"]
        e = s3["epochs"]
        stuck_loss = [r.best_test for r in runs[f"3 neurons, {act}"] if r.converged_at is None]
        spread = (f"time to converge varies with the seed, from {_fmt(e['min'])} to "
                  f"{_fmt(e['max'])} epochs (IQR {_fmt(e['q1'], 1)} - {_fmt(e['q3'], 1)})"
                  if e["n"] else "no seed converged")
        text.append(
            f"(c) 3 neurons, {act}: {spread}; "
            f"{s3['stuck']} of {s3['seeds']} seeds ({s3['fraction_stuck']:.0%}) stayed "
            f"above the threshold for {b.epochs} epochs"
            + (f" (best test losses of those: {', '.join(f'{v:.3f}' for v in stuck_loss)}: "
               "a local minimum or plateau)." if stuck_loss else "."))
    for act in ("tanh", "ReLU"):
        s2 = summ[f"2 neurons, {act}"]
        bt = s2["best_test"]
        tr = s2["final_train"]
        verdict = ("underfits on every seed" if s2["converged"] == 0 else
                   f"converged on {s2['converged']} of {s2['seeds']} seeds")
        text.append(
            f"(d) 2 neurons, {act}: {verdict}: the best test loss over all seeds is "
            f"{_fmt(bt['min'], 4)} (median {_fmt(bt['median'], 4)}) and the training loss "
            f"stays at {_fmt(tr['median'], 4)} (median), so the network cannot represent "
            "the circle.")
    for act in ("tanh", "ReLU"):
        s8, s3 = summ[f"8 neurons, {act}"], summ[f"3 neurons, {act}"]
        m8, m3 = s8["epochs"]["median"], s3["epochs"]["median"]
        always = "always converges" if s8["stuck"] == 0 else \
            f"gets stuck on {s8['stuck']} of {s8['seeds']} seeds"
        cmp_ = "" if m8 is None or m3 is None else (
            f", median {_fmt(m8, 1)} epochs against {_fmt(m3, 1)} with 3 neurons, latest "
            f"{_fmt(s8['epochs']['max'])}" + (" (faster)" if m8 < m3 else " (not faster)"))
        text.append(f"(e) 8 neurons, {act}: {always}{cmp_}.")
    text.append("")
    return {"summary": summ}, "\n".join(text)


def _phase_gradients(test, g, plateau):
    """Median gradient norm per layer on the plateau (test loss >= plateau) and after."""
    test = np.array([np.nan if v is None else v for v in test], dtype=float)
    on = test >= plateau
    left = np.flatnonzero(~on)
    first = int(left[0]) if left.size else len(test)
    during = g[1:first] if first > 1 else g[:0]
    after = g[first:]

    def med(a):
        return [float(v) for v in np.median(a, axis=0)] if len(a) else None

    return {"left_at": first if left.size else None, "during": med(during),
            "after": med(after)}


def step_f(out: Path, b: Budget) -> tuple[dict, str]:
    seeds = range(b.seeds_f)
    runs, summ, plateau = {}, {}, {}
    for name, extra in SPIRAL_SETUPS.items():
        runs[name] = train_runs(SPIRAL | extra, seeds, b.epochs_f, b.threshold_f)
        summ[name] = _summary(runs[name])
        left = []
        for r in runs[name]:
            below = [i for i, v in enumerate(r.test) if v is not None and v < b.plateau]
            left.append(below[0] if below else None)
        plateau[name] = {"epochs_to_leave": _stats(left),
                         "never_left": sum(x is None for x in left)}
    # gradient norms per layer, seed 0, a fixed number of epochs for each setup
    n_gn = min(b.epochs_f, 600)
    gn, ratios, phases = {}, {}, {}
    rows = math.ceil(len(SPIRAL_SETUPS) / 3)
    fig = _figure(11, 3.2 * rows)
    for k, (name, extra) in enumerate(SPIRAL_SETUPS.items()):
        s = en.Session(SPIRAL | extra | {"seed": 0, "init_seed": 0})
        s.step(n_gn)
        g = np.array(s.history["grad_norms"], dtype=float)      # (epochs + 1, layers)
        gn[name] = g.tolist()
        # per weight (the layers hold 16, 64, 64, 64 and 8 weights): RMS = norm / sqrt(size)
        size = np.array([la.W.size for la in s.layers], dtype=float)
        rms = g / np.sqrt(size)
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = rms[1:, 0] / rms[1:, -1]
        ratios[name] = float(np.nanmedian(ratio)) if ratio.size else None
        phases[name] = _phase_gradients(s.history["test"], g, b.plateau)
        ax = fig.add_subplot(rows, 3, k + 1)
        for li in range(g.shape[1]):
            label = "output" if li == g.shape[1] - 1 else f"layer {li + 1}"
            ax.semilogy(np.maximum(g[:, li], 1e-12), label=label, lw=1)
        if phases[name]["left_at"] is not None:
            ax.axvline(phases[name]["left_at"], color="k", ls=":", lw=0.8)
        ax.set_title(name, fontsize=8)
        ax.set_xlabel("epoch", fontsize=8)
        if k == 0:
            ax.set_ylabel("||dL/dW||", fontsize=8)
            ax.legend(fontsize=6)
        ax.tick_params(labelsize=7)
    fig.tight_layout()
    fig.savefig(out / "f_gradient_norms.png")
    fig = _figure(9, 3.8)
    ax = fig.add_subplot(1, 1, 1)
    for name in SPIRAL_SETUPS:
        t = np.array([np.nan if v is None else v for v in runs[name][0].test])
        ax.plot(t, label=name, lw=1)
    ax.axhline(b.threshold_f, color="k", ls="--", lw=0.8)
    ax.set_xlabel("epoch")
    ax.set_ylabel("test loss (seed 0)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "f_test_loss.png")

    orig = next(iter(SPIRAL_SETUPS))
    table = _conv_table([(k, summ[k]) for k in summ], b, b.threshold_f)
    table[0] += (f" epochs to leave the plateau (test loss < {b.plateau}): median | "
                 "layer-1 / output RMS gradient per weight, seed 0 (median over epochs) |")
    table[1] += "---|---|"
    for i, name in enumerate(summ):
        pl = plateau[name]["epochs_to_leave"]["median"]
        table[2 + i] += f" {_fmt(pl, 1)} | {_fmt(ratios[name], 3)} |"
    text = ["## (f) Spiral, four hidden layers of 8", "",
            (f"Spiral data, x1 and x2, hidden layers [8, 8, 8, 8], tanh, batch 10 unless "
             f"named, {b.seeds_f} seeds, budget {b.epochs_f} epochs, converged = test loss "
             f"<= {b.threshold_f}. Gradient norms: L2 norm of dL/dW per layer over the whole "
             f"training set after each epoch (seed 0, {n_gn} epochs; dotted line: the "
             "plateau is left)."), "", *table, "",
            "![test loss](f_test_loss.png)", "", "![gradient norms](f_gradient_norms.png)",
            ""]
    po = plateau[orig]["epochs_to_leave"]["median"]
    ro = ratios[orig]
    so = summ[orig]
    text.append(
        f"The original setup sits on a plateau (test loss near 0.5, the loss of a constant "
        f"output) for a median of {_fmt(po, 1)} epochs"
        + (f" ({plateau[orig]['never_left']} seeds never left it)"
           if plateau[orig]["never_left"] else "")
        + f"; it converges on {so['converged']} of {so['seeds']} seeds (median "
        f"{_fmt(so['epochs']['median'], 1)} epochs).")
    ph = phases[orig]
    if ph["during"] is not None and ph["after"] is not None:
        small = all(d < a for d, a in zip(ph["during"], ph["after"]))
        text.append(
            "Seed 0, gradient norm per layer (layer 1 ... output), median on the plateau: "
            + ", ".join(f"{v:.2g}" for v in ph["during"]) + "; after leaving it: "
            + ", ".join(f"{v:.2g}" for v in ph["after"]) + ". "
            + ("Every layer's gradient is smaller on the plateau than after it: the "
               "plateau is a flat region of the loss, and training crawls across it."
               if small else "The gradients are not uniformly smaller on the plateau."))
    if ro is not None:
        text.append(
            f"Per weight, layer 1's gradient (RMS) is {ro:.3f} times the output layer's "
            "(median over epochs)"
            + (": the gradient shrinks on its way down, so the lower layers learn slowest."
               if ro < 0.5 else
               ": with 4 layers and inputs up to 5 in size, the gradient does not vanish "
               "on its way down here; the plateau, not a vanishing gradient, slows training."))
    for name in list(SPIRAL_SETUPS)[1:]:
        s_, p = summ[name], plateau[name]["epochs_to_leave"]["median"]
        m, mo = s_["epochs"]["median"], so["epochs"]["median"]
        parts = [(f"converges on {s_['converged']} of {s_['seeds']} seeds "
                 f"({'more than' if s_['converged'] > so['converged'] else 'fewer than' if s_['converged'] < so['converged'] else 'as many as'} the original's {so['converged']})")]
        if m is not None and mo is not None:
            parts.append(f"median {_fmt(m, 1)} epochs to converge "
                         f"({'faster' if m < mo else 'slower'} than {_fmt(mo, 1)})")
        never = plateau[name]["never_left"]
        stay = f", {never} seeds never leave it" if never else ""
        if p is not None and po is not None:
            parts.append(f"leaves the plateau after a median of {_fmt(p, 1)} epochs "
                         f"({'sooner' if p < po else 'later'} than {_fmt(po, 1)}{stay})")
        elif p is None:
            parts.append("no seed leaves the plateau within the budget")
        text.append(f"{name}: " + "; ".join(parts) + ".")
    ranked = sorted((summ[n]["epochs"]["median"], n) for n in SPIRAL_SETUPS
                    if summ[n]["converged"] * 2 >= summ[n]["seeds"] and
                    summ[n]["epochs"]["median"] is not None)
    if ranked:
        text.append(f"Fastest among the setups that converge on at least half of the seeds: "
                    f"{ranked[0][1]} (median {_fmt(ranked[0][0], 1)} epochs).")
    bn10, bn50, o50 = (SPIRAL_NAMES["bn10"], SPIRAL_NAMES["bn50"], SPIRAL_NAMES["o50"])
    if all(n in summ for n in (bn10, bn50, o50)):
        c10, c50, co = (summ[n]["converged"] for n in (bn10, bn50, o50))
        lead = ("Batch normalisation needs larger batches: " if c50 > c10 else
                "Batch size does not decide batch normalisation's outcome here: ")
        text.append(
            f"{lead}with the original's batch of 10 it converges on {c10} of "
            f"{summ[bn10]['seeds']} seeds, with batches of 50 on {c50}, against {co} for the "
            f"same batch of 50 without it (medians "
            f"{_fmt(summ[bn50]['epochs']['median'], 1)} and "
            f"{_fmt(summ[o50]['epochs']['median'], 1)} epochs to converge).")
    text.append("")
    return {"summary": summ, "plateau": plateau, "grad_ratio": ratios, "phases": phases,
            "grad_norms_seed0": gn}, "\n".join(text)


def run(out: str | Path = "playground-report", *, quick: bool = False,
        seeds: int | None = None, budget: Budget | None = None,
        figures: bool = True) -> Path:
    """Run steps a-f and write ``out/report.md``; returns its path.

    ``figures=False`` skips matplotlib (the report still names the figures).
    """
    note = ""
    if figures:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            figures = False
            note = (" Figures were not drawn: matplotlib is not installed "
                    "(pip install 'rosenblatt[plot]').")
            print("warning: matplotlib is not installed; writing the report without figures",
                  flush=True)
    FIGURES["on"] = figures
    b = budget or (QUICK if quick else FULL)
    if seeds is not None:
        if seeds < 1:
            raise ValueError(f"seeds must be positive, got {seeds}")
        b = Budget(**{**b.__dict__, "seeds": seeds, "seeds_f": max(1, math.ceil(seeds / 2))})
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    results, parts = {}, []
    for key, fn in (("a", step_a), ("b", step_b), ("cde", step_cde), ("f", step_f)):
        t = time.perf_counter()
        res, text = fn(out, b)
        res["seconds"] = time.perf_counter() - t
        results[key] = res
        parts.append(text)
        print(f"  step {key}: {res['seconds']:.1f} s", flush=True)
    s = en.Session()
    backend = "kernels (" + (s._kernels.resolve_backend(None) if s._kernels else "-") + ")"
    header = [
        "# Exercise 11-2, answered: the Playground headless", "",
        (f"Generated by `python -m rosenblatt playground --experiments` in "
        f"{time.perf_counter() - t0:.0f} s ({'quick mode: tiny sizes, not the answer' if quick else 'full mode'}). "
        f"Training: whole epochs in rosenblatt's {backend} where the setup allows, the "
        "Playground's NumPy path otherwise (batch normalisation). Budgets: "
        f"{b.seeds} seeds and {b.epochs} epochs for a-e, {b.seeds_f} seeds and {b.epochs_f} "
        f"epochs for f. Every data set: 500 points, half for training, noise 0; a run's "
        "seed sets both its data and its initial weights. Squared loss 0.5 (o - t)^2 on a "
        "tanh output, as in the original; the numbers behind every figure are in "
        "`results.json`." + note), ""]
    FIGURES["on"] = True
    report = out / "report.md"
    report.write_text("\n".join(header + parts))
    (out / "results.json").write_text(json.dumps(results, indent=1, default=float))
    return report
