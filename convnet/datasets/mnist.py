"""MNIST handwritten digits (Yann LeCun and Corinna Cortes, CC BY-SA 3.0), as Keras loads it.

``load_data()`` reads ``mnist.npz`` from Keras' cache (``$KERAS_HOME/datasets``,
default ``~/.keras/datasets``; where a Keras installation has loaded MNIST the
file is already there), else downloads it once from Keras' own origin into that
cache. The file is checked against the SHA-256 Keras pins before it is read.
"""
import os

import numpy as np

from . import _download

ORIGIN_FOLDER = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/"
SHA256 = "731c5ac602752760c8e48fbffcf8c3b850d9dc2a2aedcf2cc48468fc17b673d1"


def load_data(path="mnist.npz"):
    """((x_train, y_train), (x_test, y_test)): uint8 images (60000, 28, 28) and
    (10000, 28, 28) in 0..255, uint8 labels (60000,) and (10000,) in 0..9.

    `path` is the file's name inside Keras' cache folder, as in Keras (which refuses
    a path with folders in it; so does this).
    """
    path = os.fspath(path)
    if os.sep in path or (os.altsep and os.altsep in path):
        raise ValueError(f"mnist.load_data: path={path!r} must be a file name inside Keras' "
                         f"cache folder ({_download.cache_dirs()[0]}), not a path, as in Keras")
    file = _download.get_file(path, ORIGIN_FOLDER + "mnist.npz", SHA256)
    # The SHA-256 matched, so the file is Keras' own; pickles stay refused all the same.
    with np.load(file, allow_pickle=False) as arrays:
        return ((arrays["x_train"], arrays["y_train"]), (arrays["x_test"], arrays["y_test"]))
