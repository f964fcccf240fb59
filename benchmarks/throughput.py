"""Training throughput of IICClustering's stacked restarts, as fractions of this machine's peak.

A benchmark of its own shape (fits of several ``n_init`` interleaved in
rounds, each round timing the machine's matmul peak), so a script of its own,
but with the harness's records, results files and table
(:func:`skmic.benchmark.save_results`, :func:`skmic.benchmark.format_table`),
and the estimator's public API only.

Example::

    python benchmarks/throughput.py --shapes 8x8 28x28 --n-init 1 3 8 --name iic_throughput_cpu

For every image shape and every ``n_init`` it fits ``IICClustering`` with
its defaults for a fixed number of epochs on ``--samples`` images, the fits
of all ``n_init`` values interleaved ``--repeats`` times in this one process
(so that the machine's load affects them alike), and reports

* ``fit_time_s`` and ``fit_ratio``: the fit's time and its ratio to the
  ``n_init=1`` fit of the same round;
* ``images_per_s``: images through the network per second of training
  (every restart's clean and perturbed images);
* ``step_gflop``: floating-point operations of one training step (forward
  and backward, counted by :class:`torch.utils.flop_counter.FlopCounterMode`);
* ``gflop_per_s`` and ``peak_fraction``: the training's FLOP rate, and that
  as a fraction of a 1024x1024 fp32 matmul timed in the same round.

8x8 images are scikit-learn's digits; larger shapes are MNIST test images
when ``--data-home`` holds MNIST, random images otherwise (throughput does
not depend on the pixels).
"""

import argparse
import copy
import shlex
import sys
import time

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from skmic import IICClustering
from skmic.benchmark import code_version, format_table, load_dataset, save_results


def matmul_gflops(seconds=0.5):
    """fp32 GFLOP/s of a 1024x1024 matmul on this process's threads."""
    a, b = torch.randn(1024, 1024), torch.randn(1024, 1024)
    a @ b
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        a @ b
        n += 1
    return 2 * 1024**3 * n / (time.perf_counter() - start) / 1e9


def images(shape, n, data_home=None):
    """``n`` images of ``shape`` (H, W), flat, float32 in [0, 1]."""
    if shape == (8, 8):
        X = load_dataset("digits")[0]
    else:
        try:
            X = load_dataset("mnist-test", data_home)[0] if shape == (28, 28) else None
        except (OSError, ValueError):
            X = None
        if X is None:
            X = np.random.default_rng(0).random((n, shape[0] * shape[1]))
    return np.ascontiguousarray(X[:n], dtype=np.float32)


def step_gflop(shape, X):
    """FLOPs (GFLOP) of one training step of one restart of IICClustering's network.

    The forward and backward pass of the fitted network (trunk, main and
    over-clustering heads; a one-epoch fit on ``X`` builds it) on one
    mini-batch of clean and perturbed images, ``batch_size * (1 +
    n_repeats)`` rows; the perturbation and the loss itself are not
    counted. ``n_init`` stacked restarts are ``n_init`` times this (they are
    independent copies), which :func:`measure` uses rather than counting the
    stacked network: torch's counter ignores ``groups`` in the backward pass
    of a grouped convolution (torch 2.13: ``groups=8`` counts 3.3x the true
    FLOPs of forward plus backward).
    """
    est = IICClustering(image_shape=shape, n_init=1, max_epochs=1, device="cpu", random_state=0).fit(X)
    net = copy.deepcopy(est.network_).train()
    x = torch.rand(est.batch_size * (1 + est.n_repeats), X.shape[1])
    with FlopCounterMode(display=False) as counter:
        h = net(x)
        heads = [net.main(h)] + ([net.over(h)] if net.over is not None else [])
        sum(out.sum() for out in heads).backward()
    return counter.get_total_flops() / 1e9


def measure(shape, n_inits, *, samples, epochs, repeats, data_home):
    X = images(shape, samples, data_home)
    label = f"{shape[0]}x{shape[1]} ({len(X)} images)"
    one = step_gflop(shape, X)
    flops = {r: r * one for r in n_inits}
    runs = []
    for rep in range(repeats):
        peak = matmul_gflops()
        times = {}
        for r in n_inits:
            est = IICClustering(image_shape=shape, n_init=r, max_epochs=epochs, random_state=rep, device="cpu")
            start = time.perf_counter()
            est.fit(X)
            times[r] = time.perf_counter() - start
        peak = (peak + matmul_gflops()) / 2
        for r in n_inits:
            steps = epochs * max(1, len(X) // est.batch_size)
            per_step = est.batch_size * (1 + est.n_repeats) * r
            rate = flops[r] * steps / times[r]
            runs.append(dict(
                dataset=label, estimator=f"iic n_init={r}", seed=rep, fit_time_s=times[r],
                fit_ratio=times[r] / times[n_inits[0]], images_per_s=per_step * steps / times[r],
                step_gflop=flops[r], gflop_per_s=rate, matmul_gflop_per_s=peak, peak_fraction=rate / peak,
            ))
            print(f"{label} n_init={r}: {times[r]:.1f} s, {rate:.1f} GFLOP/s = {rate / peak:.2f} of peak", flush=True)
    return runs


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shapes", nargs="+", default=["8x8", "28x28"], help="image shapes HxW")
    parser.add_argument("--n-init", nargs="+", type=int, default=[1, 3, 8], help="restart counts; the first is the reference")
    parser.add_argument("--samples", type=int, default=1024, help="images per fit")
    parser.add_argument("--epochs", type=int, default=2, help="epochs per fit")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved rounds")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--data-home", default=None)
    parser.add_argument("--name", help="also save benchmarks/results/<name>.md and .json")
    parser.add_argument("--out-dir", default="benchmarks/results")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    code_version()  # the commit of the code that runs, taken before it can change
    runs = []
    for text in args.shapes:
        shape = tuple(int(v) for v in text.split("x"))
        runs += measure(shape, args.n_init, samples=args.samples, epochs=args.epochs, repeats=args.repeats,
                        data_home=args.data_home)
    command = "python benchmarks/throughput.py " + shlex.join(sys.argv[1:] if argv is None else argv)
    if args.name:
        print(save_results(runs, args.name, args.out_dir, command=command))
    else:
        print(format_table(runs))


if __name__ == "__main__":
    main()
