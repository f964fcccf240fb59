"""Feature-map information and plots."""

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest
import torch

from skmic.inspection import (
    feature_map_mutual_information,
    histogram_mutual_information,
    plot_cluster_samples,
    plot_contingency,
    plot_feature_maps,
    plot_history,
)
from skmic.nn.encoders import ConvEncoder


def test_histogram_mi_extremes():
    rng = np.random.default_rng(0)
    x = rng.random(20000)
    assert histogram_mutual_information(x, x, bins=8) == pytest.approx(np.log(8), abs=1e-2)
    assert histogram_mutual_information(x, rng.random(20000), bins=8) < 0.01


class CopyEncoder(torch.nn.Module):
    """Map 0 is the image itself, map 1 is noise: MI must rank them."""

    def __init__(self, shape):
        super().__init__()
        self.shape = shape
        self.w = torch.nn.Parameter(torch.zeros(1))

    def feature_map(self, x):
        x = x.reshape((-1,) + self.shape)
        g = torch.Generator().manual_seed(0)
        return torch.cat([x[:, :1], torch.rand(x.shape, generator=g)[:, :1]], 1)


def test_feature_map_mi_ranks_the_informative_map(digits):
    X = digits[0][:200]
    mi, raw = feature_map_mutual_information(CopyEncoder((1, 8, 8)), X, (8, 8), bins=8)
    assert mi[0] > 0.5 and abs(mi[1]) < 0.05 and (raw >= mi).all()


def test_works_on_a_conv_encoder_and_plots(digits):
    X, y = digits
    X = X[:100]
    torch.manual_seed(0)
    enc = ConvEncoder((1, 8, 8), (4, 6))
    mi, _ = feature_map_mutual_information(enc, X, (1, 8, 8))
    assert mi.shape == (6,)
    assert len(plot_feature_maps(enc, X, (8, 8), top=3).axes) == 4
    labels = (X[:, 20] > 0.5).astype(int)
    assert plot_cluster_samples(X, labels, (8, 8), per_cluster=3).axes
    assert plot_contingency(y[:100], labels).axes

    class Fitted:
        history_ = [{"epoch": 1, "loss": 2.0}, {"epoch": 2, "loss": 1.0}]

    assert plot_history(Fitted()).axes
    Fitted.history_ = [{"epoch": e, "loss": 1.5 / e, "member_loss": [1.0 / e, 2.0 / e]} for e in (1, 2, 3)]
    lines = plot_history(Fitted(), keys=("loss", "member_loss")).axes[0].get_lines()
    assert [line.get_label() for line in lines] == ["loss", "member_loss 0", "member_loss 1"]
    np.testing.assert_allclose(lines[2].get_ydata(), [2.0, 1.0, 2 / 3])
    with pytest.raises(ValueError, match="no record of history_ holds 'nope'"):
        plot_history(Fitted(), keys=("nope",))
    Fitted.history_[2]["member_loss"] = [0.3]  # a restart dropped: the curves would mix networks
    with pytest.raises(ValueError, match="number changes"):
        plot_history(Fitted(), keys=("member_loss",))
    with pytest.raises(TypeError, match="no conv feature maps"):
        feature_map_mutual_information(torch.nn.Linear(2, 2), X, (8, 8))
