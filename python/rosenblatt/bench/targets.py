"""PERFORMANCE.md's targets, evaluated against one run's results.

Every target gets a status: ``met``, ``MISSED``, ``FAILED`` (the measured row computed a
wrong result), ``not measured`` (with the reason: a backend not built, a peer not
installed, a workload filtered out) or ``n/a`` (an absolute time at shrunk sizes). A
miss is printed as plainly as a success.

Which rosenblatt backend a target judges: the library's default, i.e. the first of cpp,
numba, numpy that produced rows for the workload; the measured text names it.
"""

from __future__ import annotations

__all__ = ["evaluate_targets"]

ORDER = ("cpp", "numba", "numpy")


def _rows(results, wid):
    return [r for r in results if r.workload == wid]


def _ok(rows, impl=None, threads=None):
    # "skipped" rows carry one unchecked run of a contender too slow to repeat: they can
    # only make a target look worse, and leaving them out would hide a miss
    return [r for r in rows if r.status in ("ok", "skipped") and r.median_s
            and (impl is None or r.impl == impl) and (threads is None or r.threads == threads)]


def _best(rows):
    return min(rows, key=lambda r: r.median_s) if rows else None


def _primary(rows, only=None, name="rosenblatt"):
    """The backend a target judges, and its rows (ok or FAILED); ``name`` the contender
    family (``onepass`` for the Perceptron's one-pass rule)."""
    for be in ([only] if only else ORDER):
        impl = f"{name}[{be}]"
        mine = [r for r in rows if r.impl == impl and r.status in ("ok", "FAILED", "skipped")]
        if mine:
            return impl, mine
    why = sorted({r.reason for r in rows if r.rosenblatt and r.reason})
    return None, why


def _dn(dtype):
    return {"float32": "f32", "float64": "f64"}.get(dtype, dtype)


def _fmt_s(s):
    if s is None:
        return "-"
    for unit, f in (("s", 1), ("ms", 1e3), ("us", 1e6), ("ns", 1e9)):
        if s * f >= 1:
            return f"{s * f:.3g} {unit}"
    return f"{s * 1e9:.3g} ns"


class _T:
    """A target row under construction."""

    def __init__(self, tid, text):
        self.d = {"id": tid, "target": text, "measured": "", "status": "not measured",
                  "values": {}}

    def none(self, why):
        self.d["status"] = "not measured"
        self.d["measured"] = why
        return self.d

    def done(self, met, measured, values=None, note=""):
        self.d["status"] = "met" if met else "MISSED"
        self.d["measured"] = measured + (f" ({note})" if note else "")
        self.d["values"] = values or {}
        return self.d


def _failed(t, rows):
    bad = [r for r in rows if r.status == "FAILED"]
    if bad:
        t.d["status"] = "FAILED"
        t.d["measured"] = "; ".join(f"{r.impl} t{r.threads}: {r.reason}" for r in bad[:2])
        return t.d
    return None


def _kernel_ratio(results, t, kind, act, shapes, dtypes, threads, minimum, *, strict=False):
    """Ratio numpy / rosenblatt at ``threads`` for every shape and dtype; all must pass."""
    parts, vals, ok_all, any_row, impl_used = [], {}, True, False, None
    for dt in dtypes:
        for (n, k, m) in shapes:
            wid = f"kernel/{kind}/{dt}/{n}x{k}x{m}" + ("" if kind == "forward" else f"/{act}")
            rows = _rows(results, wid)
            impl, mine = _primary(rows)
            if impl is None:
                continue
            fail = _failed(t, mine)
            if fail:
                return fail
            rb = _ok(mine, threads=threads)
            base = _ok(rows, "numpy", threads)
            if not rb or not base:
                continue
            any_row, impl_used = True, impl
            ratio = base[0].median_s / rb[0].median_s
            vals[wid] = ratio
            ok_all &= ratio > minimum if strict else ratio >= minimum
            parts.append(f"{_dn(dt)} {n}x{k}x{m}: {ratio:.2f}x")
    if not any_row:
        return None
    return t.done(ok_all, f"{impl_used} t{threads} vs numpy t{threads}: " + ", ".join(parts),
                  vals)


def _train(results, wid):
    rows = _rows(results, wid)
    if not rows:
        return rows, None, None
    impl, mine = _primary(rows)
    return rows, impl, mine


def _peer_best(rows, peer):
    return _best(_ok(rows, peer))


def _perceptron_10(results):
    """Perceptron, 10 classes, >= 20x scikit-learn: both rules reported, each at its best
    threads against scikit-learn's best, per dtype. The target is met when one rule meets
    it for every dtype measured; the text names that rule and gives the other's figure."""
    t = _T("perceptron-10", "Perceptron 100000x100, 10 classes: >= 20x sklearn per epoch "
           "(best threads; scikit-learn's exact one-vs-rest rule and the one-pass "
           "rule='rosenblatt' both reported)")
    rules = (("rosenblatt", "sklearn-exact OvR"), ("onepass", "one-pass rule='rosenblatt'"))
    parts, vals, meets, scaled = [], {}, {name: True for name, _ in rules}, False
    for dt in ("float64", "float32"):
        rows = _rows(results, f"perceptron/10classes/{dt}")
        if not rows:
            continue
        sk = _peer_best(rows, "sklearn")
        got = []
        for name, label in rules:
            impl, mine = _primary(rows, name=name)
            if impl is None:
                meets[name] = False
                continue
            fail = _failed(t, mine)
            if fail:
                return fail
            rb = _best(_ok(mine))
            if rb is None or sk is None:
                meets[name] = False
                continue
            r = sk.median_s / rb.median_s
            vals[f"{name}/{dt}"] = r
            meets[name] &= r >= 20
            scaled |= rows[0].scaled
            got.append(f"{label} {r:.1f}x ({impl} t{rb.threads})")
        if got:
            parts.append(f"{_dn(dt)} vs sklearn t{sk.threads}: " + ", ".join(got))
    if not parts:
        return t.none("no Perceptron rows with both rosenblatt and sklearn")
    met = [label for name, label in rules if meets[name]]
    verdict = f"met by the {' and the '.join(met)}" if met else "met by neither rule"
    return t.done(bool(met), "; ".join(parts) + f" - {verdict}", vals,
                  "scaled down" if scaled else "")


def evaluate_targets(results, cfg, threads_all):
    """Evaluate every target of PERFORMANCE.md on ``results``.

    Parameters
    ----------
    results : list of Result
    cfg : Config
    threads_all : int
        The "both cores" thread count.

    Returns
    -------
    list of dict
        ``{"id", "target", "measured", "status", "values"}`` per target, in
        PERFORMANCE.md's order.
    """
    s = cfg.s
    out = []
    quick = cfg.size != "full"
    mlp = [sh for sh in s("mlp_shapes") if sh[0] >= 32]
    large = list(s("large_shapes"))
    dts = list(s("dtypes"))
    nlarge = "x".join(map(str, large[0])) if large else "-"

    def add(d, t, why="no rows for this target in this run (filtered out or unavailable)"):
        out.append(d if d is not None else t.none(why))

    t = _T("kernel-forward", "forward GEMM at MLP shapes (batch >= 32) >= 0.95x numpy, "
           "1 thread")
    add(_kernel_ratio(results, t, "forward", None, mlp, dts, 1, 0.95), t)
    t = _T("kernel-backward", "backward GEMMs at MLP shapes (batch >= 32) >= 0.95x numpy, "
           "1 thread")
    add(_kernel_ratio(results, t, "backward", "identity", mlp, dts, 1, 0.95), t)

    t = _T("kernel-peak", f">= 85% of one core's peak on large shapes ({nlarge}"
           f"{', quick size' if quick else ''}), forward and backward, 1 thread")
    parts, vals, ok_all, impl_used, fail = [], {}, True, None, None
    for dt in dts:
        for kind, suf in (("forward", ""), ("backward", "/identity")):
            for sh in large:
                wid = f"kernel/{kind}/{dt}/{'x'.join(map(str, sh))}{suf}"
                impl, mine = _primary(_rows(results, wid))
                if impl is None:
                    continue
                fail = fail or _failed(t, mine)
                rb = _ok(mine, threads=1)
                if rb and rb[0].frac_peak is not None:
                    impl_used = impl
                    vals[wid] = rb[0].frac_peak
                    ok_all &= rb[0].frac_peak >= 0.85
                    parts.append(f"{kind} {_dn(dt)}: {100 * rb[0].frac_peak:.0f}%")
    add(fail or (t.done(ok_all, f"{impl_used} t1: " + ", ".join(parts), vals)
                 if parts else None), t)

    t = _T("kernel-fused", "fused layer (matmul + bias + relu) faster than numpy's three "
           "calls, MLP shapes, 1 thread")
    add(_kernel_ratio(results, t, "fused", "relu", s("mlp_shapes"), dts, 1, 1.0,
                      strict=True), t)
    t = _T("kernel-tiny", "tiny layers (10x2@2x8, tanh) >= 3x numpy per call, forward and "
           "backward, 1 thread")
    d1 = _kernel_ratio(results, t, "fused", "tanh", s("tiny_shapes"), dts, 1, 3.0)
    t2 = _T("kernel-tiny", t.d["target"])
    d2 = _kernel_ratio(results, t2, "backward", "tanh", s("tiny_shapes"), dts, 1, 3.0)
    if d1 and d2 and d1["status"] in ("met", "MISSED") and d2["status"] in ("met", "MISSED"):
        both = d1["status"] == "met" and d2["status"] == "met"
        d1 = t.done(both, "forward " + d1["measured"] + "; backward " + d2["measured"],
                    {**d1["values"], **d2["values"]})
    add(d1 if d1 and d1["status"] == "FAILED" else (d2 if d2 and d2["status"] == "FAILED"
                                                     else d1 or d2), t)

    t = _T("kernel-threads", f"all threads ({threads_all}) >= 1.6x one thread on large "
           f"shapes ({nlarge})")
    parts, vals, ok_all = [], {}, True
    for dt in dts:
        for sh in large:
            wid = f"kernel/forward/{dt}/{'x'.join(map(str, sh))}"
            impl, mine = _primary(_rows(results, wid))
            if impl is None:
                continue
            one, alln = _ok(mine, threads=1), _ok(mine, threads=threads_all)
            if one and alln and threads_all > 1:
                sp = one[0].median_s / alln[0].median_s
                vals[wid] = sp
                ok_all &= sp >= 1.6
                parts.append(f"{impl} forward {_dn(dt)}: {sp:.2f}x")
    add(t.done(ok_all, ", ".join(parts), vals) if parts else None, t,
        "needs a large forward row at 1 and all threads" if threads_all > 1
        else "this run used one thread count only")

    # ---- training
    def train_targets(name, limit_s, goal_s, vs_sklearn, vs_torch, vs_jax):
        wid = f"train/{name}/float32"
        rows, impl, mine = _train(results, wid)
        label = name.replace("_", " ")
        peers_text = (f"{label}: >= {vs_sklearn}x sklearn"
                      + (f", >= {vs_torch}x PyTorch" if vs_torch else "")
                      + (f", >= {vs_jax}x JAX" if vs_jax else "")
                      + " per epoch (each at its best threads)")
        if impl is None:
            why = "; ".join(mine) if mine else "workload not run"
            for tid, text in ((f"{name}-time", f"{label}: <= {limit_s} s/epoch on both cores"),
                              (f"{name}-peers", peers_text)):
                if limit_s is None and tid.endswith("-time"):
                    continue
                out.append(_T(tid, text).none(f"no rosenblatt row: {why}"))
            return
        scaled = any(r.scaled for r in rows)
        t = _T(f"{name}-time", f"{label}: <= {limit_s} s/epoch on both cores"
               + (f" (goal <= {goal_s} s)" if goal_s else ""))
        fail = _failed(t, mine)
        rb_all = _ok(mine, threads=threads_all)
        if limit_s is None:
            pass  # no absolute limit for this workload
        elif fail:
            out.append(fail)
        elif scaled:
            t.d["status"] = "n/a"
            t.d["measured"] = ("scaled-down data in this run (--quick): "
                               + (_fmt_s(rb_all[0].median_s) if rb_all else "-")
                               + "; run the full suite")
            out.append(t.d)
        elif rb_all:
            v = rb_all[0].median_s
            goal = f"; goal {'met' if goal_s and v <= goal_s else 'not met'}" if goal_s else ""
            out.append(t.done(v <= limit_s, f"{impl} t{threads_all}: {_fmt_s(v)}{goal}",
                              {"seconds": v}))
        else:
            out.append(t.none(f"{impl} has no row at {threads_all} threads"))
        t = _T(f"{name}-peers", peers_text)
        rb = _best(_ok(mine))
        if fail:
            out.append(dict(fail, id=t.d["id"], target=t.d["target"]))
            return
        if rb is None:
            out.append(t.none(f"{impl} has no timed row"))
            return
        parts, ok_all, vals = [], True, {}
        for peer, need in (("sklearn", vs_sklearn), ("torch", vs_torch), ("jax", vs_jax)):
            if not need:
                continue
            pb = _peer_best(rows, peer)
            if pb is None:
                parts.append(f"{peer}: not measured")
                continue
            ratio = pb.median_s / rb.median_s
            vals[peer] = ratio
            ok_all &= ratio >= need
            parts.append(f"{ratio:.2f}x {peer} (t{pb.threads})")
        if not vals:
            out.append(t.none("no peer rows"))
            return
        missing = [p for p in parts if "not measured" in p]
        d = t.done(ok_all, f"{impl} t{rb.threads}: " + ", ".join(parts),
                   vals, "quick sizes" if scaled else "")
        if missing and ok_all:
            d["status"] = "met (partly measured)"
        out.append(d)

    train_targets("fashion_b200", 0.45, 0.40, 2.7, 3, 1)
    train_targets("fashion_b32", 0.6, None, 8, 4, 2)
    train_targets("playground", None, None, 100, None, 8)

    out.append(_perceptron_10(results))

    # ---- numba backend
    for name in ("fashion_b200", "fashion_b32"):
        t = _T(f"numba-{name}", f"numba backend within 2x of the cpp backend on "
               f"{name.replace('_', ' ')}")
        rows = _rows(results, f"train/{name}/float32")
        nb, cp = _best(_ok(rows, "rosenblatt[numba]")), _best(_ok(rows, "rosenblatt[cpp]"))
        if nb and cp:
            r = nb.median_s / cp.median_s
            out.append(t.done(r <= 2, f"numba {_fmt_s(nb.median_s)} / cpp "
                              f"{_fmt_s(cp.median_s)} = {r:.2f}x", {"ratio": r},
                              "scaled down" if rows[0].scaled else ""))
        else:
            out.append(t.none("needs ok rows of both the numba and the cpp backends"))
    t = _T("numba-playground", "numba backend >= 10x sklearn on the playground")
    rows = _rows(results, "train/playground/float32")
    nb, sk = _best(_ok(rows, "rosenblatt[numba]")), _peer_best(rows, "sklearn")
    if nb and sk:
        r = sk.median_s / nb.median_s
        out.append(t.done(r >= 10, f"{r:.1f}x sklearn", {"ratio": r}))
    else:
        out.append(t.none("needs ok rows of the numba backend and sklearn"))

    # ---- import, predict, memory
    t = _T("import", "import rosenblatt < 0.3 s, numba not imported")
    rows = _ok(_rows(results, "import/rosenblatt"), "rosenblatt")
    if rows:
        r = rows[0]
        numba = r.check.get("numba_imported")
        out.append(t.done(r.median_s < 0.3 and not numba,
                          f"{_fmt_s(r.median_s)}, numba {'IMPORTED' if numba else 'not imported'}",
                          {"seconds": r.median_s, "numba_imported": numba}))
    else:
        out.append(t.none("import workload not run"))

    t = _T("predict-1row", "predict on one row < 20 us")
    done = False
    for dt in dts:
        rows = _rows(results, f"predict/1rows/{dt}")
        impl, mine = _primary(rows)
        if impl is None:
            continue
        fail = _failed(t, mine)
        if fail:
            out.append(fail)
            done = True
            break
        rb = _best(_ok(mine))
        if rb:
            out.append(t.done(rb.median_s < 20e-6, f"{impl} t{rb.threads} {dt}: "
                              f"{_fmt_s(rb.median_s)}", {"seconds": rb.median_s}))
            done = True
            break
    if not done:
        out.append(t.none("no rosenblatt predict row"))

    t = _T("memory", "training keeps no copy of X when X is already C-contiguous float "
           "(at most one otherwise)")
    rows = _rows(results, "memory/fit/float32")
    impl, mine = _primary(rows)
    rb = _ok(mine) if impl else []
    if rb:
        c = rb[0].check.get("traced_peak_copies_of_X")
        rss = rb[0].check.get("rss_growth_copies_of_X")
        text = (f"{impl}: traced peak {c:.2f} copies of X, RSS growth {rss:.2f} copies "
                "(X is C-contiguous float32)")
        if rows[0].scaled:
            # weights, optimizer state and batch buffers are a few MB whatever X is, so a
            # small X cannot tell a copy from fixed costs
            d = t.none(text + "; X too small at these sizes to judge")
            d["status"] = "n/a"
            out.append(d)
        else:
            out.append(t.done(c is not None and c < 0.5 and rss is not None and rss < 0.5, text,
                              {"copies": c, "rss_copies": rss}))
    else:
        out.append(t.none("no rosenblatt memory row" + (f": {'; '.join(mine)}"
                                                        if mine and not impl else "")))
    return out
