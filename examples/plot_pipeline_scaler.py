"""
A pipeline with a scaler
========================

The estimators of skmic are ordinary scikit-learn estimators, so they go into
a :class:`~sklearn.pipeline.Pipeline`. Here the wine dataset, whose 13
features have very different scales (one is in the hundreds, others below
one), is clustered with and without a
:class:`~sklearn.preprocessing.StandardScaler` in front of
:class:`~skmic.KMeansBaseline` and :class:`~skmic.DECClustering`.
"""

import os
import warnings

import matplotlib.pyplot as plt
from sklearn.datasets import load_wine
from sklearn.exceptions import ConvergenceWarning
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from skmic import DECClustering, KMeansBaseline
from skmic.metrics import cluster_accuracy

QUICK = os.environ.get("SKMIC_DOCS_QUICK") == "1"

X, y = load_wine(return_X_y=True)
std = X.std(axis=0)
print(f"{X.shape[1]} features, standard deviations from {std.min():.2f} to {std.max():.1f}")

# %%
# DEC pretrains an autoencoder, initialises centroids by k-means in its
# embedding and refines them by self-training. A small network suits 178
# samples.
def dec():
    return DECClustering(
        n_clusters=3,
        hidden_layer_sizes=(32,),
        n_components=3,
        pretrain_epochs=20 if QUICK else 100,
        random_state=0,
    )


models = {
    "k-means": KMeansBaseline(n_clusters=3, random_state=0),
    "scaler + k-means": make_pipeline(StandardScaler(), KMeansBaseline(n_clusters=3, random_state=0)),
    "DEC": dec(),
    "scaler + DEC": make_pipeline(StandardScaler(), dec()),
}
accuracy = {}
for name, model in models.items():
    with warnings.catch_warnings():
        # a short budget may stop DEC before its label_change_tol criterion
        warnings.simplefilter("ignore", ConvergenceWarning)
        labels = model.fit_predict(X)
    accuracy[name] = cluster_accuracy(y, labels)
    print(f"{name:18s} ACC {accuracy[name]:.3f}")

# %%
# Without scaling, the distances are dominated by the largest feature and
# both methods cluster poorly; with it, they recover most of the three
# cultivars. A fitted pipeline predicts new samples through the same scaler.
pipeline = models["scaler + DEC"]
print(pipeline.predict(X[:5]), pipeline[-1].cluster_centers_.shape)

fig, ax = plt.subplots(figsize=(5, 2.5))
ax.barh(list(accuracy), list(accuracy.values()))
ax.set_xlim(0, 1)
ax.set_xlabel("cluster accuracy (wine)")
fig.tight_layout()
