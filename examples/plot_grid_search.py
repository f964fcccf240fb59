"""
Choosing hyperparameters with GridSearchCV
==========================================

:class:`~sklearn.model_selection.GridSearchCV` tunes skmic's estimators like
any other. Two kinds of score can guide it:

* with labels, :data:`skmic.metrics.cluster_accuracy_scorer` scores the
  clusters that each candidate's ``predict`` gives on the held-out fold,
  after the best matching of clusters to classes;
* without labels, the estimator's own ``score``: for
  :class:`~skmic.IICClustering` the mutual information between the
  assignments of the held-out samples and of their perturbations.

Both are computed here in one search (multi-metric scoring), on the scaled
wine data, over the size of IIC's network and the over-clustering head.
"""

import os
import warnings

import matplotlib.pyplot as plt
import pandas as pd
from sklearn.datasets import load_wine
from sklearn.model_selection import GridSearchCV, KFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from skmic import IICClustering
from skmic.metrics import cluster_accuracy_scorer

QUICK = os.environ.get("SKMIC_DOCS_QUICK") == "1"

X, y = load_wine(return_X_y=True)

model = make_pipeline(
    StandardScaler(),
    IICClustering(n_clusters=3, n_init=1, batch_size=16, max_epochs=15 if QUICK else 60, random_state=0),
)


def mutual_information(estimator, X, y=None):
    """Unsupervised score: ``IICClustering.score`` (through the pipeline)."""
    return estimator.score(X)


param_grid = {"iicclustering__hidden_layer_sizes": [(16,), (64, 64)]}
if not QUICK:
    param_grid["iicclustering__overclustering"] = [0, "auto"]

search = GridSearchCV(
    model,
    param_grid,
    scoring={"accuracy": cluster_accuracy_scorer, "mutual_information": mutual_information},
    refit="mutual_information",  # pick the final model without labels
    cv=KFold(3, shuffle=True, random_state=0),
)
with warnings.catch_warnings():
    # a candidate that uses fewer than 3 clusters warns; its scores show it anyway
    warnings.filterwarnings("ignore", "IICClustering's best head uses only", UserWarning)
    search.fit(X, y)  # y is used by the accuracy scorer only

# %%
# The table of candidates. IIC's mutual information is at most ln 3 = 1.10
# nats here; it can only be compared between models with the same
# ``n_clusters``, which is why the number of clusters is not in the grid.
columns = ["params", "mean_test_accuracy", "mean_test_mutual_information"]
results = pd.DataFrame(search.cv_results_)[columns]
print(results.to_string())
print("chosen without labels:", search.best_params_)
print("best by accuracy:     ", results.loc[results.mean_test_accuracy.idxmax(), "params"])

# %%
# Do the two scores agree? Each point is one candidate. Higher mutual
# information goes with higher accuracy on this data, but that is not
# guaranteed: the mutual information rewards clusters that the perturbation
# does not change, and whether those match the classes depends on the
# perturbation.
fig, ax = plt.subplots(figsize=(4, 3))
ax.scatter(results.mean_test_mutual_information, results.mean_test_accuracy)
ax.set_xlabel("mutual information (nats, held-out)")
ax.set_ylabel("cluster accuracy (held-out)")
fig.tight_layout()
