"""Peer run: clustpy's DEC with its defaults on scikit-learn's digits.

Runs in its own virtual environment (clustpy is never a skmic dependency):

    python3 -m venv /work/venv-clustpy
    /work/venv-clustpy/bin/pip install torch==2.13.0 && /work/venv-clustpy/bin/pip install clustpy
    /work/venv-clustpy/bin/python benchmarks/peers/clustpy_dec.py --seeds 0 1 2 --out /tmp/clustpy_dec.json

The input is exactly the one skmic's harness uses for "digits" (X / 16 as
float32). Writes labels and fit times; benchmarks/peers/score_peer.py scores
them next to skmic's runs.
"""

import argparse
import json
import time

import numpy as np
import torch
from sklearn.datasets import load_digits


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--out", required=True)
    args = p.parse_args()
    from clustpy.deep import DEC

    X, y = load_digits(return_X_y=True)
    X = (X / 16.0).astype(np.float32)
    runs = []
    for seed in args.seeds:
        torch.manual_seed(seed)
        start = time.perf_counter()
        model = DEC(n_clusters=10, random_state=np.random.RandomState(seed)).fit(X)
        runs.append(dict(seed=seed, fit_time_s=time.perf_counter() - start, labels=np.asarray(model.labels_).tolist()))
        print(seed, runs[-1]["fit_time_s"], flush=True)
    json.dump(dict(peer="clustpy.deep.DEC (defaults)", dataset="digits", y=y.tolist(), runs=runs), open(args.out, "w"))


if __name__ == "__main__":
    main()
