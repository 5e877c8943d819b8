"""Reports of one run: terminal table, JSON, Markdown (benchmarks/RESULTS.md) and a PNG.

Every report starts with the machine block. Rows that failed their check show FAILED and
the reason instead of a time; unavailable rows say why; target misses are listed with
the same weight as successes.
"""

from __future__ import annotations

import json
import os

from .core import _json_safe

__all__ = [
    "SCHEMA",
    "fmt_time",
    "header_lines",
    "terminal_block",
    "terminal_targets",
    "to_json",
    "to_markdown",
    "write_json",
    "write_plot",
]

SCHEMA = "rosenblatt-bench/1"
IMPL_ORDER = ("numpy", "sklearn", "torch", "jax", "rosenblatt[cpp]", "rosenblatt[numba]",
              "rosenblatt[numpy]", "rosenblatt")


def fmt_time(s):
    """Seconds in the unit that keeps three significant digits readable."""
    if s is None:
        return "-"
    for unit, f in (("s", 1.0), ("ms", 1e3), ("us", 1e6)):
        if s * f >= 1.0:
            return f"{s * f:.3g} {unit}"
    return f"{s * 1e9:.3g} ns"


def _pct(x):
    return "-" if x is None else f"{100 * x:.1f}%"


def _num(x, nd=3):
    return "-" if x is None else f"{x:.{nd}g}"


def header_lines(machine, peak, cfg, elapsed=None):
    """The machine block: CPU, ISA, versions, BLAS kernel, thread counts, peak."""
    v = machine["versions"]
    vers = ", ".join(f"{k} {val}" for k, val in v.items() if val)
    blas = "; ".join(
        f"{b.get('internal_api')} {b.get('version') or ''} kernel={b.get('architecture', '-')} "
        f"threads={b.get('num_threads')}" for b in machine["blas"]) or "none loaded"
    isa = machine.get("core_isa") or f"n/a (core not built: {machine.get('core_reason')})"
    avail = machine.get("core_available_isas") or []
    env = machine.get("env") or {}
    lines = [
        (f"CPU: {machine['cpu']} | flags: {' '.join(machine['cpu_flags']) or '-'} | "
         f"cores: {machine['cores']}"),
        f"core ISA: {isa}" + (f" (available: {', '.join(avail)})" if avail else "")
        + (f"; core default threads {machine.get('core_default_threads')} of "
           f"{machine.get('core_hardware_threads')}"
           if machine.get("core_default_threads") is not None else ""),
        (f"backends available: {', '.join(machine['backends'])} | rosenblatt "
         f"{machine['rosenblatt']} | Python {machine['python']}"),
        f"versions: {vers}",
        f"BLAS/OpenMP (threadpoolctl): {blas}",
        (f"threads per contender: {', '.join(map(str, cfg.threads))} (set explicitly for "
         "every peer: threadpoolctl, torch.set_num_threads, n_threads/n_jobs)"),
    ]
    if env:
        lines.append("environment: " + ", ".join(f"{k}={v}" for k, v in env.items()))
    if machine.get("openblas_env_unset"):
        lines.append(f"OpenBLAS environment unset for this run: {machine['openblas_env_unset']}")
    elif machine.get("openblas_env"):
        lines.append(f"OpenBLAS environment kept: {machine['openblas_env']}")
    pk = []
    for dt in ("float32", "float64"):
        row = peak.get(dt, {})
        pk.append(f"{dt} " + ", ".join(f"{t} thr {val:.1f}" for t, val in row.items()))
    lines.append(f"peak GFLOP/s ({peak.get('source')}): " + "; ".join(pk))
    if peak.get("note"):
        lines.append(f"  {peak['note']}")
    mode = {"full": "full sizes", "quick": "QUICK sizes (--quick: training and Perceptron "
            "data scaled down)", "tiny": "TINY sizes (self-test)"}[cfg.size]
    lines.append(f"mode: {mode}; {cfg.reps} interleaved repetitions (short workloads "
                 f"{cfg.reps_short}), median reported; time {machine['time_utc']} UTC"
                 + (f"; elapsed {elapsed:.0f} s" if elapsed else ""))
    return lines


def _sorted(rows):
    def key(r):
        i = IMPL_ORDER.index(r.impl) if r.impl in IMPL_ORDER else len(IMPL_ORDER)
        return (i, r.threads)
    return sorted(rows, key=key)


def _collapse(rows):
    """One line per impl for rows that did not run (the reason is the same per thread)."""
    seen, out = set(), []
    for r in rows:
        if r.status in ("unavailable", "error"):
            k = (r.impl, r.status, r.reason)
            if k in seen:
                continue
            seen.add(k)
        out.append(r)
    return out


def _figure(r):
    """The speed figure of a row: GFLOP/s, or memory for memory rows."""
    if r.group == "memory":
        c = r.check
        if "traced_peak_MB" in c:
            return (f"traced {c['traced_peak_MB']:.1f} MB ({c['traced_peak_copies_of_X']:.2f} X)"
                    f", RSS +{c['rss_growth_MB']:.1f} MB")
        return "-"
    if r.group == "import":
        n = r.check.get("numba_imported")
        return "" if n is None else f"numba {'imported' if n else 'not imported'}"
    return _num(r.gflops)


def _check_text(r):
    if r.status == "skipped":
        return f"skipped: {r.reason}"
    if r.status == "ok":
        c = r.check
        if "max_rel_err" in c:
            return f"ok (err {c['max_rel_err']:.1g})"
        if "loss" in c:
            par = (f", f64 parity {c['f64_parity_rel']:.0e}"
                   if c.get("f64_parity_rel") is not None else "")
            return f"ok (loss {c['loss']:.3g}, acc {c['accuracy']:.3f}{par})"
        if "accuracy" in c:
            return f"ok (acc {c['accuracy']:.3f})"
        if "mismatches" in c:
            return f"ok ({c['mismatches']} mismatches)"
        return "ok"
    return f"{r.status}: {r.reason}"


def _summary(rows):
    """'best rosenblatt is N x <peer>' for each peer, at each side's best threads."""
    ok = [r for r in rows if r.status == "ok" and r.median_s]
    mine = [r for r in ok if r.rosenblatt]
    if not mine:
        return ""
    best = min(mine, key=lambda r: r.median_s)
    parts = []
    for peer in ("numpy", "sklearn", "torch", "jax"):
        p = [r for r in ok if r.impl == peer]
        if p:
            pb = min(p, key=lambda r: r.median_s)
            parts.append(f"{pb.median_s / best.median_s:.2f}x {peer} (t{pb.threads})")
    if not parts:
        return ""
    return f"  best: {best.impl} t{best.threads} = " + ", ".join(parts)


def terminal_block(w_title, w_id, rows):
    """Lines of one workload's table for the terminal."""
    lines = [f"== {w_title}  [{w_id}]"]
    unit = rows[0].unit if rows else "call"
    if rows and rows[0].group in ("memory", "import"):
        lines.append(f"  {'impl':<19} {'thr':>3} {'median/' + unit:>12} {'ratio':>7}  "
                     + ("memory" if rows[0].group == "memory" else ""))
    else:
        lines.append(f"  {'impl':<19} {'thr':>3} {'median/' + unit:>12} {'GFLOP/s':>8} "
                     f"{'%peak':>6} {'ratio':>7}  check")
    for r in _collapse(_sorted(rows)):
        if r.status in ("unavailable", "error") or (r.status == "skipped" and not r.median_s):
            lines.append(f"  {r.impl:<19} {'-':>3} {r.status}: {r.reason}")
            continue
        if r.status == "FAILED":
            lines.append(f"  {r.impl:<19} {r.threads:>3} {'FAILED':>12} {'':>8} {'':>6} "
                         f"{'':>7}  FAILED: {r.reason}")
            continue
        ratio = "-" if r.ratio is None else f"{r.ratio:.2f}x"
        fig = _figure(r)
        if r.group in ("memory", "import"):
            lines.append(f"  {r.impl:<19} {r.threads:>3} {fmt_time(r.median_s):>12} "
                         f"{ratio:>7}  {fig}")
            continue
        lines.append(f"  {r.impl:<19} {r.threads:>3} {fmt_time(r.median_s):>12} {fig:>8} "
                     f"{_pct(r.frac_peak):>6} {ratio:>7}  {_check_text(r)}")
    s = _summary(rows)
    if s:
        lines.append(s)
    base = rows[0].baseline if rows else None
    if base:
        lines.append(f"  (ratio = {base}'s median at the same thread count / this median; "
                     ">1 is faster)")
    return lines


def terminal_targets(targets):
    lines = ["== PERFORMANCE.md targets"]
    for t in targets:
        lines.append(f"  [{t['status']:^12}] {t['target']}")
        if t["measured"]:
            lines.append(f"  {'':14} {t['measured']}")
    return lines


# --------------------------------------------------------------------------------------
# JSON


def to_json(machine, peak, cfg, results, targets, elapsed):
    """The whole run as a JSON-able dict (NaN and inf become null)."""
    return _json_safe({
        "schema": SCHEMA,
        "machine": machine,
        "peak_gflops": peak,
        "config": cfg.as_dict(),
        "elapsed_s": elapsed,
        "results": [r.as_dict() for r in results],
        "targets": targets,
    })


def write_json(path, doc):
    """Write ``doc`` as strict JSON (no NaN), creating the parent folder."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(doc, f, indent=1, allow_nan=False)
        f.write("\n")


# --------------------------------------------------------------------------------------
# Markdown


def _md_escape(s):
    return str(s).replace("|", "\\|").replace("\n", " ")


def to_markdown(machine, peak, cfg, results, targets, elapsed, command, plot=None):
    """``benchmarks/RESULTS.md``: machine, targets (met or not), then every row.

    ``plot``: path of the PNG relative to the Markdown file, embedded after the targets.
    """
    L = ["# Benchmark results", "",
         (f"Generated by `{command}`; regenerate rather than edit. Ratios compare "
          "contenders measured side by side in this one run (interleaved repetitions, "
          "medians); absolute times from a shared machine are only indicative."), "",
         "## Machine", ""]
    L += [f"- {_md_escape(x)}" for x in header_lines(machine, peak, cfg, elapsed)]
    counts = {}
    for t in targets:
        counts[t["status"]] = counts.get(t["status"], 0) + 1
    L += ["", "## Targets of PERFORMANCE.md", "",
          "Status counts: " + ", ".join(f"{k}: {v}" for k, v in sorted(counts.items())), "",
          "| target | status | measured |", "|---|---|---|"]
    for t in targets:
        st = t["status"]
        st = f"**{st}**" if st in ("MISSED", "FAILED") else st
        L.append(f"| {_md_escape(t['target'])} | {st} | {_md_escape(t['measured'])} |")
    if plot:
        L += ["", f"![speedup per workload; GFLOP/s against batch size]({plot})"]
    groups = []
    for r in results:
        if r.group not in groups:
            groups.append(r.group)
    titles = {"kernel": "Kernels", "train": "Training (one epoch)", "perceptron":
              "Perceptron (one epoch)", "predict": "Predict latency", "import":
              "Import time", "memory": "Peak memory of a fit"}
    for g in groups:
        L += ["", f"## {titles.get(g, g)}", "",
              "| workload | impl | threads | median | GFLOP/s | % peak | ratio | check |",
              "|---|---|---|---|---|---|---|---|"]
        wids = []
        for r in results:
            if r.group == g and r.workload not in wids:
                wids.append(r.workload)
        for wid in wids:
            rows = _collapse(_sorted([r for r in results if r.workload == wid]))
            first = True
            for r in rows:
                name = f"{_md_escape(r.title)} (ratio vs {r.baseline})" if first else ""
                first = False
                if r.status in ("unavailable", "error", "FAILED") or \
                        (r.status == "skipped" and not r.median_s):
                    L.append(f"| {name} | {r.impl} | {r.threads or '-'} | {r.status} | | | | "
                             f"{_md_escape(r.reason)} |")
                    continue
                ratio = "-" if r.ratio is None else f"{r.ratio:.2f}x"
                fig = _figure(r)
                pct = _pct(r.frac_peak) if g not in ("memory", "import") else ""
                chk = _check_text(r) if g not in ("memory", "import") or \
                    r.status != "ok" else "ok"
                L.append(f"| {name} | {r.impl} | {r.threads} | {fmt_time(r.median_s)} | "
                         f"{_md_escape(fig)} | {pct} | {ratio} | {_md_escape(chk)} |")
    L.append("")
    return "\n".join(L)


# --------------------------------------------------------------------------------------
# plot


def _best(rows, pred):
    c = [r for r in rows if pred(r) and r.status == "ok" and r.median_s]
    return min(c, key=lambda r: r.median_s) if c else None


def write_plot(path, results, peak, threads_all):
    """PNG: speedup bars per workload (best rosenblatt vs each peer's best) and GFLOP/s
    against batch size for the dense forward kernel, with the peak as a line."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    wids = []
    for r in results:
        if r.workload not in wids and r.group not in ("import", "memory"):
            wids.append(r.workload)
    # the sweep rows belong to the right panel; keep the left one readable
    bars = []
    for wid in wids:
        rows = [r for r in results if r.workload == wid]
        if any(r.extra.get("sweep") for r in rows):
            continue
        mine = _best(rows, lambda r: r.rosenblatt)
        if mine is None:
            continue
        entry = {"label": rows[0].title, "vals": {}}
        for peer in ("numpy", "sklearn", "torch", "jax"):
            p = _best(rows, lambda r, peer=peer: r.impl == peer)
            if p is not None:
                entry["vals"][peer] = p.median_s / mine.median_s
        if entry["vals"]:
            bars.append(entry)

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(15, max(4.5, 0.28 * len(bars) + 1.5)),
                                   gridspec_kw={"width_ratios": [1.3, 1]})
    colors = {"numpy": "#4c72b0", "sklearn": "#dd8452", "torch": "#c44e52", "jax": "#8172b3"}
    if bars:
        peers = [p for p in colors if any(p in b["vals"] for b in bars)]
        h = 0.8 / max(1, len(peers))
        for j, peer in enumerate(peers):
            ys = [i + j * h for i, b in enumerate(bars) if peer in b["vals"]]
            xs = [b["vals"][peer] for b in bars if peer in b["vals"]]
            ax1.barh(ys, xs, height=h, color=colors[peer], label=f"vs {peer}")
            for y, x in zip(ys, xs):
                ax1.text(x, y, f" {x:.2g}x", va="center", fontsize=6)
        ax1.set_yticks([i + 0.4 - h / 2 for i in range(len(bars))])
        ax1.set_yticklabels([b["label"] for b in bars], fontsize=7)
        ax1.invert_yaxis()
        ax1.axvline(1.0, color="k", lw=0.8)
        ax1.set_xscale("log")
        ax1.legend(fontsize=8, loc="best")
    else:
        ax1.text(0.5, 0.5, "no rosenblatt rows measured", ha="center", transform=ax1.transAxes)
    ax1.set_xlabel("speedup of the best rosenblatt row (x, log scale; >1 is faster)")
    ax1.set_title("speedup per workload (each side at its best threads)")

    sweep = [r for r in results if r.group == "kernel" and "/forward/float32/" in r.workload
             and r.status == "ok" and r.gflops]
    widths = {}
    for r in sweep:
        n, k, m = map(int, r.workload.rsplit("/", 1)[1].split("x"))
        widths.setdefault((k, m), []).append((n, r))
    if widths:
        (k, m), pts = max(widths.items(), key=lambda kv: len({n for n, _ in kv[1]}))
        series = {}
        for n, r in pts:
            series.setdefault((r.impl, r.threads), []).append((n, r.gflops))
        for (impl, t), xy in sorted(series.items()):
            xy.sort()
            ax2.plot([a for a, _ in xy], [b for _, b in xy], marker="o", ms=3,
                     ls="-" if t == 1 else "--", label=f"{impl} t{t}")
        p1 = peak.get("float32", {}).get("1")
        pn = peak.get("float32", {}).get(str(threads_all))
        if p1:
            ax2.axhline(p1, color="k", lw=1, label=f"peak 1 core ({p1:.0f})")
        if pn and threads_all > 1:
            ax2.axhline(pn, color="k", lw=1, ls=":", label=f"peak {threads_all} cores ({pn:.0f})")
        ax2.set_xscale("log")
        ax2.set_title(f"dense forward float32, k={k}, m={m}: GFLOP/s vs batch")
        ax2.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    else:
        ax2.text(0.5, 0.5, "no float32 dense forward rows", ha="center",
                 transform=ax2.transAxes)
    ax2.set_xlabel("batch size (rows)")
    ax2.set_ylabel("GFLOP/s")
    fig.tight_layout()
    d = os.path.dirname(os.path.abspath(path))
    os.makedirs(d, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
