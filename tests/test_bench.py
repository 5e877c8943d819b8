"""The benchmark suite itself, at tiny sizes: it runs, it checks, it reports.

Only the NumPy backend and the numpy/scikit-learn peers run here, so the tests neither
compile numba kernels nor import PyTorch or JAX, and finish in seconds.
"""

import dataclasses
import json

import numpy as np
import pytest
from rosenblatt import _kernels_ref
from rosenblatt.bench import (
    Config,
    Contender,
    Runner,
    Unavailable,
    Workload,
    build_workloads,
    cli,
    evaluate_targets,
    main,
    run_suite,
    select,
)
from rosenblatt.bench.core import Result
from rosenblatt.bench.report import to_markdown, write_plot
from rosenblatt.bench.workloads import KernelWorkload, OptimizerWorkload, TrainWorkload

# --keep-openblas-env: where OPENBLAS_CORETYPE is set, main() would otherwise re-run in a
# child process, out of reach of capsys and monkeypatch
FAST = ["--size", "tiny", "--backends", "numpy", "--peers", "numpy,sklearn",
        "--threads", "1", "--repeat", "1", "--no-progress", "--keep-openblas-env"]
PEAK = {"source": "test", "note": "", "float32": {"1": 100.0, "2": 200.0},
        "float64": {"1": 50.0, "2": 100.0}}


def _cfg(**kw):
    kw.setdefault("size", "tiny")
    kw.setdefault("threads", (1,))
    kw.setdefault("backends", ["numpy"])
    kw.setdefault("peers", ["numpy", "sklearn"])
    kw.setdefault("repeat", 1)
    return Config(**kw)


def _strict_json(path):
    def reject(name):
        raise ValueError(f"invalid JSON constant {name}")
    with open(path, encoding="utf-8") as f:
        return json.load(f, parse_constant=reject)


def test_cli_runs_and_writes_json_markdown_png(tmp_path, capsys):
    out_dir = tmp_path / "new" / "folder"  # reports create their folders
    js, md, png = out_dir / "r.json", out_dir / "RESULTS.md", out_dir / "r.png"
    rc = main(FAST + ["-k", "kernel/forward/float32/16x40x24",
                      "-k", "kernel/fused/float32/10x2x8", "-k", "playground",
                      "--json", str(js), "--markdown", str(md), "--plot", str(png)])
    out = capsys.readouterr().out
    assert rc == 0, out
    doc = _strict_json(js)
    assert doc["schema"] == "rosenblatt-bench/1"
    assert {"cpu", "versions", "blas", "threads_all"} <= set(doc["machine"])
    rows = doc["results"]
    assert {r["workload"] for r in rows} >= {"kernel/forward/float32/16x40x24",
                                             "kernel/fused/float32/10x2x8/tanh",
                                             "train/playground/float32"}
    for r in rows:
        assert r["status"] == "ok", r
        assert r["median_s"] > 0 and len(r["times"]) >= 1
        assert r["threads"] == 1
    kern = [r for r in rows if r["group"] == "kernel"]
    assert all(r["gflops"] > 0 and r["frac_peak"] > 0 for r in kern)
    assert {r["impl"] for r in kern} == {"numpy", "rosenblatt[numpy]"}
    train = [r for r in rows if r["group"] == "train"]
    assert {r["impl"] for r in train} == {"sklearn", "rosenblatt[numpy]"}
    assert all("loss" in r["check"] for r in train)
    assert any(t["id"] == "playground-peers" for t in doc["targets"])
    # the terminal shows the machine block, each workload and the targets
    assert "CPU:" in out and "peak GFLOP/s" in out and "PERFORMANCE.md targets" in out
    text = md.read_text()
    assert text.startswith("# Benchmark results") and "## Targets of PERFORMANCE.md" in text
    assert "](r.png)" in text  # the plot sits next to the Markdown and is embedded
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000


def test_wrong_kernel_is_marked_failed(monkeypatch, capsys):
    def wrong(X, W, b, activation, A, Z, n_threads=0):
        A[...] = 0.0  # a fast wrong answer must not win

    monkeypatch.setattr(_kernels_ref, "dense_forward", wrong)
    cfg = _cfg()
    res = run_suite([KernelWorkload("fused", "float32", (16, 40, 24), "relu")], cfg, PEAK,
                    progress=False)
    by = {r.impl: r for r in res}
    assert by["numpy"].status == "ok"
    bad = by["rosenblatt[numpy]"]
    assert bad.status == "FAILED"
    assert "differs" in bad.reason and bad.median_s is None and bad.gflops is None
    # and the command line exits non-zero
    rc = main(FAST + ["-k", "kernel/fused/float32/16x40x24"])
    assert rc == 1
    assert "FAILED" in capsys.readouterr().out


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_adam_step_rows_are_checked(monkeypatch, dtype):
    w = OptimizerWorkload(dtype, 70001)
    res = run_suite([w], _cfg(), PEAK, progress=False)
    assert {r.impl for r in res} >= {"numpy", "rosenblatt[numpy]"}
    assert all(r.status == "ok" for r in res), [(r.impl, r.reason) for r in res]

    # Adam without the bias correction: runs, stays finite, steps 3x too far at t = 1
    right = _kernels_ref.adam_step

    def uncorrected(params, grads, m, v, lr, beta1, beta2, eps, weight_decay, t,
                    n_threads=0):
        lr_plain = lr * (1 - beta1**t) / np.sqrt(1 - beta2**t)
        right(params, grads, m, v, lr_plain, beta1, beta2, eps, weight_decay, t)

    monkeypatch.setattr(_kernels_ref, "adam_step", uncorrected)
    by = {r.impl: r for r in run_suite([w], _cfg(), PEAK, progress=False)}
    assert by["numpy"].status == "ok"
    assert by["rosenblatt[numpy]"].status == "FAILED"
    assert "update differs" in by["rosenblatt[numpy]"].reason


class _BrokenTrain(TrainWorkload):
    """The playground workload plus a contender that never learns."""

    def contenders(self, cfg):
        out = super().contenders(cfg)

        def prepare():
            from rosenblatt.bench.peers import sklearn_mlp

            est = {}

            def epoch():
                # trains on shuffled labels: runs, costs time, learns nothing useful
                if "e" not in est:
                    est["e"] = sklearn_mlp(self.spec, self.X, self.y[::-1].copy(), 1)
                est["e"][0]()
            return Runner(epoch, lambda: _ll(est["e"][1](self.Xe), self.ye))
        out.append(Contender("broken", 1, prepare))
        return out


def _ll(p, y):
    from rosenblatt.bench.workloads import _log_loss_acc

    return _log_loss_acc(p, y)


def test_wrong_training_is_marked_failed():
    cfg = _cfg(repeat=3)
    w = next(x for x in build_workloads(cfg) if x.id == "train/playground/float32")
    broken = _BrokenTrain("playground", w.spec, 200, "float32", "playground")
    res = run_suite([broken], cfg, PEAK, progress=False)
    by = {r.impl: r for r in res}
    assert by["sklearn"].status == "ok"
    assert by["rosenblatt[numpy]"].status == "ok", by["rosenblatt[numpy]"].reason
    assert by["broken"].status == "FAILED"
    assert "loss" in by["broken"].reason


class _Order(Workload):
    id, group, title = "test/order", "kernel", "order"
    calibrate = False

    def __init__(self):
        self.log = []

    def contenders(self, cfg):
        def make(name):
            return lambda: Runner(lambda: self.log.append(name))

        def missing():
            raise Unavailable("not built here")
        return [Contender("numpy", 1, make("A")), Contender("rosenblatt[x]", 1, make("B")),
                Contender("rosenblatt[y]", 1, missing)]


def test_repetitions_are_interleaved_and_unavailable_rows_say_why():
    w = _Order()
    res = run_suite([w], _cfg(repeat=3), PEAK, progress=False)
    # one warm-up each, then A B A B A B
    assert w.log == ["A", "B", "A", "B", "A", "B", "A", "B"]
    by = {r.impl: r for r in res}
    assert len(by["numpy"].times) == 3 and by["rosenblatt[x]"].ratio is not None
    assert by["rosenblatt[y]"].status == "unavailable"
    assert by["rosenblatt[y]"].reason == "not built here"


def test_filters_and_list(capsys):
    cfg = _cfg(patterns=["kernel/backward"], groups=["kernel"])
    sel = select(build_workloads(cfg), cfg)
    assert sel and all(w.id.startswith("kernel/backward/") for w in sel)
    cfg = _cfg(groups=["import", "memory"])
    assert {w.group for w in select(build_workloads(cfg), cfg)} == {"import", "memory"}
    assert main(["--size", "tiny", "--list", "--only", "perceptron"]) == 0
    out = capsys.readouterr().out
    assert "perceptron/2classes" in out and "kernel/" not in out
    with pytest.raises(SystemExit):
        cli.parse_args(["--only", "nonsense"])
    assert main(FAST + ["-k", "no-such-workload"]) == 2


def test_quick_and_full_cover_performance_md():
    ids = {w.id for w in build_workloads(Config(size="full", threads=(1, 2)))}
    for need in ("kernel/forward/float32/32x784x300", "kernel/forward/float64/200x784x300",
                 "kernel/forward/float32/256x300x100", "kernel/forward/float32/1024x1024x1024",
                 "kernel/fused/float32/200x784x300/relu", "kernel/fused/float32/10x2x8/tanh",
                 "kernel/backward/float64/10x2x8/tanh", "train/fashion_b200/float32",
                 "train/fashion_b32/float32", "train/playground/float32",
                 "perceptron/2classes/float64", "perceptron/10classes/float64",
                 "predict/1rows/float32", "predict/10000rows/float32", "import/rosenblatt",
                 "memory/fit/float32"):
        assert need in ids, need
    quick = build_workloads(Config(size="quick", threads=(1, 2)))
    assert {w.group for w in quick} == {"kernel", "train", "perceptron", "predict", "import",
                                        "memory"}


def _row(wid, impl, t, median, **kw):
    return Result(workload=wid, group=wid.split("/")[0], title=wid, impl=impl, threads=t,
                  dtype="float32", median_s=median, times=[median],
                  rosenblatt=impl.startswith("rosenblatt"), **kw)


def test_targets_report_met_missed_and_failed():
    cfg = Config(size="full", threads=(1, 2))
    w = "kernel/forward/float32/32x784x300"
    res = [_row(w, "numpy", 1, 1.0), _row(w, "rosenblatt[cpp]", 1, 0.5),
           _row("kernel/fused/float32/32x784x300/relu", "numpy", 1, 1.0),
           _row("kernel/fused/float32/32x784x300/relu", "rosenblatt[cpp]", 1, 2.0),
           _row("train/fashion_b200/float32", "sklearn", 2, 1.2),
           _row("train/fashion_b200/float32", "rosenblatt[cpp]", 2, 0.3, status="FAILED",
                reason="loss off")]
    t = {x["id"]: x for x in evaluate_targets(res, cfg, 2)}
    assert t["kernel-forward"]["status"] == "met"
    assert t["kernel-fused"]["status"] == "MISSED"
    assert t["fashion_b200-time"]["status"] == "FAILED"
    assert t["import"]["status"] == "not measured"
    md = to_markdown({"cpu": "x", "cpu_flags": [], "cores": 2, "threads_all": 2,
                      "python": "3", "rosenblatt": "0", "backends": ["cpp"],
                      "versions": {}, "blas": [], "time_utc": "now"},
                     PEAK, cfg, res, list(t.values()), 1.0, "python -m rosenblatt.bench")
    assert "**MISSED**" in md and "**FAILED**" in md


def test_perceptron_rows_for_both_rules_run_and_are_checked():
    cfg = _cfg(repeat=2, patterns=["perceptron/10classes"])
    sel = select(build_workloads(cfg), cfg)
    assert [w.id for w in sel] == ["perceptron/10classes/float64"]
    assert "onepass[*] = rule='rosenblatt'" in sel[0].title
    by = {r.impl: r for r in run_suite(sel, cfg, PEAK, progress=False)}
    assert set(by) == {"sklearn", "rosenblatt[numpy]", "onepass[numpy]"}
    for impl in ("rosenblatt[numpy]", "onepass[numpy]"):
        r = by[impl]
        assert r.status == "ok", r.reason
        assert r.rosenblatt and len(r.times) == 2
        assert r.check["ref"] == "sklearn" and 0.3 < r.check["accuracy"] <= 1
    # scikit-learn's rule retraces scikit-learn's model: the same predictions
    assert by["rosenblatt[numpy]"].check["accuracy"] == by["sklearn"].check["accuracy"]


def test_perceptron_check_holds_each_rule_to_its_own_standard():
    from rosenblatt.bench.workloads import PerceptronWorkload

    w = PerceptronWorkload(10, 600, "float64", 100000)
    w.setup(_cfg())
    out = {("sklearn", 1): 0.70, ("rosenblatt[cpp]", 1): 0.70, ("rosenblatt[numba]", 1): 0.80,
           ("onepass[cpp]", 1): 0.80, ("onepass[numba]", 1): 0.60}
    v = w.check(out)
    assert v[("rosenblatt[cpp]", 1)][0] and v[("onepass[cpp]", 1)][0]
    # scikit-learn's rule must match scikit-learn, better or worse; the one-pass rule may
    # learn faster but not be clearly worse
    assert not v[("rosenblatt[numba]", 1)][0] and not v[("onepass[numba]", 1)][0]
    assert "one-pass rule" in v[("onepass[numba]", 1)][1]["why"]
    # without scikit-learn in the run: better than always answering the commonest class
    v = w.check({("onepass[cpp]", 1): 0.75, ("onepass[numba]", 1): 0.01})
    assert v[("onepass[cpp]", 1)][0] and not v[("onepass[numba]", 1)][0]


def _perc(dt, impl, t, median, **kw):
    return dataclasses.replace(_row(f"perceptron/10classes/{dt}", impl, t, median, **kw),
                               rosenblatt=impl != "sklearn")


def test_perceptron_target_reports_both_rules_and_names_the_one_that_meets_it():
    cfg = Config(size="full", threads=(1, 2))
    res = []
    for dt in ("float64", "float32"):
        res += [_perc(dt, "sklearn", 1, 0.40), _perc(dt, "sklearn", 2, 0.35),
                _perc(dt, "rosenblatt[cpp]", 1, 0.10), _perc(dt, "rosenblatt[cpp]", 2, 0.07),
                _perc(dt, "rosenblatt[numba]", 1, 0.01),  # not the primary backend
                _perc(dt, "onepass[cpp]", 1, 0.014), _perc(dt, "onepass[cpp]", 2, 0.016)]
    t = {x["id"]: x for x in evaluate_targets(res, cfg, 2)}["perceptron-10"]
    assert t["status"] == "met"
    m = t["measured"]
    assert "sklearn-exact OvR 5.0x (rosenblatt[cpp] t2)" in m
    assert "one-pass rule='rosenblatt' 25.0x (onepass[cpp] t1)" in m
    assert m.endswith("met by the one-pass rule='rosenblatt'") and "f32" in m
    assert t["values"]["rosenblatt/float64"] == pytest.approx(5.0)
    # one dtype short of 20x: missed, with both figures still shown
    slow = [dataclasses.replace(r, median_s=0.02) if r.impl == "onepass[cpp]"
            and r.workload.endswith("float32") else r for r in res]
    t = {x["id"]: x for x in evaluate_targets(slow, cfg, 2)}["perceptron-10"]
    assert t["status"] == "MISSED" and "met by neither rule" in t["measured"]
    assert "17.5x (onepass[cpp] t1)" in t["measured"]
    # a wrong one-pass result fails the target, whatever its speed
    bad = res + [_perc("float64", "onepass[cpp]", 1, 0.001, status="FAILED",
                       reason="accuracy 0.1")]
    t = {x["id"]: x for x in evaluate_targets(bad, cfg, 2)}["perceptron-10"]
    assert t["status"] == "FAILED" and "onepass[cpp]" in t["measured"]


def test_plot_with_no_rows(tmp_path):
    png = tmp_path / "empty.png"
    write_plot(str(png), [], PEAK, 2)
    assert png.stat().st_size > 1000


def test_openblas_env_is_unset_in_a_child(monkeypatch):
    seen = {}

    def fake_call(cmd, env):
        seen["cmd"], seen["env"] = cmd, env
        return 7

    monkeypatch.setenv("OPENBLAS_CORETYPE", "Haswell")
    monkeypatch.delenv("OPENBLAS_L2_SIZE", raising=False)  # some machines set it too
    monkeypatch.delenv("_ROSENBLATT_BENCH_CHILD", raising=False)
    monkeypatch.setattr(cli.subprocess, "call", fake_call)
    assert main(["--quick"]) == 7
    assert "OPENBLAS_CORETYPE" not in seen["env"]
    assert seen["env"]["_ROSENBLATT_BENCH_UNSET"] == "OPENBLAS_CORETYPE=Haswell"
    assert seen["cmd"][-2:] == ["rosenblatt.bench", "--quick"]


def test_kernel_check_tolerance_scales_with_dtype():
    w32 = KernelWorkload("forward", "float32", (4, 64, 3))
    w64 = KernelWorkload("forward", "float64", (4, 64, 3))
    w32.setup(None)
    w64.setup(None)
    assert w64.tol < 1e-9 < w32.tol < 1e-3
    good = {"A": w64.ref_rb["A"]}
    off = {"A": w64.ref_rb["A"] * (1 + 1e-6)}
    v = w64.check({("rosenblatt[numpy]", 1): good, ("rosenblatt[cpp]", 1): off})
    assert v[("rosenblatt[numpy]", 1)][0] and not v[("rosenblatt[cpp]", 1)][0]
    assert np.isfinite(v[("rosenblatt[cpp]", 1)][1]["max_rel_err"])


class _Slow(Workload):
    id, group, title = "test/slow", "kernel", "slow"
    calibrate = False

    def __init__(self):
        self.calls = {}

    def contenders(self, cfg):
        import time

        def make(name, pause):
            def run():
                self.calls[name] = self.calls.get(name, 0) + 1
                time.sleep(pause)
            return lambda: Runner(run)
        return [Contender("numpy", 1, make("fast", 0.0)),
                Contender("rosenblatt[slow]", 1, make("slow1", 0.05)),
                Contender("rosenblatt[slow]", 2, make("slow2", 0.05))]


def test_a_contender_over_budget_shows_one_unchecked_run():
    w = _Slow()
    res = run_suite([w], _cfg(repeat=3, budget=0.05), PEAK, progress=False)
    by = {(r.impl, r.threads): r for r in res}
    assert by[("numpy", 1)].status == "ok" and len(by[("numpy", 1)].times) == 3
    slow = by[("rosenblatt[slow]", 1)]
    assert slow.status == "skipped" and "too slow" in slow.reason
    assert slow.median_s >= 0.05 and len(slow.times) == 1
    # the same implementation at more threads is not paid for again
    assert by[("rosenblatt[slow]", 2)].status == "skipped" and "slow2" not in w.calls
    # a slow warm-up is followed by one probe (the warm-up may have been compilation)
    assert w.calls == {"fast": 4, "slow1": 2}


class _Compiles(_Slow):
    """First call slow (a JIT compiling), later calls fast: must not be skipped."""

    def contenders(self, cfg):
        import time

        def prepare():
            def run():
                n = self.calls["jit"] = self.calls.get("jit", 0) + 1
                time.sleep(0.2 if n == 1 else 0.0)
            return Runner(run)
        return [Contender("numpy", 1, lambda: Runner(lambda: None)),
                Contender("rosenblatt[jit]", 1, prepare)]


def test_compilation_in_the_warm_up_does_not_count_against_the_budget():
    w = _Compiles()
    res = run_suite([w], _cfg(repeat=3, budget=0.1), PEAK, progress=False)
    jit = {r.impl: r for r in res}["rosenblatt[jit]"]
    assert jit.status == "ok" and len(jit.times) == 3
    # warm-up, probe (= first repetition), two more repetitions: the same unit count as
    # every other contender
    assert w.calls["jit"] == 4


class _Interrupted(Workload):
    id, group, title = "test/interrupted", "kernel", "interrupted"

    def contenders(self, cfg):
        def prepare():
            raise KeyboardInterrupt
        return [Contender("numpy", 1, prepare)]


def test_ctrl_c_keeps_the_finished_workloads(capsys):
    res = run_suite([_Order(), _Interrupted(), _Order()], _cfg(repeat=1), PEAK,
                    progress=False)
    assert {r.workload for r in res} == {"test/order"} and len(res) == 3
    assert "interrupted during test/interrupted" in capsys.readouterr().err


def test_quick_leaves_the_reference_out_of_heavy_workloads():
    cfg = Config(size="quick", threads=(1,))
    impls = {}
    for w in build_workloads(cfg):
        if w.group in ("perceptron", "memory", "kernel") or w.id.startswith("train/play"):
            w.setup(cfg)  # some workloads bind their data into the contenders
            impls.setdefault(w.group, set()).update(c.impl for c in w.contenders(cfg))
            w.teardown()
    assert "rosenblatt[numpy]" in impls["kernel"]
    for g in ("train", "perceptron", "memory"):
        assert "rosenblatt[numpy]" not in impls[g] and "rosenblatt[cpp]" in impls[g]
    assert "onepass[numpy]" not in impls["perceptron"] and "onepass[cpp]" in impls["perceptron"]
    cfg = Config(size="quick", threads=(1,), backends=["numpy"])
    w = next(w for w in build_workloads(cfg) if w.group == "perceptron")
    w.setup(cfg)
    assert [c.impl for c in w.contenders(cfg) if c.rosenblatt] == ["rosenblatt[numpy]",
                                                                   "onepass[numpy]"]


def test_float64_parity_catches_a_subtly_wrong_trainer(monkeypatch):
    # 1% too large a learning rate still learns (the loss check alone would pass) but no
    # longer retraces scikit-learn in float64
    from rosenblatt import _codes

    original = _kernels_ref.train_epoch

    def off_by_one_percent(*args, **kw):
        hyper = args[12]
        hyper[_codes.H_LR] *= 1.01
        try:
            return original(*args, **kw)
        finally:
            hyper[_codes.H_LR] /= 1.01

    cfg = _cfg(repeat=2)
    w = next(x for x in build_workloads(cfg) if x.id == "train/playground/float32")
    good = {r.impl: r for r in run_suite([w], cfg, PEAK, progress=False)}
    assert good["rosenblatt[numpy]"].status == "ok"
    assert good["rosenblatt[numpy]"].check["f64_parity_rel"] < 1e-9
    monkeypatch.setattr(_kernels_ref, "train_epoch", off_by_one_percent)
    bad = {r.impl: r for r in run_suite([w], cfg, PEAK, progress=False)}
    assert bad["sklearn"].status == "ok"
    assert bad["rosenblatt[numpy]"].status == "FAILED"
    assert "float64 parity" in bad["rosenblatt[numpy]"].reason
