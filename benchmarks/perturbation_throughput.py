"""Throughput of the perturbation models alone (perturbed images per second).

Example::

    OMP_NUM_THREADS=1 python benchmarks/perturbation_throughput.py --datasets digits mnist-test

Each model perturbs batches of 1,024 images of the dataset for about
``--seconds`` seconds on the CPU with one torch thread (or on CUDA with
``--device cuda``); the Wasserstein row includes its re-drawn proposals.
"""

import argparse
import time

import torch

from skmic.benchmark import load_dataset
from skmic.perturbations import make_perturbation

MODELS = ("affine", "elastic", "wasserstein")


def throughput(g, x, seconds, device):
    gen = torch.Generator(device).manual_seed(0)
    g(x, gen)  # warm-up
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        g(x, gen)
        n += 1
    if device.type == "cuda":
        torch.cuda.synchronize()
    return n * len(x) / (time.perf_counter() - start)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=["digits", "mnist-test"])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--data-home")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    print("| dataset | " + " | ".join(MODELS) + " |")
    print("|---|" + "---|" * len(MODELS))
    for name in args.datasets:
        X, _, shape = load_dataset(name, args.data_home)
        x = torch.as_tensor(X[:1024], device=device).float()
        rates = [throughput(make_perturbation(m, shape), x, args.seconds, device) for m in MODELS]
        print(f"| {name} {'x'.join(map(str, shape[1:]))} | " + " | ".join(f"{r:,.0f}" for r in rates) + " |")


if __name__ == "__main__":
    main()
