"""The tour at reduced size: the lecture's key facts, every figure, the reports."""

import json
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("matplotlib")

from rosenblatt import tour

FIGURES = [
    "mcp_gates", "tlu_steps", "perceptron_rule_steps", "perceptron_2x3", "iris_perceptron",
    "xor_perceptron", "xor_handwired", "xor_network", "xor_mlp", "xor_mlp_neurons",
    "activations", "activations_more", "housing_learning_curves", "regression_outliers",
    "regression_positive", "breast_cancer_proba", "digits_multilabel",
    "digits_learning_curves", "digits_probabilities", "early_stopping", "random_search",
]


@pytest.fixture(scope="module")
def tour_run(tmp_path_factory):
    """Run the quick tour once, through the command-line entry point."""
    out = tmp_path_factory.mktemp("tour")
    assert tour.main(["--out", str(out), "--quick", "--quiet"]) == 0
    facts = json.loads((out / "facts.json").read_text())
    return out, facts


def test_mcculloch_pitts_truth_tables(tour_run):
    _, facts = tour_run
    assert facts["gates"] == {
        "C = A": [0, 0, 1, 1],
        "A AND B": [0, 0, 0, 1],
        "A OR B": [0, 1, 1, 1],
        "A AND NOT B": [0, 0, 1, 0],
    }


def test_perceptron_rule_trace_converges_on_and(tour_run):
    _, facts = tour_run
    w, b = facts["rule_weights"]
    X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]])
    assert ((X @ np.array(w) + b) >= 0).astype(int).tolist() == [0, 0, 0, 1]
    assert facts["rule_steps"] == 11
    # the library's rule="rosenblatt" reproduces the hand-run trace
    assert facts["rule_matches_library"] is True
    assert facts["layer_matches_predict"] is True


def test_iris_perceptron_is_the_chapters(tour_run):
    from rosenblatt.datasets import load_iris_petals
    from sklearn.linear_model import Perceptron as SkPerceptron

    _, facts = tour_run
    assert facts["iris_predict"] == [True, False]
    X, y = load_iris_petals("setosa")
    sk = SkPerceptron(random_state=42).fit(X, y)
    assert np.allclose(facts["iris_coef"], sk.coef_)
    assert np.allclose(facts["iris_intercept"], sk.intercept_)
    assert np.allclose(facts["iris_coef"], [[-1.4, -2.2]])
    assert facts["iris_same_as_sklearn"] is True
    # the lecture's listing as written (default random_state): the new flower lies on the
    # line, so predict says False where the lecture's heaviside (z >= 0) would say True
    assert facts["iris_default_same_as_sklearn"] is True
    assert facts["iris_default_predict"] == [False]
    assert abs(facts["iris_default_z"]) < 1e-12


def test_iris_predict_directly():
    import rosenblatt
    from rosenblatt.datasets import load_iris_petals

    X, y = load_iris_petals("setosa")
    per = rosenblatt.Perceptron(random_state=42).fit(X, y)
    assert per.predict([[2, 0.5]]).tolist() == [True]


def test_xor_facts(tour_run):
    _, facts = tour_run
    assert facts["xor_handwired_heaviside"] == [0, 1, 1, 0]
    assert facts["xor_handwired_sigmoid"] == [0, 1, 1, 0]
    assert facts["xor_perceptron_accuracy"] < 1.0
    assert facts["xor_perceptron_cloud_accuracy"] < 0.9
    assert facts["xor_mlp_accuracy"] == 1.0
    assert facts["xor_mlp_cloud_accuracy"] > 0.9
    # identity activations collapse to one linear map: no better than the perceptron
    assert facts["xor_identity_mlp_accuracy"] < 1.0
    assert facts["linear_collapse_max_diff"] < 1e-9
    assert facts["xor_handwired_sigmoid_same_weights"] == [0, 0, 0, 0]


def test_multioutput_facts(tour_run):
    _, facts = tour_run
    (_, k), (n, k2) = facts["multioutput_shapes"]
    assert k == k2 == 2 and n == 200
    assert min(facts["multioutput_r2"]) > 0.8


def test_backprop_facts(tour_run):
    _, facts = tour_run
    # backprop's gradients agree with central differences (step 1e-6: error ~1e-10)
    assert facts["backprop_max_abs_diff_fd"] < 1e-8
    before, after = facts["backprop_loss_before_after"]
    assert after < before


def test_model_facts(tour_run):
    _, facts = tour_run
    assert "266,610" in facts["summary_784"]
    assert np.allclose(facts["digits_three_proba_sums"], 1.0)
    assert facts["reload_identical"] is True
    # MAE ignores the upward outliers better than MSE
    rmse = facts["outlier_rmse"]
    assert rmse["absolute_error"] < rmse["squared_error"]
    # ReLU and softplus outputs cannot go negative
    low = facts["positive_min_prediction"]
    assert low["relu"] >= 0 and low["softplus"] >= 0
    es = facts["early_stopping"]
    assert 1 <= es["best_epoch"] <= es["n_iter"]
    assert es["checkpoints"] and es["checkpoints"][-1] == es["best_epoch"]


def test_every_figure_written_and_described(tour_run):
    out, facts = tour_run
    assert facts["figures"] == [f"{name}.png" for name in FIGURES]
    report = (out / "report.md").read_text(encoding="utf-8")
    html = (out / "report.html").read_text(encoding="utf-8")
    for name in FIGURES:
        data = (out / f"{name}.png").read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000, name
        assert f"]({name}.png)" in report, name
        # the image is followed by its caption and a real explanation
        after = report.split(f"]({name}.png)", 1)[1].lstrip()
        assert after.startswith(f"*Figure `{name}.png`"), name
        explanation = after.split("\n\n", 1)[0].split(".*", 1)[1]
        assert len(explanation.split()) >= 30, name
    # self-contained HTML: every image inline, nothing fetched from the network
    assert html.count('src="data:image/png;base64,') == len(FIGURES)
    # a contents list links the eight sections
    assert all(f'href="#s{i}"' in html and f'id="s{i}"' in html for i in range(1, 9))
    assert "http://" not in html and "https://" not in html


def test_report_states_the_numbers(tour_run):
    out, _ = tour_run
    report = (out / "report.md").read_text(encoding="utf-8")
    for needle in ("predict([[2, 0.5], [3, 1]]) -> [True, False]", "266,610",
                   "examples/04_xor.py",
                   "RandomizedSearchCV", "restore_best_weights", "validation_data"):
        assert needle in report


def test_report_html_inline_markup():
    assert tour._inline("a `x<y` and **b** and *c*") == \
        "a <code>x&lt;y</code> and <b>b</b> and <i>c</i>"
    assert tour._inline("2 * 3 * 4") == "2 * 3 * 4"


def test_command_line_dispatch():
    r = subprocess.run([sys.executable, "-m", "rosenblatt", "tour", "--help"],
                       capture_output=True, text=True, timeout=120, check=False)
    assert r.returncode == 0
    assert "--quick" in r.stdout and "--out" in r.stdout


def test_a_failing_section_is_reported_and_the_rest_runs(tmp_path, monkeypatch, capsys):
    ran = []

    def bad(rep, cfg, facts):
        raise RuntimeError("boom")

    def good(rep, cfg, facts):
        rep.heading("still here")
        ran.append(True)

    monkeypatch.setattr(tour, "SECTIONS", [("bad", bad), ("good", good)])
    assert tour.main(["--out", str(tmp_path), "--quick", "--quiet"]) == 1
    assert ran == [True]
    report = (tmp_path / "report.md").read_text(encoding="utf-8")
    assert "This section failed" in report and "RuntimeError: boom" in report
    facts = json.loads((tmp_path / "facts.json").read_text())
    assert facts["errors"] == {"bad": "RuntimeError: boom"}
    assert "1 section(s) failed: bad" in capsys.readouterr().err
