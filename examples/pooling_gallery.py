"""What pooling does to a real photo: 1 to 5 stacked MaxPooling2D(2), the same with
AveragePooling2D(2), and single stride-4 pools drawn at their true size, in one PNG.

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
    return model.predict(batch, verbose=0)[0]


def shape(image):
    return f"{image.shape[0]}x{image.shape[1]}"


# Single pools with stride 4, drawn at their true size beside the input: a quarter of its
# height and width. A 2x2 window with stride 4 looks at one pixel in four and skips the rest.
stride4 = [(photo, f"input: {shape(photo)}")]
for caption, layer in (("MaxPooling2D(4, strides=4)", layers.MaxPooling2D(4, strides=4)),
                       ("AveragePooling2D(4, strides=4)", layers.AveragePooling2D(4, strides=4)),
                       ("MaxPooling2D(2, strides=4),\nwhich sees 1 pixel in 4",
                        layers.MaxPooling2D(2, strides=4))):
    out = layer(batch)[0]
    stride4.append((out, f"{caption}\n{shape(out)}"))
rows = [stride4]
titles = ["one pool, stride 4\n(drawn at true size:\n1/4 the height\nand width)"]

# Stacked 2x2 pools: each halves the height and width. These rows draw every panel at the
# same size, so what is left of the photo after each pool shows as coarser pixels.
for name, make in (("MaxPooling2D(2)", lambda: layers.MaxPooling2D((2, 2))),
                   ("AveragePooling2D(2)", lambda: layers.AveragePooling2D((2, 2)))):
    rows.append([(image, f"after {depth} pool{'s' if depth > 1 else ''}: {shape(image)}")
                 for depth, image in ((d, stack(make, d)) for d in range(1, 6))])
    titles.append(f"{name}\nstacked 1-5 times\n(drawn enlarged,\nall one height)")

fig = plot.image_grid(
    rows, titles, true_size_rows=[0], true_size_height=2.6, panel_height=1.3,
    title="Pooling a photo: max keeps each window's brightest value, average its mean")
os.makedirs(args.out, exist_ok=True)
path = os.path.join(args.out, "pooling_gallery.png")
plot.save(fig, path)
print(f"saved {path}")
