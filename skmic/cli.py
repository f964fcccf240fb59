"""Command line: ``skmic demo`` (and ``python -m skmic demo``)."""

import argparse
import sys

from .benchmark import format_table, run_benchmark

#: the estimators the demo runs on scikit-learn's digits, with short budgets
#: (``set_params`` arguments; the estimators' defaults train longer)
DEMO_ESTIMATORS = {
    "kmeans": {},
    "iic": {"n_init": 1, "max_epochs": 15},
    "dec": {"pretrain_epochs": 30, "max_iter": 500},
    "dim-kmeans": {"max_epochs": 5},
}


def demo(args):
    """Cluster scikit-learn's bundled digits with every estimator; print a table."""
    print("Clustering scikit-learn's digits (1797 images of 8x8) with", ", ".join(DEMO_ESTIMATORS))
    print("(short training budgets; see benchmarks/results/ for full runs)")
    runs = []
    for name, params in DEMO_ESTIMATORS.items():
        runs += run_benchmark([name], ["digits"], seeds=[args.seed], params=params)
    print(format_table(runs))
    return 0


def build_parser():
    parser = argparse.ArgumentParser(prog="skmic", description="Deep clustering by mutual information.")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("demo", help="cluster scikit-learn's digits with every estimator")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=demo)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
