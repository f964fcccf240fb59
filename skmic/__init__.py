"""skmic: deep clustering by mutual information, as scikit-learn estimators."""

import importlib

__version__ = "0.1.0.dev0"

#: public name -> the module that defines it. The estimators are imported on
#: first use, so that ``import skmic`` (and so the command line's ``--help``)
#: does not load torch.
_PUBLIC = {
    "Checkpoint": "_training",
    "DECClustering": "dec",
    "DeepInfoMaxEmbedder": "dim",
    "IICClustering": "iic",
    "IICSegmentation": "segmentation",
    "KMeansBaseline": "kmeans",
}

__all__ = [*_PUBLIC, "__version__"]


def __getattr__(name):
    if name in _PUBLIC:
        value = getattr(importlib.import_module(f".{_PUBLIC[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_PUBLIC))
