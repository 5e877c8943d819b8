"""The chapter's perceptron: iris petal length and width, "is it setosa?".

Same model as scikit-learn's Perceptron (and as SGDClassifier with the perceptron loss).

Run: python examples/03_iris_perceptron.py   (writes iris_perceptron.png)
"""
from rosenblatt import Perceptron
from rosenblatt.datasets import load_iris_petals
from rosenblatt.plot import plot_decision_boundary
from sklearn.linear_model import Perceptron as SkPerceptron
from sklearn.linear_model import SGDClassifier

X, y = load_iris_petals("setosa")  # petal length, petal width; y: is setosa
per_clf = Perceptron(random_state=42).fit(X, y)
print("predict([[2, 0.5], [3, 1]]) ->", per_clf.predict([[2, 0.5], [3, 1]]))
print("rosenblatt coef_", per_clf.coef_, "intercept_", per_clf.intercept_)

sk = SkPerceptron(random_state=42).fit(X, y)
sgd = SGDClassifier(loss="perceptron", learning_rate="constant", eta0=1, penalty=None,
                    random_state=42).fit(X, y)
print("sklearn    coef_", sk.coef_, "intercept_", sk.intercept_)
print("SGD(loss='perceptron') coef_", sgd.coef_, "intercept_", sgd.intercept_)

fig = plot_decision_boundary(per_clf, X, y, class_names=["not setosa", "setosa"], proba=False,
                             feature_names=("petal length (cm)", "petal width (cm)"),
                             title="Perceptron: is it Iris setosa?")
fig.savefig("iris_perceptron.png")
print("wrote iris_perceptron.png")
