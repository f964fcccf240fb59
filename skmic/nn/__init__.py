"""Torch building blocks of skmic (no scikit-learn imports here)."""
