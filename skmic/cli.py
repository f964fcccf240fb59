"""Command line: ``skmic demo | cluster | benchmark`` (also ``python -m skmic``)."""

import argparse
import pickle
import sys
import warnings
from pathlib import Path

import numpy as np

from .benchmark import DATASETS, ESTIMATORS, _matching_params, format_table, run_benchmark, save_results


class CLIError(Exception):
    """A user error: printed as one line, exit status 2."""

#: the estimators the demo runs on scikit-learn's digits, with short budgets
#: (``set_params`` arguments; the estimators' defaults train longer). DIM uses
#: its recommended setting for images (see DeepInfoMaxEmbedder), not the
#: paper's DIM(L) defaults, which fall below k-means on raw pixels here.
DEMO_ESTIMATORS = {
    "kmeans": {},
    "iic": {"n_init": 1, "max_epochs": 20, "perturbation": "elastic"},
    "dec": {"pretrain_epochs": 30, "max_iter": 500},
    "dim-kmeans": {"perturbation": ["elastic", "affine"], "alpha": 1.0, "beta": 0.0, "gamma": 0.0, "batch_size": 128},
}


def demo(args):
    """Cluster scikit-learn's bundled digits with every estimator; print a table, save a figure."""
    print("Clustering scikit-learn's digits (1797 images of 8x8) with", ", ".join(DEMO_ESTIMATORS))
    print("(short training budgets; see benchmarks/results/ for full runs)")
    runs, fitted = [], []

    def keep_labels(estimator, X, y):
        fitted.append((X, y, estimator[-1].labels_ if hasattr(estimator, "steps") else estimator.labels_))
        return {}

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # short budgets: convergence warnings are expected here
        for name, params in DEMO_ESTIMATORS.items():
            runs += run_benchmark([name], ["digits"], seeds=[args.seed], params=params, extra_metrics=keep_labels)
    print(format_table(runs))
    if args.figure:
        _demo_figure(runs, fitted, args.figure)
        print(f"figure: {args.figure}")
    return 0


def _demo_figure(runs, fitted, path):
    """One row per estimator: the mean image of each cluster, under the class it matches."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .metrics import remap_labels

    fig, axes = plt.subplots(len(runs), 10, figsize=(10, 1.15 * len(runs) + 0.3), squeeze=False)
    for row, (run, (X, y, labels)) in zip(axes, zip(runs, fitted)):
        matched = remap_labels(y, labels)
        for ax, cls in zip(row, range(10)):
            members = matched == cls
            ax.imshow(X[members].mean(0).reshape(8, 8) if members.any() else np.zeros((8, 8)), cmap="gray_r")
            ax.set_xticks([]), ax.set_yticks([])
        row[0].set_ylabel(f"{run['estimator']}\nACC {run['acc']:.2f}", rotation=0, ha="right", va="center", fontsize=8)
    fig.suptitle("Mean image of each cluster, placed under the digit it matches (Hungarian)", fontsize=9)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)


def read_table(path):
    """Read a numeric matrix from .csv (header or not), .npy, .npz or .parquet."""
    path = Path(path)
    if not path.is_file():
        raise CLIError(f"{path}: no such file")
    suffix = path.suffix.lower()
    try:
        if suffix == ".npy":
            X = np.load(path, allow_pickle=False)
        elif suffix == ".npz":
            with np.load(path, allow_pickle=False) as z:
                X = z["X"] if "X" in z.files else z[z.files[0]]
        elif suffix == ".parquet":
            import pandas as pd

            X = pd.read_parquet(path)
        elif suffix in (".csv", ".txt"):
            import pandas as pd

            X = pd.read_csv(path, header=0 if _has_header(path) else None)
        else:
            raise CLIError(f"{path}: unsupported format {suffix!r} (use .csv, .npy, .npz or .parquet)")
    except CLIError:
        raise
    except Exception as exc:  # parsers raise many kinds; the user needs one line
        raise CLIError(f"{path}: cannot read it ({type(exc).__name__}: {str(exc).splitlines()[0]})") from None
    X = X if hasattr(X, "columns") else np.asarray(X)
    if hasattr(X, "columns"):
        from pandas.api.types import is_numeric_dtype

        bad = [c for c in X.columns if not is_numeric_dtype(X[c])]
        if bad:
            raise CLIError(f"{path}: non-numeric columns {bad[:5]}; keep only numeric features")
    return X


def _has_header(path):
    with open(path) as f:
        first = f.readline().strip()
    try:
        [float(v) for v in first.split(",")]
    except ValueError:
        return True
    return False


def _image_shape(text):
    if text is None:
        return None
    try:
        return tuple(int(v) for v in text.split(","))
    except ValueError:
        raise CLIError(f"--image-shape must be C,H,W or H,W integers, got {text!r}") from None


def cluster(args):
    """Fit one estimator on a file and write one label per row."""
    X = read_table(args.input)
    image_shape = _image_shape(args.image_shape)
    est = ESTIMATORS[args.method](args.seed, image_shape, args.n_clusters)
    params = {"device": args.device, "verbose": args.verbose}
    est.set_params(**_matching_params(est, params))
    try:
        labels = est.fit_predict(X)
    except (ValueError, TypeError) as exc:
        raise CLIError(str(exc).splitlines()[0]) from None
    columns = {"label": labels}
    if args.proba:
        if not hasattr(est, "predict_proba"):
            raise CLIError(f"--proba: {args.method} gives no probabilities")
        proba = est.predict_proba(X)
        columns.update({f"p{k}": proba[:, k] for k in range(proba.shape[1])})
    import pandas as pd

    pd.DataFrame(columns).to_csv(args.output, index=False)
    if args.save_model:
        Path(args.save_model).write_bytes(pickle.dumps(est))
    print(f"wrote {len(labels)} labels ({len(np.unique(labels))} clusters) to {args.output}")
    return 0


def benchmark(args):
    """Front end of the benchmark harness."""
    runs = run_benchmark(args.estimators, args.datasets, args.seeds, data_home=args.data_home)
    table = format_table(runs)
    if args.name:
        save_results(runs, args.name, args.out_dir, command="skmic benchmark " + " ".join(sys.argv[2:]))
    print(table)
    return 0


def build_parser():
    parser = argparse.ArgumentParser(prog="skmic", description="Deep clustering by mutual information.")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("demo", help="cluster scikit-learn's digits with every estimator")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--figure", default="skmic_demo.png", help="where to save the figure ('' for none)")
    p.set_defaults(func=demo)

    p = sub.add_parser("cluster", help="cluster the rows of a .csv/.npy/.npz/.parquet file")
    p.add_argument("input")
    p.add_argument("--method", choices=["iic", "dec", "dim-kmeans", "kmeans"], default="iic")
    p.add_argument("--n-clusters", type=int, required=True)
    p.add_argument("--image-shape", help="C,H,W (or H,W) when rows are flattened images")
    p.add_argument("--device", default="auto")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--output", required=True, help="CSV with one label per row")
    p.add_argument("--proba", action="store_true", help="also write the cluster probabilities")
    p.add_argument("--save-model", help="pickle the fitted estimator here")
    p.add_argument("--verbose", type=int, default=1, help="0 silent, 1 progress bars")
    p.set_defaults(func=cluster)

    p = sub.add_parser("benchmark", help="run estimators on datasets and print the results table")
    p.add_argument("--estimators", nargs="+", choices=sorted(ESTIMATORS), required=True)
    p.add_argument("--datasets", nargs="+", choices=sorted(DATASETS), required=True)
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--data-home")
    p.add_argument("--name", help="also save benchmarks/results/<name>.md and .json")
    p.add_argument("--out-dir", default="benchmarks/results")
    p.set_defaults(func=benchmark)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except CLIError as exc:
        print(f"skmic {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
