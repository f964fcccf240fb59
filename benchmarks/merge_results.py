"""Merge results files of one benchmark run in pieces (e.g. seeds split over cores) into one table.

Example::

    python benchmarks/merge_results.py benchmarks/results/a.json /tmp/b.json --name dec_mnist_test_cpu

Writes ``<out-dir>/<name>.md`` and ``.json``; the command line records every
piece's command, the environment every piece's environment.
"""

import argparse
import json
from pathlib import Path

from skmic.benchmark import save_results


def merge(pieces):
    """Concatenated runs; the pieces' commands and (distinct) environments joined by `` ; ``."""
    runs = [r for piece in pieces for r in piece["runs"]]
    commands = " ; ".join(piece["command"] for piece in pieces)
    return runs, commands, " ; ".join(dict.fromkeys(piece["environment"] for piece in pieces))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("inputs", nargs="+", help="results .json files")
    parser.add_argument("--name", required=True)
    parser.add_argument("--out-dir", default="benchmarks/results")
    parser.add_argument("--notes", default="")
    args = parser.parse_args(argv)
    runs, command, env = merge([json.loads(Path(p).read_text()) for p in args.inputs])
    print(save_results(runs, args.name, args.out_dir, command=command, notes=args.notes, env=env))


if __name__ == "__main__":
    main()
