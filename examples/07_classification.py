"""Classification MLPs: binary (one logistic output), multilabel (one logistic output per
label), multiclass (softmax) with the chapter's 300-100 network on digits.

Run: python examples/07_classification.py   (writes digits_*.png)
"""
import warnings

from rosenblatt import MLPClassifier
from rosenblatt.datasets import load_breast_cancer, load_digits, load_digits_multilabel
from rosenblatt.plot import plot_digit_probabilities, plot_learning_curves
from sklearn.exceptions import ConvergenceWarning

warnings.simplefilter("ignore", ConvergenceWarning)  # fixed epoch budgets, on purpose

bc = load_breast_cancer()
clf = MLPClassifier(hidden_layer_sizes=(30,), max_iter=200, random_state=42)
clf.fit(bc.X_train, bc.y_train)
print("binary:", clf.out_activation_, "output, test accuracy", clf.score(bc.X_test, bc.y_test))
print(clf.predict_proba(bc.X_test[:3]).round(3))

ml = load_digits_multilabel()  # labels: is odd, is >= 5
mlc = MLPClassifier(hidden_layer_sizes=(100,), max_iter=100, random_state=42)
mlc.fit(ml.X_train, ml.y_train)
print("multilabel:", mlc.out_activation_, "outputs; first test digits", ml.digit_test[:3])
print(mlc.predict_proba(ml.X_test[:3]).round(3))

g = load_digits()  # stand-in for Fashion-MNIST: 8x8 images, 10 classes, pixels in [0, 1]
model = MLPClassifier(hidden_layer_sizes=(300, 100), solver="sgd", learning_rate_init=0.01,
                      momentum=0.0, batch_size=32, max_iter=30, random_state=42)
model.fit(g.X_train, g.y_train, validation_data=(g.X_valid, g.y_valid))
print(model.summary())
print("multiclass: test accuracy", model.score(g.X_test, g.y_test))
plot_learning_curves({"sgd 0.01": model}, score_name="accuracy").savefig(
    "digits_learning_curves.png")

P = model.predict_proba(g.X_test[:3])
print(P.round(2), "sums", P.sum(axis=1))
plot_digit_probabilities(g.images_test[:3], P, g.y_test[:3]).savefig(
    "digits_probabilities.png")
print("wrote digits_learning_curves.png, digits_probabilities.png")
