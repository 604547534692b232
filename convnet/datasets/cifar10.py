"""CIFAR-10 (Alex Krizhevsky, 2009): 32x32 colour images of 10 classes, as Keras loads it.

``load_data()`` reads the official archive (``cifar-10-python.tar.gz``) from
Keras' cache (``$KERAS_HOME/datasets``, default ``~/.keras/datasets``), under
the name Keras 3 gives it (``cifar-10-batches-py-target_archive``) or the one
Keras 2 and tf.keras gave it (``cifar-10-batches-py.tar.gz``); else it
downloads the archive once from Keras' origin into that cache. The archive is
checked against the SHA-256 Keras pins, then its batches are read straight out
of it: nothing is extracted to disk (Keras extracts it to
``cifar-10-batches-py-target/`` next to the archive when it loads it itself).

The batches are Python pickles. They are read with an unpickler that resolves
exactly the four globals a pickled NumPy array needs and refuses any other,
so even a tampered archive cannot run code.
"""
import io
import pickle
import tarfile

import numpy as np

from . import _download

ORIGIN = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
SHA256 = "6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce"
# Keras 3's get_file(fname="cifar-10-batches-py-target", extract=True) names the archive
# "<fname>_archive"; Keras 2 and tf.keras (untar=True, fname "cifar-10-batches-py") add ".tar.gz".
ARCHIVE_NAMES = ("cifar-10-batches-py-target_archive", "cifar-10-batches-py.tar.gz")
CLASS_NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship",
               "truck"]
_TRAIN_BATCHES = [f"cifar-10-batches-py/data_batch_{i}" for i in range(1, 6)]
_TEST_BATCH = "cifar-10-batches-py/test_batch"

# Written by Python 2's NumPy, the batches name numpy.core.multiarray._reconstruct; NumPy 2
# writes numpy._core. Both map to the function itself, so no module named in a file is imported.
_RECONSTRUCT = np.empty(0).__reduce__()[0]
_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy._core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
}


class _BatchUnpickler(pickle.Unpickler):
    """Rebuilds NumPy arrays, lists, dicts, strings and numbers, and nothing else."""

    def __init__(self, data, where):
        super().__init__(io.BytesIO(data), encoding="bytes")
        self.where = where

    def find_class(self, module, name):
        try:
            return _ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(
                f"CIFAR-10: {self.where} names {module}.{name}; refusing to unpickle it (a "
                f"CIFAR-10 batch needs only NumPy's array reconstruction)") from None


def _read_batch(data, where):
    """(images (n, 3, 32, 32), labels (n,)) as uint8 from one pickled batch."""
    batch = _BatchUnpickler(data, where).load()
    if isinstance(batch, dict):
        batch = {k.decode() if isinstance(k, bytes) else k: v for k, v in batch.items()}
        images, labels = batch.get("data"), np.asarray(batch.get("labels", []))
        if (isinstance(images, np.ndarray) and images.dtype == np.uint8
                and images.shape[1:] == (3 * 32 * 32,) and labels.shape == (len(images),)
                and labels.dtype.kind in "iu" and np.all((labels >= 0) & (labels <= 9))):
            return images.reshape(-1, 3, 32, 32), labels.astype(np.uint8)
    raise ValueError(f"CIFAR-10: {where} is not a batch of uint8 'data' (n, 3072) with n "
                     f"'labels' in 0..9")


def _read_archive(path):
    """{member name: (images, labels)} for the six batches, decoded one by one as the
    archive streams past (one pass over the gzip, one raw batch in memory at a time)."""
    wanted = set(_TRAIN_BATCHES) | {_TEST_BATCH}
    batches = {}
    with tarfile.open(path, "r:gz") as archive:
        for member in archive:
            if member.name in wanted and member.isfile():
                data = archive.extractfile(member).read()
                batches[member.name] = _read_batch(data, f"{path}:{member.name}")
    missing = sorted(wanted - batches.keys())
    if missing:
        raise ValueError(f"CIFAR-10: {path} lacks {', '.join(missing)}")
    return batches


def load_data():
    """((x_train, y_train), (x_test, y_test)): uint8 images (50000, 32, 32, 3) and
    (10000, 32, 32, 3) channels_last, uint8 labels (50000, 1) and (10000, 1), as in Keras.

    Keras returns channels_first images when its image_data_format says so; convnet is
    channels_last throughout, so these always are. Keras' images are a transposed
    view; these are C-contiguous (same values, shape and dtype).
    """
    path = _download.get_file(ARCHIVE_NAMES, ORIGIN, SHA256)
    batches = _read_archive(path)
    parts = []
    for names in (_TRAIN_BATCHES, [_TEST_BATCH]):
        # One copy, written channels_last and C-contiguous straight from each batch
        # (np.concatenate would keep the batches' channels_first memory order).
        labels = np.concatenate([batches[name][1] for name in names])
        images = np.empty((len(labels), 32, 32, 3), np.uint8)
        start = 0
        for name in names:
            batch = batches.pop(name)[0]
            images[start:start + len(batch)] = batch.transpose(0, 2, 3, 1)
            start += len(batch)
        parts.append((images, labels.reshape(-1, 1)))
    return tuple(parts)
