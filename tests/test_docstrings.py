"""Every public name has a numpydoc docstring with examples, and they pass.

The examples in the docstrings run as doctests here (on tiny data and
networks, in a few seconds), so the documentation cannot drift from the code.
"""

import doctest
import importlib
import inspect
import pkgutil
import re
from pathlib import Path

import matplotlib
import pytest
from numpydoc.docscrape import FunctionDoc, NumpyDocString

import skmic

matplotlib.use("Agg")

#: modules whose public names (``__all__``) are documented in the API reference
PUBLIC_MODULES = ["skmic", "skmic.metrics", "skmic.perturbations", "skmic.inspection", "skmic.datasets", "skmic.kmeans", "skmic.exceptions"]

#: public names outside ``__all__`` that the API reference documents too
EXTRA_PUBLIC = {"skmic.perturbations": ["PERTURBATIONS"], "skmic.datasets": ["DatasetError"]}


def public_names():
    for module_name in PUBLIC_MODULES:
        module = importlib.import_module(module_name)
        names = [n for n in module.__all__ if not n.startswith("__")] + EXTRA_PUBLIC.get(module_name, [])
        for name in names:
            yield module_name, name


def all_modules():
    names = ["skmic"]
    for info in pkgutil.walk_packages(skmic.__path__, prefix="skmic."):
        if info.name != "skmic.__main__":
            names.append(info.name)
    return sorted(names)


@pytest.mark.parametrize("module_name", all_modules())
def test_doctests(module_name, monkeypatch):
    import matplotlib.pyplot as plt
    import torch

    monkeypatch.setenv("SKMIC_DATA", "/nonexistent")  # examples never depend on local data
    module = importlib.import_module(module_name)
    finder = doctest.DocTestFinder(exclude_empty=True)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    threads = torch.get_num_threads()
    try:
        for test in finder.find(module, module_name, globs={}):
            if test.lineno is None or test.filename != module.__file__:
                continue  # found through an import: tested in its own module
            runner.run(test)
    finally:
        torch.set_num_threads(threads)
        plt.close("all")
    result = runner.summarize(verbose=False)
    assert result.failed == 0, f"{result.failed} doctest(s) failed in {module_name} (see the output above)"


def _examples_section(obj):
    doc = inspect.getdoc(obj) or ""
    parsed = FunctionDoc(obj) if inspect.isfunction(obj) else NumpyDocString(doc)
    return doc, "\n".join(parsed["Examples"]).strip()


@pytest.mark.parametrize("module_name, name", list(public_names()), ids=lambda v: str(v))
def test_public_name_has_examples(module_name, name):
    module = importlib.import_module(module_name)
    obj = getattr(module, name)
    if inspect.isclass(obj) or inspect.isfunction(obj):
        doc, examples = _examples_section(obj)
        assert doc, f"{module_name}.{name} has no docstring"
        assert ">>>" in examples, f"{module_name}.{name} has no Examples section with a doctest"
    else:
        # data (scorers, constants): documented by a ``#:`` comment right above
        # the assignment, and shown in use in an Examples section of its module
        source = inspect.getsource(module)
        assert re.search(rf"^#:.*\n(#:.*\n)*{name} =", source, re.M), f"{module_name}.{name} has no #: comment"
        documented = [module] + [getattr(module, n) for n in module.__all__]
        uses = "\n".join(_examples_section(o)[1] for o in documented if inspect.isclass(o) or inspect.isfunction(o) or inspect.ismodule(o))
        assert name in uses, f"{module_name}.{name} is used in no Examples section of its module"

def test_api_reference_lists_every_public_name():
    api = (Path(__file__).resolve().parent.parent / "docs" / "api.rst").read_text()
    entries = {line.strip().split(":: ")[-1] for line in api.splitlines()}
    missing = [f"{m}.{n}" for m, n in public_names() if n not in entries]
    assert not missing, f"not in docs/api.rst: {missing}"
