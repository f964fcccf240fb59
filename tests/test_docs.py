"""The documentation builds offline with warnings as errors.

The default suite builds it without running the gallery (a few seconds); the
slow test runs the gallery too, in its reduced configuration
(``SKMIC_DOCS_QUICK=1``).
"""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"


def build(out, *options, env=None):
    command = [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html", *options,
               "-d", str(out / "doctrees"), str(DOCS), str(out / "html")]
    result = subprocess.run(command, capture_output=True, text=True, env={**os.environ, **(env or {})}, cwd=ROOT)
    assert result.returncode == 0, f"sphinx-build failed:\n{result.stdout}\n{result.stderr}"
    return out / "html"


def test_docs_need_no_network():
    conf = (DOCS / "conf.py").read_text()
    assert "sphinx.ext.intersphinx" not in conf, "intersphinx would fetch inventories over the network"


def test_docs_build(tmp_path):
    html = build(tmp_path, "-D", "plot_gallery=0")
    for page in ["index", "install", "user_guide/iic", "user_guide/dim", "user_guide/dec",
                 "user_guide/kmeans", "user_guide/choosing", "cli", "devices", "results", "api",
                 "generated/skmic.IICClustering", "generated/skmic.metrics.cluster_accuracy",
                 "auto_examples/index"]:
        assert (html / f"{page}.html").is_file(), page
    results = (html / "results.html").read_text()
    for md in (ROOT / "benchmarks" / "results").glob("*.md"):
        assert f"results/{md.name}" in results, f"{md.name} is not on the results page"


@pytest.mark.slow
def test_docs_build_with_gallery(tmp_path):
    html = build(tmp_path, env={"SKMIC_DOCS_QUICK": "1"})
    for example in (ROOT / "examples").glob("plot_*.py"):
        page = (html / "auto_examples" / f"{example.stem}.html").read_text()
        assert "sphx-glr-single-img" in page or "sphx-glr-multi-img" in page, f"{example.name} shows no figure"


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
    for target, status, measured, files in rows:
        names = re.findall(r"<results-([\w.-]+)>", files) + re.findall(r"``([\w.-]+\.log)``", measured)
        assert names, f"row {target!r} cites no result file"
        texts = ""
        for name in names:
            path = ROOT / "benchmarks" / "results" / (name if name.endswith(".log") else f"{name}.md")
            assert path.is_file(), f"{path.name} is cited but missing"
            texts += path.read_text()
        for number in re.findall(r"\d+\.\d+|\d{3,}", measured):
            assert number in texts, f"{number} (row {target!r}) is in none of {names}"
