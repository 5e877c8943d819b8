"""The experiments runner at tiny sizes: it runs, writes every figure and a report."""

import json

import pytest

pytest.importorskip("matplotlib")

from rosenblatt.playground import experiments as ex
from rosenblatt.playground import main


def test_train_runs_reports_convergence():
    runs = ex.train_runs({"layers": [8], "activation": "relu"}, [0], 200, 0.05)
    r = runs[0]
    assert r.converged_at is not None and r.test[r.converged_at] <= 0.05
    assert all(v > 0.05 for v in r.test[:r.converged_at])
    s = ex._summary(runs + ex.train_runs({"layers": [1]}, [0], 3, 0.05))
    assert s["converged"] == 1 and s["stuck"] == 1 and s["fraction_stuck"] == 0.5


def test_piecewise_linear_measure():
    import numpy as np
    x = np.linspace(-6, 6, 100)
    gx, gy = np.meshgrid(x, x)
    assert ex._piecewise_linear_fraction(np.abs(gx) + 2 * gy) > 0.95
    assert ex._piecewise_linear_fraction(gx**2 + np.sin(gy)) < 0.05


def test_runner_tiny(tmp_path):
    budget = ex.Budget(seeds=2, seeds_f=1, epochs=4, epochs_f=2)
    report = ex.run(tmp_path, budget=budget, figures=False)   # matplotlib is slow here
    text = report.read_text()
    for step in ("(a)", "(b)", "(c, d, e)", "(f)"):
        assert f"## {step}" in text
    for fig in ("a_activation_maps.png", "b_boundaries.png", "b_epochs.png",
                "c_epochs_3.png", "e_epochs_8.png", "f_gradient_norms.png",
                "f_test_loss.png"):
        assert fig in text
    res = json.loads((tmp_path / "results.json").read_text())
    assert res["cde"]["summary"]["2 neurons, tanh"]["seeds"] == 2
    assert len(res["f"]["summary"]) == len(ex.SPIRAL_SETUPS)


def test_cli_rejects_bad_options(capsys):
    assert main(["--port", "70000"]) == 2
    with pytest.raises(SystemExit):
        main(["--bogus"])


def test_step_a_writes_its_figure(tmp_path):
    res, _text = ex.step_a(tmp_path, ex.Budget(epochs=3))
    assert (tmp_path / "a_activation_maps.png").stat().st_size > 1000
    assert [r["layer"] for r in res["neurons"]] == [1, 1, 1, 1, 2, 2]
    # first-layer maps are exact half-planes
    assert all(r["linear_r2"] > 0.9999 for r in res["neurons"] if r["layer"] == 1)
