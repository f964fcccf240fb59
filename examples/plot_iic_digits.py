"""
IIC on scikit-learn's digits, as 8x8 images
===========================================

Invariant Information Clustering learns clusters that survive random
perturbations of the images (small rotations, crops, shear, brightness and
noise). Here it clusters the 1,797 digits of scikit-learn, with a short
training budget, and shows a few samples of every cluster next to k-means.
"""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import load_digits
from sklearn.metrics import normalized_mutual_info_score

from skmic import IICClustering, KMeansBaseline
from skmic.metrics import cluster_accuracy

X, y = load_digits(return_X_y=True)
X = X / 16.0

kmeans = KMeansBaseline(n_clusters=10, random_state=0).fit(X)
iic = IICClustering(n_clusters=10, image_shape=(8, 8), n_init=1, max_epochs=20, random_state=0)
iic.fit(X)

for name, labels in [("k-means", kmeans.labels_), ("IIC", iic.labels_)]:
    print(f"{name:8s} ACC {cluster_accuracy(y, labels):.3f}  NMI {normalized_mutual_info_score(y, labels):.3f}")

# %%
# Eight samples of every IIC cluster, one cluster per row.
fig, axes = plt.subplots(10, 8, figsize=(6, 7.5))
rng = np.random.default_rng(0)
for k in range(10):
    members = np.flatnonzero(iic.labels_ == k)
    chosen = rng.choice(members, size=min(8, len(members)), replace=False) if len(members) else []
    for j, ax in enumerate(axes[k]):
        ax.axis("off")
        if j < len(chosen):
            ax.imshow(X[chosen[j]].reshape(8, 8), cmap="gray_r")
    axes[k, 0].set_title(f"cluster {k}", fontsize=7, loc="left")
fig.suptitle("IIC clusters of scikit-learn's digits")
fig.tight_layout()
fig.savefig("iic_digits_clusters.png", dpi=80)

# %%
# The training curve: minus the mutual information, per epoch.
fig, ax = plt.subplots(figsize=(5, 3))
ax.plot([r["epoch"] for r in iic.history_], [r["loss"] for r in iic.history_])
ax.set_xlabel("epoch")
ax.set_ylabel("IIC loss (main + over-clustering)")
fig.tight_layout()
fig.savefig("iic_digits_history.png", dpi=80)
