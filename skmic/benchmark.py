"""The benchmark harness: estimators x datasets x seeds -> a results table.

Each run fits a fresh estimator (``fit_predict``), times it, and scores the
labels with Hungarian accuracy (ACC), NMI and ARI. The table reports the
median and the spread (min-max) over seeds and is written as Markdown and
JSON under ``benchmarks/results/``. Estimators and datasets are registered by
name, so ``benchmarks/run.py`` and ``skmic benchmark`` can name them.

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
from pathlib import Path

import numpy as np

__all__ = ["DATASETS", "ESTIMATORS", "SUITES", "load_dataset", "run_benchmark", "run_suite", "format_table"]


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


#: dataset name -> loader(data_home) -> (X float32, y, image_shape or None)
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
}


def load_dataset(name, data_home=None):
    """``(X, y, image_shape)`` of a registered dataset."""
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; choose from {sorted(DATASETS)}.")
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


def run_benchmark(
    estimators,
    datasets,
    seeds=(0, 1, 2),
    *,
    data_home=None,
    params=None,
    extra_metrics=None,
    log=print,
):
    """Fit every estimator on every dataset with every seed.

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
    extra_metrics : callable, optional
        ``extra_metrics(estimator, X, y) -> dict`` of further columns.
    log : callable
        Receives one line per finished run.

    Returns
    -------
    runs : list of dict
        One record per (dataset, estimator, seed).
    """
    code_version()  # the commit of the code that runs, before anything else can change it
    for name in estimators:
        if name not in ESTIMATORS:
            raise ValueError(f"unknown estimator {name!r}; choose from {sorted(ESTIMATORS)}.")
    if params:
        known = set().union(*(_matching_params(ESTIMATORS[n](0, None, 2), params, original=True) for n in estimators))
        unknown = set(params) - known
        if unknown:
            raise ValueError(f"no estimator among {list(estimators)} takes the parameters {sorted(unknown)}.")
    runs = []
    for dataset in datasets:
        X, y, image_shape = load_dataset(dataset, data_home)
        for name in estimators:
            for seed in seeds:
                est = ESTIMATORS[name](seed, None, _n_classes(y))
                if params:
                    est.set_params(**_matching_params(est, params))
                X_in = _input_for(est, X, image_shape)
                record = fit_and_score(est, X_in, y, dataset=dataset, estimator=name, seed=seed)
                if extra_metrics is not None:
                    record.update(extra_metrics(est, X_in, y))
                runs.append(record)
                log(
                    f"{dataset:>14} {name:>16} seed={seed} acc={record['acc']:.4f} "
                    f"nmi={record['nmi']:.4f} ari={record['ari']:.4f} t={record['fit_time_s']:.2f}s"
                )
    return runs


def _input_for(est, X, image_shape):
    """``X`` as images ``(n, C, H, W)`` for an estimator that takes images, as flat rows otherwise.

    The deep estimators get image datasets as image arrays, as a user would
    pass them, with nothing but ``n_clusters`` and ``random_state`` set.
    """
    first = est.steps[0][1] if hasattr(est, "steps") else est
    if image_shape is None or not getattr(first, "_takes_images", False):
        return X
    return X.reshape((-1,) + tuple(image_shape))


def fit_and_score(est, X, y, *, dataset, estimator, seed):
    """Time ``est.fit_predict(X)`` and score its labels: one record of a results table.

    Parameters
    ----------
    est : clusterer
    X, y : arrays
    dataset, estimator : str
        Names the record carries.
    seed : int

    Returns
    -------
    record : dict
        ``dataset``, ``estimator``, ``seed``, ``n_samples``, ``acc``, ``nmi``,
        ``ari``, ``fit_time_s``, and ``inertia`` or IIC's sub-head scores
        where the estimator has them.
    """
    import torch
    from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

    from .metrics import cluster_accuracy

    start = time.perf_counter()
    labels = est.fit_predict(X)
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    record = {
        "dataset": dataset,
        "estimator": estimator,
        "seed": seed,
        "n_samples": int(X.shape[0]),
        "acc": cluster_accuracy(y, labels),
        "nmi": normalized_mutual_info_score(y, labels),
        "ari": adjusted_rand_score(y, labels),
        "fit_time_s": time.perf_counter() - start,
    }
    if hasattr(est, "inertia_"):
        record["inertia"] = float(est.inertia_)
    record.update(_subhead_scores(est, X, y))
    return record


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


def format_table(runs, columns=None):
    """Markdown table: median [min, max] over seeds per (dataset, estimator)."""
    columns = columns or [c for c in ("acc", "nmi", "ari", "fit_time_s", "inertia") if any(c in r for r in runs)]
    extra = sorted({k for r in runs for k in r} - set(columns) - {"dataset", "estimator", "seed", "n_samples"})
    columns = columns + [c for c in extra if all(isinstance(r.get(c), (int, float)) for r in runs if c in r)]
    groups = {}
    for r in runs:
        groups.setdefault((r["dataset"], r["estimator"]), []).append(r)
    lines = [
        "| dataset | estimator | seeds | " + " | ".join(columns) + " |",
        "|---|---|---|" + "---|" * len(columns),
    ]
    for (dataset, name), rs in groups.items():
        cells = [_summary([r[c] for r in rs if c in r]) if any(c in r for r in rs) else "" for c in columns]
        lines.append(f"| {dataset} | {name} | {len(rs)} | " + " | ".join(cells) + " |")
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
    """A one-line description of where the benchmark ran: commit, versions, threads, device."""
    import torch

    device = torch.cuda.get_device_name() if torch.cuda.is_available() else "CPU only"
    return (
        f"skmic {code_version()}, python {platform.python_version()}, torch {torch.__version__} "
        f"({torch.get_num_threads()} threads), {platform.processor() or platform.machine()}, "
        f"{device}"
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
