"""The CUDA path (skipped without a GPU): fit, predict, and a GPU-trained model
that loads and predicts on a machine without one."""

import pickle
import subprocess
import sys

import numpy as np
import pytest
import torch

from skmic import IICClustering, KMeansBaseline

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")


def _models():
    return [
        KMeansBaseline(3, device="cuda", random_state=0),
        IICClustering(3, n_init=1, max_epochs=20, hidden_layer_sizes=(32,), learning_rate=1e-2, device="cuda", random_state=0),
    ]


@pytest.mark.parametrize("model", _models(), ids=lambda m: type(m).__name__)
def test_fit_on_cuda_and_load_without_it(model, blobs, tmp_path):
    X, y = blobs
    model.fit(X)
    assert model.device_.type == "cuda"
    labels = model.predict(X)
    path = tmp_path / "model.pkl"
    path.write_bytes(pickle.dumps(model))
    np.save(tmp_path / "X.npy", X)
    code = (
        "import pickle, numpy as np, torch;"
        "assert not torch.cuda.is_available();"
        f"m = pickle.loads(open({str(path)!r}, 'rb').read());"
        "assert m.device_.type == 'cpu';"
        f"np.save({str(tmp_path / 'cpu.npy')!r}, m.predict(np.load({str(tmp_path / 'X.npy')!r})))"
    )
    subprocess.run([sys.executable, "-c", code], check=True, env={"CUDA_VISIBLE_DEVICES": "", "PATH": "/usr/bin:/bin", **_pythonpath()})
    cpu_labels = np.load(tmp_path / "cpu.npy")
    assert (cpu_labels == labels).mean() > 0.99


def _pythonpath():
    return {"PYTHONPATH": ":".join(p for p in sys.path if p)}
