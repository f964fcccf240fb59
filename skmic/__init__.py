"""skmic: deep clustering by mutual information, as scikit-learn estimators."""

from .iic import IICClustering
from .kmeans import KMeansBaseline

__version__ = "0.1.0.dev0"

__all__ = ["IICClustering", "KMeansBaseline", "__version__"]
