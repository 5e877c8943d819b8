"""Activation functions and their derivatives; stacked linear layers collapse into one.

Run: python examples/05_activations.py   (writes activations.png)
"""
import numpy as np
from rosenblatt import MLPRegressor
from rosenblatt.plot import plot_activations

plot_activations().savefig("activations.png")  # step, sigmoid, tanh, ReLU
print("wrote activations.png")

# f(x) = 2x + 3 and g(x) = 5x - 1: f(g(x)) = 10x + 1
x = np.arange(-2, 3.0)
print("f(g(x)) =", 2 * (5 * x - 1) + 3, " 10x + 1 =", 10 * x + 1)

# three identity layers equal one layer with the product of the weights
rng = np.random.RandomState(0)
Ws = [rng.normal(size=s) for s in [(2, 5), (5, 4), (4, 1)]]
bs = [rng.normal(size=s[1]) for s in [(2, 5), (5, 4), (4, 1)]]
deep = MLPRegressor.from_weights(Ws, bs, activation="identity")
W = Ws[0] @ Ws[1] @ Ws[2]
b = (bs[0] @ Ws[1] + bs[1]) @ Ws[2] + bs[2]
X = rng.normal(size=(1000, 2))
print("max |deep - single layer| =", np.abs(deep.predict(X) - (X @ W + b).ravel()).max())
