"""skmic: deep clustering by mutual information, as scikit-learn estimators."""

from .dec import DECClustering
from .dim import DeepInfoMaxEmbedder
from .iic import IICClustering
from .kmeans import KMeansBaseline

__version__ = "0.1.0.dev0"

__all__ = ["DECClustering", "DeepInfoMaxEmbedder", "IICClustering", "KMeansBaseline", "__version__"]
