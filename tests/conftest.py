import pytest
import torch

# Tiny networks on a 2-core machine: one thread avoids oversubscription and
# makes CPU results independent of the core count.
torch.set_num_threads(1)


@pytest.fixture
def digits():
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    return X / 16.0, y


@pytest.fixture
def blobs():
    from sklearn.datasets import make_blobs

    X, y = make_blobs(n_samples=120, centers=3, n_features=4, random_state=0)
    return X, y
