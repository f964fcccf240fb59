"""The command line and the benchmark harness it fronts."""

import subprocess
import sys

import pytest

from skmic.benchmark import _matching_params, format_table, run_benchmark, ESTIMATORS
from skmic.cli import main


def test_params_reach_pipeline_steps_and_unknown_ones_fail():
    pipe = ESTIMATORS["dim-kmeans"](0, None, 3)
    assert _matching_params(pipe, {"gamma": 0.5}) == {"deepinfomaxembedder__gamma": 0.5}
    with pytest.raises(ValueError, match="takes the parameters"):
        run_benchmark(["kmeans"], ["digits"], [0], params={"gamma": 1})


def test_run_benchmark_records_scores():
    runs = run_benchmark(["kmeans", "sklearn-kmeans"], ["wine"], seeds=[0, 1], log=lambda line: None)
    assert len(runs) == 4 and all(0.8 < r["acc"] <= 1 for r in runs)
    table = format_table(runs)
    assert "| wine | kmeans | 2 |" in table and "acc" in table.splitlines()[0]


def test_help_runs_as_a_subprocess():
    out = subprocess.run([sys.executable, "-m", "skmic", "--help"], capture_output=True, text=True, check=True)
    assert "demo" in out.stdout


def test_unknown_command_exits_nonzero():
    with pytest.raises(SystemExit) as exc:
        main(["frobnicate"])
    assert exc.value.code != 0
