"""The 8x8 handwritten digits that scikit-learn ships (1,797 images, UCI), for the fastest demos.

Needs scikit-learn (the ``examples`` extra). Returns Keras' format with images
as uint8 (n, 8, 8) in 0..16 and a fixed, seeded 80/20 train/test split.
"""
import numpy as np


def load_data(test_fraction=0.2, seed=0):
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise ImportError("convnet.datasets.digits needs scikit-learn: "
                          "pip install 'convnet[examples]'") from None
    digits = load_digits()
    x = digits.images.astype(np.uint8)
    y = digits.target.astype(np.uint8)
    order = np.random.default_rng(seed).permutation(len(x))
    split = len(x) - int(len(x) * test_fraction)
    train, test = order[:split], order[split:]
    return (x[train], y[train]), (x[test], y[test])
