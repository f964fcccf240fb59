"""
IIC on scikit-learn's digits, as 8x8 images
===========================================

Invariant Information Clustering learns clusters that survive random
perturbations of the images. Given the digits as an array of 8x8 images, a
small conv network computes the assignments, and the perturbations -- elastic
deformations, the default for images this small -- act on the pixel grid.
This example looks at what IIC does to be reliable without labels: it trains
several networks (``n_init`` restarts), each with several sub-heads, and
predicts with the consensus of all their clusterings. Then it shows samples
of every cluster and the training curve.

Everything here is the estimator's defaults (a shorter run when the docs are
built quickly); the Results page has the benchmark of the same data.
"""

import os

import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.metrics import normalized_mutual_info_score

from skmic import IICClustering, KMeansBaseline
from skmic.inspection import plot_cluster_samples, plot_history
from skmic.metrics import cluster_accuracy
from skmic.nn.stacked import stack_inputs

QUICK = os.environ.get("SKMIC_DOCS_QUICK") == "1"

X, y = load_digits(return_X_y=True)
images = X.reshape(-1, 8, 8) / 16.0

kmeans = KMeansBaseline(n_clusters=10, random_state=0).fit(X / 16.0)
quick = dict(n_init=3, max_epochs=2, conv_channels=(8, 16)) if QUICK else {}
iic = IICClustering(n_clusters=10, random_state=0, **quick).fit(images)

for name, labels in [("k-means", kmeans.labels_), ("IIC", iic.labels_)]:
    print(f"{name:8s} ACC {cluster_accuracy(y, labels):.3f}  NMI {normalized_mutual_info_score(y, labels):.3f}")
print("what ran:", {name: getattr(iic, name + "_") for name in ("n_init", "selection", "perturbation", "max_epochs")})

# %%
# Restarts, sub-heads and their consensus
# ---------------------------------------
# Each of the ``n_init`` restarts is a network trained from its own seed,
# and each network has ``n_heads`` (5) sub-heads: ``n_init * n_heads``
# clusterings of the same images. One of them may merge two digits, another
# split one; rarely do they make the same mistake. The consensus
# (``selection="consensus"``, the default for images) groups the images that
# share clusters in most of them. Here is every restart's best sub-head (by
# its loss, minus the mutual information: lower is better, the floor is
# -ln 10 = -2.30) next to the consensus; the accuracies need the labels, the
# consensus does not.
net = iic.network_  # a torch module in eval mode: n_init networks side by side (skmic.nn.stacked)
x = torch.as_tensor(images.reshape(len(images), -1), dtype=torch.float32, device=iic.device_)
with torch.no_grad():  # every restart gets the same images
    heads = net.main(net(stack_inputs(x.expand(net.restarts, -1, -1)))).cpu().numpy()
# heads: (n_samples, n_init * n_heads, n_clusters), restart-major
for restart, losses in enumerate(iic.head_losses_):
    head = int(np.argmin(losses))
    acc = cluster_accuracy(y, heads[:, restart * iic.n_heads + head].argmax(1))
    print(f"restart {restart}: best sub-head loss {losses[head]:+.3f}  ACC {acc:.3f}")
print(f"consensus of all {heads.shape[1]} sub-heads: ACC {cluster_accuracy(y, iic.labels_):.3f}")

# %%
# Eight samples of every cluster, one cluster per row.
fig = plot_cluster_samples(X, iic.labels_, (8, 8), per_cluster=8)

# %%
# The training curve: the summed loss of the main and over-clustering heads
# per epoch, averaged over the restarts. It is negative by design.
fig = plot_history(iic)
