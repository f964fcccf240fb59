"""Score a peer's labels (from benchmarks/peers/*.py) like skmic's harness does.

    python benchmarks/peers/score_peer.py /tmp/clustpy_dec.json --name dec_peer_clustpy_digits_cpu
"""

import argparse
import json

from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

from skmic.benchmark import save_results
from skmic.metrics import cluster_accuracy


def main():
    p = argparse.ArgumentParser()
    p.add_argument("labels_json")
    p.add_argument("--name", required=True)
    p.add_argument("--out-dir", default="benchmarks/results")
    args = p.parse_args()
    d = json.load(open(args.labels_json))
    y = d["y"]
    runs = [
        dict(dataset=d["dataset"], estimator=d["peer"], seed=r["seed"], n_samples=len(y),
             acc=cluster_accuracy(y, r["labels"]), nmi=normalized_mutual_info_score(y, r["labels"]),
             ari=adjusted_rand_score(y, r["labels"]), fit_time_s=r["fit_time_s"])
        for r in d["runs"]
    ]
    print(save_results(runs, args.name, args.out_dir, notes="Peer run in its own virtual environment: see benchmarks/peers/clustpy_dec.py."))


if __name__ == "__main__":
    main()
