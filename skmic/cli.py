"""Command line: ``skmic demo | cluster | segment | benchmark`` (also ``python -m skmic``).

Under ``torchrun`` (``torchrun --nproc-per-node 2 -m skmic cluster ...``)
``cluster`` and ``segment`` train one model with all the processes
(:mod:`skmic._distributed`): every process reads the input, and only rank 0
writes the output files and the summary line; ``benchmark`` trains each of
its fits with all the processes, and rank 0 prints and saves the table.

Every user error -- a bad option, an unreadable or non-numeric file, an
output path that cannot be written, input an estimator rejects -- ends with
one line on standard error and exit status 2, found before any training.
torch and the estimators are imported by the commands that use them, so that
``skmic --help`` is quick.
"""

import argparse
import ast
import csv
import json
import os
import pickle
import shlex
import sys
import warnings
from pathlib import Path

import numpy as np

from .benchmark import (
    DATASETS, ESTIMATORS, PROBES, SUITES, SWEEPS, _matching_params, environment, format_table, merge_results,
    run_benchmark, run_suite, save_results, suite_coverage, suite_runs, write_table_into,
)


class CLIError(Exception):
    """A user error: printed as one line, exit status 2."""


#: the estimators the demo runs on scikit-learn's digits, given as (1797, 8, 8)
#: images: with their defaults, nothing but ``n_clusters`` and ``random_state``
DEMO_ESTIMATORS = ("kmeans", "iic", "dec", "dim-kmeans")

#: the methods of ``skmic cluster`` (names in :data:`skmic.benchmark.ESTIMATORS`)
CLUSTER_METHODS = ("iic", "dec", "dim-kmeans", "kmeans")


def demo(args):
    """Cluster scikit-learn's bundled digits with every estimator; print a table, save a figure."""
    if args.figure:
        check_output_path(args.figure, "--figure")
    print("Clustering scikit-learn's digits (1797 images of 8x8) with", ", ".join(DEMO_ESTIMATORS))
    print("(every estimator with its defaults; see benchmarks/results/ for more seeds and datasets)")
    runs, fitted = [], []

    def keep_labels(estimator, X, y):
        fitted.append((X, y, estimator[-1].labels_ if hasattr(estimator, "steps") else estimator.labels_))
        return {}

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the table reports the outcome; warnings would bury it
        for name in DEMO_ESTIMATORS:
            runs += run_benchmark([name], ["digits"], seeds=[args.seed], extra_metrics=keep_labels)
    print(format_table(runs))
    if args.figure:
        _demo_figure(runs, fitted, args.figure)
        print(f"figure: {args.figure}")
    return 0


def _demo_figure(runs, fitted, path):
    """One row per estimator: the mean image of each cluster, under the class it matches."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .metrics import remap_labels

    fig, axes = plt.subplots(len(runs), 10, figsize=(10, 1.15 * len(runs) + 0.3), squeeze=False)
    for row, (run, (X, y, labels)) in zip(axes, zip(runs, fitted)):
        matched = remap_labels(y, labels)
        for ax, cls in zip(row, range(10)):
            members = matched == cls
            ax.imshow(X[members].mean(0).reshape(8, 8) if members.any() else np.zeros((8, 8)), cmap="gray_r")
            ax.set_xticks([]), ax.set_yticks([])
        row[0].set_ylabel(f"{run['estimator']}\nACC {run['acc']:.2f}", rotation=0, ha="right", va="center", fontsize=8)
    fig.suptitle("Mean image of each cluster, placed under the digit it matches (Hungarian)", fontsize=9)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)


# ------------------------------------------------------------------ input
def read_table(path, header="auto"):
    """Read a matrix from .csv/.txt (see :func:`read_text_table`), .npy, .npz or .parquet.

    Parameters
    ----------
    path : str or Path
    header : {"auto", "yes", "no"}
        Whether a text file's first row names the columns; only text files
        have a header.

    Returns
    -------
    X : ndarray or DataFrame
        Not yet checked to be numeric: the estimators do that, naming the
        columns that are not.

    Raises
    ------
    CLIError
        If the file is missing, empty, unreadable or has no data rows.
    """
    path = Path(path)
    if not path.is_file():
        raise CLIError(f"{path}: no such file")
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".txt", ".npy", ".npz", ".parquet"):
        raise CLIError(f"{path}: unsupported format {suffix!r} (use .csv, .txt, .npy, .npz or .parquet)")
    if header != "auto" and suffix not in (".csv", ".txt"):
        raise CLIError(f"--header {header}: only .csv and .txt files have a header, not {suffix}")
    if path.stat().st_size == 0:
        raise CLIError(f"{path}: the file is empty")
    try:
        if suffix == ".npy":
            X = np.load(path, allow_pickle=False)
        elif suffix == ".npz":
            with np.load(path, allow_pickle=False) as z:
                if not z.files:
                    raise CLIError(f"{path}: the archive holds no array")
                X = z["X"] if "X" in z.files else z[z.files[0]]
        elif suffix == ".parquet":
            import pandas as pd

            X = pd.read_parquet(path)
        else:
            X = read_text_table(path, header)
    except CLIError:
        raise
    except Exception as exc:  # parsers raise many kinds; the user needs one line
        raise CLIError(f"{path}: cannot read it ({type(exc).__name__}: {_first_line(exc)})") from None
    return X


def _first_line(exc):
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def _is_number(field, decimal="."):
    """Whether a CSV field is a number, a boolean (pandas reads both), or empty (missing)."""
    try:
        float(field.replace(decimal, ".") if decimal != "." else field)
    except ValueError:
        return field.lower() in ("", "true", "false")
    return True


def _dialect(lines):
    """``(sep, decimal)`` of a text table from its first lines.

    The delimiter is the first of ``;``, ``,`` and tab that the first line
    holds, else runs of whitespace when it holds any, else ``,`` (one
    column). With ``;`` the decimal mark is a comma when a field of the
    first two lines is a number written with one (``1,5``).
    """
    for sep in (";", ",", "\t"):
        if sep in lines[0]:
            break
    else:
        return (r"\s+", ".") if len(lines[0].split()) > 1 else (",", ".")
    if sep == ";" and any(
        "," in f and _is_number(f, ",") for line in lines[:2] for f in _fields(line, sep)
    ):
        return sep, ","
    return sep, "."


def _fields(line, sep):
    """The stripped fields of one line (quotes removed)."""
    line = line.strip()
    if sep == r"\s+":
        return line.split()
    return [f.strip() for f in next(csv.reader([line], delimiter=sep))]


def read_text_table(path, header="auto"):
    """Read a delimited text table (a BOM and blank lines are ignored).

    With ``header="auto"`` the first row is a header when one of its fields
    is not a number (or ``True``/``False``), or when it is ``0,1,...,n-1``: the column names pandas
    writes for a frame without names (``DataFrame(X).to_csv(index=False)``),
    in which case a warning says so. Otherwise every row is data: no row is
    dropped or added silently. The number of rows read is checked against
    the number of non-blank lines of the file.

    Parameters
    ----------
    path : Path
    header : {"auto", "yes", "no"}

    Returns
    -------
    DataFrame
    """
    import pandas as pd

    with open(path, encoding="utf-8-sig") as f:
        lines = [line for line in f if line.strip()]
    if not lines:
        raise CLIError(f"{path}: the file is empty")
    sep, decimal = _dialect(lines)
    fields = _fields(lines[0], sep)
    default = [str(i) for i in range(len(fields))]
    pandas_default = header == "auto" and fields in (default, [""] + default[:-1])  # (with an index column)
    if header == "auto":
        has_header = pandas_default or not all(_is_number(f, decimal) for f in fields)
    else:
        has_header = header == "yes"
    if has_header and len(lines) == 1:
        raise CLIError(f"{path}: no data rows, only a header")
    if has_header and "" in fields:
        raise CLIError(
            f"{path}: column {fields.index('') + 1} of the header has no name; if it is an index "
            "(pandas' to_csv without index=False), remove that column"
        )
    if pandas_default:
        warnings.warn(
            f"{path}: the first row ({','.join(fields)}) is read as the column names that pandas "
            "writes for unnamed columns; pass --header no to read it as data.",
            UserWarning,
        )
    X = pd.read_csv(
        path, sep=sep, decimal=decimal, header=0 if has_header else None, encoding="utf-8-sig",
        skipinitialspace=True, engine="python" if sep == r"\s+" else "c",
    )
    expected = len(lines) - has_header
    if len(X) != expected:
        raise CLIError(
            f"{path}: read {len(X)} data rows but the file has {expected} non-blank lines after the "
            "header; check its quoting"
        )
    return X


def _image_shape(text):
    if text is None:
        return None
    try:
        return tuple(int(v) for v in text.split(","))
    except ValueError:
        raise CLIError(f"--image-shape must be C,H,W or H,W integers, got {text!r}") from None


def parse_param(text):
    """One ``key=value`` word of ``--params`` into ``(key, value)``.

    The value is read as a Python literal (``5``, ``1e-3``, ``(64,)``,
    ``["elastic", "affine"]``, ``None``, ``True``), else as JSON (``true``,
    ``null``), else kept as a string (``elastic``).
    """
    key, sep, value = text.partition("=")
    key = key.strip()
    if not sep or not key.isidentifier():
        raise argparse.ArgumentTypeError(
            f"expected key=value, got {text!r} (every word up to the next option is a parameter: "
            "give the input file before --params)"
        )
    for parse in (ast.literal_eval, json.loads):
        try:
            return key, parse(value)
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            continue
    return key, value


def check_output_path(path, option):
    """Raise a CLIError unless a file can be written at ``path``.

    Run before any training: the parent directory must exist and be
    writable, and ``path`` must not be a directory (an existing file must
    be writable; it is overwritten).
    """
    target = Path(path)
    parent = target.parent
    if target.is_dir():
        raise CLIError(f"{option} {path}: is a directory; name a file")
    if not parent.is_dir():
        raise CLIError(f"{option} {path}: the directory {parent} does not exist")
    if not os.access(parent, os.W_OK | os.X_OK) or (target.exists() and not os.access(target, os.W_OK)):
        raise CLIError(f"{option} {path}: not writable")


def _check_output_dir(path, option):
    """Raise a CLIError unless ``path`` is, or can be created as, a writable directory."""
    existing = Path(path)
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise CLIError(f"{option} {path}: {existing} is not a directory")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise CLIError(f"{option} {path}: {existing} is not writable")


# ---------------------------------------------------------------- cluster
def _estimator_params(est):
    """The parameter names ``--params`` can set on ``est``: those ``_matching_params`` routes."""
    names = {key.rpartition("__")[2] for key in est.get_params()}
    return sorted(_matching_params(est, dict.fromkeys(names), original=True))


def given_params(args):
    """The ``--params`` of ``args`` as a dict; a parameter given twice is a CLIError."""
    given = {}
    for key, value in args.params or []:
        if key in given:
            raise CLIError(f"--params: {key} is given twice ({given[key]!r} and {value!r}); give it once")
        given[key] = value
    return given


def set_params(est, name, params, given):
    """Set ``params`` on ``est`` (or its pipeline's steps) and validate them; nothing is fitted.

    ``given`` are the user's ``--params``, each of which ``est`` must take;
    ``name`` names ``est`` in the message that says which it takes.
    """
    from ._base import validate_params

    unknown = sorted(set(given) - set(_matching_params(est, given, original=True)))
    if unknown:
        raise CLIError(
            f"--params: {name} takes no parameter {', '.join(unknown)}; "
            f"it takes {', '.join(_estimator_params(est))}"
        )
    est.set_params(**_matching_params(est, {**params, **given}))
    try:
        for step in [s for _, s in est.steps] if hasattr(est, "steps") else [est]:
            validate_params(step)
    except (ValueError, TypeError) as exc:
        raise CLIError(_first_line(exc)) from None
    return est


def build_estimator(args):
    """The estimator of ``skmic cluster``, its parameters set and validated (nothing fitted)."""
    est = ESTIMATORS[args.method](args.seed, _image_shape(args.image_shape), args.n_clusters)
    set_params(est, args.method, {"device": args.device, "verbose": args.verbose}, given_params(args))
    if args.proba and not hasattr(est, "predict_proba"):
        raise CLIError(f"--proba: {args.method} gives no probabilities; drop --proba or use iic or dec")
    return est


def cluster(args):
    """Fit one estimator on a file and write one label per row."""
    check_output_path(args.output, "--output")
    if args.save_model:
        check_output_path(args.save_model, "--save-model")
    seen = {}
    for option, path in [("the input", args.input), ("--output", args.output), ("--save-model", args.save_model)]:
        if path:
            if Path(path).resolve() in seen:
                raise CLIError(f"{option} {path} is the same file as {seen[Path(path).resolve()]}")
            seen[Path(path).resolve()] = option
    X = read_table(args.input, args.header)
    est = build_estimator(args)
    try:
        labels = est.fit_predict(X)
        proba = est.predict_proba(X) if args.proba else None
    except (ValueError, TypeError) as exc:
        raise CLIError(_first_line(exc)) from None
    if len(labels) != len(X):  # never write labels that do not line up with the rows
        raise CLIError(f"{args.input}: {len(labels)} labels for {len(X)} rows; nothing written")
    columns = {"label": labels}
    if proba is not None:
        columns.update({f"p{k}": proba[:, k] for k in range(proba.shape[1])})
    import pandas as pd

    from . import _distributed

    if not _distributed.is_main():  # the other ranks of a distributed fit write nothing
        return 0
    model = pickle.dumps(est) if args.save_model else None  # before writing anything
    try:
        pd.DataFrame(columns).to_csv(args.output, index=False)
        if model is not None:
            Path(args.save_model).write_bytes(model)
    except OSError as exc:
        raise CLIError(f"cannot write the results: {exc}") from None
    print(f"wrote {len(labels)} labels ({len(np.unique(labels))} clusters) to {args.output}{_processes(est)}")
    return 0


def _processes(est):
    """`` (trained on W processes)`` after a distributed fit, else nothing."""
    world = getattr(est[-1] if hasattr(est, "steps") else est, "world_size_", 1)
    return f" (trained on {world} processes)" if world > 1 else ""


# ---------------------------------------------------------------- segment
def segment(args):
    """Segment the images of a .npy file with IICSegmentation; write the (n, H, W) label maps as .npy."""
    from .segmentation import IICSegmentation

    check_output_path(args.output, "--output")
    path = Path(args.input)
    if not path.is_file():
        raise CLIError(f"{path}: no such file")
    if path.resolve() == Path(args.output).resolve():
        raise CLIError(f"--output {args.output} is the same file as the input")
    if path.suffix.lower() != ".npy":
        raise CLIError(f"{path}: segment reads a .npy array of images, (n, H, W) or (n, C, H, W)")
    try:
        images = np.load(path, allow_pickle=False)
    except Exception as exc:  # a damaged or non-array file
        raise CLIError(f"{path}: cannot read it ({type(exc).__name__}: {_first_line(exc)})") from None
    est = set_params(IICSegmentation(), "segment", {"n_clusters": args.n_clusters, "device": args.device,
                                                    "random_state": args.seed, "verbose": args.verbose},
                     given_params(args))
    try:
        labels = est.fit_predict(images)
    except (ValueError, TypeError) as exc:
        raise CLIError(_first_line(exc)) from None
    from . import _distributed

    if not _distributed.is_main():  # the other ranks of a distributed fit write nothing
        return 0
    try:
        np.save(args.output, labels)
    except OSError as exc:
        raise CLIError(f"cannot write the results: {exc}") from None
    print(f"wrote {labels.shape[0]} label maps of {labels.shape[1]}x{labels.shape[2]} pixels "
          f"({len(np.unique(labels))} segments) to {args.output}{_processes(est)}")
    return 0


def benchmark(args):
    """Front end of the benchmark harness: runs, sweeps, probes, suites and merges, one table."""
    if args.name:
        _check_output_dir(args.out_dir, "--out-dir")
    from . import _distributed

    world, main_rank = _distributed.world_size(), _distributed.is_main()
    launcher = f"torchrun --nproc-per-node {world} -m skmic " if world > 1 else "skmic "
    command = launcher + shlex.join(args.argv)
    log = print if main_rank else (lambda line: None)  # the other ranks of a distributed run write nothing
    if args.threads is not None:
        import torch

        torch.set_num_threads(args.threads)
    if args.merge:
        return _merge(args)
    if args.suite is None and not ((args.estimators or args.sweep) and args.datasets):
        raise CLIError("give --estimators (or --sweep) and --datasets, or --suite")
    if args.update is not None and args.suite is None:
        raise CLIError("--update writes a suite's table: give --suite too")
    if args.update is not None and not Path(args.update).is_file():
        raise CLIError(f"--update: {args.update}: no such file")
    if args.only and not args.sweep:
        raise CLIError("--only picks configurations of a sweep: give --sweep too")
    if args.suite is not None:
        if args.params or args.sweep or args.probes:
            raise CLIError("a suite runs the defaults: drop --params, --sweep and --probes, or --suite")
        runs = run_suite(args.suite, data_home=args.data_home, log=log)
    else:
        estimators, configurations = args.estimators or [], None
        if args.sweep:
            name, configurations = SWEEPS[args.sweep]
            missing = sorted(set(args.only or ()) - set(configurations))
            if missing:
                raise CLIError(f"--only: the sweep {args.sweep} has no configuration {', '.join(missing)}; "
                               f"it has {', '.join(configurations)}")
            configurations = {k: v for k, v in configurations.items() if not args.only or k in args.only}
            estimators = [*estimators, name] if name not in estimators else estimators
        try:
            runs = run_benchmark(estimators, args.datasets, args.seeds, data_home=args.data_home,
                                 params=given_params(args), configurations=configurations,
                                 probes=args.probes or (), log=log)
        except (ValueError, TypeError) as exc:
            raise CLIError(_first_line(exc)) from None
    summaries = [PROBES[p].summary(runs) for p in args.probes or () if PROBES[p].summary is not None]
    notes = "\n\n".join(filter(None, [args.notes, *summaries]))
    table = format_table(runs)
    if not main_rank:
        return 0
    if args.name:
        save_results(runs, args.name, args.out_dir, command=command, notes=notes)
    if args.update is not None:
        write_table_into(args.update, args.suite, table, f"Generated by `{command}` ({environment()}).")
    print(table + (f"\n\n{notes}" if notes else ""))
    return 0


def _merge(args):
    """``skmic benchmark --merge FILE... --name NAME [--suite S --update F]``: one results file from pieces.

    With ``--suite`` and ``--update`` the merged runs must be exactly the
    suite's runs, with the defaults, and their table goes into the file, as
    the suite run in one process would put it (a suite split over time or
    cores).
    """
    if not args.name:
        raise CLIError("--merge writes one results file: give --name")
    if (args.suite is None) != (args.update is None):
        raise CLIError("--merge writes a suite's table with both --suite and --update")
    if args.update is not None and not Path(args.update).is_file():
        raise CLIError(f"--update: {args.update}: no such file")
    pieces = []
    for path in args.merge:
        try:
            pieces.append(json.loads(Path(path).read_text()))
        except (OSError, ValueError) as exc:
            raise CLIError(f"--merge: {path}: cannot read it ({type(exc).__name__}: {_first_line(exc)})") from None
    runs, command, env = merge_results(pieces)
    if args.suite is not None:
        if "--params" in command or "--sweep" in command:
            raise CLIError(f"--merge: the suite {args.suite} runs the defaults; a piece set parameters: {command}")
        missing, extra = suite_coverage(args.suite, runs)
        if missing or extra:
            raise CLIError(f"--merge: the pieces are not the suite {args.suite}: "
                           f"missing {missing or 'nothing'}, beyond it or twice {extra or 'nothing'}")
        order = {run: i for i, run in enumerate(suite_runs(args.suite))}  # the table as one run prints it
        runs = sorted(runs, key=lambda r: order[(r["estimator"], r["dataset"], r["seed"])])
    print(save_results(runs, args.name, args.out_dir, command=command, notes=args.notes, env=env))
    if args.update is not None:
        table = format_table(runs)
        write_table_into(args.update, args.suite, table,
                         f"Generated by `{command}`, merged by `skmic {shlex.join(args.argv)}` ({env}).")
        print(table)
    return 0


# ----------------------------------------------------------------- parser
class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line (and exit status 2)."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _add_params_option(parser, what):
    """The one ``--params KEY=VALUE ...`` option of every subcommand that fits estimators."""
    parser.add_argument("--params", nargs="+", action="extend", type=parse_param, metavar="KEY=VALUE",
                        help=f"{what}. Each value is a Python literal, else JSON, else a string; "
                             "--params may be repeated; a parameter may be given once")


def _add_fit_options(p, output_help):
    """The options of the commands that fit one estimator: --device, --seed, --output, --verbose."""
    p.add_argument("--device", default="auto", help="auto (default: CUDA when available), cpu, cuda, cuda:N or mps")
    p.add_argument("--seed", type=int, default=0, metavar="INT", help="random_state of the estimator (default: 0)")
    p.add_argument("--output", required=True, metavar="FILE", help=output_help)
    p.add_argument("--verbose", type=int, default=0, choices=[0, 1, 2],
                   help="0 (default) silent, 1 a progress bar per phase, 2 also one line per epoch")


def build_parser():
    """The argument parser of ``skmic`` and its subcommands."""
    parser = _Parser(prog="skmic", description="Deep clustering by mutual information.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="{demo,cluster,segment,benchmark}")
    p = sub.add_parser("demo", help="cluster scikit-learn's digits with every estimator",
                       description="Cluster scikit-learn's digits with every estimator, each with its defaults; "
                                   "print a table of ACC, NMI, ARI and fit time, save a figure.")
    p.add_argument("--seed", type=int, default=0, help="random_state of every estimator (default: 0)")
    p.add_argument("--figure", default="skmic_demo.png", help="where to save the figure ('' for none)")
    p.set_defaults(func=demo)

    p = sub.add_parser("cluster", help="cluster the rows of a .csv/.txt/.npy/.npz/.parquet file",
                       description="Fit one estimator on the rows of a file and write one label per row. "
                                   "Errors are one line on stderr, exit status 2, before any training.")
    p.add_argument("input", help="the data: .csv or .txt (delimiter ',', ';', tab or spaces), "
                                 ".npy, .npz (array 'X' or the first) or .parquet; one sample per row")
    p.add_argument("--method", choices=CLUSTER_METHODS, default="iic", help="the estimator (default: iic)")
    p.add_argument("--n-clusters", type=int, required=True, metavar="K", help="number of clusters")
    p.add_argument("--header", choices=["auto", "yes", "no"], default="auto",
                   help="whether the first row of a text file names the columns; auto (default): when "
                        "a field is not a number, or the row is 0,1,...,n-1 (pandas' unnamed columns)")
    p.add_argument("--image-shape", metavar="C,H,W", help="C,H,W (or H,W) when rows are flattened images")
    _add_params_option(p, "set parameters of the estimator (of any step of dim-kmeans), e.g. max_epochs=5 "
                          "hidden_layer_sizes='(64,)'; they override the other options")
    _add_fit_options(p, "CSV to write, with one label per row")
    p.add_argument("--proba", action="store_true", help="also write the cluster probabilities (iic, dec)")
    p.add_argument("--save-model", metavar="FILE", help="pickle the fitted estimator here")
    p.set_defaults(func=cluster)

    p = sub.add_parser("segment", help="segment the images of a .npy file (IICSegmentation)",
                       description="Fit IICSegmentation on the images of a .npy array, (n, H, W) or "
                                   "(n, C, H, W), and write their (n, H, W) label maps as .npy. Errors are "
                                   "one line on stderr, exit status 2, before any training.")
    p.add_argument("input", help="a .npy array of images, (n, H, W) or (n, C, H, W)")
    p.add_argument("--n-clusters", type=int, required=True, metavar="K", help="number of segment classes")
    _add_params_option(p, "set parameters of IICSegmentation, e.g. max_epochs=5 conv_channels='(16, 32)'; "
                          "they override the other options")
    _add_fit_options(p, ".npy file to write the label maps to")
    p.set_defaults(func=segment)

    p = sub.add_parser("benchmark", help="run estimators on datasets and print the results table",
                       description="Fit each estimator (or each configuration of a sweep) on each dataset "
                                   "for each seed; print the median and spread of ACC, NMI, ARI, fit time "
                                   "and the probes' columns; save them with --name.")
    p.add_argument("--estimators", nargs="+", choices=sorted(ESTIMATORS), help="estimators to run")
    p.add_argument("--datasets", nargs="+", choices=sorted(DATASETS), help="datasets to run them on")
    _add_params_option(p, "set parameters on the estimators (or pipeline steps) that take them, e.g. "
                          "max_epochs=5 perturbation=None conv_channels='(16, 32, 64)' (a dict perturbation is "
                          "ImagePerturbation's keyword arguments); each must be taken by one of the estimators")
    p.add_argument("--sweep", choices=sorted(SWEEPS),
                   help="run every configuration of a named sweep, one row each (--params on top)")
    p.add_argument("--only", nargs="+", metavar="CONFIGURATION", help="run only these configurations of --sweep")
    p.add_argument("--probes", nargs="+", choices=sorted(PROBES), help="add the columns of these probes to every run")
    p.add_argument("--suite", choices=sorted(SUITES),
                   help="run a named suite (estimators, datasets and seeds) instead, e.g. 'readme'")
    p.add_argument("--update", metavar="FILE",
                   help="write the suite's table into FILE between its <!-- benchmark-table:SUITE --> markers")
    p.add_argument("--merge", nargs="+", metavar="JSON",
                   help="instead of running, merge results files of one run split in pieces into --name "
                        "(with --suite and --update: the pieces of a suite, whose table goes into the file)")
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2], help="random_state values (default: 0 1 2)")
    p.add_argument("--threads", type=int, help="torch threads (default: torch's own choice)")
    p.add_argument("--data-home", help="directory of the local datasets (default: $SKMIC_DATA or ../shared/data)")
    p.add_argument("--name", help="also save <out-dir>/<name>.md and .json")
    p.add_argument("--out-dir", default="benchmarks/results", help="where --name saves (default: benchmarks/results)")
    p.add_argument("--notes", default="", help="text saved below the table")
    p.set_defaults(func=benchmark)
    return parser


def main(argv=None):
    """Run the command line; returns the exit status (2 for a user error)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    args.argv = argv  # as given, for the command a results file records
    prefix = f"skmic {args.command}"
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return _run(args, prefix, main_rank=True)
    if args.command not in ("cluster", "segment", "benchmark") or getattr(args, "merge", None):  # under torchrun
        print(f"{prefix}: error: only cluster, segment and benchmark run on several processes (torchrun); "
              f"run {args.command}{' --merge' * (args.command == 'benchmark')} in one", file=sys.stderr)
        return 2
    from . import _distributed

    with _distributed.group_from_env(getattr(args, "device", "cpu")):
        rank = _distributed.rank()
        return _run(args, prefix + (f" (rank {rank})" if rank else ""), main_rank=rank == 0)


def _run(args, prefix, main_rank):
    """``args.func(args)``, its user errors and warnings as one line each (warnings from rank 0 only)."""

    def one_line(message, category, filename, lineno, file=None, line=None):
        if main_rank:  # every rank warns alike: rank 0 speaks for them
            print(f"{prefix}: warning: {_first_line(message)}", file=sys.stderr)

    try:
        with warnings.catch_warnings():
            warnings.showwarning = one_line
            return args.func(args)
    except CLIError as exc:
        print(f"{prefix}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{prefix}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
