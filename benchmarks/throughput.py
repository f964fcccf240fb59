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

* ``fit_time_s`` and ``fit_ratio``: the whole fit's time (training,
  selection, prediction and the fit's checks) and its ratio to the
  ``n_init=1`` fit of the same round;
* ``step_ms`` and ``step_ratio``: a training step's time, measured from the
  end of the first epoch to the end of the last (so ``--epochs`` must be at
  least 2; the callbacks of the public API mark the epochs' ends), and its
  ratio to the ``n_init=1`` step of the same round;
* ``images_per_s``: images through the network per second of training
  (every restart's clean and perturbed images);
* ``step_gflop``: floating-point operations of one training step (forward
  and backward, counted by :class:`torch.utils.flop_counter.FlopCounterMode`);
* ``gflop_per_s`` and ``peak_fraction``: the training step's FLOP rate, and
  that as a fraction of a 1024x1024 fp32 matmul timed in the same round.

With ``--epochs auto`` the fits are the estimator's own defaults on all
``--samples`` images (``max_epochs`` and the restarts' screening chosen by
the estimator, so the ``n_init=8`` fit trains eight restarts for about 400
steps and the kept four on): ``fit_ratio`` is then what a user's fit costs;
the step columns time the last stage (the kept restarts' training).

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


class EpochClock:
    """A fit callback that notes when every epoch ends (``time.perf_counter``) and its stage."""

    def __init__(self):
        self.ends = []

    def __call__(self, record):
        self.ends.append((record["stage"], time.perf_counter()))


def measure(shape, n_inits, *, samples, epochs, repeats, data_home):
    X = images(shape, samples, data_home)
    label = f"{shape[0]}x{shape[1]} ({len(X)} images)"
    one = step_gflop(shape, X)
    runs = []
    for rep in range(repeats):
        peak = matmul_gflops()
        fits = {}
        for r in n_inits:
            clock = EpochClock()
            est = IICClustering(image_shape=shape, n_init=r, max_epochs=epochs, random_state=rep, device="cpu",
                                callbacks=[clock])
            start = time.perf_counter()
            est.fit(X)
            fits[r] = (time.perf_counter() - start, clock, est)
        peak = (peak + matmul_gflops()) / 2
        for r in n_inits:
            fit_time, clock, est = fits[r]
            stage = clock.ends[-1][0]  # the last stage: the kept restarts' training
            ends = [t for s, t in clock.ends if s == stage]
            if len(ends) < 2:
                raise ValueError(f"the last training stage of a fit ran {len(ends)} epoch(s); a step is timed "
                                 "between the ends of its first and last epochs: raise --epochs or --samples")
            steps = (len(ends) - 1) * max(1, len(X) // est.batch_size)
            step_s = (ends[-1] - ends[0]) / steps
            # that stage's restarts: all, or the kept ones after a screening
            screened = any(s == "screening" for s, _ in clock.ends)
            restarts = len(est.kept_restarts_) if screened else est.n_init_
            rate = restarts * one / step_s
            runs.append(dict(
                dataset=label, estimator=f"iic n_init={r}", seed=rep, fit_time_s=fit_time,
                fit_ratio=fit_time / fits[n_inits[0]][0], step_ms=1000 * step_s, restarts_timed=restarts,
                images_per_s=est.batch_size * (1 + est.n_repeats) * restarts / step_s,
                step_gflop=restarts * one, gflop_per_s=rate, matmul_gflop_per_s=peak, peak_fraction=rate / peak,
            ))
        base = runs[-len(n_inits)]["step_ms"]
        for run in runs[-len(n_inits):]:
            run["step_ratio"] = run["step_ms"] / base
            print(f"{label} {run['estimator']}: fit {run['fit_time_s']:.1f} s ({run['fit_ratio']:.2f}x), step "
                  f"{run['step_ms']:.1f} ms ({run['step_ratio']:.2f}x), {run['gflop_per_s']:.1f} GFLOP/s = "
                  f"{run['peak_fraction']:.2f} of peak", flush=True)
    return runs


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shapes", nargs="+", default=["8x8", "28x28"], help="image shapes HxW")
    parser.add_argument("--n-init", nargs="+", type=int, default=[1, 3, 8], help="restart counts; the first is the reference")
    parser.add_argument("--samples", type=int, default=1024, help="images per fit")
    parser.add_argument("--epochs", default="3", help='epochs per fit (at least 2), or "auto": the defaults')
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
        epochs = args.epochs if args.epochs == "auto" else int(args.epochs)
        runs += measure(shape, args.n_init, samples=args.samples, epochs=epochs, repeats=args.repeats,
                        data_home=args.data_home)
    command = "python benchmarks/throughput.py " + shlex.join(sys.argv[1:] if argv is None else argv)
    if args.name:
        print(save_results(runs, args.name, args.out_dir, command=command))
    else:
        print(format_table(runs))


if __name__ == "__main__":
    main()
