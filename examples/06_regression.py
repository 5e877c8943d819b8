"""Regression MLPs: the chapter's 50-50-50 network on the housing stand-in, MSE versus MAE
with outliers, and ReLU/softplus outputs for positive targets.

Run: python examples/06_regression.py   (writes housing_learning_curves.png, regression_*.png)
"""
import warnings

import numpy as np
from rosenblatt import MLPRegressor
from rosenblatt.datasets import (
    load_housing_standin,
    make_positive_regression,
    make_regression_outliers,
)
from rosenblatt.plot import plot_learning_curves, plot_regression_fits
from sklearn.exceptions import ConvergenceWarning

warnings.simplefilter("ignore", ConvergenceWarning)  # fixed epoch budgets, on purpose

d = load_housing_standin()  # make_friedman1, 20,640 x 8, split and standardised
reg = MLPRegressor(hidden_layer_sizes=(50, 50, 50), max_iter=30, batch_size=32,
                   random_state=42)
reg.fit(d.X_train, d.y_train, validation_data=(d.X_valid, d.y_valid))
rmse = np.sqrt(np.mean((reg.predict(d.X_valid) - d.y_valid) ** 2))
print(f"validation RMSE {rmse:.3f}, test R^2 {reg.score(d.X_test, d.y_test):.3f}")
plot_learning_curves({"50-50-50": reg}, score_name="validation R^2").savefig(
    "housing_learning_curves.png")

X, y, y_clean, is_out = make_regression_outliers()
models = {}
for loss in ("squared_error", "absolute_error", "huber"):
    models[loss] = MLPRegressor(hidden_layer_sizes=(32, 32), activation="tanh", loss=loss,
                                learning_rate_init=0.01, max_iter=400, random_state=42)
    models[loss].fit(X, y)
    err = np.sqrt(np.mean((models[loss].predict(X) - y_clean)[~is_out] ** 2))
    print(f"{loss:15s} RMSE to the true relation: {err:.3f}")
plot_regression_fits(X, y, models, y_clean=y_clean, is_outlier=is_out).savefig(
    "regression_outliers.png")

Xp, yp = make_positive_regression()
models = {}
for act in ("identity", "relu", "softplus"):
    models[act] = MLPRegressor(hidden_layer_sizes=(32, 32), activation="tanh",
                               out_activation=act, learning_rate_init=0.01, max_iter=400,
                               random_state=42).fit(Xp, yp)
    print(f"out_activation={act:8s} smallest prediction {models[act].predict(Xp).min():+.3f}")
plot_regression_fits(Xp, yp, models).savefig("regression_positive.png")
print("wrote housing_learning_curves.png, regression_outliers.png, regression_positive.png")
