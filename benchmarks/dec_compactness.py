"""Which unsupervised score of a DEC run tracks its accuracy? (picks what ``n_init`` ranks by)

For each seed, fit DECClustering and record, next to ACC and NMI, scores that
need no labels: of the pretrained embedding (before the clustering phase)
with its k-means labels -- reconstruction loss, within/total sum of squares,
silhouette -- and of the final embedding with DEC's labels -- the final KL
loss, within/total sum of squares (``restart_losses_``), silhouette.
With ``--augmentation`` (keyword arguments of
:class:`skmic.perturbations.ImagePerturbation`) the runs are DEC-DA with that
perturbation, and one more score is recorded: ``invariance``, the fraction of
samples whose predicted cluster is unchanged by a random perturbation (mean
over 5 draws). Writes benchmarks/results/<name>.md and .json.

Example::

    python benchmarks/dec_compactness.py --dataset digits --seeds 0 1 2 3 4 5 \\
        --params '{"pretrain": "greedy", "rescale_input": true}' --name dec_compactness_digits_cpu
    python benchmarks/dec_compactness.py --dataset digits --seeds 3 4 5 \\
        --augmentation '{"rotation": 10, "p_rotation": 1.0, "scale": [1, 1], "shear": 0,
                         "translate": 0.1, "crop": null, "brightness": 0, "contrast": 0, "noise": 0}' \\
        --params '{"pretrain": "greedy", "rescale_input": true}' --name dec_da_scores_digits_cpu
"""

import json
import time

import numpy as np
import torch
from dim_probe import parse_args, save
from scipy.stats import spearmanr
from sklearn.metrics import normalized_mutual_info_score, silhouette_score

from skmic import DECClustering, KMeansBaseline
from skmic.dec import compactness
from skmic.metrics import cluster_accuracy
from skmic.perturbations import ImagePerturbation


class _KeepsPretrainedEmbedding(DECClustering):
    """DECClustering that keeps its first full-data embedding (the pretrained one)."""

    def _embed(self, encoder, Xt):
        z = super()._embed(encoder, Xt)
        if not hasattr(self, "pretrained_embedding_"):
            self.pretrained_embedding_ = z.cpu().numpy()
        return z


SCORES = ["pretrain_loss", "init_within_total", "init_silhouette", "final_kl", "final_within_total", "final_silhouette"]


def invariance(dec, X, perturbation, seed, draws=5):
    """Mean fraction of samples whose predicted cluster a random perturbation leaves unchanged."""
    generator = torch.Generator().manual_seed(seed)
    Xt = torch.as_tensor(X)
    return float(np.mean([
        np.mean(dec.predict(perturbation(Xt, generator).numpy()) == dec.labels_) for _ in range(draws)
    ]))


def main():
    args, X, y, shape = parse_args(__doc__.splitlines()[0], "digits", [0, 1, 2, 3, 4, 5], ["augmentation"])
    k = len(np.unique(y))
    g = ImagePerturbation(shape, **args.augmentation) if args.augmentation else None
    scores = SCORES + ["invariance"] * (g is not None)
    rows = []
    for seed in args.seeds:
        start = time.perf_counter()
        dec = _KeepsPretrainedEmbedding(n_clusters=k, perturbation=g, random_state=seed, **args.params).fit(X)
        fit_time = time.perf_counter() - start
        Z0, Z = dec.pretrained_embedding_, dec.transform(X)
        init = KMeansBaseline(k, n_init=dec.n_init, random_state=seed).fit_predict(Z0)
        init_within_total = compactness(torch.as_tensor(Z0), torch.as_tensor(init), k)
        rows.append(dict(
            seed=seed, fit_time_s=fit_time, pretrain_loss=dec.pretrain_history_[-1]["loss"],
            init_within_total=init_within_total, init_silhouette=float(silhouette_score(Z0, init)),
            init_acc=cluster_accuracy(y, init), final_kl=dec.history_[-1]["loss"],
            final_within_total=float(dec.restart_losses_.min()),  # the kept run's
            final_silhouette=float(silhouette_score(Z, dec.labels_)),
            acc=cluster_accuracy(y, dec.labels_), nmi=normalized_mutual_info_score(y, dec.labels_),
        ))
        if g is not None:
            rows[-1]["invariance"] = invariance(dec, X, g, seed)
        print(json.dumps(rows[-1]), flush=True)
    cols = ["seed", "acc", "nmi", "init_acc", *scores, "fit_time_s"]
    table = "| " + " | ".join(cols) + " |\n" + "|---" * len(cols) + "|\n" + "\n".join(
        "| " + " | ".join(f"{r[c]:.4g}" for c in cols) + " |" for r in rows
    )
    acc = [r["acc"] for r in rows]
    table += "\n\n| score | Spearman correlation with ACC |\n|---|---|\n" + "\n".join(
        f"| {c} | {spearmanr([r[c] for r in rows], acc)[0]:+.2f} |" for c in scores
    )
    method = f"DEC-DA, ImagePerturbation {args.augmentation}" if g is not None else "DEC"
    print(save(args, "dec_compactness.py", f"Dataset {args.dataset}, {method}, parameters {args.params or 'defaults'}. "
               "init_*: the pretrained embedding with its k-means labels; final_*: the final embedding with "
               "DEC's labels; within_total is within-cluster over total sum of squares (lower is more compact).",
               table, rows))


if __name__ == "__main__":
    main()
