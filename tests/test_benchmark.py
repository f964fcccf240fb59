"""The one benchmark tool: sweeps, probes, segmentation, merges and the scripts of benchmarks/.

Each runs for real on small data (tiny networks, a few epochs), through
``skmic benchmark`` where the command line is what is tested.
"""

import importlib.util
import json
import re
import shlex
import os
import warnings
from pathlib import Path

import numpy as np
import pytest

from skmic import benchmark
from skmic.benchmark import PROBES, SWEEPS, format_table, run_benchmark
from skmic.cli import main

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
QUIET = dict(log=lambda line: None)


@pytest.fixture(autouse=True)
def _no_warnings():
    with warnings.catch_warnings():  # tiny budgets: convergence warnings are expected
        warnings.simplefilter("ignore")
        yield


def test_configurations_are_rows_of_one_table():
    configs = {"one restart": dict(n_init=1), "ten restarts": dict(n_init=10)}
    runs = run_benchmark(["kmeans"], ["wine"], [0, 1, 2], configurations=configs, **QUIET)
    assert [r["configuration"] for r in runs] == ["one restart"] * 3 + ["ten restarts"] * 3
    lines = format_table(runs).splitlines()
    assert lines[0].startswith("| dataset | estimator | configuration | seeds | acc |")
    acc = sorted(r["acc"] for r in runs[:3])
    assert lines[2].startswith(f"| wine | kmeans | one restart | 3 | {acc[1]:.4g} [{acc[0]:.4g}, {acc[2]:.4g}] |")
    assert lines[3].startswith("| wine | kmeans | ten restarts | 3 |")


def test_every_sweep_names_parameters_its_estimator_takes():
    for name, (estimator, configs) in SWEEPS.items():
        est = benchmark.ESTIMATORS[estimator](0, None, 3)
        for config in configs.values():
            assert set(benchmark._matching_params(est, config, original=True)) == set(config), name


def test_a_sweep_from_the_command_line_saves_one_table(tmp_path, capsys):
    assert main(["benchmark", "--sweep", "dim-ablation", "--only", "global JSD", "affine view, global DV",
                 "--datasets", "digits", "--seeds", "0", "--probes", "linear-probe", "perturbation-rate",
                 "--params", "max_epochs=1", "conv_channels=(4,)", "hidden_layer_sizes=(8,)",
                 "--name", "t", "--out-dir", str(tmp_path)]) == 0
    text = (tmp_path / "t.md").read_text()
    assert "| digits | dim-kmeans | global JSD | 1 |" in text and "| digits | dim-kmeans | affine view, global DV | 1 |" in text
    assert "Command: `skmic benchmark --sweep dim-ablation --only 'global JSD' 'affine view, global DV'" in text
    runs = json.loads((tmp_path / "t.json").read_text())["runs"]
    for run in runs:
        assert 0 < run["probe_dim"] <= 1 and 0 < run["probe_raw"] <= 1 and 0 < run["kmeans_raw_acc"] <= 1
    # the global-only configuration has no perturbation, the affine view one has
    assert "perturbed_images_per_s" not in runs[0] and runs[1]["perturbed_images_per_s"] > 0
    assert main(["benchmark", "--sweep", "dim-ablation", "--only", "nonesuch", "--datasets", "digits"]) == 2
    assert "has no configuration nonesuch" in capsys.readouterr().err


def test_params_from_the_command_line_and_a_perturbation_from_its_keyword_arguments(tmp_path):
    # DEC-DA with the paper's augmentation as ImagePerturbation keyword arguments: the same
    # callable as the named "shift-rotate", so the two give the same labels
    augmentation = ("perturbation={'rotation': 10, 'p_rotation': 1.0, 'scale': (1, 1), 'shear': 0, "
                    "'translate': 0.1, 'crop': None, 'brightness': 0, 'contrast': 0, 'noise': 0}")
    tiny = ["hidden_layer_sizes=(8,)", "n_components=2", "pretrain_epochs=1", "max_epochs=1", "kmeans_n_init=1"]
    for name, perturbation in [("kwargs", augmentation), ("named", "perturbation=shift-rotate")]:
        assert main(["benchmark", "--estimators", "dec", "--datasets", "digits", "--seeds", "0", "--params",
                     perturbation, "rescale_input=True", *tiny, "--name", name, "--out-dir", str(tmp_path)]) == 0
    kwargs, named = (json.loads((tmp_path / f"{n}.json").read_text())["runs"][0] for n in ("kwargs", "named"))
    assert kwargs["acc"] == named["acc"] and kwargs["nmi"] == named["nmi"]
    with pytest.raises(ValueError, match="needs an image dataset"):
        benchmark.resolve_params({"perturbation": {"rotation": 10}}, None)


def test_dec_scores_probe():
    runs = run_benchmark(["dec"], ["wine"], [0, 1, 2], probes=["dec-scores"], params=dict(
        hidden_layer_sizes=(8,), n_components=2, pretrain_epochs=5, max_epochs=5, perturbation=None), **QUIET)
    for run in runs:
        assert 0 < run["init_acc"] <= 1 and -1 <= run["init_silhouette"] <= 1 and -1 <= run["final_silhouette"] <= 1
        assert 0 <= run["init_within_total"] <= 1 and 0 <= run["final_within_total"] <= 1
        assert "invariance" not in run  # plain DEC: no perturbation
    assert PROBES["dec-scores"].summary(runs).startswith("| score | Spearman correlation with ACC |")


def test_iic_selection_probe_reads_one_fitted_network_by_both_rules():
    import torch
    from sklearn.datasets import make_blobs

    from skmic import IICClustering
    from skmic.metrics import cluster_accuracy

    X, y = make_blobs(120, centers=3, random_state=0)
    tiny = dict(n_clusters=3, n_init=3, max_epochs=10, n_heads=2, hidden_layer_sizes=(16,), device="cpu", random_state=0)
    for rule in ("self_labeling", "kmeans", "consensus"):
        est = IICClustering(selection=rule, **tiny).fit(X)
        labels, centers = est.labels_.copy(), est.cluster_centers_
        torch.manual_seed(12345)  # the global seed at probe time does not matter
        got = PROBES["iic-selection"].metrics(est, X, y, 0)
        assert set(got) == {"acc_self_labeling", "acc_kmeans", "acc_consensus"} and all(0 < v <= 1 for v in got.values())
        assert got[f"acc_{rule}"] == cluster_accuracy(y, labels)  # the fit's own rule, recomputed
        np.testing.assert_array_equal(est.labels_, labels)  # the fitted estimator is left as it was
        assert est.selection_ == rule and est.cluster_centers_ is centers
    assert PROBES["iic-selection"].metrics(IICClustering(selection="lowest_loss", **tiny).fit(X), X, y, 0) == {}


def test_dec_scores_invariance_is_the_fraction_of_unchanged_labels():
    from sklearn.datasets import make_blobs

    from skmic import DECClustering

    X, y = make_blobs(60, centers=3, random_state=0)
    params = dict(hidden_layer_sizes=[8], n_components=2, pretrain_epochs=5, max_epochs=5, random_state=0, device="cpu")
    dec = DECClustering(3, perturbation=lambda x, g: x, **params).fit(X)
    scores = PROBES["dec-scores"].metrics(dec, X, y, 0)
    assert scores["invariance"] == 1.0
    # the same fit, stopped after pretraining, gives the pretrained embedding and DEC's k-means initialisation
    pretrained = DECClustering(3, perturbation=lambda x, g: x, **params, callbacks=[
        benchmark._StopAfter("pretrain end-to-end", 5)]).fit(X)
    assert pretrained.n_iter_ == 0 and len(pretrained.pretrain_history_) == 5
    assert scores["pretrain_loss"] == pytest.approx(pretrained.pretrain_history_[-1]["loss"])


def test_segmentation_runs_score_pixels(monkeypatch):
    from skmic.datasets import make_texture_mosaics

    # a registry entry of 6 small mosaics stands in for the 200 of 64 x 64 pixels
    monkeypatch.setitem(benchmark.DATASETS, "mosaics3", lambda data_home=None, seed=0: (
        *make_texture_mosaics(6, 24, 3, random_state=seed), None))
    runs = run_benchmark(["kmeans-patch", "iic-seg"], ["mosaics3"], [0, 1], params=dict(
        max_epochs=1, conv_channels=(4,), n_pool=1, patch=3), **QUIET)
    assert [r["estimator"] for r in runs] == ["kmeans-patch"] * 2 + ["iic-seg"] * 2
    for run in runs:
        assert 0 < run["acc"] <= 1 and run["n_samples"] == 6 and run["cpu_time_s"] > 0
    # a seeded dataset is drawn anew for every seed
    assert runs[0]["acc"] != runs[1]["acc"]


def test_merge_joins_pieces_into_one_table(tmp_path, capsys):
    run = dict(dataset="digits", estimator="dec", n_samples=10)
    pieces = [
        dict(command="skmic benchmark --seeds 0 1", environment="torch (1 threads)",
             runs=[dict(run, seed=0, acc=0.5), dict(run, seed=1, acc=0.9)]),
        dict(command="skmic benchmark --seeds 2", environment="torch (1 threads)", runs=[dict(run, seed=2, acc=0.7)]),
    ]
    files = []
    for i, piece in enumerate(pieces):
        files.append(tmp_path / f"p{i}.json")
        files[-1].write_text(json.dumps(piece))
    assert main(["benchmark", "--merge", *map(str, files), "--name", "merged", "--out-dir", str(tmp_path)]) == 0
    text = (tmp_path / "merged.md").read_text()
    assert "`skmic benchmark --seeds 0 1 ; skmic benchmark --seeds 2`" in text
    assert "| digits | dec | 3 | 0.7 [0.5, 0.9] |" in text
    assert "Environment: torch (1 threads)\n" in text  # the pieces', not the merging process's
    assert [r["seed"] for r in json.loads((tmp_path / "merged.json").read_text())["runs"]] == [0, 1, 2]
    assert main(["benchmark", "--merge", str(files[0])]) == 2
    assert "give --name" in capsys.readouterr().err


def test_run_py_is_the_benchmark_command(tmp_path):
    import subprocess
    import sys

    env = {**os.environ, "PYTHONPATH": str(BENCHMARKS.parent)}  # this checkout's skmic
    out = subprocess.run([sys.executable, str(BENCHMARKS / "run.py"), "--estimators", "kmeans", "--datasets", "wine",
                          "--seeds", "0", "--params", "n_init=2"], capture_output=True, text=True, env=env)
    assert out.returncode == 0 and "| wine | kmeans | 1 |" in out.stdout, out.stderr


def test_throughput_reports_rates_and_fractions_of_the_matmul_peak():
    spec = importlib.util.spec_from_file_location("throughput", BENCHMARKS / "throughput.py")
    throughput = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(throughput)
    runs = throughput.measure((8, 8), [1, 2], samples=64, epochs=2, repeats=1, data_home=None)
    one, two = runs
    assert one["estimator"] == "iic n_init=1" and one["fit_ratio"] == 1.0 and one["step_ratio"] == 1.0
    assert (one["restarts_timed"], two["restarts_timed"]) == (1, 2)
    assert two["step_gflop"] == pytest.approx(2 * one["step_gflop"]) and one["step_gflop"] > 0
    for run in runs:
        assert 0 < run["step_ms"] < 1000 * run["fit_time_s"]
        assert run["gflop_per_s"] == pytest.approx(run["step_gflop"] / run["step_ms"] * 1000)
        assert run["matmul_gflop_per_s"] > 0 and 0 < run["peak_fraction"] == pytest.approx(
            run["gflop_per_s"] / run["matmul_gflop_per_s"]
        )
    with pytest.raises(ValueError, match="raise --epochs"):  # one epoch: no step between two epochs' ends
        throughput.measure((8, 8), [1], samples=64, epochs=1, repeats=1, data_home=None)


def test_results_record_the_commit_they_ran_on():
    from skmic.benchmark import code_version, environment

    version = code_version()
    assert version == "unknown" or len(version.split("+")[0]) == 12
    assert environment().startswith(f"skmic {version}, ")


def test_no_script_reaches_into_the_package():
    """benchmarks/ uses skmic's public API: no sys.path games, no private names, no patching."""
    for path in BENCHMARKS.rglob("*.py"):
        source = path.read_text()
        for needle in ("sys.path", "monkeypatch", "skmic._", "from skmic import _"):
            assert needle not in source, f"{path.name}: {needle}"
        assert not [line for line in source.splitlines() if "._" in line and "est." in line], path.name


RESULTS = BENCHMARKS / "results"


def _commands_in_a_row(line):
    """The commands of a shell line, split at ``;`` and ``&&`` outside quotes (a note may hold a ``;``)."""
    lexer = shlex.shlex(line, posix=True, punctuation_chars=";&")
    lexer.whitespace_split = True
    try:
        tokens = list(lexer)
    except ValueError:  # not a shell line (prose with an apostrophe): split it naively
        return re.split(r"\s*(?:;|&&)\s*", line)
    commands, current = [], []
    for token in tokens + [";"]:
        if token in (";", "&&"):
            commands.append(shlex.join(current))
            current = []
        else:
            current.append(token)
    return commands


def _todays_benchmark_commands(md):
    """The ``skmic benchmark`` (or ``benchmarks/run.py``) commands a results file gives for today's tool.

    A file recorded before the tool existed keeps its historical command
    first and gives today's after the words "Today's command"; commands in a
    row (``;``, ``&&``) count one by one.
    """
    text = md.read_text()
    if "Today's command" in text:
        text = text[text.index("Today's command"):]
    commands = []
    for quoted in re.findall(r"`([^`]*)`", text):
        for command in _commands_in_a_row(quoted):
            found = re.fullmatch(r"(?:[A-Z_]+=\S+ )*(?:skmic benchmark|python benchmarks/run\.py)( .*)?", command)
            if found:
                commands.append(found.group(1) or "")
    return commands


def test_every_benchmark_command_of_the_results_runs_today():
    """Each recorded command parses, and its sweep configurations and parameters exist."""
    from skmic.cli import build_parser

    parser, checked = build_parser(), 0
    for md in sorted(RESULTS.glob("*.md")):
        for command in _todays_benchmark_commands(md):
            try:
                args = parser.parse_args(["benchmark", *shlex.split(command)])
            except SystemExit:
                pytest.fail(f"{md.name}: `skmic benchmark{command}` does not parse")
            estimators = list(args.estimators or [])
            if args.sweep:
                estimator, configurations = SWEEPS[args.sweep]
                assert set(args.only or ()) <= set(configurations), f"{md.name}: --only {args.only}"
                estimators.append(estimator)
            given = dict(args.params or [])
            taken = set().union(*(benchmark._matching_params(benchmark.ESTIMATORS[e](0, None, 2), given,
                                                             original=True) for e in estimators))
            assert set(given) <= taken, f"{md.name}: no estimator takes {sorted(set(given) - taken)}"
            checked += 1
    assert checked >= 100


def test_every_results_file_has_a_command_to_run():
    """A .md names a command of today's tools; any other file is named by a .md (or shares its name)."""
    scripts = re.compile(r"`(?:[A-Z_]+=\S+ )*(?:(?:torchrun (?:--?[\w-]+ \S+ )*-m )?skmic (?:benchmark|demo)|python -m skmic demo|"
                         r"(?:python )?(benchmarks/[\w/]+\.py))[^`]*`")
    mds = {md.stem: md.read_text() for md in RESULTS.glob("*.md")}
    for name, text in mds.items():
        commands = scripts.findall(text) + re.findall(r"`(python -c [^`]*)`", text)
        runnable = [c for c in scripts.finditer(text) if not c.group(1) or (BENCHMARKS.parent / c.group(1)).is_file()]
        assert runnable, f"{name}.md names no command of today's tools ({commands})"
    for path in RESULTS.iterdir():
        if path.suffix != ".md":
            assert path.stem in mds or any(path.name in text for text in mds.values()), (
                f"{path.name}: no results .md names it, so no command reproduces it")


def test_dec_restarts_probe_scores_each_run():
    from sklearn.datasets import make_blobs

    from skmic import DECClustering
    from skmic.metrics import cluster_accuracy

    X, y = make_blobs(60, centers=3, random_state=0)
    dec = DECClustering(3, hidden_layer_sizes=[8], n_components=2, pretrain_epochs=5, max_epochs=5, n_init=3,
                        perturbation=None, random_state=0, device="cpu").fit(X)
    assert dec.restart_labels_.shape == (3, 60)
    np.testing.assert_array_equal(dec.restart_labels_[dec.kept_restarts_[0]], dec.labels_)
    scores = PROBES["dec-restarts"].metrics(dec, X, y, 0)
    acc = [cluster_accuracy(y, labels) for labels in dec.restart_labels_]
    assert [scores[f"run{r}_acc"] for r in (1, 2, 3)] == pytest.approx(acc)
    assert scores["kept_run"] == dec.kept_restarts_[0] + 1
    assert scores["best_run_acc"] == max(acc) and scores["worst_run_acc"] == min(acc)


def test_dec_restarts_probe_replays_the_selection_rules():
    from types import SimpleNamespace

    truth = np.repeat(np.arange(4), 25)
    merged = np.where(truth == 1, 0, truth)  # unbalanced: 50, 25, 25
    split = truth.copy()
    split[truth == 2] = np.tile([2, 3], 13)[:25]
    split[truth == 3] = 2  # a cluster moved: the sizes stay 25, 25, 37-38, 12-13
    phases = np.stack([merged, merged, truth, split, truth])
    dec = SimpleNamespace(restart_labels_=phases, kept_restarts_=np.array([2]))
    scores = PROBES["dec-restarts"].metrics(dec, None, truth, 0)
    # among the first three the two merged phases agree and outvote the truth; the sizes pick the truth
    assert scores["agreement3_acc"] == pytest.approx(0.75) and scores["balance3_acc"] == 1.0
    assert scores["agreement5_acc"] == 1.0 and scores["balance5_acc"] == 1.0
    assert scores["kept_run"] == 3 and scores["run4_acc"] < 1.0
    two = PROBES["dec-restarts"].metrics(SimpleNamespace(restart_labels_=phases[:2], kept_restarts_=np.array([0])),
                                         None, truth, 0)
    assert not any(key.startswith(("agreement", "balance")) for key in two)
