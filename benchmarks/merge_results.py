"""Merge results files of one benchmark run in pieces (e.g. seeds split over cores) into one table.

Example::

    python benchmarks/merge_results.py benchmarks/results/a.json /tmp/b.json --name dec_mnist_test_cpu

Writes ``<out-dir>/<name>.md`` and ``.json``; the command line records every
piece's command.
"""

import argparse
import json
from pathlib import Path

from skmic.benchmark import save_results


def merge(pieces):
    """Concatenated runs and the pieces' commands joined by `` ; ``."""
    runs, commands = [], []
    for piece in pieces:
        runs.extend(piece["runs"])
        commands.append(piece["command"])
    return runs, " ; ".join(commands)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("inputs", nargs="+", help="results .json files")
    parser.add_argument("--name", required=True)
    parser.add_argument("--out-dir", default="benchmarks/results")
    parser.add_argument("--notes", default="")
    args = parser.parse_args(argv)
    runs, command = merge([json.loads(Path(p).read_text()) for p in args.inputs])
    print(save_results(runs, args.name, args.out_dir, command=command, notes=args.notes))


if __name__ == "__main__":
    main()
