"""The command line and the benchmark harness it fronts."""

import json
import subprocess
import sys

import pytest

from skmic.benchmark import _matching_params, format_table, run_benchmark, ESTIMATORS
from skmic.cli import main


def test_params_reach_pipeline_steps_and_unknown_ones_fail():
    pipe = ESTIMATORS["dim-kmeans"](0, None, 3)
    assert _matching_params(pipe, {"prior_weight": 0.5}) == {"deepinfomaxembedder__prior_weight": 0.5}
    # the steps' verbose, never the Pipeline's own (a bool)
    assert _matching_params(pipe, {"verbose": 1}) == {"deepinfomaxembedder__verbose": 1, "kmeansbaseline__verbose": 1}
    with pytest.raises(ValueError, match="takes the parameters"):
        run_benchmark(["kmeans"], ["digits"], [0], params={"prior_weight": 1})


def test_run_benchmark_records_scores():
    runs = run_benchmark(["kmeans", "sklearn-kmeans"], ["wine"], seeds=[0, 1], log=lambda line: None)
    assert len(runs) == 4 and all(0.8 < r["acc"] <= 1 for r in runs)
    table = format_table(runs)
    assert "| wine | kmeans | 2 |" in table and "acc" in table.splitlines()[0]


def test_iic_runs_report_sub_heads(monkeypatch):
    from skmic import IICClustering
    from skmic import benchmark

    monkeypatch.setitem(benchmark.ESTIMATORS, "iic", lambda seed, shape, k: IICClustering(
        k, n_init=1, max_epochs=2, hidden_layer_sizes=(8,), random_state=seed, device="cpu"))
    with __import__("warnings").catch_warnings():
        __import__("warnings").simplefilter("ignore")
        run = run_benchmark(["iic"], ["wine"], [0], log=lambda line: None)[0]
    assert 0 < run["subhead_worst_acc"] <= run["subhead_mean_acc"] <= 1


def test_help_runs_as_a_subprocess():
    out = subprocess.run([sys.executable, "-m", "skmic", "--help"], capture_output=True, text=True, check=True)
    assert "demo" in out.stdout


def test_unknown_command_exits_nonzero():
    with pytest.raises(SystemExit) as exc:
        main(["frobnicate"])
    assert exc.value.code != 0


# ------------------------------------------------------------ skmic cluster
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402


@pytest.fixture
def blob_files(tmp_path, blobs):
    X, _ = blobs
    pd.DataFrame(X, columns=list("abcd")).to_csv(tmp_path / "head.csv", index=False)
    np.savetxt(tmp_path / "plain.csv", X, delimiter=",")
    np.save(tmp_path / "X.npy", X)
    np.savez(tmp_path / "X.npz", X=X)
    return tmp_path


@pytest.mark.parametrize("name", ["head.csv", "plain.csv", "X.npy", "X.npz"])
def test_cluster_reads_every_format_and_writes_labels(blob_files, name, capsys):
    out = blob_files / f"{name}.labels.csv"
    model = blob_files / "model.pkl"
    code = main(["cluster", str(blob_files / name), "--method", "kmeans", "--n-clusters", "3",
                 "--device", "cpu", "--output", str(out), "--save-model", str(model), "--verbose", "0"])
    assert code == 0 and "wrote 120 labels (3 clusters)" in capsys.readouterr().out
    labels = pd.read_csv(out)["label"]
    assert len(labels) == 120 and labels.nunique() == 3
    import pickle

    assert (pickle.loads(model.read_bytes()).labels_ == labels.to_numpy()).all()


def test_cluster_with_probabilities(blob_files, monkeypatch):
    from skmic import DECClustering
    from skmic import benchmark

    def tiny_dec(seed, image_shape, n_clusters):  # the registry's DEC, small enough for a unit test
        return DECClustering(n_clusters, hidden_layer_sizes=(16,), n_components=2, pretrain_epochs=10, max_epochs=13, random_state=seed)

    monkeypatch.setitem(benchmark.ESTIMATORS, "dec", tiny_dec)
    out = blob_files / "p.csv"
    assert main(["cluster", str(blob_files / "X.npy"), "--method", "dec", "--n-clusters", "3", "--device", "cpu",
                 "--output", str(out), "--proba", "--verbose", "0"]) == 0
    table = pd.read_csv(out)
    assert list(table.columns) == ["label", "p0", "p1", "p2"]
    np.testing.assert_allclose(table[["p0", "p1", "p2"]].sum(1), 1, rtol=1e-6)


@pytest.mark.parametrize(
    "content, args, message",
    [
        (None, ["missing.csv"], "no such file"),
        ("1,2,3\n4,5\n6,7,8,9\n", ["ragged.csv"], "cannot read it"),
        ("a,b\nx,1\ny,2\n", ["words.csv"], "non-numeric columns: 'a' (e.g. 'x')"),
        ("a,b\n", ["header_only.csv"], "no data rows, only a header"),
        ("", ["empty.csv"], "the file is empty"),
        ("\n \n", ["blank.csv"], "the file is empty"),
        (",0,1\n0,1,2\n1,3,4\n", ["index.csv"], "header has no name; if it is an index"),
        ("1,2\n3,4\n5,6\n", ["plain.csv", "--header", "maybe"], "invalid choice: 'maybe'"),
        ("1,2\nnan,3\n4,5\n", ["nan.csv"], "NaN"),
        ("1,2\n3,4\n5,6\n", ["small.csv", "--n-clusters", "9"], "n_samples=3"),
    ],
)
def test_cluster_bad_input_is_one_line_and_exit_2(tmp_path, content, args, message, capsys):
    if content is not None:
        (tmp_path / args[0]).write_text(content)
    argv = ["cluster", str(tmp_path / args[0]), "--method", "kmeans", "--device", "cpu", "--output", str(tmp_path / "o.csv")]
    argv += args[1:] if "--n-clusters" in args else ["--n-clusters", "2", *args[1:]]
    assert _exit_code(main, argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1 and "Traceback" not in err


def _exit_code(main, argv):
    """``main(argv)``'s exit status, whether returned or raised (argparse exits)."""
    try:
        return main(argv)
    except SystemExit as exc:
        return exc.code


def _cluster(path, out, *args, method="kmeans", k="3"):
    return main(["cluster", str(path), "--method", method, "--n-clusters", k, "--device", "cpu",
                 "--output", str(out), *args])


def test_pandas_default_header_is_a_header_and_labels_match_rows(tmp_path, blobs, capsys):
    X, _ = blobs
    pd.DataFrame(X).to_csv(tmp_path / "pd.csv", index=False)  # header 0,1,2,3
    assert _cluster(tmp_path / "pd.csv", tmp_path / "o.csv") == 0
    assert "wrote 120 labels" in capsys.readouterr().out
    assert len(pd.read_csv(tmp_path / "o.csv")) == 120
    assert _cluster(tmp_path / "pd.csv", tmp_path / "o.csv", "--header", "no") == 0  # the user says: data
    assert len(pd.read_csv(tmp_path / "o.csv")) == 121
    np.savetxt(tmp_path / "plain.csv", X[:5] * 0 + [[1, 2, 3, 4]], delimiter=",", fmt="%d")  # numeric rows only
    assert _cluster(tmp_path / "plain.csv", tmp_path / "o.csv", k="1") == 0
    assert len(pd.read_csv(tmp_path / "o.csv")) == 5  # the first row is data, never dropped
    assert _cluster(tmp_path / "plain.csv", tmp_path / "o.csv", "--header", "yes", k="1") == 0
    assert len(pd.read_csv(tmp_path / "o.csv")) == 4


@pytest.mark.parametrize("text, n_rows", [
    ("\ufeffa;b\n1,5;2\n3;4,25\n", 2),  # BOM, semicolons, decimal commas
    ('"a","b"\n"1","2"\n"3","4"\n\n', 2),  # quoted fields, blank trailing line
    ("1 2\n3 4\n5 6", 3),  # whitespace (np.savetxt), no trailing newline
    ("1\t2\r\n3\t4\r\n", 2),  # tabs, CRLF
    ("True,False\nFalse,False\n", 2),  # booleans are data, not a header
])
def test_csv_dialects(tmp_path, text, n_rows):
    (tmp_path / "d.csv").write_text(text, encoding="utf-8", newline="")
    assert _cluster(tmp_path / "d.csv", tmp_path / "o.csv", k="1") == 0
    assert len(pd.read_csv(tmp_path / "o.csv")) == n_rows


class _MustNotTrain(__import__("skmic").KMeansBaseline):
    def _fit(self, X):
        raise AssertionError("trained although an option was bad")


@pytest.fixture
def no_training(monkeypatch):
    from skmic import benchmark

    monkeypatch.setitem(benchmark.ESTIMATORS, "kmeans", lambda seed, shape, k: _MustNotTrain(k))


@pytest.mark.parametrize("args, message", [
    (["--output", "{tmp}/missing/o.csv"], "--output {tmp}/missing/o.csv: the directory {tmp}/missing does not exist"),
    (["--output", "{tmp}"], "is a directory; name a file"),
    (["--output", "{tmp}/o.csv", "--save-model", "{tmp}/missing/m.pkl"], "--save-model {tmp}/missing/m.pkl: the directory"),
    (["--output", "{tmp}/X.csv"], "--output {tmp}/X.csv is the same file as the input"),
    (["--output", "{tmp}/o.csv", "--proba"], "--proba: kmeans gives no probabilities"),
    (["--output", "{tmp}/o.csv", "--params", "nope=1"], "--params: kmeans takes no parameter nope; it takes callbacks, device, init"),
    (["--output", "{tmp}/o.csv", "--params", "n_init=0"], "The 'n_init' parameter of _MustNotTrain must be"),
    (["--output", "{tmp}/o.csv", "--params", "n_init"], "argument --params: expected key=value, got 'n_init'"),
    (["--output", "{tmp}/o.csv", "--params", "n_init=2", "n_init=3"], "--params: n_init is given twice (2 and 3)"),
    (["--output", "{tmp}/o.csv", "--params", "n_init=2", "--params", "n_init=3"], "n_init is given twice"),
])
def test_bad_options_fail_before_training_with_one_line(tmp_path, blobs, no_training, args, message, capsys):
    np.savetxt(tmp_path / "X.csv", blobs[0], delimiter=",")
    argv = ["cluster", str(tmp_path / "X.csv"), "--method", "kmeans", "--n-clusters", "3"]
    assert _exit_code(main, argv + [a.format(tmp=tmp_path) for a in args]) == 2
    err = capsys.readouterr().err
    assert message.format(tmp=tmp_path) in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "o.csv").exists()


def test_dim_kmeans_with_params(blob_files, capsys):
    out = blob_files / "dim.csv"
    # one --params with several words, and --params repeated, add up
    assert _cluster(blob_files / "X.npy", out, "--params", "max_epochs=1", "hidden_layer_sizes=(8,)",
                    "critic_dim=8", "token_channels=2", "--params", "n_init=2",
                    "perturbation=tabular", method="dim-kmeans") == 0
    assert len(pd.read_csv(out)) == 120
    # a bad value for the last step is found before the first step trains
    assert _cluster(blob_files / "X.npy", out, "--params", "tol=-1", method="dim-kmeans") == 2
    assert "The 'tol' parameter of KMeansBaseline" in capsys.readouterr().err


def test_one_params_option_on_every_subcommand_that_fits():
    from skmic.cli import build_parser

    subparsers = build_parser()._subparsers._group_actions[0].choices
    for name in ("cluster", "segment", "benchmark"):
        (action,) = [a for a in subparsers[name]._actions if "--params" in a.option_strings]
        assert (action.nargs, type(action).__name__, action.metavar) == ("+", "_ExtendAction", "KEY=VALUE")
        required = {"cluster": ["in.npy", "--n-clusters", "2", "--output", "o.csv"],
                    "segment": ["in.npy", "--n-clusters", "2", "--output", "o.npy"], "benchmark": []}[name]
        parsed = subparsers[name].parse_args(required + ["--params", "a=1", "b=(2,)", "--params", "c=x"])
        assert parsed.params == [("a", 1), ("b", (2,)), ("c", "x")]
    for name, sub in subparsers.items():  # one spelling: no --param anywhere
        assert not [a for a in sub._actions if "--param" in a.option_strings], name


def test_input_after_params_is_named(tmp_path, capsys):
    argv = ["cluster", "--params", "max_epochs=1", str(tmp_path / "X.csv"), "--n-clusters", "2", "--output", "o.csv"]
    assert _exit_code(main, argv) == 2
    err = capsys.readouterr().err
    assert "give the input file before --params" in err and len(err.strip().splitlines()) == 1


def test_parse_param_reads_literals():
    from skmic.cli import parse_param

    assert parse_param("max_epochs=5") == ("max_epochs", 5)
    assert parse_param("hidden_layer_sizes=(64,)") == ("hidden_layer_sizes", (64,))
    assert parse_param('perturbation=["elastic", "affine"]') == ("perturbation", ["elastic", "affine"])
    assert parse_param("rescale_input=true") == ("rescale_input", True)
    assert parse_param("screen_epochs=None") == ("screen_epochs", None)
    assert parse_param("perturbation=elastic") == ("perturbation", "elastic")
    assert parse_param("learning_rate = 1e-3") == ("learning_rate", 1e-3)


def test_warnings_are_one_line(tmp_path, capsys):
    np.savetxt(tmp_path / "dup.csv", np.repeat([[0.0, 0.0], [1.0, 1.0]], 5, axis=0), delimiter=",")
    assert _cluster(tmp_path / "dup.csv", tmp_path / "o.csv") == 0
    err = capsys.readouterr().err
    assert err == "skmic cluster: warning: Number of distinct clusters (2) found smaller than n_clusters (3). Possibly due to duplicate points in X.\n"


def test_cli_module_does_not_import_torch():
    code = ("import sys, runpy\nimport skmic.cli\nassert 'torch' not in sys.modules, 'import'\n"
            "sys.argv = ['skmic', 'cluster', '--help']\n"
            "try:\n    runpy.run_module('skmic', run_name='__main__')\nexcept SystemExit:\n    pass\n"
            "print(sorted(m for m in ('torch', 'sklearn') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "usage: skmic cluster" in out.stdout and out.stdout.strip().endswith("[]")


def test_every_option_has_help_and_verbose_defaults_to_quiet():
    from skmic.cli import build_parser

    parser = build_parser()
    subparsers = parser._subparsers._group_actions[0].choices
    for name, sub in subparsers.items():
        for action in sub._actions:
            assert action.help, f"skmic {name} {action.option_strings or action.dest} has no help"
    assert subparsers["cluster"].parse_args(["x.csv", "--n-clusters", "2", "--output", "o.csv"]).verbose == 0


def test_cluster_as_a_subprocess_reports_errors_without_traceback(tmp_path):
    out = subprocess.run([sys.executable, "-m", "skmic", "cluster", str(tmp_path / "nope.csv"), "--n-clusters", "2",
                          "--output", str(tmp_path / "o.csv")], capture_output=True, text=True)
    assert out.returncode == 2 and "no such file" in out.stderr and "Traceback" not in out.stderr


def test_benchmark_command_prints_and_saves(tmp_path, capsys):
    assert main(["benchmark", "--estimators", "kmeans", "--datasets", "wine", "--seeds", "0",
                 "--name", "t", "--out-dir", str(tmp_path)]) == 0
    assert "| wine | kmeans | 1 |" in capsys.readouterr().out
    assert (tmp_path / "t.md").is_file() and (tmp_path / "t.json").is_file()


def test_demo_prints_a_table_and_saves_its_figure(monkeypatch, tmp_path, capsys):
    from skmic import cli

    from skmic import DeepInfoMaxEmbedder, IICClustering, KMeansBaseline, benchmark
    from sklearn.pipeline import make_pipeline

    # the demo runs the registry's estimators with their defaults; tiny ones stand in for speed
    monkeypatch.setattr(cli, "DEMO_ESTIMATORS", ("kmeans", "iic", "dim-kmeans"))
    monkeypatch.setitem(benchmark.ESTIMATORS, "iic", lambda seed, shape, k: IICClustering(
        k, n_init=1, max_epochs=1, n_heads=1, conv_channels=(4, 8, 8), random_state=seed, device="cpu"))
    monkeypatch.setitem(benchmark.ESTIMATORS, "dim-kmeans", lambda seed, shape, k: make_pipeline(
        DeepInfoMaxEmbedder(max_epochs=1, conv_channels=(4,), random_state=seed), KMeansBaseline(k, random_state=seed)))
    figure = tmp_path / "demo.png"
    assert main(["demo", "--figure", str(figure)]) == 0
    out = capsys.readouterr().out
    assert "| digits | kmeans |" in out and "| digits | dim-kmeans |" in out and str(figure) in out
    assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _skmic(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "skmic", *args], capture_output=True, text=True, cwd=cwd)


@pytest.mark.parametrize("command", ["demo", "cluster", "benchmark"])
def test_every_command_has_help(command):
    out = _skmic(command, "--help")
    assert out.returncode == 0 and f"usage: skmic {command}" in out.stdout


def test_cluster_and_benchmark_as_subprocesses(blob_files, tmp_path):
    out = _skmic("cluster", str(tmp_path / "X.npy"), "--method", "kmeans", "--n-clusters", "3",
                 "--output", str(tmp_path / "labels.csv"), "--verbose", "0")
    assert out.returncode == 0, out.stderr
    assert len(pd.read_csv(tmp_path / "labels.csv")) == len(np.load(tmp_path / "X.npy"))
    out = _skmic("benchmark", "--estimators", "kmeans", "--datasets", "wine", "--seeds", "0")
    assert out.returncode == 0 and "| wine | kmeans | 1 |" in out.stdout


@pytest.mark.slow
def test_demo_as_a_subprocess_with_its_real_budgets(tmp_path):
    out = _skmic("demo", "--figure", "demo.png", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert all(f"| digits | {name} |" in out.stdout for name in ("kmeans", "iic", "dec", "dim-kmeans"))
    assert (tmp_path / "demo.png").stat().st_size > 0


def test_a_suite_writes_its_table_into_a_file(monkeypatch, tmp_path, capsys):
    from skmic import benchmark

    monkeypatch.setitem(benchmark.SUITES, "tiny", [(("kmeans",), ("wine",), (0, 1))])
    readme = tmp_path / "README.md"
    readme.write_text("# x\n\n<!-- benchmark-table:tiny -->\nold table\n<!-- /benchmark-table:tiny -->\n\nafter\n")
    assert main(["benchmark", "--suite", "tiny", "--update", str(readme)]) == 0
    text = readme.read_text()
    assert "old table" not in text and "| wine | kmeans | 2 |" in text and text.endswith("\n\nafter\n")
    assert "Generated by `skmic benchmark " in text and "skmic " in text.split("Generated by")[1]
    readme.write_text("no markers\n")
    with pytest.raises(ValueError, match="must hold the markers"):
        benchmark.write_table_into(readme, "tiny", "t", "p")
    assert main(["benchmark", "--estimators", "kmeans"]) == 2  # no datasets, no suite
    assert "give --estimators (or --sweep) and --datasets, or --suite" in capsys.readouterr().err


def test_a_suite_run_in_pieces_writes_its_table_when_the_pieces_are_the_suite(monkeypatch, tmp_path, capsys):
    from skmic import benchmark

    monkeypatch.setitem(benchmark.SUITES, "tiny", [(("kmeans",), ("wine",), (0, 1)), (("kmeans",), ("iris",), (0,))])
    readme = tmp_path / "README.md"
    readme.write_text("<!-- benchmark-table:tiny -->\nold\n<!-- /benchmark-table:tiny -->\n")
    run = dict(dataset="wine", estimator="kmeans", n_samples=178, acc=0.9)
    piece = lambda cmd, runs: json.dumps(dict(command=cmd, environment="skmic abc (1 threads)", runs=runs))
    (tmp_path / "a.json").write_text(piece("skmic benchmark --seeds 0 1", [dict(run, seed=0), dict(run, seed=1)]))
    (tmp_path / "b.json").write_text(piece("skmic benchmark --datasets iris", [dict(run, dataset="iris", seed=0)]))
    (tmp_path / "c.json").write_text(piece("skmic benchmark --params max_iter=3", [dict(run, dataset="iris", seed=0)]))
    merge = ["benchmark", "--merge", str(tmp_path / "a.json"), "--name", "m", "--out-dir", str(tmp_path)]
    tail = ["--suite", "tiny", "--update", str(readme)]
    assert main(merge + tail) == 2  # iris seed 0 missing
    err = capsys.readouterr().err
    assert "missing [('kmeans', 'iris', 0)]" in err and "old" in readme.read_text()
    assert main(merge[:3] + [str(tmp_path / "a.json")] + merge[3:] + tail) == 2  # wine twice
    assert "twice [('kmeans', 'wine', 0), ('kmeans', 'wine', 1)]" in capsys.readouterr().err
    assert main(merge[:3] + [str(tmp_path / "c.json")] + merge[3:] + tail) == 2  # parameters set
    assert "a piece set parameters" in capsys.readouterr().err
    assert main(merge + ["--suite", "tiny"]) == 2  # --suite without --update
    assert main(merge[:2] + [str(tmp_path / "b.json")] + merge[2:] + tail) == 0
    text = readme.read_text()
    assert "old" not in text and "| wine | kmeans | 2 |" in text and "| iris | kmeans | 1 |" in text
    assert text.index("| wine |") < text.index("| iris |")  # the suite's order, whatever the pieces' order
    assert "Generated by `skmic benchmark --datasets iris ; skmic benchmark --seeds 0 1`, merged by `skmic" in text
