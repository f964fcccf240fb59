"""
How much do feature maps know about the image?
==============================================

Encoders differ in what they do with the spatial grid: pooling **shrinks**
it, ``same``-padded convolutions **keep** it, upsampling **grows** it. One
way to compare them is the mutual information between the input image and
each feature map: :func:`skmic.inspection.feature_map_mutual_information`
resamples every map to the image grid, estimates the information between
pixel values and map values from a joint histogram, and subtracts the same
estimate after shuffling the pixels of each image, which removes the
estimator's upward bias (the spatial correspondence is destroyed but both
distributions are kept).

Three small conv encoders are compared on scikit-learn's digits, before and
after a short clustering training with IIC's loss.
"""

import os

import matplotlib.pyplot as plt
import numpy as np
import torch
from sklearn.datasets import load_digits
from torch import nn

from skmic.inspection import feature_map_mutual_information, plot_feature_maps
from skmic.metrics import cluster_accuracy
from skmic.nn.encoders import ConvEncoder
from skmic.nn.losses import iic_loss
from skmic.perturbations import ElasticPerturbation

QUICK = os.environ.get("SKMIC_DOCS_QUICK") == "1"
torch.manual_seed(0)

X, y = load_digits(return_X_y=True)
X = (X / 16.0).astype(np.float32)
if QUICK:
    X, y = X[:400], y[:400]
SHAPE = (1, 8, 8)
CHANNELS = (16, 32, 32)

# %%
# The encoders
# ------------
# ``feature_map(x)`` returns the last conv map; that is all the inspection
# functions need from a module. ``ConvEncoder`` (the trunk of
# :class:`~skmic.IICClustering`) pools after every block but the last while
# the map is at least 4x4: 8x8 becomes 2x2. The two other encoders are
# written here.


def conv_block(c_in, c_out):
    return [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU()]


class GridEncoder(nn.Module):
    """Conv blocks that keep the grid, optionally after upsampling it."""

    def __init__(self, image_shape, channels, upsample=1):
        super().__init__()
        self.image_shape = image_shape
        layers, c = [], image_shape[0]
        for i, width in enumerate(channels):
            layers += conv_block(c, width)
            if i == 0 and upsample > 1:
                layers.append(nn.Upsample(scale_factor=upsample, mode="bilinear", align_corners=False))
            c = width
        self.blocks = nn.Sequential(*layers)
        _, h, w = image_shape
        self.map_shape = (c, h * upsample, w * upsample)
        self.out_features = int(np.prod(self.map_shape))

    def feature_map(self, x):
        return self.blocks(x.reshape((-1,) + self.image_shape))

    def forward(self, x):
        return self.feature_map(x).flatten(1)


encoders = {
    "shrink (8x8 -> 2x2)": ConvEncoder(SHAPE, CHANNELS),
    "keep (8x8 -> 8x8)": GridEncoder(SHAPE, CHANNELS),
    "grow (8x8 -> 16x16)": GridEncoder(SHAPE, CHANNELS, upsample=2),
}
for name, encoder in encoders.items():
    print(f"{name:20s} feature maps {encoder.map_shape}")

# %%
# Mutual information at initialisation
# ------------------------------------
# Measured on 300 digits (19,200 pixel/map pairs per map; 100 digits in the
# quick configuration), with 16 bins. Each
# value is in nats; the correction makes a map unrelated to the image score
# about 0.
sample = X[: 100 if QUICK else 300]
before = {name: feature_map_mutual_information(enc, sample, SHAPE, bins=16)[0] for name, enc in encoders.items()}

# %%
# A short clustering training
# ---------------------------
# Each encoder gets a linear softmax head over 10 clusters and is trained to
# maximise the mutual information between the clusters of a digit and of an
# elastically deformed copy (IIC's objective, :func:`skmic.nn.losses.iic_loss`).


def train_iic(encoder, epochs, batch_size=64, repeats=4):
    head = nn.Sequential(nn.Linear(encoder.out_features, 10), nn.Softmax(dim=1))
    model = nn.Sequential(encoder, head)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    perturb = ElasticPerturbation(SHAPE)
    generator = torch.Generator().manual_seed(0)
    data = torch.from_numpy(X)
    model.train()
    for _ in range(epochs):
        for idx in torch.randperm(len(data), generator=generator).split(batch_size):
            if len(idx) < 2:
                continue
            x = data[idx]
            z = model(torch.cat([x, perturb(x.repeat(repeats, 1), generator)]))
            loss = iic_loss(z[: len(idx)].repeat(repeats, 1), z[len(idx) :])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    model.eval()
    with torch.no_grad():
        return model(data).argmax(1).numpy()


after = {}
for name, encoder in encoders.items():
    labels = train_iic(encoder, epochs=1 if QUICK else 3)
    after[name] = feature_map_mutual_information(encoder, sample, SHAPE, bins=16)[0]
    print(
        f"{name:20s} clustering ACC {cluster_accuracy(y, labels):.3f}   "
        f"feature-map MI (mean over maps): before {before[name].mean():.3f}, after {after[name].mean():.3f} nats"
    )

# %%
# The distribution of the per-map information, before and after training.
# Maps that keep the grid can stay close to the pixels; pooled maps summarise
# neighbourhoods and, resampled back to 8x8, can only match the image
# coarsely. Training for clustering rewards features that do not change under
# deformations, which need not be the ones most informative about single
# pixels.
fig, ax = plt.subplots(figsize=(7, 3.2))
names = list(encoders)
positions = np.arange(len(names))
ax.boxplot([before[n] for n in names], positions=positions - 0.18, widths=0.3)
ax.boxplot([after[n] for n in names], positions=positions + 0.18, widths=0.3, patch_artist=True)
ax.set_xticks(positions, names)
ax.set_ylabel("MI with the input (nats)")
ax.set_title("feature maps: initialisation (left box), after IIC training (filled box)")
fig.tight_layout()

# %%
# The most informative maps of one digit for each trained encoder, ranked by
# the corrected mutual information.
for name, encoder in encoders.items():
    fig = plot_feature_maps(encoder, sample, SHAPE, sample=0, top=6)
    fig.axes[0].set_title(name.split(" (")[0], fontsize=8)  # the encoder, above its input image
