"""XOR: a perceptron fails, the lecture's hand-wired network and a trained MLP succeed.

Run: python examples/04_xor.py   (writes xor_*.png)
"""
import warnings

import numpy as np
from rosenblatt import MLPClassifier, Perceptron
from rosenblatt.datasets import make_xor
from rosenblatt.plot import plot_decision_boundary, plot_neuron_activations
from sklearn.exceptions import ConvergenceWarning

X, y = make_xor()  # the four rows 00, 01, 10, 11 -> 0, 1, 1, 0
per = Perceptron(random_state=42).fit(X, y)
print("perceptron accuracy on XOR:", per.score(X, y))

# the lecture's table: A fires if x1 + x2 - 1.5 >= 0, B if x1 + x2 - 0.5 >= 0,
# the output if -A + B - 0.5 >= 0
coefs = [np.array([[1.0, 1.0], [1.0, 1.0]]), np.array([[-1.0], [1.0]])]
intercepts = [np.array([-1.5, -0.5]), np.array([-0.5])]
net = MLPClassifier.from_weights(coefs, intercepts, classes=[0, 1], activation="heaviside",
                                 out_activation="heaviside")  # every unit a TLU
print("hidden A, B:\n", net.forward(X)[1])
print("hand-wired heaviside network:", net.predict(X))

# sigmoids need steeper weights to behave like steps
sig = MLPClassifier.from_weights([10 * W for W in coefs], [10 * c for c in intercepts],
                                 classes=[0, 1], activation="logistic")
print("same network with sigmoids (weights x 10):", sig.predict(X))

mlp = MLPClassifier(hidden_layer_sizes=(4,), activation="tanh", learning_rate_init=0.05,
                    max_iter=500, random_state=42)
with warnings.catch_warnings():
    warnings.simplefilter("ignore", ConvergenceWarning)  # 500 epochs is plenty here
    mlp.fit(X, y)
print("trained MLP accuracy on XOR:", mlp.score(X, y))

Xc, yc = make_xor(200)  # noisy points around the corners
plot_decision_boundary(Perceptron(random_state=42).fit(Xc, yc), Xc, yc,
                       title="Perceptron on noisy XOR").savefig("xor_perceptron.png")
plot_decision_boundary(sig, X, y, title="Hand-wired XOR network (sigmoid)").savefig(
    "xor_handwired.png")
mlp_c = MLPClassifier(hidden_layer_sizes=(8,), activation="tanh", learning_rate_init=0.03,
                      max_iter=400, random_state=42)
with warnings.catch_warnings():
    warnings.simplefilter("ignore", ConvergenceWarning)
    mlp_c.fit(Xc, yc)
plot_decision_boundary(mlp_c, Xc, yc, title="MLP on noisy XOR").savefig("xor_mlp.png")
plot_neuron_activations(mlp_c, Xc, yc).savefig("xor_mlp_neurons.png")
print("wrote xor_perceptron.png, xor_handwired.png, xor_mlp.png, xor_mlp_neurons.png")
