"""The gallery examples: well-formed headers (fast) and full runs (slow)."""

import ast
import runpy
from pathlib import Path

import pytest

EXAMPLES = sorted((Path(__file__).resolve().parent.parent / "examples").glob("plot_*.py"))


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_has_gallery_header(path):
    source = path.read_text()
    docstring = ast.get_docstring(ast.parse(source), clean=False)
    assert docstring, "sphinx-gallery needs a module docstring"
    lines = docstring.strip().splitlines()
    assert len(lines) > 2 and set(lines[1]) == {"="} and len(lines[1]) >= len(lines[0]), "title + '=' underline"
    assert "SKMIC_DOCS_QUICK" in source, "every example offers the reduced configuration"


@pytest.mark.slow
@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_runs(path, tmp_path, monkeypatch):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.close("all")
    monkeypatch.chdir(tmp_path)
    runpy.run_path(str(path), run_name="__main__")
    try:
        assert plt.get_fignums(), "the example made no figure"
        assert not list(tmp_path.iterdir()), "the example wrote files (the gallery collects figures itself)"
    finally:
        plt.close("all")
