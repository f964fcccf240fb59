"""Score a peer's labels (from benchmarks/peers/*.py) like skmic's harness does.

    python benchmarks/peers/score_peer.py /tmp/clustpy_dec.json --name dec_peer_clustpy_digits_cpu

The peer runs in its own virtual environment (it is never a skmic
dependency) and writes its labels and fit times; this records them with the
harness's scores (:func:`skmic.benchmark.score_labels`), records and results
files (:func:`skmic.benchmark.save_results`).
"""

import argparse
import json

from skmic.benchmark import save_results, score_labels


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
             **score_labels(y, r["labels"]), fit_time_s=r["fit_time_s"])
        for r in d["runs"]
    ]
    print(save_results(runs, args.name, args.out_dir, notes="Peer run in its own virtual environment: see benchmarks/peers/clustpy_dec.py."))


if __name__ == "__main__":
    main()
