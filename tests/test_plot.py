"""rosenblatt.plot: every function draws a labelled figure and returns it."""

import warnings

import numpy as np
import pytest

pytest.importorskip("matplotlib")

from matplotlib.figure import Figure
from rosenblatt import datasets, plot
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import Perceptron as SkPerceptron
from sklearn.neural_network import MLPClassifier as SkMLPClassifier

ACTS = ["identity", "heaviside", "sign", "logistic", "tanh", "relu", "leaky_relu", "elu",
        "softplus", "gelu"]


def _labelled(ax):
    return bool(ax.get_xlabel()) and bool(ax.get_ylabel()) and bool(ax.get_title())


def _png_ok(fig, tmp_path, name):
    path = tmp_path / f"{name}.png"
    fig.savefig(path)
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 1000


@pytest.fixture(scope="module")
def xor_mlp():
    X, y = datasets.make_xor(80, random_state=0)
    clf = SkMLPClassifier(hidden_layer_sizes=(3,), activation="tanh", max_iter=30,
                          random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # 30 epochs on purpose
        clf.fit(X, y)
    return clf, X, y


@pytest.mark.parametrize("name", ACTS)
def test_activation_values_and_derivatives(name):
    z = np.linspace(-4, 4, 161)
    z = z[np.abs(z) > 1e-3]  # away from the kinks
    h = 1e-6
    numeric = (plot.activation(name, z + h) - plot.activation(name, z - h)) / (2 * h)
    assert np.allclose(plot.activation_derivative(name, z), numeric, atol=1e-6)


def test_step_functions_follow_the_lecture():
    z = np.array([-1.0, 0.0, 1.0])
    assert plot.activation("heaviside", z).tolist() == [0, 1, 1]
    assert plot.activation("sign", z).tolist() == [-1, 0, 1]
    assert np.allclose(plot.activation("tanh", z),
                       2 * plot.activation("logistic", 2 * z) - 1)
    # the sigmoid does not overflow for large |z|
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert plot.activation("logistic", np.array([-1000.0, 1000.0])).tolist() == [0, 1]
    with pytest.raises(ValueError, match="unknown activation"):
        plot.activation("swish", z)
    with pytest.raises(ValueError, match="unknown activation"):
        plot.activation_derivative("swish", z)


def test_plot_activations(tmp_path):
    fig = plot.plot_activations()
    assert isinstance(fig, Figure)
    ax_f, ax_d = fig.axes
    assert _labelled(ax_f) and _labelled(ax_d)
    labels = [t.get_text() for t in ax_f.get_legend().get_texts()]
    assert labels == ["Heaviside step", "sigmoid (logistic)", "tanh", "ReLU"]
    _png_ok(fig, tmp_path, "act")
    # onto given axes
    fig2 = Figure()
    axes = fig2.subplots(1, 2)
    assert plot.plot_activations(("elu",), ax=axes) is fig2


def test_decision_boundary_of_a_perceptron_draws_its_line(tmp_path):
    X, y = datasets.load_iris_petals()
    per = SkPerceptron(random_state=42).fit(X, y)
    fig = plot.plot_decision_boundary(per, X, y, resolution=40,
                                      class_names=["other", "setosa"])
    ax = fig.axes[0]
    assert _labelled(ax)
    line = [ln for ln in ax.lines if ln.get_label() == "w . x + b = 0"]
    assert len(line) == 1
    # the drawn line satisfies w . x + b = 0
    xs, ys = line[0].get_data()
    w, b = per.coef_[0], per.intercept_[0]
    assert np.allclose(w[0] * np.asarray(xs) + w[1] * np.asarray(ys) + b, 0)
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "setosa" in legend and "other" in legend
    _png_ok(fig, tmp_path, "boundary")


def test_decision_boundary_with_probabilities_and_multiclass(xor_mlp, tmp_path):
    clf, X, y = xor_mlp
    fig = plot.plot_decision_boundary(clf, X, y, resolution=30)
    assert len(fig.axes) == 2  # plot + colour bar of P(class 1)
    assert "P(class = 1)" in fig.axes[1].get_ylabel()
    Xi, yi = datasets.load_iris_petals(target=None)
    per = SkPerceptron(random_state=0).fit(Xi, yi)
    fig = plot.plot_decision_boundary(per, Xi, yi, resolution=30,
                                      class_names=["a", "b", "c"])
    labels = [ln.get_label() for ln in fig.axes[0].lines]
    assert sum("TLU" in lab for lab in labels) == 3  # one line per output TLU
    _png_ok(fig, tmp_path, "multi")


def test_zero_weights_say_there_is_no_line():
    X, y = datasets.make_xor()
    per = SkPerceptron(random_state=42).fit(X, y)  # ends with all-zero weights
    fig = plot.plot_decision_boundary(per, X, y, resolution=20)
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert any("no line" in lab for lab in labels)


def test_learning_curves(xor_mlp, tmp_path):
    clf, _, _ = xor_mlp
    fig = plot.plot_learning_curves(clf)
    ax_l, ax_s = fig.axes
    assert _labelled(ax_l) and _labelled(ax_s)
    assert len(ax_l.lines) == 1  # training loss only: no validation set
    assert any("no validation" in t.get_text() for t in ax_s.texts)
    runs = {"a": {"loss": [3, 2, 1], "val_loss": [3.5, 2.5, 2.7],
                  "val_score": [0.5, 0.7, 0.6], "train_score": [0.6, 0.8, 0.9],
                  "best_epoch": 2},
            "b": {"loss": [2, 1], "val_loss": [2, 1.5], "val_score": [0.6, 0.8]}}
    fig = plot.plot_learning_curves(runs, score_name="accuracy", title="two runs")
    ax_l, ax_s = fig.axes
    legend = [t.get_text() for t in ax_l.get_legend().get_texts()]
    assert "a: best epoch (2)" in legend and "b: validation" in legend
    assert ax_s.get_ylabel() == "accuracy"
    assert fig._suptitle.get_text() == "two runs"
    _png_ok(fig, tmp_path, "curves")


def test_network_diagram(xor_mlp, tmp_path):
    clf, _, _ = xor_mlp
    fig = plot.plot_network(clf)
    ax = fig.axes[0]
    # 2x3 + 3x1 edges plus the two legend proxies
    edges = [ln for ln in ax.lines if ln.get_label().startswith("_")]
    assert len(edges) == 2 * 3 + 3 * 1
    widths = sorted(ln.get_linewidth() for ln in edges)
    assert widths[-1] > widths[0]  # width follows |w|
    texts = [t.get_text() for t in ax.texts]
    assert any(t.startswith("b=") for t in texts)
    _png_ok(fig, tmp_path, "net")
    # a linear model is a one-layer network; weight lists work too
    per = SkPerceptron(random_state=0).fit(*datasets.load_iris_petals(target=None))
    fig = plot.plot_network(per, output_names=["s", "v", "g"])
    assert sum(ln.get_label().startswith("_") for ln in fig.axes[0].lines) == 6
    W = [np.array([[1.0, -1.0]]), np.array([[2.0], [0.5]])]
    fig = plot.plot_network(W, [np.zeros(2), np.zeros(1)], hidden_names=[["A", "B"]])
    assert {"A", "B", "+2", "-1"} <= {t.get_text() for t in fig.axes[0].texts}
    with pytest.raises(TypeError, match="expected a fitted MLP"):
        plot.plot_network(object())


def test_neuron_activation_maps_without_forward(xor_mlp, tmp_path):
    # scikit-learn's MLP has no forward(): the maps are recomputed from coefs_
    clf, X, y = xor_mlp
    fig = plot.plot_neuron_activations(clf, X, y, resolution=20)
    images = [ax for ax in fig.axes if ax.images]
    assert len(images) == 3 + 1  # 3 hidden neurons, 1 output
    out = images[-1].images[0].get_array()
    G = np.c_[np.meshgrid(np.linspace(0, 1, 2), np.linspace(0, 1, 2))[0].ravel(),
              np.meshgrid(np.linspace(0, 1, 2), np.linspace(0, 1, 2))[1].ravel()]
    assert out.min() >= 0 and out.max() <= 1  # the logistic output
    layers = plot._forward_layers(clf, G)
    assert np.allclose(layers[-1][:, 0], clf.predict_proba(G)[:, 1])
    _png_ok(fig, tmp_path, "neurons")


def test_digit_probabilities_and_regression_fits(tmp_path):
    d = datasets.load_digits()
    P = np.full((3, 10), 0.02)
    P[np.arange(3), d.y_test[:3]] = 0.82
    fig = plot.plot_digit_probabilities(d.images_test[:3], P, d.y_test[:3])
    assert len(fig.axes) == 6
    assert fig.axes[0].get_title().startswith(f"true {d.y_test[0]}, predicted")
    fig = plot.plot_digit_probabilities(d.images_test[:2], np.array([[0.9, 0.2], [0.1, 0.7]]),
                                        np.array([[1, 0], [0, 1]]),
                                        class_names=["odd", "big"], multilabel=True,
                                        image_titles=["first", "second"])
    assert fig.axes[0].get_title() == "first\ntrue: odd\npredicted: odd"
    _png_ok(fig, tmp_path, "digits")

    class Line:
        def predict(self, X):
            return 2 * np.asarray(X)[:, 0]

    X, y, y_clean, is_out = datasets.make_regression_outliers(50)
    fig = plot.plot_regression_fits(X, y, {"2x": Line()}, y_clean=y_clean,
                                    is_outlier=is_out)
    ax = fig.axes[0]
    assert _labelled(ax)
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert sorted(legend) == ["2x", "data", "outliers", "true relation"]
    _png_ok(fig, tmp_path, "fits")


def test_import_is_lazy():
    # importing the module must not import matplotlib (it is an optional extra)
    import subprocess
    import sys

    code = ("import sys, rosenblatt.plot, rosenblatt.datasets; "
            "print('matplotlib' in sys.modules)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       timeout=120, check=True)
    assert r.stdout.strip() == "False"
