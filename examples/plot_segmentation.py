"""
Unsupervised segmentation with IIC: texture mosaics and photographs
===================================================================

:class:`~skmic.IICSegmentation` gives every pixel a cluster. It learns from
pairs: each image and a randomly rotated, zoomed, shifted, flipped and
re-lit copy of it, whose network output is mapped back onto the original
pixel grid. The clusters are trained so that a pixel's cluster predicts the
clusters of its neighbours in the perturbed copy -- their mutual
information is maximised -- so segments come out as regions that look alike
under the perturbations, without any label.

First on procedural texture mosaics, where the ground truth is known
(:func:`~skmic.datasets.make_texture_mosaics`), against k-means on the
pixels' patches; then on scikit-learn's two bundled photographs, which have
no labels. Last, by default, a small full-resolution network learns the
segments found from the pixels away from their borders and relabels the
images (``refinement_rounds``), which sharpens the borders. The budgets here are short so that the example runs in about a
minute; the project's benchmark (Results page) trains the defaults.
"""

import os

import numpy as np
from sklearn.datasets import load_sample_images

from skmic import IICSegmentation, KMeansBaseline
from skmic.datasets import make_texture_mosaics
from skmic.inspection import plot_segmentation
from skmic.metrics import pixel_accuracy
from skmic.segmentation import patch_features

QUICK = os.environ.get("SKMIC_DOCS_QUICK") == "1"

images, masks = make_texture_mosaics(48, size=48, n_classes=3, random_state=0)
seg = IICSegmentation(
    n_clusters=3,
    n_init=1,
    conv_channels=(16, 32, 64),
    max_epochs=2 if QUICK else 25,
    refinement_rounds=1 if QUICK else 4,
    random_state=0,
).fit(images)

kmeans = KMeansBaseline(n_clusters=3, random_state=0).fit(patch_features(images, 7))
kmeans_labels = kmeans.labels_.reshape(masks.shape)
print(f"pixel accuracy: IIC {pixel_accuracy(masks, seg.labels_):.3f}, "
      f"k-means on 7x7 patches {pixel_accuracy(masks, kmeans_labels):.3f}")

# %%
# Segments are matched to the true classes by the Hungarian algorithm over
# all pixels, so a correct segment has the colour of its class. The regions
# differ in texture only: every region has its own brightness and contrast,
# which is why k-means on raw patches sees little.
fig = plot_segmentation(images, seg.labels_, masks, n_images=3)

# %%
# Photographs without labels
# --------------------------
# The two sample photographs, downsampled 8x by block averages. Colour
# images are passed as (n, 3, H, W); the network also sees the Sobel
# gradients of the grey level. The clusters found are whatever is most
# stable under the perturbations: typically sky, foliage, roofs or petals.
photos = np.stack(load_sample_images().images).astype(np.float32) / 255.0  # (2, 427, 640, 3)
h, w = (photos.shape[1] // 8) * 8, (photos.shape[2] // 8) * 8
small = photos[:, :h, :w].reshape(2, h // 8, 8, w // 8, 8, 3).mean((2, 4)).transpose(0, 3, 1, 2)
photo_seg = IICSegmentation(
    n_clusters=4,
    n_init=1,
    conv_channels=(16, 32, 64),
    batch_size=2,
    max_epochs=5 if QUICK else 150,
    refinement_rounds=1 if QUICK else 4,
    random_state=0,
).fit(small)
fig = plot_segmentation(small, photo_seg.labels_, n_images=2)
