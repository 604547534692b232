"""Fashion-MNIST (Zalando, MIT licence): 28x28 grey images of 10 kinds of clothing.

``load_data()`` returns Keras' ``((x_train, y_train), (x_test, y_test))`` as
uint8 arrays. It reads the full data (60,000 + 10,000 images) from, in order:
the ``path`` argument, the ``CONVNET_FASHION_MNIST`` environment variable, or
Debian's ``dataset-fashion-mnist`` package (/usr/share/datasets/fashion-mnist).
Where none exists it falls back to the subset that ships inside convnet (the
first 5,000 training and 1,000 test images) and says so with a warning.
"""
import os
import warnings

from ._idx import read_idx

CLASS_NAMES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
               "Sneaker", "Bag", "Ankle boot"]
DEBIAN_PATH = "/usr/share/datasets/fashion-mnist"
EMBEDDED_PATH = os.path.join(os.path.dirname(__file__), "data")
_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
          "t10k-labels-idx1-ubyte")


def _find(directory, stem):
    for name in (stem + ".gz", stem):
        candidate = os.path.join(directory, name)
        if os.path.exists(candidate):
            return candidate
    return None


def _read_dir(directory):
    paths = [_find(directory, stem) for stem in _FILES]
    if None in paths:
        missing = [stem for stem, p in zip(_FILES, paths) if p is None]
        raise FileNotFoundError(f"Fashion-MNIST: {directory} lacks {', '.join(missing)} "
                                f"(.gz or not)")
    x_train, y_train, x_test, y_test = (read_idx(p) for p in paths)
    for x, y, part in ((x_train, y_train, "training"), (x_test, y_test, "test")):
        if x.ndim != 3 or y.ndim != 1 or len(x) != len(y) or x.shape[1:] != (28, 28):
            raise ValueError(f"Fashion-MNIST: the {part} files in {directory} hold images "
                             f"{x.shape} and labels {y.shape}, not (n, 28, 28) and (n,)")
        if y.size and y.max() > 9:
            raise ValueError(f"Fashion-MNIST: {part} labels in {directory} exceed 9")
    return (x_train, y_train), (x_test, y_test)


def full_data_path(path=None):
    """The directory load_data() reads the full data from, or None for the embedded subset."""
    explicit = path or os.environ.get("CONVNET_FASHION_MNIST")
    if explicit:
        return explicit
    return DEBIAN_PATH if _find(DEBIAN_PATH, _FILES[0]) else None


def load_data(path=None, subset=False):
    """((x_train, y_train), (x_test, y_test)) as uint8 images (n, 28, 28) and labels (n,).

    ``subset=True`` always loads the embedded 5,000 + 1,000 images (fast, for tests).
    """
    directory = None if subset else full_data_path(path)
    if directory is None:
        if not subset:
            warnings.warn("Fashion-MNIST: the full data was not found (install Debian's "
                          "dataset-fashion-mnist or set CONVNET_FASHION_MNIST); using the "
                          "embedded subset of 5,000 training and 1,000 test images",
                          stacklevel=2)
        directory = EMBEDDED_PATH
    return _read_dir(directory)
