"""McCulloch-Pitts neurons (1943) as threshold units: identity, AND, OR, A AND NOT B.

A neuron fires when at least 2 of its input connections are active (the lecture's
threshold). Written as a threshold unit: heaviside(w . x - 2) >= 0. The four neurons form
one layer, built from given weights without training.

Run: python examples/01_mcculloch_pitts.py   (writes mcp_gates.png)
"""
import numpy as np
from rosenblatt import MLPRegressor
from rosenblatt.datasets import truth_table
from rosenblatt.plot import plot_network

# columns: C = A, A AND B, A OR B, A AND NOT B; rows: weight of input A, of input B
W = np.array([[2.0, 1.0, 2.0, 2.0],
              [0.0, 1.0, 2.0, -2.0]])
b = np.full(4, -2.0)  # the threshold 2, moved to the left of w . x >= 2

# hidden layer = the four heaviside neurons; the identity output layer just copies them
gates = MLPRegressor.from_weights([W, np.eye(4)], [b, np.zeros(4)], activation="heaviside")

X = truth_table(2)
out = gates.predict(X).round().astype(int)
print(" A  B | C=A  AND  OR  A AND NOT B")
for x, o in zip(X, out):
    print(f" {x[0]}  {x[1]} |  {o[0]}    {o[1]}    {o[2]}    {o[3]}")

fig = plot_network([W], [b], input_names=["A", "B"],
                   output_names=["C = A", "A AND B", "A OR B", "A AND NOT B"],
                   layer_names=["inputs", "threshold units"],
                   title="McCulloch-Pitts neurons (threshold 2)")
fig.savefig("mcp_gates.png")
print("wrote mcp_gates.png")
