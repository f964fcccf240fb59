"""The result tables of the benchmark scripts (benchmarks/ is not a package)."""

import importlib.util
import json
import warnings
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture(scope="module")
def sweep_table():
    spec = importlib.util.spec_from_file_location("sweep_table", BENCHMARKS / "sweep_table.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _run(seed, losses_by_epoch, accs_by_epoch, acc):
    trace = [
        dict(epoch=e + 1, best=max(a), mean=sum(a) / len(a), worst=min(a), head_losses=l, head_accs=a)
        for e, (l, a) in enumerate(zip(losses_by_epoch, accs_by_epoch))
    ]
    return dict(name="cfg", seed=seed, trace=trace, acc=acc, time=10.0, perturbed_images_per_s=1000.0)


def test_sweep_tables_report_the_lowest_loss_sub_head(sweep_table):
    # sub-head 1 has the lowest loss in epoch 1, sub-head 0 in epoch 2: its ACC is reported, not the best ACC
    runs = [
        _run(0, [[-1.0, -1.5], [-2.2, -2.0]], [[0.5, 0.6], [0.7, 0.9]], 0.7),
        _run(3, [[-1.1, -1.2], [-1.9, -2.1]], [[0.4, 0.3], [0.8, 0.6]], 0.6),
    ]
    summary = sweep_table.table(runs)
    assert "0.650 [0.600, 0.700]" in summary  # median [min, max] of the runs' ACC
    assert "0: -2.200/0.700, 3: -2.100/0.600" in summary
    trace = sweep_table.trace_table(runs).splitlines()
    assert trace[0] == "| configuration | seed | epoch 1 | epoch 2 |"
    assert trace[2] == "| cfg | 0 | -1.500 / 0.600 | -2.200 / 0.700 |"
    assert trace[3] == "| cfg | 3 | -1.200 / 0.300 | -2.100 / 0.600 |"


def test_sweep_tables_accept_traces_without_head_losses(sweep_table):
    run = _run(0, [[-1.0]], [[0.5]], 0.5)
    for t in run["trace"]:
        del t["head_losses"], t["head_accs"]
    assert sweep_table.table([run]).splitlines()[-1].endswith("| - |")
    assert sweep_table.trace_table([run]).splitlines()[-1] == "| cfg | 0 | - |"


def test_dim_ablation_table_gives_median_and_spread_per_configuration(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCHMARKS))  # dim_ablation imports dim_probe
    spec = importlib.util.spec_from_file_location("dim_ablation", BENCHMARKS / "dim_ablation.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    first, second = list(module.CONFIGS)[:2]
    rows = [
        dict(config=second, seed=0, acc=0.5, nmi=0.4, fit_time_s=10.0),
        dict(config=first, seed=0, acc=0.9, nmi=0.8, fit_time_s=30.0),
        dict(config=first, seed=1, acc=0.6, nmi=0.5, fit_time_s=20.0),
        dict(config=first, seed=2, acc=0.7, nmi=0.7, fit_time_s=50.0),
    ]
    lines = module.table(rows).splitlines()
    assert lines[2] == f"| {first} | 3 | 0.7000 [0.6000, 0.9000] | 0.7000 [0.5000, 0.8000] | 30 |"
    assert lines[3] == f"| {second} | 1 | 0.5000 | 0.4000 | 10 |"


def test_merge_results_joins_pieces_into_one_table(tmp_path):
    spec = importlib.util.spec_from_file_location("merge_results", BENCHMARKS / "merge_results.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    run = dict(dataset="digits", estimator="dec", n_samples=10)
    pieces = [
        dict(command="python benchmarks/run.py --seeds 0 1", environment="torch (1 threads)",
             runs=[dict(run, seed=0, acc=0.5), dict(run, seed=1, acc=0.9)]),
        dict(command="python benchmarks/run.py --seeds 2", environment="torch (1 threads)", runs=[dict(run, seed=2, acc=0.7)]),
    ]
    files = []
    for i, piece in enumerate(pieces):
        files.append(tmp_path / f"p{i}.json")
        files[-1].write_text(json.dumps(piece))
    module.main([*map(str, files), "--name", "merged", "--out-dir", str(tmp_path)])
    text = (tmp_path / "merged.md").read_text()
    assert "`python benchmarks/run.py --seeds 0 1 ; python benchmarks/run.py --seeds 2`" in text
    assert "| digits | dec | 3 | 0.7 [0.5, 0.9] |" in text
    assert "Environment: torch (1 threads)\n" in text  # the pieces', not the merging process's
    assert [r["seed"] for r in json.loads((tmp_path / "merged.json").read_text())["runs"]] == [0, 1, 2]


def test_dec_da_script_writes_a_results_table(tmp_path):
    spec = importlib.util.spec_from_file_location("dec_da", BENCHMARKS / "dec_da.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    params = dict(hidden_layer_sizes=[8], n_components=2, pretrain_epochs=1, max_epochs=1, kmeans_n_init=1, device="cpu")
    module.main(["--seeds", "0", "--augmentation", '{"noise": 0, "rotation": 10}', "--params", json.dumps(params),
                 "--name", "t", "--out-dir", str(tmp_path)])
    text = (tmp_path / "t.md").read_text()
    assert "| digits | dec-da | 1 |" in text and "--augmentation" in text


def test_dec_invariance_score_is_the_fraction_of_unchanged_labels(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCHMARKS))  # dec_compactness imports dim_probe
    spec = importlib.util.spec_from_file_location("dec_compactness", BENCHMARKS / "dec_compactness.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    from sklearn.datasets import make_blobs

    from skmic import DECClustering

    X, _ = make_blobs(60, centers=3, random_state=0)
    X = X.astype("float32")
    dec = DECClustering(3, hidden_layer_sizes=[8], n_components=2, pretrain_epochs=5, max_epochs=5,
                        random_state=0, device="cpu").fit(X)
    assert module.invariance(dec, X, lambda x, g: x, seed=0) == 1.0
    first_row = lambda x, g: x[:1].expand_as(x)  # every sample becomes the first one
    expected = (dec.labels_ == dec.labels_[0]).mean()
    assert module.invariance(dec, X, first_row, seed=0) == pytest.approx(expected)
    assert expected < 1.0


def _load(name):
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_throughput_reports_rates_and_fractions_of_the_matmul_peak():
    throughput = _load("throughput")
    with warnings.catch_warnings():  # one epoch on 64 digits: collapsed heads are expected
        warnings.simplefilter("ignore")
        runs = throughput.measure((8, 8), [1, 2], samples=64, epochs=1, repeats=1, data_home=None)
    one, two = runs
    assert one["estimator"] == "iic n_init=1" and one["fit_ratio"] == 1.0
    # stacked restarts: exactly twice the FLOPs of one (torch's counter overcounts grouped backward)
    assert two["step_gflop"] == pytest.approx(2 * one["step_gflop"])
    for run in runs:
        assert run["matmul_gflop_per_s"] > 0 and 0 < run["peak_fraction"] == pytest.approx(
            run["gflop_per_s"] / run["matmul_gflop_per_s"]
        )


def test_results_record_the_commit_they_ran_on():
    from skmic.benchmark import code_version, environment

    version = code_version()
    assert version == "unknown" or len(version.split("+")[0]) == 12
    assert environment().startswith(f"skmic {version}, ")
