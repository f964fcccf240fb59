"""Run registered estimators on registered datasets and save a results table.

Example::

    python benchmarks/run.py --estimators kmeans sklearn-kmeans \
        --datasets digits mnist --seeds 0 1 2 --name kmeans_vs_sklearn

Writes ``benchmarks/results/<name>.md`` and ``<name>.json``.
"""

import argparse
import json
import shlex
import sys

from skmic.benchmark import DATASETS, ESTIMATORS, save_results, run_benchmark


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--estimators", nargs="+", required=True, choices=sorted(ESTIMATORS))
    parser.add_argument("--datasets", nargs="+", required=True, choices=sorted(DATASETS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--data-home", default=None, help="directory of mnist/, usps/, pendigits/")
    parser.add_argument("--params", type=json.loads, default=None, help="JSON dict passed to set_params")
    parser.add_argument("--name", required=True, help="results file stem")
    parser.add_argument("--out-dir", default="benchmarks/results")
    parser.add_argument("--notes", default="")
    args = parser.parse_args(argv)
    runs = run_benchmark(args.estimators, args.datasets, args.seeds, data_home=args.data_home, params=args.params)
    command = "python benchmarks/run.py " + shlex.join(sys.argv[1:] if argv is None else argv)
    print(save_results(runs, args.name, args.out_dir, command=command, notes=args.notes))


if __name__ == "__main__":
    main()
