"""The chapter's training tools: validation curves, early stopping with the best weights
restored, a checkpoint callback, saving and reloading, and a randomized search.

Run: python examples/08_training_tools.py   (writes early_stopping.png, best.pkl)
"""
import pickle
import warnings

import numpy as np
from rosenblatt import MLPClassifier
from rosenblatt.datasets import load_digits
from rosenblatt.plot import plot_learning_curves
from scipy.stats import loguniform
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import RandomizedSearchCV

warnings.simplefilter("ignore", ConvergenceWarning)  # fixed epoch budgets, on purpose
g = load_digits()


class Checkpoint:
    """Pickle the model whenever the validation loss improves (save_best_only)."""

    def __init__(self, path):
        self.path, self.best = path, float("inf")

    def __call__(self, estimator, logs):
        if logs["val_loss"] < self.best:
            self.best = logs["val_loss"]
            with open(self.path, "wb") as f:
                pickle.dump(estimator, f)


class EarlyStopping:
    """Stop (return True) once the validation loss has not improved for `patience` epochs."""

    def __init__(self, patience=10):
        self.patience, self.best, self.wait = patience, float("inf"), 0

    def __call__(self, estimator, logs):
        if logs["val_loss"] < self.best:
            self.best, self.wait = logs["val_loss"], 0
            return False
        self.wait += 1
        return self.wait >= self.patience


# a big unregularised network on 300 images overfits: the validation loss turns up
clf = MLPClassifier(hidden_layer_sizes=(300, 100), alpha=0.0, learning_rate_init=3e-3,
                    batch_size=32, max_iter=200, restore_best_weights=True,
                    callbacks=[Checkpoint("best.pkl"), EarlyStopping(patience=10)],
                    random_state=42)
clf.fit(g.X_train[:300], g.y_train[:300], validation_data=(g.X_valid, g.y_valid))
best = int(np.argmin(clf.validation_loss_curve_)) + 1
print(f"stopped after {clf.n_iter_} epochs; best epoch {best}")
plot_learning_curves({"300 images": clf}, score_name="accuracy").savefig("early_stopping.png")

with open("best.pkl", "rb") as f:
    restored = pickle.load(f)
same = np.array_equal(restored.predict(g.X_test), clf.predict(g.X_test))
print("checkpoint reloads to the restored best model:", same)

search = RandomizedSearchCV(
    MLPClassifier(max_iter=30, random_state=42),
    {"hidden_layer_sizes": [(50,), (100,), (300,), (100, 50), (300, 100)],
     "learning_rate_init": loguniform(3e-4, 3e-2)},
    n_iter=5, cv=3, n_jobs=1, random_state=42)
search.fit(g.X_train, g.y_train)
best = search.best_params_
print(f"best: hidden_layer_sizes={best['hidden_layer_sizes']}, "
      f"learning_rate_init={best['learning_rate_init']:.3g}, "
      f"CV accuracy {search.best_score_:.3f}")
print("test accuracy", search.score(g.X_test, g.y_test))
