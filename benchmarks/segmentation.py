"""IICSegmentation against k-means on patches, on procedural texture mosaics.

For every number of classes and seed, ``make_texture_mosaics(n_images, size,
n_classes, random_state=seed)`` draws fresh images; IICSegmentation with its
default parameters (only ``n_clusters`` and ``random_state`` set, plus any
``--params``) and the k-means baseline (KMeansBaseline on the ``--patch``
x ``--patch`` neighbourhood of every pixel, :func:`skmic.segmentation.patch_features`)
segment them, and the pixel accuracy (Hungarian matching over all pixels of
all images, :func:`skmic.metrics.pixel_accuracy`), NMI and ARI over pixels
and the fit time are recorded. The records and the results files have the
format of the benchmark harness (:func:`skmic.benchmark.save_results`);
the harness's registry (:data:`skmic.benchmark.DATASETS`) holds tables with
one label per row, which per-pixel labels are not, hence this script.

Example (the acceptance benchmark, 2 CPU threads)::

    python benchmarks/segmentation.py --classes 4 --seeds 0 1 2 --threads 2 \\
        --name segmentation_mosaics4_cpu
"""

import argparse
import json
import shlex
import subprocess
import sys
import time

import numpy as np
import torch
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

from skmic import IICSegmentation, KMeansBaseline
from skmic.benchmark import save_results
from skmic.datasets import make_texture_mosaics
from skmic.metrics import pixel_accuracy
from skmic.segmentation import patch_features


class PatchKMeans:
    """The baseline: k-means on the flattened ``patch x patch`` neighbourhood of every pixel.

    The centres are fitted on ``max_fit`` random pixels (the full 819,200
    pixels of 200 64x64 images took 4 minutes on one core for no gain in
    a trial), then every pixel is assigned to its nearest centre.
    """

    def __init__(self, n_clusters, patch=7, random_state=None, max_fit=50_000):
        self.kmeans = KMeansBaseline(n_clusters, n_init=10, random_state=random_state)
        self.patch = patch
        self.max_fit = max_fit
        self.random_state = random_state

    def fit_predict(self, images):
        features = patch_features(images, self.patch)
        rng = np.random.default_rng(self.random_state)
        fit_rows = rng.choice(len(features), min(self.max_fit, len(features)), replace=False)
        labels = self.kmeans.fit(features[fit_rows]).predict(features)
        return labels.reshape(images.shape[0], *images.shape[-2:])


def score_run(est, images, masks, *, dataset, estimator, seed):
    """Time ``est.fit_predict(images)`` and score its label maps: one record of a results table."""
    start, cpu_start = time.perf_counter(), time.process_time()
    labels = est.fit_predict(images)
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    truth, pred = masks.ravel(), labels.ravel()
    return {
        "dataset": dataset,
        "estimator": estimator,
        "seed": seed,
        "n_samples": int(images.shape[0]),
        "acc": pixel_accuracy(masks, labels),
        "nmi": normalized_mutual_info_score(truth, pred),
        "ari": adjusted_rand_score(truth, pred),
        "fit_time_s": elapsed,
        # CPU seconds of all this process's threads: on a shared machine the wall time
        # also counts other processes' work, this does not
        "cpu_time_s": cpu,
    }


def run(classes, seeds, *, n_images=200, size=64, patch=7, params=None, estimators=("iic-seg", "kmeans-patch"), log=print):
    """Records of every (classes, estimator, seed)."""
    runs = []
    for k in classes:
        for seed in seeds:
            images, masks = make_texture_mosaics(n_images, size, k, random_state=seed)
            models = {
                "iic-seg": lambda: IICSegmentation(n_clusters=k, random_state=seed, **(params or {})),
                "kmeans-patch": lambda: PatchKMeans(k, patch, random_state=seed),
            }
            for name in estimators:
                record = score_run(models[name](), images, masks, dataset=f"mosaics{k}-{size}px", estimator=name, seed=seed)
                runs.append(record)
                log(json.dumps(record))
    return runs


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--classes", nargs="+", type=int, default=[4])
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--n-images", type=int, default=200)
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--patch", type=int, default=7, help="side of the k-means baseline's patches")
    p.add_argument("--estimators", nargs="+", default=["iic-seg", "kmeans-patch"], choices=["iic-seg", "kmeans-patch"])
    p.add_argument("--params", type=json.loads, default={}, help="IICSegmentation parameters (JSON)")
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    p.add_argument("--name", required=True)
    p.add_argument("--out-dir", default="benchmarks/results")
    p.add_argument("--notes", default="")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    runs = run(args.classes, args.seeds, n_images=args.n_images, size=args.size, patch=args.patch,
               params=args.params, estimators=args.estimators)
    command = "python benchmarks/segmentation.py " + shlex.join(sys.argv[1:] if argv is None else argv)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    notes = f"Commit: {commit or 'unknown'}. {args.n_images} images of {args.size}x{args.size} per seed. {args.notes}"
    print(save_results(runs, args.name, args.out_dir, command=command, notes=notes))


if __name__ == "__main__":
    main()
