"""The feature maps of each conv and pooling layer of the trained Fashion-MNIST model
for one test image, as a PNG grid.

    python examples/feature_maps.py [--model fashion_mnist_convnet.keras] [--out DIR]

Run examples/fashion_mnist_convnet.py first to train and save the model.
"""
import argparse
import os

import numpy as np

import convnet as keras
from convnet import layers, plot

parser = argparse.ArgumentParser()
parser.add_argument("--model", default="fashion_mnist_convnet.keras")
parser.add_argument("--index", type=int, default=0, help="which test image")
parser.add_argument("--out", default=".")
args = parser.parse_args()

model = keras.load_model(args.model)
(_, _), (x_test, y_test) = keras.datasets.fashion_mnist.load_data(subset=True)
image = x_test[args.index][None, ..., None].astype("float32") / 255

maps, x = [], image
for layer in model.layers:
    x = layer(x)
    if isinstance(layer, (layers.Conv2D, layers.MaxPooling2D, layers.AveragePooling2D)):
        maps.append((layer.name, x[0]))
probabilities = x[0]
label = keras.datasets.fashion_mnist.CLASS_NAMES
print(f"test image {args.index}: true {label[y_test[args.index]]}, "
      f"predicted {label[int(np.argmax(probabilities))]} ({probabilities.max():.2f})")

os.makedirs(args.out, exist_ok=True)
path = os.path.join(args.out, "feature_maps.png")
plot.feature_maps(maps, path, image=image[0])
print(f"saved {path}")
