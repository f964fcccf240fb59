"""Sphinx configuration of skmic's documentation.

The build is offline (no intersphinx inventories are fetched) and is meant to
pass with ``-W`` (warnings are errors)::

    sphinx-build -W --keep-going -b html docs docs/_build/html

``SKMIC_DOCS_QUICK=1`` makes the gallery examples run a reduced
configuration (fewer epochs, fewer samples); ``-D plot_gallery=0`` builds
the gallery pages without running the examples at all.
"""

import os
import re
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

import skmic  # noqa: E402

project = "skmic"
author = "the skmic developers"
copyright = "the skmic developers"
version = release = skmic.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "numpydoc",
    "sphinx_gallery.gen_gallery",
]

templates_path = ["_templates"]
exclude_patterns = ["_build", "_generated/results/*.rst", "auto_examples/*.ipynb", "auto_examples/*.py"]
html_theme = "alabaster"
html_static_path = []
html_title = f"skmic {release}"

# ------------------------------------------------------------------ autodoc
autosummary_generate = True
autodoc_default_options = {}  # the class template asks for members
autodoc_typehints = "none"
numpydoc_show_class_members = False  # the class template lists the methods
numpydoc_class_members_toctree = False

# ------------------------------------------------------------ sphinx-gallery
os.environ.setdefault("MPLBACKEND", "Agg")
# The examples run in this process: one thread, as on the project's 2-core
# machines (small networks gain nothing from more, and results stay the same).
torch.set_num_threads(1)

sphinx_gallery_conf = {
    "examples_dirs": str(ROOT / "examples"),
    "gallery_dirs": "auto_examples",
    "filename_pattern": r"/plot_",
    "download_all_examples": False,
    "remove_config_comments": True,
    "within_subsection_order": "FileNameSortKey",
    "abort_on_example_error": True,
}

# ------------------------------------------------- benchmark results as rST
RESULTS = ROOT / "benchmarks" / "results"
GENERATED = DOCS / "_generated" / "results"


def _inline(text):
    """Markdown inline code to rST literals; bold and plain text are shared."""
    return re.sub(r"`([^`]+)`", r"``\1``", text)


def _cells(line):
    return [_inline(c.strip()) for c in line.strip().strip("|").split("|")]


def markdown_to_rst(text):
    """The subset of Markdown that ``benchmarks/results/*.md`` use, as rST.

    Headings, paragraphs, bullet lists, inline code and pipe tables (turned
    into ``list-table`` directives). Markdown headings map to the rST
    underlines ``^`` (``#``), ``"`` (``##``) and ``'`` (``###``), which the
    results page reserves for them, so that the included text nests under
    the section that includes it.
    """
    out, lines, i = [], text.splitlines(), 0
    marks = {1: "^", 2: '"', 3: "'"}
    while i < len(lines):
        line = lines[i]
        heading = re.match(r"^(#{1,3})\s+(.*)$", line)
        if heading:
            title = _inline(heading.group(2).strip())
            out += [title, marks[len(heading.group(1))] * max(len(title), 3), ""]
            i += 1
        elif line.lstrip().startswith("|"):
            rows = []
            while i < len(lines) and lines[i].lstrip().startswith("|"):
                if not re.match(r"^\s*\|[\s:|-]+\|\s*$", lines[i]):
                    rows.append(_cells(lines[i]))
                i += 1
            width = max(len(r) for r in rows)
            out += [".. list-table::", "   :header-rows: 1", ""]
            for row in rows:
                row = row + [""] * (width - len(row))
                out.append("   * - " + (row[0] or r"\ "))
                out += ["     - " + (c or r"\ ") for c in row[1:]]
            out.append("")
        else:
            out.append(_inline(line))
            i += 1
    return "\n".join(out) + "\n"


def write_results():
    """One rST file per ``benchmarks/results/*.md`` and an index including all."""
    GENERATED.mkdir(parents=True, exist_ok=True)
    names = sorted(p.stem for p in RESULTS.glob("*.md"))
    for old in GENERATED.glob("*.rst"):
        if old.stem not in names and old.stem != "all":
            old.unlink()
    for name in names:
        text = markdown_to_rst((RESULTS / f"{name}.md").read_text(encoding="utf-8"))
        target = GENERATED / f"{name}.rst"
        if not target.exists() or target.read_text(encoding="utf-8") != text:
            target.write_text(text, encoding="utf-8")
    index = "".join(
        f".. _results-{name}:\n\n``benchmarks/results/{name}.md``\n"
        f"{'~' * (len(name) + 30)}\n\n.. include:: /_generated/results/{name}.rst\n\n"
        for name in names
    )
    (GENERATED / "all.rst.inc").write_text(index, encoding="utf-8")


write_results()


# ------------------------------------------------------- command-line help
def write_cli_help():
    """``--help`` of ``skmic`` and of each subcommand, as the parser prints it."""
    from skmic.cli import build_parser

    os.environ["COLUMNS"] = "80"  # argparse wraps to the terminal; fix it
    target = DOCS / "_generated" / "cli"
    target.mkdir(parents=True, exist_ok=True)
    parser = build_parser()
    texts = {"skmic": parser.format_help()}
    for action in parser._subparsers._group_actions:
        for name, sub in action.choices.items():
            texts[name] = sub.format_help()
    for name, text in texts.items():
        path = target / f"{name}.txt"
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")


write_cli_help()
