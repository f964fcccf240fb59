"""The documentation builds offline with warnings as errors.

The default suite builds it with the gallery in its reduced configuration
(``SKMIC_DOCS_QUICK=1``, about half a minute on 2 cores); the slow test runs
the examples in full. Each build works on a copy of ``docs/``, ``examples/``
and ``benchmarks/results/`` in a temporary directory, so that it leaves no
generated files in the checkout and sphinx-gallery's cache of earlier runs
cannot stand in for running the examples.
"""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
GENERATED = ("_build", "auto_examples", "generated", "_generated", "sg_execution_times.rst")


def build(tmp_path, *options, env=None):
    src = tmp_path / "src"
    shutil.copytree(DOCS, src / "docs", ignore=shutil.ignore_patterns(*GENERATED))
    shutil.copytree(ROOT / "examples", src / "examples")
    shutil.copytree(ROOT / "benchmarks" / "results", src / "benchmarks" / "results")
    out = tmp_path / "out"
    command = [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html", *options,
               "-d", str(out / "doctrees"), str(src / "docs"), str(out / "html")]
    # skmic is imported from where this test imports it, not from the copy
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "PYTHONPATH": path, "MPLBACKEND": "Agg", **(env or {})}
    result = subprocess.run(command, capture_output=True, text=True, env=env, cwd=tmp_path)
    assert result.returncode == 0, f"sphinx-build failed:\n{result.stdout}\n{result.stderr}"
    return out / "html"


def check_gallery(html):
    for example in (ROOT / "examples").glob("plot_*.py"):
        page = (html / "auto_examples" / f"{example.stem}.html").read_text()
        assert "sphx-glr-single-img" in page or "sphx-glr-multi-img" in page, f"{example.name} shows no figure"


def test_docs_need_no_network():
    conf = (DOCS / "conf.py").read_text()
    assert "sphinx.ext.intersphinx" not in conf, "intersphinx would fetch inventories over the network"


def test_docs_build(tmp_path):
    html = build(tmp_path, env={"SKMIC_DOCS_QUICK": "1"})
    for page in ["index", "install", "user_guide/iic", "user_guide/dim", "user_guide/dec",
                 "user_guide/kmeans", "user_guide/choosing", "cli", "devices", "results", "api",
                 "generated/skmic.IICClustering", "generated/skmic.metrics.cluster_accuracy",
                 "auto_examples/index"]:
        assert (html / f"{page}.html").is_file(), page
    results = (html / "results.html").read_text()
    for md in (ROOT / "benchmarks" / "results").glob("*.md"):
        assert f"results/{md.name}" in results, f"{md.name} is not on the results page"
    check_gallery(html)


@pytest.mark.slow
def test_docs_build_full_gallery(tmp_path):
    check_gallery(build(tmp_path, env={"SKMIC_DOCS_QUICK": "0"}))


def _summary_rows():
    text = (DOCS / "results.rst").read_text()
    table = text.split("Targets met and missed")[1].split("All result files")[0]
    rows = re.split(r"\n   \* - ", table)[2:]  # skip the text before and the header row
    for row in rows:
        cells = [" ".join(c.split()) for c in re.split(r"\n     - ", row)]
        yield cells


def test_results_summary_quotes_the_files():
    """Every number the summary quotes appears in a file that its row cites."""
    rows = list(_summary_rows())
    assert len(rows) >= 8
    for target, _status, measured, files in rows:
        names = re.findall(r"<results-([\w.-]+)>", files) + re.findall(r"``([\w.-]+\.log)``", measured)
        assert names, f"row {target!r} cites no result file"
        texts = ""
        for name in names:
            path = ROOT / "benchmarks" / "results" / (name if name.endswith(".log") else f"{name}.md")
            assert path.is_file(), f"{path.name} is cited but missing"
            texts += path.read_text()
        for number in re.findall(r"\d+\.\d+|\d{3,}", measured):
            assert number in texts, f"{number} (row {target!r}) is in none of {names}"
