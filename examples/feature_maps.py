"""The feature maps of each conv and pooling layer of the trained Fashion-MNIST model
for one test image, as a PNG grid.

    python examples/fashion_mnist_convnet.py     # first: trains and writes the model file
    python examples/feature_maps.py [--model fashion_mnist_convnet.keras] [--index 0] [--out DIR]

It reads the model file examples/fashion_mnist_convnet.py writes (--fast makes a quick,
poorly trained one).
"""
import argparse
import os
import sys

import numpy as np

import convnet as keras
from convnet import layers, plot

parser = argparse.ArgumentParser()
parser.add_argument("--model", default="fashion_mnist_convnet.keras")
parser.add_argument("--index", type=int, default=0, help="which test image")
parser.add_argument("--channels", type=int, default=8, help="channels shown per layer")
parser.add_argument("--out", default=".")
args = parser.parse_args()

if not os.path.exists(args.model):
    sys.exit(f"feature_maps.py: no model file at {args.model}. This example shows what a "
             f"trained model sees; make the model first with\n"
             f"    python examples/fashion_mnist_convnet.py          (12 epochs, a few "
             f"minutes; --fast for a quick one)\n"
             f"which writes fashion_mnist_convnet.keras in the current folder, or pass "
             f"--model PATH.")
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
true, predicted = label[y_test[args.index]], label[int(np.argmax(probabilities))]
summary = (f"test image {args.index}: true class {true}, predicted {predicted} "
           f"(probability {probabilities.max():.2f})")
print(summary)

fig = plot.feature_maps(maps, image=image[0], max_channels=args.channels,
                        title=f"What {model.name} sees in Fashion-MNIST {summary}")
os.makedirs(args.out, exist_ok=True)
path = os.path.join(args.out, "feature_maps.png")
plot.save(fig, path)
print(f"saved {path}")
