"""Fashion-MNIST (Zalando, MIT licence): 28x28 grey images of 10 kinds of clothing.

``load_data()`` returns Keras' ``((x_train, y_train), (x_test, y_test))`` as
uint8 arrays. It reads the full data (60,000 + 10,000 images) from the first
of these that has it:

1. the ``path`` argument, then the ``CONVNET_FASHION_MNIST`` environment
   variable: a folder of the four IDX files (``.gz`` or not), read as they are;
2. Keras' cache, ``$KERAS_HOME/datasets/fashion-mnist`` (default
   ``~/.keras/datasets/fashion-mnist``), where Keras itself keeps them; each
   file must match its SHA-256;
3. Debian's ``dataset-fashion-mnist`` package (/usr/share/datasets/fashion-mnist);
4. a download from Keras' origin into Keras' cache (verified, written atomically).

Keras' cache comes before Debian's copy so that convnet and Keras read the same
verified bytes; the download comes last among the full sources because it is
the only one that needs the network. Where the download fails too, a warning
says why and the subset that ships inside convnet is used (the first 5,000
training and 1,000 test images); ``subset=True`` asks for it on purpose.
"""
import os
import warnings

from . import _download
from ._idx import read_idx

CLASS_NAMES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
               "Sneaker", "Bag", "Ankle boot"]
DEBIAN_PATH = "/usr/share/datasets/fashion-mnist"
EMBEDDED_PATH = os.path.join(os.path.dirname(__file__), "data")
ORIGIN_FOLDER = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/"
CACHE_SUBDIR = os.path.join("datasets", "fashion-mnist")
_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
          "t10k-labels-idx1-ubyte")
# Keras pins no hash for these; these are the SHA-256 of Zalando's published files, which
# Keras' origin serves (same names and byte sizes).
SHA256 = {
    "train-images-idx3-ubyte.gz":
        "08dc20ab1689590a0bcd66e874647b6ee8464e2d501b5a3f1f78831db19a3fdc",
    "train-labels-idx1-ubyte.gz":
        "b0197879cbda89f3dc7b894f9fd52b858e68ea4182b6947c9d8c2b67e5f18dcc",
    "t10k-images-idx3-ubyte.gz":
        "78dcbbfb5a27efaf1b6c1d616caca68560be8766c5bffcb2791df9273a534229",
    "t10k-labels-idx1-ubyte.gz":
        "42bd18137a62d5998cdeae52bf3a0676ac6b706f5cf8439b47bb5b151ae3dccf",
}


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
    return _read_files(paths, directory)


def _read_files(paths, where):
    x_train, y_train, x_test, y_test = (read_idx(p) for p in paths)
    for x, y, part in ((x_train, y_train, "training"), (x_test, y_test, "test")):
        if x.ndim != 3 or y.ndim != 1 or len(x) != len(y) or x.shape[1:] != (28, 28):
            raise ValueError(f"Fashion-MNIST: the {part} files in {where} hold images "
                             f"{x.shape} and labels {y.shape}, not (n, 28, 28) and (n,)")
        if y.size and y.max() > 9:
            raise ValueError(f"Fashion-MNIST: {part} labels in {where} exceed 9")
    return (x_train, y_train), (x_test, y_test)


def _keras_cache():
    """The folder of Keras' cache that holds all four verified files, or None."""
    for directory in _download.cache_dirs(CACHE_SUBDIR):
        if all(_download.verified(os.path.join(directory, name), sha256)
               for name, sha256 in SHA256.items()):
            return directory
    return None


def full_data_path(path=None):
    """The folder load_data() reads the full data from without downloading, or None."""
    explicit = path or os.environ.get("CONVNET_FASHION_MNIST")
    if explicit:
        return explicit
    return _keras_cache() or (DEBIAN_PATH if _find(DEBIAN_PATH, _FILES[0]) else None)


def load_data(path=None, subset=False):
    """((x_train, y_train), (x_test, y_test)) as uint8 images (n, 28, 28) and labels (n,).

    ``subset=True`` always loads the embedded 5,000 + 1,000 images (fast, for tests).
    """
    if subset:
        return _read_dir(EMBEDDED_PATH)
    directory = full_data_path(path)
    if directory is not None:
        return _read_dir(directory)
    try:
        paths = [_download.get_file(stem + ".gz", ORIGIN_FOLDER + stem + ".gz",
                                    SHA256[stem + ".gz"], CACHE_SUBDIR) for stem in _FILES]
    except (_download.DownloadError, _download.ChecksumError) as error:
        warnings.warn(f"Fashion-MNIST: the full data is not available ({error}); using the "
                      f"embedded subset of 5,000 training and 1,000 test images. For the full "
                      f"data offline, put {', '.join(SHA256)} in "
                      f"{_download.cache_dirs(CACHE_SUBDIR)[0]}", stacklevel=2)
        return _read_dir(EMBEDDED_PATH)
    return _read_files(paths, _download.cache_dirs(CACHE_SUBDIR)[0])
