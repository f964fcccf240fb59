"""The benchmark harness: estimators x datasets x seeds -> a results table.

Each run fits a fresh estimator (``fit_predict``), times it, and scores the
labels with Hungarian accuracy (ACC), NMI and ARI (over pixels for the
segmentation datasets). Every run is one record of one schema, and one
formatter (:func:`format_table`) turns records into the table: the median
and the spread (min-max) over seeds per dataset, estimator and
configuration, written as Markdown and JSON under ``benchmarks/results/``
(:func:`save_results`). Everything is registered by name, so that
``skmic benchmark`` (and ``benchmarks/run.py``, which calls it) can name it:

* :data:`ESTIMATORS` and :data:`DATASETS`;
* :data:`SUITES`: groups of estimators, datasets and seeds with the defaults;
* :data:`SWEEPS`: named configurations (parameters) of one estimator, each
  a row of the table;
* :data:`PROBES`: further diagnostic columns computed on each fitted
  estimator (linear probes of DIM's codes, DEC's unsupervised scores, the
  perturbation's throughput); IIC's runs always report their sub-heads.

Importing this module is cheap (the command line builds its help from the
registries): torch, scikit-learn and the estimators are imported by the
functions that use them.
"""

import functools
import json
import platform
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = [
    "DATASETS", "ESTIMATORS", "PROBES", "SUITES", "SWEEPS", "format_table", "load_dataset", "merge_results",
    "suite_coverage", "suite_runs",
    "run_benchmark", "run_suite", "save_results", "score_labels",
]


def _digits():
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    return (X / 16.0).astype(np.float32), y, (1, 8, 8)


def _digits_flat():
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    return X.astype(np.float32), y, None


def _sklearn_table(loader, scale):
    """A loader of ``sklearn.datasets.<loader>``, standardised when ``scale``."""

    def load(data_home=None):
        from sklearn import datasets
        from sklearn.preprocessing import StandardScaler

        X, y = getattr(datasets, loader)(return_X_y=True)
        X = StandardScaler().fit_transform(X) if scale else X
        return X.astype(np.float32), y, None

    return load


def _shared(loader, **kwargs):
    """A loader of ``skmic.datasets.<loader>`` (local copies under ``data_home``)."""

    def load(data_home=None):
        from . import datasets

        bunch = getattr(datasets, loader)(data_home, **kwargs)
        return bunch.data, bunch.target, bunch.image_shape

    return load


def _mosaics(n_classes):
    """A loader of 200 texture mosaics of 64 x 64 pixels (per-pixel labels), drawn anew for each seed."""

    def load(data_home=None, seed=0):
        from .datasets import make_texture_mosaics

        images, masks = make_texture_mosaics(200, 64, n_classes, random_state=seed)
        return images, masks, None

    return load


#: dataset name -> loader(data_home) -> (X float32, y, image_shape or None);
#: the loaders of :data:`SEEDED_DATASETS` also take the run's ``seed``
DATASETS = {
    "digits": lambda data_home=None: _digits(),
    # the rows as load_digits gives them (0-16, unscaled), as a table: the README's tabular line
    "digits-flat": lambda data_home=None: _digits_flat(),
    "wine": _sklearn_table("load_wine", True),
    "breast_cancer": _sklearn_table("load_breast_cancer", True),
    "mnist-test": _shared("load_mnist", subset="test"),
    "mnist": _shared("load_mnist", subset="all"),
    "usps": _shared("load_usps", subset="all"),
    "pendigits": _shared("load_pendigits", subset="all"),
    **{f"mosaics{k}": _mosaics(k) for k in (3, 4, 6)},
}

#: datasets drawn anew for every seed (images ``(n, H, W)`` with per-pixel labels ``y``)
SEEDED_DATASETS = {"mosaics3", "mosaics4", "mosaics6"}


def load_dataset(name, data_home=None, seed=0):
    """``(X, y, image_shape)`` of a registered dataset (``seed`` draws the seeded ones)."""
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; choose from {sorted(DATASETS)}.")
    if name in SEEDED_DATASETS:
        return DATASETS[name](data_home=data_home, seed=seed)
    return DATASETS[name](data_home=data_home)


def _n_classes(y):
    return len(np.unique(y))


def _kmeans(seed, image_shape, n_clusters):
    from .kmeans import KMeansBaseline

    return KMeansBaseline(n_clusters, n_init=10, random_state=seed)


def _sklearn_kmeans(seed, image_shape, n_clusters):
    from sklearn.cluster import KMeans

    return KMeans(n_clusters, n_init=10, random_state=seed)


def _iic(seed, image_shape, n_clusters):
    from .iic import IICClustering

    return IICClustering(n_clusters, image_shape=image_shape, random_state=seed)


def _dec(seed, image_shape, n_clusters):
    from .dec import DECClustering

    return DECClustering(n_clusters, image_shape=image_shape, random_state=seed)


def _idec(seed, image_shape, n_clusters):
    from .dec import DECClustering

    return DECClustering(n_clusters, reconstruction_weight=1.0, random_state=seed)


def _dim_kmeans(seed, image_shape, n_clusters):
    from sklearn.pipeline import make_pipeline

    from .dim import DeepInfoMaxEmbedder
    from .kmeans import KMeansBaseline

    return make_pipeline(
        DeepInfoMaxEmbedder(image_shape=image_shape, random_state=seed),
        KMeansBaseline(n_clusters, n_init=10, random_state=seed),
    )


def _iic_segmentation(seed, image_shape, n_clusters):
    from .segmentation import IICSegmentation

    return IICSegmentation(n_clusters, image_shape=image_shape, random_state=seed)


def _patch_kmeans(seed, image_shape, n_clusters):
    return PatchKMeans(n_clusters, random_state=seed)


class PatchKMeans:
    """The segmentation baseline: k-means on the ``patch x patch`` neighbourhood of every pixel.

    The centres are fitted on ``max_fit`` random pixels (all 819,200 pixels
    of 200 images of 64 x 64 took 4 minutes on one core for no gain in a
    trial), then every pixel is assigned to its nearest centre.

    Parameters
    ----------
    n_clusters : int
    patch : int, default=7
        Side of the patches (odd).
    max_fit : int, default=50000
        Pixels the centres are fitted on.
    random_state : int, default=None
    """

    def __init__(self, n_clusters, patch=7, max_fit=50_000, random_state=None):
        self.n_clusters, self.patch, self.max_fit, self.random_state = n_clusters, patch, max_fit, random_state

    def get_params(self, deep=True):
        return {"n_clusters": self.n_clusters, "patch": self.patch, "max_fit": self.max_fit,
                "random_state": self.random_state}

    def set_params(self, **params):
        for name, value in params.items():
            setattr(self, name, value)
        return self

    def fit_predict(self, images):
        """Label maps ``(n, H, W)`` of ``images``."""
        from .kmeans import KMeansBaseline
        from .segmentation import patch_features

        features = patch_features(images, self.patch)
        rng = np.random.default_rng(self.random_state)
        rows = rng.choice(len(features), min(self.max_fit, len(features)), replace=False)
        kmeans = KMeansBaseline(self.n_clusters, n_init=10, random_state=self.random_state)
        labels = kmeans.fit(features[rows]).predict(features)
        return labels.reshape(images.shape[0], *images.shape[-2:])


#: estimator name -> factory(seed, image_shape, n_clusters) -> estimator, with the
#: defaults but for ``n_clusters`` and ``random_state``; ``image_shape`` is for
#: flat rows of images (``skmic cluster --image-shape``): :func:`run_benchmark`
#: passes None and gives image datasets as image arrays instead
ESTIMATORS = {
    "kmeans": _kmeans,
    "sklearn-kmeans": _sklearn_kmeans,
    "iic": _iic,
    "dec": _dec,
    "idec": _idec,
    "dim-kmeans": _dim_kmeans,
    "iic-seg": _iic_segmentation,
    "kmeans-patch": _patch_kmeans,
}


#: named benchmark suites: ``skmic benchmark --suite NAME`` runs each
#: ``(estimators, datasets, seeds)`` group with the estimators' defaults.
#: "readme" is the README's results table (the datasets that need no download).
SUITES = {
    "readme": [
        (("kmeans", "iic", "dec", "dim-kmeans"), ("digits",), (0, 1, 2, 3, 4)),
        (("kmeans", "iic"), ("digits-flat",), (0, 1, 2)),
        (("kmeans", "iic", "dec"), ("wine", "breast_cancer"), (0, 1, 2)),
    ],
}

#: the markers around a generated table in a Markdown file (:func:`write_table_into`)
TABLE_START, TABLE_END = "<!-- benchmark-table:{} -->", "<!-- /benchmark-table:{} -->"


def run_suite(name, *, data_home=None, log=print):
    """Run the suite ``name`` of :data:`SUITES`; return its runs."""
    if name not in SUITES:
        raise ValueError(f"unknown suite {name!r}; choose from {sorted(SUITES)}.")
    runs = []
    for estimators, datasets, seeds in SUITES[name]:
        runs += run_benchmark(estimators, datasets, seeds, data_home=data_home, log=log)
    return runs


def suite_runs(name):
    """The runs of the suite ``name``: (estimator, dataset, seed) in the order :func:`run_suite` makes them."""
    if name not in SUITES:
        raise ValueError(f"unknown suite {name!r}; choose from {sorted(SUITES)}.")
    return [(e, d, s) for estimators, datasets, seeds in SUITES[name]
            for d in datasets for e in estimators for s in seeds]


def suite_coverage(name, runs):
    """What ``runs`` lack and hold beyond the suite ``name``: two sorted lists of (estimator, dataset, seed).

    A suite's table assembled from pieces (``skmic benchmark --merge ...
    --suite NAME``) must hold every run of the suite, once, with the
    defaults (no sweep configuration), and nothing else.
    """
    wanted = set(suite_runs(name))
    got = [(r["estimator"], r["dataset"], r["seed"]) for r in runs if r.get("configuration") is None]
    configured = [(r["estimator"], r["dataset"], r["seed"]) for r in runs if r.get("configuration") is not None]
    twice = {t for t in got if got.count(t) > 1}
    return sorted(wanted - set(got)), sorted((set(got) - wanted) | twice | set(configured))


def write_table_into(path, name, table, provenance):
    """Replace the table between the ``name`` markers of a Markdown file.

    The block between ``<!-- benchmark-table:NAME -->`` and
    ``<!-- /benchmark-table:NAME -->`` becomes ``table`` followed by the
    ``provenance`` line (command, commit, environment).

    Raises
    ------
    ValueError
        If the file lacks the markers.
    """
    path = Path(path)
    text = path.read_text()
    start, end = TABLE_START.format(name), TABLE_END.format(name)
    if text.count(start) != 1 or text.count(end) != 1 or text.index(start) > text.index(end):
        raise ValueError(f"{path} must hold the markers {start} ... {end} once, in that order.")
    head, rest = text.split(start)
    tail = rest.split(end)[1]
    path.write_text(f"{head}{start}\n{table}\n\n{provenance}\n{end}{tail}")


#: named sweeps: name -> (estimator, {configuration: parameters}). Each
#: configuration is one row of the table (``skmic benchmark --sweep NAME``,
#: ``--only`` to pick configurations, ``--params`` on top of every one). A
#: ``perturbation`` given as a dict is the keyword arguments of
#: :class:`skmic.perturbations.ImagePerturbation` (see :func:`resolve_params`).
SWEEPS = {
    # Deep InfoMax: the estimator and the weights of its objectives, for k-means on the codes
    "dim-ablation": ("dim-kmeans", {
        "DIM(L) paper: local JSD, prior 0.1": dict(perturbation=None, global_weight=0, local_weight=1, prior_weight=0.1),
        "local JSD, no prior": dict(perturbation=None, global_weight=0, local_weight=1, prior_weight=0),
        "global JSD": dict(perturbation=None, global_weight=1, local_weight=0, prior_weight=0),
        "global + local JSD": dict(perturbation=None, global_weight=1, local_weight=1, prior_weight=0),
        "affine view, global JSD": dict(perturbation="affine", global_weight=1, local_weight=0, prior_weight=0),
        "affine view, global JSD, prior 0.1": dict(
            perturbation="affine", global_weight=1, local_weight=0, prior_weight=0.1),
        "affine view, global + local JSD": dict(perturbation="affine", global_weight=1, local_weight=1, prior_weight=0),
        "affine view, global InfoNCE": dict(
            perturbation="affine", global_weight=1, local_weight=0, prior_weight=0, mi_estimator="infonce"),
        "affine view, global DV": dict(
            perturbation="affine", global_weight=1, local_weight=0, prior_weight=0, mi_estimator="dv"),
    }),
    # IIC's perturbation models, one restart each
    "iic-perturbations": ("iic", {
        "affine": dict(n_init=1, perturbation="affine"),
        "elastic": dict(n_init=1, perturbation="elastic"),
        "affine+elastic": dict(n_init=1, perturbation=("affine", "elastic")),
        "wasserstein": dict(n_init=1, perturbation="wasserstein"),
    }),
    # IIC on MNIST-sized images, one restart each
    "iic-mnist": ("iic", {
        "default": dict(n_init=1),
        "c16": dict(n_init=1, conv_channels=(16, 32, 64)),
        "c16-bs64": dict(n_init=1, conv_channels=(16, 32, 64), batch_size=64),
        "crop.7": dict(n_init=1, perturbation=dict(crop=(0.7, 1.0))),
        "c16-crop.7": dict(n_init=1, conv_channels=(16, 32, 64), perturbation=dict(crop=(0.7, 1.0))),
        "over5x": dict(n_init=1, overclustering=50),
        "c16-lr2e-3": dict(n_init=1, conv_channels=(16, 32, 64), learning_rate=2e-3),
    }),
    # IIC on pen trajectories as point sets, one restart each
    "iic-pendigits": ("iic", {
        "points": dict(n_init=1, perturbation="points"),
        "lamb1.3": dict(n_init=1, perturbation="points", lamb=1.3),
        "no-over": dict(n_init=1, perturbation="points", overclustering=0),
        "wide": dict(n_init=1, perturbation="points", hidden_layer_sizes=(512, 512)),
        "bs128": dict(n_init=1, perturbation="points", batch_size=128),
        "points+tabular": dict(n_init=1, perturbation=("points", "tabular")),
    }),
}


@dataclass(frozen=True)
class Probe:
    """Further columns of every run of a benchmark.

    Attributes
    ----------
    metrics : callable
        ``metrics(estimator, X, y, seed) -> dict`` on the fitted estimator
        and the data it was fitted on.
    summary : callable, optional
        ``summary(runs) -> str``: Markdown below the table, over all runs.
    """

    metrics: object
    summary: object = None


def _first_step(est):
    return est.steps[0][1] if hasattr(est, "steps") else est


def _rows(X):
    return np.asarray(X, dtype=np.float32).reshape(len(X), -1)


def _linear_probe_accuracy(Z, y):
    """5-fold cross-validated accuracy of a logistic regression on standardised ``Z``."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return float(np.mean(cross_val_score(make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)), Z, y, cv=5)))


def _kmeans_scores(Z, y, seed):
    from sklearn.metrics import normalized_mutual_info_score

    from .kmeans import KMeansBaseline
    from .metrics import cluster_accuracy

    labels = KMeansBaseline(len(np.unique(y)), random_state=seed).fit_predict(Z)
    return cluster_accuracy(y, labels), normalized_mutual_info_score(y, labels)


def _linear_probe(est, X, y, seed):
    """Deep InfoMax's codes against the raw inputs and PCA: linear probes, k-means, ``score``."""
    from sklearn.decomposition import PCA

    dim, raw = _first_step(est), _rows(X)
    Z = dim.transform(X)
    record = dict(
        score=float(dim.score(X)), probe_dim=_linear_probe_accuracy(Z, y), probe_raw=_linear_probe_accuracy(raw, y),
        probe_pca=_linear_probe_accuracy(PCA(Z.shape[1], random_state=seed).fit_transform(raw), y),
    )
    record["kmeans_raw_acc"], record["kmeans_raw_nmi"] = _kmeans_scores(raw, y, seed)
    return record


class _StopAfter:
    """A callback that stops training after epoch ``epoch`` of the stage ``stage``."""

    def __init__(self, stage, epoch):
        self.stage, self.epoch = stage, epoch

    def __call__(self, record):
        return record["stage"] == self.stage and record["epoch"] >= self.epoch


def _dec_scores(dec, X, y, seed):
    """Unsupervised scores of a DEC run next to its accuracy (which of them ranks the runs?).

    ``init_*``: the pretrained embedding with DEC's own k-means initialisation
    (the same fit stopped after pretraining, through a callback); ``final_*``:
    the final embedding with DEC's labels. ``within_total`` is the
    within-cluster over total sum of squares (lower is more compact);
    ``invariance`` (with a perturbation) the fraction of samples whose cluster
    a random perturbation leaves unchanged (mean over 5 draws).
    """
    import torch
    from sklearn.base import clone
    from sklearn.metrics import silhouette_score

    from .dec import compactness
    from .metrics import cluster_accuracy
    from .perturbations import make_perturbation

    Z = dec.transform(X)
    record = dict(final_kl=dec.history_[-1]["loss"], final_within_total=float(dec.restart_losses_.min()),
                  final_silhouette=float(silhouette_score(Z, dec.labels_)))
    if dec.pretrain_history_:
        record["pretrain_loss"] = dec.pretrain_history_[-1]["loss"]
        stop = _StopAfter(dec.pretrain_history_[-1]["stage"], dec.pretrain_epochs_)
        pretrained = clone(dec).set_params(callbacks=[stop], verbose=0).fit(X)
        Z0, init = pretrained.transform(X), pretrained.labels_
        record.update(init_acc=cluster_accuracy(y, init), init_silhouette=float(silhouette_score(Z0, init)),
                      init_within_total=compactness(torch.as_tensor(Z0), torch.as_tensor(init), dec.n_clusters))
    if dec.perturbation_ is not None:
        g = make_perturbation(dec.perturbation_, dec.image_shape_)
        generator, rows = torch.Generator().manual_seed(seed), torch.as_tensor(_rows(X))
        record["invariance"] = float(np.mean([
            np.mean(dec.predict(g(rows, generator).numpy().reshape(X.shape)) == dec.labels_) for _ in range(5)
        ]))
    return record


def _spearman_with_acc(runs):
    """Markdown: the Spearman correlation of every probe score with ACC over the runs."""
    from scipy.stats import spearmanr

    scores = [k for k in ("pretrain_loss", "init_within_total", "init_silhouette", "final_kl",
                          "final_within_total", "final_silhouette", "invariance") if all(k in r for r in runs)]
    if len(runs) < 3 or not scores:
        return ""
    acc = [r["acc"] for r in runs]
    return "| score | Spearman correlation with ACC |\n|---|---|\n" + "\n".join(
        f"| {k} | {spearmanr([r[k] for r in runs], acc)[0]:+.2f} |" for k in scores
    )


def _perturbation_rate(est, X, y, seed):
    """Perturbed images per second of the fitted estimator's perturbation alone (5 x 1024 rows a call)."""
    import torch

    from .perturbations import make_perturbation

    first = _first_step(est)
    if getattr(first, "perturbation_", None) is None:
        return {}
    g = make_perturbation(first.perturbation_, first.image_shape_)
    device = first.device_
    x = torch.as_tensor(_rows(X)[:1024], device=device).repeat(5, 1)
    generator = torch.Generator(device).manual_seed(seed)
    g(x, generator)  # warm-up
    _synchronize()
    start = time.perf_counter()
    for _ in range(3):
        g(x, generator)
    _synchronize()
    return {"perturbed_images_per_s": 3 * len(x) / (time.perf_counter() - start)}


def _iic_selection(est, X, y, seed):
    """IIC's ACC by each prediction rule of several kept restarts, on the same fitted network."""
    import copy

    from .metrics import cluster_accuracy

    first = _first_step(est)
    rules = ("self_labeling", "kmeans", "consensus")
    if getattr(first, "selection_", None) not in rules:
        return {}
    X = first._check_fitted_input(X)
    out = {}
    for rule in rules:
        other = copy.copy(first)
        other.selection_ = rule
        other._fit_prediction(X)
        out[f"acc_{rule}"] = cluster_accuracy(y, other.labels_)
    return out


def _dec_restarts(dec, X, y, seed):
    """ACC of each of DEC's runs (``restart_labels_``), which one was kept, and the best and worst.

    With three runs (clustering phases) or more, also the ACC that two label-free rules
    would keep among the first three and among all: ``agreement<k>_acc`` (the medoid by
    mean ARI, DEC's ``selection="agreement"``) and ``balance<k>_acc`` (the most balanced
    cluster sizes, the rule of ``kmeans_selection="balance"``).
    """
    from .dec import agreement, balance
    from .metrics import cluster_accuracy

    acc = [float(cluster_accuracy(y, labels)) for labels in dec.restart_labels_]
    record = {f"run{r + 1}_acc": a for r, a in enumerate(acc)}
    record.update(kept_run=int(dec.kept_restarts_[0]) + 1, best_run_acc=max(acc), worst_run_acc=min(acc))
    for k in sorted({3, len(acc)} if len(acc) >= 3 else ()):
        labelings = dec.restart_labels_[:k]
        record[f"agreement{k}_acc"] = acc[int(np.argmax(agreement(labelings)))]
        record[f"balance{k}_acc"] = acc[int(np.argmax(balance(labelings, int(labelings.max()) + 1)))]
    return record


#: named probes: ``skmic benchmark --probes NAME ...`` adds their columns to every run
PROBES = {
    "iic-selection": Probe(_iic_selection),
    "linear-probe": Probe(_linear_probe),
    "dec-scores": Probe(_dec_scores, _spearman_with_acc),
    "dec-restarts": Probe(_dec_restarts),
    "perturbation-rate": Probe(_perturbation_rate),
}


def resolve_params(params, image_shape):
    """``params`` with a dict ``perturbation`` made an :class:`~skmic.perturbations.ImagePerturbation`.

    The command line can name a perturbation but not build one; a dict of
    ImagePerturbation's keyword arguments stands for it (the images' shape
    comes from the dataset). Lists become tuples, as the estimators'
    defaults are.
    """
    out = {k: tuple(v) if isinstance(v, list) else v for k, v in (params or {}).items()}
    if isinstance(out.get("perturbation"), dict):
        from .perturbations import ImagePerturbation

        if image_shape is None:
            raise ValueError("a perturbation given as ImagePerturbation keyword arguments needs an image dataset.")
        out["perturbation"] = ImagePerturbation(image_shape, **out["perturbation"])
    return out


def run_benchmark(
    estimators,
    datasets,
    seeds=(0, 1, 2),
    *,
    data_home=None,
    params=None,
    configurations=None,
    probes=(),
    extra_metrics=None,
    log=print,
):
    """Fit every estimator on every dataset with every seed (and every configuration).

    Parameters
    ----------
    estimators : sequence of str
        Names in :data:`ESTIMATORS`.
    datasets : sequence of str
        Names in :data:`DATASETS`.
    seeds : sequence of int
    data_home : str, optional
        Directory of the local datasets (see :func:`skmic.datasets.get_data_home`).
    params : dict, optional
        ``set_params`` keyword arguments, each applied to the estimators (or
        Pipeline steps) that take it; an argument that none takes is an error.
        See :func:`resolve_params` for a dict ``perturbation``.
    configurations : dict, optional
        ``{label: params}``: each estimator runs once per configuration, its
        parameters on top of ``params``, and its records carry the label
        (``configuration``); :data:`SWEEPS` holds named ones.
    probes : sequence of str
        Names in :data:`PROBES`, whose columns every record gets.
    extra_metrics : callable, optional
        ``extra_metrics(estimator, X, y) -> dict`` of further columns.
    log : callable
        Receives one line per finished run.

    Returns
    -------
    runs : list of dict
        One record per (dataset, estimator, configuration, seed).
    """
    code_version()  # the commit of the code that runs, before anything else can change it
    for name in estimators:
        if name not in ESTIMATORS:
            raise ValueError(f"unknown estimator {name!r}; choose from {sorted(ESTIMATORS)}.")
    for name in probes:
        if name not in PROBES:
            raise ValueError(f"unknown probe {name!r}; choose from {sorted(PROBES)}.")
    configurations = configurations or {None: {}}
    given = {k: v for config in configurations.values() for k, v in {**(params or {}), **config}.items()}
    if given:
        known = set().union(*(_matching_params(ESTIMATORS[n](0, None, 2), given, original=True) for n in estimators))
        unknown = set(given) - known
        if unknown:
            raise ValueError(f"no estimator among {list(estimators)} takes the parameters {sorted(unknown)}.")
    runs = []
    for dataset in datasets:
        for name in estimators:
            for label, config in configurations.items():
                for seed in seeds:
                    X, y, image_shape = _load_cached(dataset, data_home, seed)
                    est = ESTIMATORS[name](seed, None, _n_classes(y))
                    X_in = _input_for(est, X, image_shape)
                    chosen = resolve_params({**(params or {}), **config}, _shape_of(X_in, image_shape))
                    est.set_params(**_matching_params(est, chosen))
                    record = fit_and_score(est, X_in, y, dataset=dataset, estimator=name, seed=seed)
                    if label is not None:
                        record["configuration"] = label
                    for probe in probes:
                        record.update(PROBES[probe].metrics(est, X_in, y, seed))
                    if extra_metrics is not None:
                        record.update(extra_metrics(est, X_in, y))
                    runs.append(record)
                    log(
                        f"{dataset:>14} {name:>16}{' ' + label if label else ''} seed={seed} "
                        f"acc={record['acc']:.4f} nmi={record['nmi']:.4f} ari={record['ari']:.4f} "
                        f"t={record['fit_time_s']:.2f}s"
                    )
    return runs


@functools.lru_cache(maxsize=2)
def _load_unseeded(dataset, data_home):
    return load_dataset(dataset, data_home)


def _load_cached(dataset, data_home, seed):
    """The dataset of one run: drawn for ``seed`` when seeded, else loaded once."""
    if dataset in SEEDED_DATASETS:
        return load_dataset(dataset, data_home, seed)
    return _load_unseeded(dataset, data_home)


def _shape_of(X, image_shape):
    """``(C, H, W)`` of image input, or None for tables."""
    if X.ndim == 3:
        return (1, *X.shape[1:])
    if X.ndim == 4:
        return X.shape[1:]
    return tuple(image_shape) if image_shape is not None else None


def _input_for(est, X, image_shape):
    """``X`` as images ``(n, C, H, W)`` for an estimator that takes images, as flat rows otherwise.

    The deep estimators get image datasets as image arrays, as a user would
    pass them, with nothing but ``n_clusters`` and ``random_state`` set.
    """
    first = _first_step(est)
    if image_shape is None or not getattr(first, "_takes_images", False):
        return X
    return X.reshape((-1,) + tuple(image_shape))


def _synchronize():
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()


def fit_and_score(est, X, y, *, dataset, estimator, seed):
    """Time ``est.fit_predict(X)`` and score its labels: one record of a results table.

    Parameters
    ----------
    est : clusterer
    X, y : arrays
        With label maps ``y`` of shape ``(n, H, W)`` (segmentation), the
        scores are over all pixels (:func:`skmic.metrics.pixel_accuracy`).
    dataset, estimator : str
        Names the record carries.
    seed : int

    Returns
    -------
    record : dict
        ``dataset``, ``estimator`` (followed by `` (W processes)`` for a fit
        by the ``W`` processes of a ``torch.distributed`` group), ``seed``,
        ``n_samples``, ``acc``, ``nmi``, ``ari``, ``fit_time_s``,
        ``cpu_time_s`` (CPU seconds of all this process's threads: on a
        shared machine the wall time also counts other processes' work, this
        does not), and ``inertia`` or IIC's sub-head scores where the
        estimator has them.
    """
    start, cpu_start = time.perf_counter(), time.process_time()
    labels = est.fit_predict(X)
    _synchronize()
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    world = getattr(est[-1] if hasattr(est, "steps") else est, "world_size_", 1)
    if world > 1:  # a fit by the processes of a torch.distributed group
        estimator = f"{estimator} ({world} processes)"
    record = {"dataset": dataset, "estimator": estimator, "seed": seed, "n_samples": int(X.shape[0]),
              **score_labels(y, labels), "fit_time_s": elapsed, "cpu_time_s": cpu}
    if hasattr(est, "inertia_"):
        record["inertia"] = float(est.inertia_)
    if np.ndim(labels) == 1:
        record.update(_subhead_scores(est, X, y))
    return record


def score_labels(y, labels):
    """``{"acc", "nmi", "ari"}`` of ``labels`` against the truth ``y``.

    Hungarian accuracy (:func:`skmic.metrics.cluster_accuracy`), NMI and ARI;
    for label maps of shape ``(n, H, W)`` over all pixels
    (:func:`skmic.metrics.pixel_accuracy`). Also scores a peer's labels
    (``benchmarks/peers/``) the way the harness scores its own.
    """
    from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

    from .metrics import cluster_accuracy, pixel_accuracy

    y, labels = np.asarray(y), np.asarray(labels)
    pixels = labels.ndim > 1
    truth, pred = (y.ravel(), labels.ravel()) if pixels else (y, labels)
    return {
        "acc": pixel_accuracy(y, labels) if pixels else cluster_accuracy(y, labels),
        "nmi": normalized_mutual_info_score(truth, pred),
        "ari": adjusted_rand_score(truth, pred),
    }


def _subhead_scores(est, X, y):
    """Mean and worst ACC over the main sub-heads of IIC's kept restarts (what the selection guards against)."""
    if not hasattr(est, "_head_proba"):
        return {}
    from .metrics import cluster_accuracy

    labels = est._head_proba(est._check_fitted_input(X)).argmax(2)
    accs = [cluster_accuracy(y, labels[:, h]) for h in range(labels.shape[1])]
    return {"subhead_mean_acc": float(np.mean(accs)), "subhead_worst_acc": float(min(accs))}


def _matching_params(est, params, original=False):
    """The entries of ``params`` that ``est`` takes, as ``set_params`` keys.

    A name matches a parameter of the estimator or, for a Pipeline, of any
    of its steps (``step__name``), never one of the Pipeline's own
    (``verbose``, ``memory``). With ``original=True`` return the matched
    names of ``params`` instead.
    """
    keys = est.get_params()
    if hasattr(est, "steps"):
        keys = [key for key in keys if "__" in key]
    out = {}
    for name, value in params.items():
        for key in keys:
            if key == name or key.endswith("__" + name):
                out[name if original else key] = value
    return out


def _summary(values):
    med = statistics.median(values)
    if len(values) == 1:
        return f"{med:.4g}"
    return f"{med:.4g} [{min(values):.4g}, {max(values):.4g}]"


#: the columns of a record that name its group rather than measure it
_KEYS = ("dataset", "estimator", "configuration", "seed", "n_samples")


def format_table(runs, columns=None):
    """Markdown table: median [min, max] over seeds per (dataset, estimator, configuration).

    The one formatter of every benchmark: ``columns`` (by default ACC, NMI,
    ARI, fit time and inertia, those the runs have) and then every other
    numeric column the runs carry (probes, sub-heads), in name order. The
    configuration column appears when a run has one (:data:`SWEEPS`).
    """
    columns = columns or [c for c in ("acc", "nmi", "ari", "fit_time_s", "inertia") if any(c in r for r in runs)]
    extra = sorted({k for r in runs for k in r} - set(columns) - set(_KEYS))
    columns = columns + [
        c for c in extra if all(isinstance(r.get(c), (int, float)) and not isinstance(r.get(c), bool) for r in runs if c in r)
    ]
    keys = ["dataset", "estimator"] + ["configuration"] * any("configuration" in r for r in runs)
    groups = {}
    for r in runs:
        groups.setdefault(tuple(r.get(k, "") for k in keys), []).append(r)
    lines = [
        "| " + " | ".join(keys) + " | seeds | " + " | ".join(columns) + " |",
        "|---" * (len(keys) + 1) + "|" + "---|" * len(columns),
    ]
    for group, rs in groups.items():
        cells = [_summary([r[c] for r in rs if c in r]) if any(c in r for r in rs) else "" for c in columns]
        lines.append("| " + " | ".join(map(str, group)) + f" | {len(rs)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


@functools.cache
def code_version():
    """The git commit of the skmic source that runs (``+dirty`` with uncommitted changes), or ``unknown``.

    Taken once per process, at the first call: the benchmark functions call
    it when they start, so that a commit made while they run is not recorded."""
    import subprocess

    root = Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"], cwd=root, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no", "--", "skmic"], cwd=root,
            capture_output=True, text=True, check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return commit + ("+dirty" if dirty else "")


def environment():
    """A one-line description of where the benchmark ran: commit, versions, threads, device.

    The CPU's vector instruction set that torch uses is named too (e.g.
    AVX512): the same code and seed round differently on AVX2 and AVX-512
    machines, and deep clustering's labels follow the rounding.
    """
    import torch

    device = torch.cuda.get_device_name() if torch.cuda.is_available() else "CPU only"
    return (
        f"skmic {code_version()}, python {platform.python_version()}, torch {torch.__version__} "
        f"({torch.get_num_threads()} threads), {platform.processor() or platform.machine()} "
        f"{torch.backends.cpu.get_cpu_capability()}, {device}"
    )


def save_results(runs, name, out_dir="benchmarks/results", command=None, notes="", env=None):
    """Write ``<name>.md`` (table, command, environment) and ``<name>.json``.

    ``env`` describes where the runs ran (default: this process, :func:`environment`).
    """
    env = env or environment()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    command = command or " ".join(sys.argv)
    table = format_table(runs)
    text = (
        f"# {name}\n\nCommand: `{command}`\n\nEnvironment: {env}\n\n"
        f"Median [min, max] over seeds.\n\n{table}\n"
    )
    if notes:
        text += f"\n{notes}\n"
    (out / f"{name}.md").write_text(text)
    (out / f"{name}.json").write_text(
        json.dumps({"command": command, "environment": env, "runs": runs}, indent=1)
    )
    return table


def merge_results(pieces):
    """One results file's content from the pieces of a run split up (seeds over cores or machines).

    Parameters
    ----------
    pieces : sequence of dict
        The contents of results ``.json`` files (:func:`save_results`).

    Returns
    -------
    runs : list of dict
        The pieces' runs, concatenated.
    command, environment : str
        The pieces' commands, and their distinct environments, joined by `` ; ``.
    """
    runs = [r for piece in pieces for r in piece["runs"]]
    commands = " ; ".join(piece["command"] for piece in pieces)
    return runs, commands, " ; ".join(dict.fromkeys(piece["environment"] for piece in pieces))
