"""The IDX parser on files written by hand here, the embedded subset, and the full data."""
import gzip
import os
import struct
import tracemalloc

import numpy as np
import pytest

import convnet as keras
from convnet.datasets import fashion_mnist
from convnet.datasets import _idx
from convnet.datasets._idx import IDXFormatError, read_idx


def _idx_bytes(array, type_code=0x08):
    header = bytes([0, 0, type_code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(">u1" if type_code == 0x08 else ">i4").tobytes()


def test_reads_a_hand_written_idx_file_plain_and_gzipped(tmp_path):
    images = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    (tmp_path / "a.idx").write_bytes(_idx_bytes(images))
    np.testing.assert_array_equal(read_idx(tmp_path / "a.idx"), images)
    (tmp_path / "a.idx.gz").write_bytes(gzip.compress(_idx_bytes(images)))
    np.testing.assert_array_equal(read_idx(str(tmp_path / "a.idx.gz")), images)
    ints = np.array([1, -2, 70000], dtype=np.int64)
    (tmp_path / "i.idx").write_bytes(_idx_bytes(ints, 0x0C))
    np.testing.assert_array_equal(read_idx(tmp_path / "i.idx"), ints)


@pytest.mark.parametrize("damage, message", [
    (lambda b: b"\x08\x08" + b[2:], "magic"),
    (lambda b: b[:2] + b"\x77" + b[3:], "magic"),
    (lambda b: b[:6], "truncated"),
    (lambda b: b[:-1], "truncated"),
    (lambda b: b + b"\x00", "longer"),
    (lambda b: b"", "magic"),
])
@pytest.mark.parametrize("name, compress", [("bad.idx", bytes), ("bad.idx.gz", gzip.compress)])
def test_broken_idx_files_are_clear_errors(tmp_path, damage, message, name, compress):
    data = _idx_bytes(np.zeros((2, 3, 3), np.uint8))
    (tmp_path / name).write_bytes(compress(damage(data)))
    with pytest.raises(IDXFormatError, match=message):
        read_idx(tmp_path / name)


@pytest.mark.parametrize("name, compress", [("forged.idx", bytes),
                                            ("forged.idx.gz", gzip.compress)])
@pytest.mark.parametrize("shape", [(2**32 - 1,) * 3, (2**32 - 1,) * 255, (60000, 28, 28),
                                   (10**6,)])
def test_a_forged_header_is_refused_before_anything_is_allocated(tmp_path, shape, name,
                                                                 compress):
    """A header may declare up to 255 dimensions of 2**32 - 1 (an OverflowError or an
    allocation of exabytes if believed): the declared size is checked against what the
    file can hold (its size; for gzip, deflate's 1032:1 limit) first."""
    header = bytes([0, 0, 0x0E, len(shape)]) + struct.pack(f">{len(shape)}I", *shape)
    (tmp_path / name).write_bytes(compress(header + bytes(64)))
    tracemalloc.start()
    try:
        with pytest.raises(IDXFormatError, match="truncated") as error:
            read_idx(tmp_path / name)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert str(shape[:3])[:-1] in str(error.value)
    assert peak < 1 << 20


def test_a_gzip_that_holds_less_than_its_bound_is_read_in_chunks(tmp_path, monkeypatch):
    """Within deflate's bound a gzip's size is only known by reading it: memory then grows
    with the data actually there (64 KiB), not with the 8 MB the header declares."""
    monkeypatch.setattr(_idx, "_CHUNK", 1 << 16)
    header = bytes([0, 0, 0x08, 1]) + struct.pack(">I", 8 * 10**6)
    (tmp_path / "short.idx.gz").write_bytes(gzip.compress(header + bytes(1 << 16)))
    tracemalloc.start()
    try:
        with pytest.raises(IDXFormatError, match="truncated"):
            read_idx(tmp_path / "short.idx.gz")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20


def test_a_corrupt_gzip_is_a_clear_error(tmp_path):
    (tmp_path / "bad.idx.gz").write_bytes(b"\x1f\x8bnot really gzip")
    with pytest.raises(IDXFormatError, match="cannot read"):
        read_idx(tmp_path / "bad.idx.gz")


def test_embedded_subset_shapes_dtypes_and_labels():
    (x_train, y_train), (x_test, y_test) = fashion_mnist.load_data(subset=True)
    assert x_train.shape == (5000, 28, 28) and x_test.shape == (1000, 28, 28)
    assert x_train.dtype == np.uint8 and y_train.dtype == np.uint8
    assert y_train.shape == (5000,) and y_test.shape == (1000,)
    assert set(np.unique(y_train)) == set(range(10)) == set(np.unique(y_test))
    assert x_train.max() == 255 and x_train.min() == 0


def test_path_argument_and_environment_variable(tmp_path, monkeypatch):
    images = np.full((3, 28, 28), 7, np.uint8)
    labels = np.array([1, 2, 9], np.uint8)
    for stem, array in (("train-images-idx3-ubyte", images), ("train-labels-idx1-ubyte", labels),
                        ("t10k-images-idx3-ubyte", images[:2]),
                        ("t10k-labels-idx1-ubyte", labels[:2])):
        (tmp_path / stem).write_bytes(_idx_bytes(array))
    (x_train, y_train), (x_test, _) = fashion_mnist.load_data(path=tmp_path)
    np.testing.assert_array_equal(y_train, labels)
    assert x_test.shape == (2, 28, 28)
    monkeypatch.setenv("CONVNET_FASHION_MNIST", str(tmp_path))
    assert fashion_mnist.load_data()[0][0].shape == (3, 28, 28)
    monkeypatch.setenv("CONVNET_FASHION_MNIST", str(tmp_path / "missing"))
    with pytest.raises(FileNotFoundError, match="lacks"):
        fashion_mnist.load_data()


def test_digits_from_scikit_learn():
    pytest.importorskip("sklearn")
    (x_train, y_train), (x_test, y_test) = keras.datasets.digits.load_data()
    assert x_train.shape[1:] == (8, 8) and len(x_train) + len(x_test) == 1797
    assert x_train.dtype == np.uint8 and x_train.max() == 16


FULL = fashion_mnist.full_data_path()


@pytest.mark.skipif(FULL is None or not os.path.isdir(FULL),
                    reason="full Fashion-MNIST not found locally (Keras' cache or "
                           "apt-get install dataset-fashion-mnist)")
def test_short_training_beats_80_percent_on_the_full_test_set():
    (x_train, y_train), (x_test, y_test) = fashion_mnist.load_data()
    assert x_train.shape == (60000, 28, 28) and x_test.shape == (10000, 28, 28)
    keras.utils.set_random_seed(0)
    model = keras.Sequential([
        keras.Input((28, 28, 1)), keras.layers.Conv2D(32, 3, activation="relu"),
        keras.layers.MaxPooling2D(2), keras.layers.Conv2D(64, 3, activation="relu"),
        keras.layers.MaxPooling2D(2), keras.layers.Flatten(),
        keras.layers.Dense(10, activation="softmax")])
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x_train[:30000, ..., None] / 255.0, y_train[:30000], batch_size=64, epochs=1,
              verbose=0)
    _, accuracy = model.evaluate(x_test[..., None] / 255.0, y_test, verbose=0)
    assert accuracy > 0.80
