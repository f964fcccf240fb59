"""Fuzz the four estimators and ``skmic cluster`` with random bad and good input.

Random shapes, dtypes (int, bool, float32, float64, complex, strings, mixed
objects), magnitudes (1e-30 to 1e30, and 1e200), NaN and infinity patterns
and CSV dialects (header or not, pandas' default header, quoted fields,
semicolons, tabs, trailing newline or not, CRLF, a BOM, empty, header-only,
ragged). Every case must end in one of two ways: a result with exactly one
label per row (or one code per row) and finite values, or a ValueError or
TypeError whose message names the problem -- for the command line, exit
status 2 with one error line on standard error. Any other exception, or an
unrecognised message, fails. Each case draws from its own seeded generator,
so a failure names a case that reproduces alone.

Deep estimators train for one or two epochs on tiny networks, and get few
cases; most cases exercise validation and k-means.
"""

import re
import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone

from skmic.cli import main
from test_common import tiny_estimators

SEED = 20240617
N_ESTIMATOR_CASES = 300
N_CLI_CASES = 260

#: what a ValueError/TypeError must say: the problem, in words a user can act on
KNOWN_PROBLEMS = re.compile(
    "|".join([
        r"NaN", r"infinity", r"too large for", r"too small for",
        r"0 sample", r"0 feature", r"minimum of \d+ is required", r"Expected 2D", r"2D array", r"2-D input",
        r"dim \d", r"image", r"n_samples=\d+ should be >= n_clusters", r"larger than n_samples",
        r"non-numeric columns", r"convert", r"Complex data not supported", r"not compatible with arrays",
        r"no such file", r"the file is empty", r"no data rows", r"cannot read it", r"header has no name",
        r"non-blank lines", r"overflowed or training diverged", r"diverged",
    ])
)

DTYPES = ["float64", "float32", "int64", "int8", "bool", "complex", "str", "object"]
MAGNITUDES = [1e-30, 1e-12, 1e-3, 1.0, 1.0, 1.0, 1e3, 1e15, 1e30, 1e200]


def random_matrix(rng, min_rows=0):
    """A random ``(n, d)`` array of a random dtype, magnitude and NaN pattern."""
    n, d = int(rng.integers(min_rows, 25)), int(rng.integers(1, 6))
    scale = MAGNITUDES[rng.integers(len(MAGNITUDES))]
    X = rng.normal(size=(n, d)) * scale
    dtype = DTYPES[rng.integers(len(DTYPES))]
    if dtype in ("int64", "int8"):
        X = np.clip(np.round(X), -100, 100).astype(dtype)
    elif dtype == "bool":
        X = X > 0
    elif dtype == "complex":
        X = X + 1j
    elif dtype == "str":
        X = np.where(rng.random((n, d)) < 0.9, X.round(3).astype(str), "abc")
    elif dtype == "object":
        X = X.astype(object)
        if X.size:
            X[rng.integers(n), rng.integers(d)] = rng.choice(["x", None, 1, 2.5])
    else:
        with np.errstate(over="ignore"):  # 1e200 in float32 is inf: one of the cases
            X = X.astype(dtype)
    if X.dtype.kind == "f" and X.size and rng.random() < 0.2:  # NaN / inf cells, or a whole column
        pattern = rng.integers(3)
        if pattern == 0:
            X[rng.integers(n), rng.integers(d)] = np.nan
        elif pattern == 1:
            X[rng.integers(n), rng.integers(d)] = -np.inf
        else:
            X[:, rng.integers(d)] = np.nan
    return X


def _deep_estimators():
    """The tiny deep estimators of the check suite, with a training budget of one or two epochs."""
    budgets = {"IICClustering": dict(max_epochs=1), "DECClustering": dict(pretrain_epochs=1, max_epochs=2),
               "DeepInfoMaxEmbedder": dict(max_epochs=1)}
    return {type(e).__name__: e.set_params(**budgets[type(e).__name__]) for e in tiny_estimators()[1:]}


DEEP = _deep_estimators()


def check_outcome(run, n_rows):
    """Run ``run()``: one finite output row per input row, or a named ValueError/TypeError."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out = run()
    except (ValueError, TypeError) as exc:
        assert KNOWN_PROBLEMS.search(str(exc)), f"unrecognised message: {type(exc).__name__}: {exc}"
        return None
    out = np.asarray(out)
    assert out.shape[0] == n_rows and np.isfinite(out).all()
    return out


@pytest.mark.parametrize("case", range(N_ESTIMATOR_CASES))
def test_estimators_on_random_input(case):
    rng = np.random.default_rng([SEED, case])
    X = random_matrix(rng)
    shape = rng.integers(10)
    if shape == 0:
        X = X.ravel()  # 1-D
    elif shape == 1:
        X = np.repeat(X[:, :, None], 2, axis=2)  # 3-D
    elif shape == 2:
        X = pd.DataFrame(X, columns=[f"f{j}" for j in range(X.shape[1])])
    before = X.copy()
    n_rows = len(X)
    deep = rng.random() < 0.15
    if deep:
        name = list(DEEP)[rng.integers(len(DEEP))]
        est = clone(DEEP[name]).set_params(random_state=int(rng.integers(100)))
    else:
        from skmic import KMeansBaseline

        est = KMeansBaseline(int(rng.integers(1, 5)), n_init=int(rng.integers(1, 3)), device="cpu",
                             random_state=int(rng.integers(100)))
    if hasattr(est, "fit_predict"):
        labels = check_outcome(lambda: est.fit_predict(X), n_rows)
        if labels is not None:
            check_outcome(lambda: est.transform(X), n_rows)
    else:
        check_outcome(lambda: est.fit_transform(X), n_rows)
    if isinstance(X, pd.DataFrame):
        pd.testing.assert_frame_equal(X, before)
    else:
        np.testing.assert_array_equal(X, before)  # never mutated


def _cell(value, quote):
    text = str(value)
    return f'"{text}"' if quote else text


def write_csv(rng, path, X, header):
    """Write ``X`` in a random dialect; return the number of data rows written."""
    sep = rng.choice([",", ";", "\t"])
    quote = rng.random() < 0.2
    newline = "\r\n" if rng.random() < 0.2 else "\n"
    lines = []
    if header == "names":
        lines.append(sep.join(_cell(f"col{j}", quote) for j in range(X.shape[1])))
    elif header == "pandas":
        lines.append(sep.join(_cell(j, quote) for j in range(X.shape[1])))
    lines += [sep.join(_cell(v, quote) for v in row) for row in X]
    if X.shape[0] > 2 and rng.random() < 0.05:  # a ragged row
        lines[-1] = lines[-1] + sep + "1" if rng.random() < 0.5 else sep.join(lines[-1].split(sep)[:-1])
    text = newline.join(lines) + (newline if rng.random() < 0.7 else "")
    if rng.random() < 0.15:
        text = "\ufeff" + text
    path.write_bytes(text.encode("utf-8"))
    return len(lines) - (header != "none")


@pytest.mark.parametrize("case", range(N_CLI_CASES))
def test_cli_on_random_files(case, tmp_path, capsys):
    rng = np.random.default_rng([SEED, 10**6 + case])
    X = random_matrix(rng)
    if X.ndim == 2 and X.dtype.kind == "c" and rng.random() < 0.5:
        X = X.real
    kind = rng.choice(["csv", "csv", "csv", "npy", "empty", "header-only"])
    header = rng.choice(["none", "none", "names", "pandas"])
    header_option = rng.choice(["auto", "auto", "auto", "yes", "no"]) if kind == "csv" else "auto"
    path = tmp_path / f"data.{'npy' if kind == 'npy' else 'csv'}"
    if kind == "npy":
        np.save(path, X)
        n_rows = len(X)
    elif kind == "empty":
        path.write_bytes(b"")
        n_rows = 0
    elif kind == "header-only":
        path.write_text(",".join(f"col{j}" for j in range(X.shape[1])) + "\n")
        n_rows = 0
    else:
        n_rows = write_csv(rng, path, X, header)
        pandas_default_first = (header == "none" and n_rows and header_option == "auto"
                                and [str(v) for v in X[0]] == [str(j) for j in range(X.shape[1])])
        if header_option == "yes" and header == "none" or pandas_default_first:
            n_rows -= 1  # the first data row is read as names
        elif header_option == "no" and header != "none":
            n_rows += 1  # the names are read as a data row (and are not numbers)
    method = "iic" if rng.random() < 0.02 else "kmeans"
    argv = ["cluster", str(path), "--method", method, "--n-clusters", str(rng.integers(1, 4)),
            "--device", "cpu", "--output", str(tmp_path / "labels.csv"), "--header", header_option]
    if method == "iic":
        argv += ["--params", "max_epochs=1", "n_init=1", "hidden_layer_sizes=(4,)"]
    code = main(argv)
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert all(line.startswith("skmic cluster: ") for line in lines), err
    if code == 0:
        labels = pd.read_csv(tmp_path / "labels.csv")["label"]
        assert len(labels) == n_rows and labels.notna().all()
    else:
        assert code == 2, err
        errors = [line for line in lines if line.startswith("skmic cluster: error: ")]
        assert len(errors) == 1 and KNOWN_PROBLEMS.search(errors[0]), err
        assert not (tmp_path / "labels.csv").exists()
