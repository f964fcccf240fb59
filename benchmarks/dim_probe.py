"""Linear probes on Deep InfoMax codes, against raw pixels and PCA.

For each seed: fit DeepInfoMaxEmbedder (unsupervised), then score a
cross-validated logistic regression on (a) the codes, (b) the raw inputs and
(c) PCA with as many components as the codes; also k-means (ACC/NMI) on the
codes and on the raw inputs. Writes benchmarks/results/<name>.md and .json.

Example::

    python benchmarks/dim_probe.py --dataset digits --seeds 0 1 2 --name dim_probe_digits_cpu
"""

import argparse
import json
import shlex
import sys
import time
from pathlib import Path

import numpy as np
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import normalized_mutual_info_score
from sklearn.model_selection import cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from skmic import DeepInfoMaxEmbedder, KMeansBaseline
from skmic.benchmark import environment, load_dataset
from skmic.metrics import cluster_accuracy


def probe(Z, y, seed):
    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    return float(np.mean(cross_val_score(clf, Z, y, cv=5)))


def kmeans_scores(Z, y, seed):
    labels = KMeansBaseline(len(np.unique(y)), random_state=seed).fit_predict(Z)
    return cluster_accuracy(y, labels), normalized_mutual_info_score(y, labels)


def parse_args(description, dataset, seeds, json_options=()):
    """The command line shared by the benchmark scripts; returns (args, X, y, image_shape).

    ``json_options``: names of further options that take JSON (default ``{}``).
    """
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--dataset", default=dataset)
    p.add_argument("--seeds", nargs="+", type=int, default=seeds)
    for name in ("params", *json_options):
        p.add_argument(f"--{name}", type=json.loads, default={})
    p.add_argument("--data-home")
    p.add_argument("--name", required=True)
    p.add_argument("--out-dir", default="benchmarks/results")
    args = p.parse_args()
    return (args, *load_dataset(args.dataset, args.data_home))


def save(args, script, description, table, rows):
    """Write ``<out-dir>/<name>.md`` (command, environment, description, table) and ``.json`` (rows)."""
    command = f"python benchmarks/{script} " + shlex.join(sys.argv[1:])
    text = f"# {args.name}\n\nCommand: `{command}`\n\nEnvironment: {environment()}\n\n{description}\n\n{table}\n"
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{args.name}.md").write_text(text)
    (out / f"{args.name}.json").write_text(json.dumps(dict(command=command, environment=environment(), runs=rows), indent=1))
    return text


def main():
    args, X, y, shape = parse_args(__doc__.splitlines()[0], "digits", [0, 1, 2])
    rows = []
    for seed in args.seeds:
        start = time.perf_counter()
        dim = DeepInfoMaxEmbedder(image_shape=shape, random_state=seed, **args.params).fit(X)
        fit_time = time.perf_counter() - start
        Z = dim.transform(X)
        k = Z.shape[1]
        row = dict(seed=seed, fit_time_s=fit_time, score=dim.score(X))
        row["probe_dim"] = probe(Z, y, seed)
        row["probe_raw"] = probe(X, y, seed)
        row["probe_pca"] = probe(PCA(k, random_state=seed).fit_transform(X), y, seed)
        row["kmeans_dim_acc"], row["kmeans_dim_nmi"] = kmeans_scores(Z, y, seed)
        row["kmeans_raw_acc"], row["kmeans_raw_nmi"] = kmeans_scores(X, y, seed)
        rows.append(row)
        print(json.dumps(row), flush=True)
    cols = [c for c in rows[0] if c != "seed"]
    med = {c: float(np.median([r[c] for r in rows])) for c in cols}
    lo = {c: float(np.min([r[c] for r in rows])) for c in cols}
    hi = {c: float(np.max([r[c] for r in rows])) for c in cols}
    table = "| metric | median [min, max] |\n|---|---|\n" + "\n".join(
        f"| {c} | {med[c]:.4g} [{lo[c]:.4g}, {hi[c]:.4g}] |" for c in cols
    )
    save(args, "dim_probe.py", f"Dataset {args.dataset}, seeds {args.seeds}, DIM parameters "
         f"{args.params or 'defaults'}. Probes: 5-fold cross-validated logistic regression on "
         "standardised features.", table, rows)
    print(table)

if __name__ == "__main__":
    main()
