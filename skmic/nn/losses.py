"""Every loss of skmic, one function per idea, each checked against a naive
reference in ``tests/test_losses.py``. Plain torch: no scikit-learn here.

Sections: IIC (mutual information of paired assignments), DEC (Student-t
assignment, target distribution, KL), DIM (JSD, InfoNCE and DV estimators).
"""

import math

import torch

__all__ = []

# ---------------------------------------------------------------------- IIC

# ---------------------------------------------------------------------- DEC

# ---------------------------------------------------------------------- DIM
