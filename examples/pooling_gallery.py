"""What pooling does to a real photo: 0..5 stacked MaxPooling2D(2, 2), the same with
AveragePooling2D(2, 2), and single stride-4 pools, in one PNG with each panel's shape.

    python examples/pooling_gallery.py [--out DIR]

The photo is scikit-learn's bundled "china.jpg" (needs the examples extra).
"""
import argparse
import os

import numpy as np

import convnet as keras
from convnet import layers, plot

parser = argparse.ArgumentParser()
parser.add_argument("--out", default=".")
args = parser.parse_args()

from sklearn.datasets import load_sample_image  # noqa: E402  (an extra, imported late)

photo = load_sample_image("china.jpg").astype("float32") / 255      # (427, 640, 3)
batch = photo[None]


def stack(pool_layer, depth):
    model = keras.Sequential([keras.Input((None, None, 3))] +
                             [pool_layer() for _ in range(depth)])
    return model.predict(batch)[0] if depth else photo


rows, titles = [], []
for name, make in (("MaxPooling2D(2, 2)", lambda: layers.MaxPooling2D((2, 2))),
                   ("AveragePooling2D(2, 2)", lambda: layers.AveragePooling2D((2, 2)))):
    images = [stack(make, depth) for depth in range(6)]
    rows.append([(np.clip(im, 0, 1), f"{depth} x: {im.shape[0]}x{im.shape[1]}x{im.shape[2]}")
                 for depth, im in enumerate(images)])
    titles.append(name)
stride4 = [(photo, f"input {photo.shape[0]}x{photo.shape[1]}x3")]
for name, layer in (("max 4x4 /4", layers.MaxPooling2D(4, strides=4)),
                    ("avg 4x4 /4", layers.AveragePooling2D(4, strides=4)),
                    ("max 2x2 /4", layers.MaxPooling2D(2, strides=4))):
    out = layer(batch)[0]
    stride4.append((np.clip(out, 0, 1), f"{name}: {out.shape[0]}x{out.shape[1]}x3"))
rows.append(stride4)
titles.append("stride 4")

os.makedirs(args.out, exist_ok=True)
path = os.path.join(args.out, "pooling_gallery.png")
plot.image_grid(rows, titles, path, suptitle="Pooling a photo: max keeps each window's "
                                             "brightest cell, average its mean")
print(f"saved {path}")
