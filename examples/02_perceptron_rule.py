"""The threshold logic unit and the perceptron learning rule, step by step.

1. heaviside and sign steps;
2. the rule  w_i <- w_i + eta (y - yhat) x_i  on the AND truth table, one row at a time,
   printing every update;
3. a perceptron with 2 inputs and 3 outputs (iris petals, 3 species) is one matrix
   product: step(X W + b), prediction = argmax.

Run: python examples/02_perceptron_rule.py   (writes perceptron_2x3.png)
"""
import numpy as np
from rosenblatt import Perceptron
from rosenblatt.datasets import load_iris_petals, truth_table
from rosenblatt.plot import activation, plot_decision_boundary

z = np.array([-2.0, -0.5, 0.0, 0.5, 2.0])
print("z          ", z)
print("heaviside  ", activation("heaviside", z))
print("sign       ", activation("sign", z))

# -- the rule, by hand -------------------------------------------------------------------
X = truth_table(2).astype(float)
y = np.array([0, 0, 0, 1])  # AND
w, b, eta = np.zeros(2), 0.0, 1.0
for epoch in range(1, 21):
    mistakes = 0
    for x, t in zip(X, y):
        yhat = int(x @ w + b >= 0)
        if yhat != t:
            w += eta * (t - yhat) * x
            b += eta * (t - yhat)
            mistakes += 1
            print(f"epoch {epoch}: x={x}, y={t}, yhat={yhat} -> w={w}, b={b}")
    if mistakes == 0:
        print(f"epoch {epoch}: no mistakes, converged")
        break

# -- a layer of 3 TLUs on 2 inputs ---------------------------------------------------------
Xi, yi = load_iris_petals(target=None)
Xi = (Xi - Xi.mean(axis=0)) / Xi.std(axis=0)  # scaled, both features count alike
per = Perceptron(rule="rosenblatt", random_state=42).fit(Xi, yi)
print("training accuracy", per.score(Xi, yi))
W = per.coef_.T  # shape (2 inputs, 3 outputs)
rows = Xi[[0, 50, 100]]
Z = rows @ W + per.intercept_
print("X W + b =\n", Z.round(2))
print("argmax:", Z.argmax(axis=1), " predict:", per.predict(rows))

fig = plot_decision_boundary(per, Xi, yi, class_names=["setosa", "versicolor", "virginica"],
                             feature_names=("petal length (standardised)",
                                            "petal width (standardised)"),
                             title="A 2-input, 3-output perceptron")
fig.savefig("perceptron_2x3.png")
print("wrote perceptron_2x3.png")
