"""Keras-style loaders against small generated files served from 127.0.0.1: downloads,
hashes, the cache, progress, offline errors, atomic writes, and the CIFAR-10 pickle guard.

No test reaches the real network: every origin points at a local server or a closed port.
"""
import gzip
import hashlib
import http.server
import importlib.util
import io
import json
import os
import pickle
import socket
import stat
import struct
import subprocess
import sys
import tarfile
import textwrap
import threading

import numpy as np
import pytest

from convnet.datasets import _download, cifar10, fashion_mnist, mnist


def _closed_port_url():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/"


@pytest.fixture(autouse=True)
def keras_home(tmp_path, monkeypatch):
    """Keras' cache in tmp_path, every origin at a closed local port, no proxy, no Debian."""
    home = tmp_path / "keras-home"
    monkeypatch.setenv("KERAS_HOME", str(home))
    monkeypatch.delenv("CONVNET_FASHION_MNIST", raising=False)
    monkeypatch.setenv("no_proxy", "*")
    monkeypatch.setenv("NO_PROXY", "*")
    closed = _closed_port_url()
    monkeypatch.setattr(mnist, "ORIGIN_FOLDER", closed)
    monkeypatch.setattr(fashion_mnist, "ORIGIN_FOLDER", closed)
    monkeypatch.setattr(cifar10, "ORIGIN", closed + "cifar-10-python.tar.gz")
    monkeypatch.setattr(fashion_mnist, "DEBIAN_PATH", str(tmp_path / "no-debian-package"))
    return home


class _Server:
    """Files served by path; every request is logged; paths in `truncated` send half their
    body after announcing all of it (a connection cut mid-download)."""

    def __init__(self):
        self.files, self.requests, self.truncated = {}, [], set()
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                server.requests.append(self.path)
                body = server.files.get(self.path)
                if body is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body[:len(body) // 2] if self.path in server.truncated
                                 else body)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/"
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02},
                         daemon=True).start()

    def serve(self, name, body):
        self.files["/" + name] = body
        return hashlib.sha256(body).hexdigest()


@pytest.fixture
def server():
    running = _Server()
    yield running
    running.httpd.shutdown()
    running.httpd.server_close()


def _fake_mnist(rng):
    arrays = {"x_train": rng.integers(0, 256, (3, 28, 28), dtype=np.uint8),
              "y_train": np.array([5, 0, 4], np.uint8),
              "x_test": rng.integers(0, 256, (2, 28, 28), dtype=np.uint8),
              "y_test": np.array([7, 2], np.uint8)}
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return arrays, buffer.getvalue()


@pytest.fixture
def served_mnist(server, monkeypatch, rng):
    arrays, body = _fake_mnist(rng)
    monkeypatch.setattr(mnist, "SHA256", server.serve("mnist.npz", body))
    monkeypatch.setattr(mnist, "ORIGIN_FOLDER", server.url)
    return arrays, body


def _files_in(directory):
    return sorted(os.listdir(directory)) if os.path.isdir(directory) else []


# ---- MNIST, and the download machinery through it ----

def test_mnist_downloads_once_into_keras_cache_then_reuses_it(served_mnist, server, keras_home,
                                                              capsys):
    arrays, body = served_mnist
    (x_train, y_train), (x_test, y_test) = mnist.load_data()
    for got, key in ((x_train, "x_train"), (y_train, "y_train"), (x_test, "x_test"),
                     (y_test, "y_test")):
        np.testing.assert_array_equal(got, arrays[key])
        assert got.dtype == np.uint8
    saved = keras_home / "datasets" / "mnist.npz"
    assert saved.read_bytes() == body
    assert _files_in(keras_home / "datasets") == ["mnist.npz"]
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(saved.stat().st_mode) == 0o666 & ~umask   # as open() makes it
    out = capsys.readouterr().out
    assert f"Downloading data from {server.url}mnist.npz" in out
    # Not a terminal: only the final line of the bar, full.
    assert f"{len(body)}/{len(body)} " + "\u2501" * 20 in out and "\r" not in out
    assert server.requests == ["/mnist.npz"]
    mnist.load_data()
    assert server.requests == ["/mnist.npz"]
    assert "Downloading" not in capsys.readouterr().out


def test_an_existing_keras_copy_is_used_without_any_request(server, keras_home, monkeypatch,
                                                            rng):
    arrays, body = _fake_mnist(rng)
    (keras_home / "datasets").mkdir(parents=True)
    (keras_home / "datasets" / "mnist.npz").write_bytes(body)
    monkeypatch.setattr(mnist, "SHA256", hashlib.sha256(body).hexdigest())
    monkeypatch.setattr(mnist, "ORIGIN_FOLDER", server.url)
    np.testing.assert_array_equal(mnist.load_data()[1][0], arrays["x_test"])
    assert server.requests == []


def test_a_download_with_the_wrong_hash_is_refused_and_not_kept(served_mnist, keras_home,
                                                                monkeypatch):
    monkeypatch.setattr(mnist, "SHA256", "0" * 64)
    with pytest.raises(_download.ChecksumError, match="0{64}"):
        mnist.load_data()
    assert _files_in(keras_home / "datasets") == []


def test_a_corrupt_cached_copy_is_downloaded_again(served_mnist, server, keras_home, capsys):
    _, body = served_mnist
    (keras_home / "datasets").mkdir(parents=True)
    (keras_home / "datasets" / "mnist.npz").write_bytes(body[:100])
    mnist.load_data()
    assert "SHA-256 is not" in capsys.readouterr().out
    assert server.requests == ["/mnist.npz"]
    assert (keras_home / "datasets" / "mnist.npz").read_bytes() == body


def test_offline_error_names_the_url_and_where_to_put_which_file(keras_home):
    with pytest.raises(_download.DownloadError) as error:
        mnist.load_data()
    message = str(error.value)
    assert f"cannot download {mnist.ORIGIN_FOLDER}mnist.npz" in message
    assert str(keras_home / "datasets" / "mnist.npz") in message
    assert mnist.SHA256 in message
    assert _files_in(keras_home / "datasets") == []


def test_an_http_error_is_a_download_error(server, monkeypatch):
    monkeypatch.setattr(mnist, "ORIGIN_FOLDER", server.url)
    with pytest.raises(_download.DownloadError, match="HTTP 404"):
        mnist.load_data()


def test_a_cut_connection_leaves_no_file(served_mnist, server, keras_home):
    server.truncated.add("/mnist.npz")
    with pytest.raises(_download.DownloadError, match="closed after"):
        mnist.load_data()
    assert _files_in(keras_home / "datasets") == []


def test_an_interrupted_download_leaves_no_file(served_mnist, keras_home, monkeypatch):
    def interrupt(self, received):
        raise KeyboardInterrupt
    monkeypatch.setattr(_download._Progress, "update", interrupt)
    with pytest.raises(KeyboardInterrupt):
        mnist.load_data()
    assert _files_in(keras_home / "datasets") == []


def test_progress_bar_redraws_in_place_on_a_terminal(server, keras_home, monkeypatch):
    class Terminal(io.StringIO):
        def isatty(self):
            return True
    body = bytes(range(256)) * 1024
    digest = server.serve("blob", body)
    monkeypatch.setattr(_download, "_CHUNK", 4096)
    monkeypatch.setattr(_download._Progress, "redraw_seconds", 0.0)   # redraw every chunk
    terminal = Terminal()
    path = _download.download(server.url + "blob", "blob", digest, stream=terminal)
    assert open(path, "rb").read() == body
    lines = terminal.getvalue().split("\r")
    assert lines[0] == f"Downloading data from {server.url}blob\n"
    counts = [int(line.split("/")[0]) for line in lines[1:]]
    # A redraw per chunk, growing, then the final line, full.
    assert len(counts) > 10 and counts[:-1] == sorted(set(counts[:-1]))
    assert counts[-2] == counts[-1] == len(body)
    assert lines[-1].startswith(f"{len(body)}/{len(body)} " + "\u2501" * 20)
    assert lines[-1].endswith("MB/s\n")


def test_mnist_path_is_a_file_name_as_in_keras(served_mnist, keras_home):
    mnist.load_data(path="my-mnist.npz")
    assert _files_in(keras_home / "datasets") == ["my-mnist.npz"]
    with pytest.raises(ValueError, match="file name"):
        mnist.load_data(path=os.path.join("sub", "mnist.npz"))


def test_an_unwritable_keras_home_falls_back_to_tmp(served_mnist, tmp_path, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_bytes(b"")
    monkeypatch.setenv("KERAS_HOME", str(blocker / "keras"))   # cannot be created
    monkeypatch.setattr(_download, "_tmp_root", lambda: str(tmp_path / "tmp"))
    mnist.load_data()
    assert _files_in(tmp_path / "tmp" / ".keras" / "datasets") == ["mnist.npz"]


def test_keras_home_defaults_to_dot_keras_in_the_home_folder(tmp_path, monkeypatch):
    monkeypatch.delenv("KERAS_HOME")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert _download.keras_home() == str(tmp_path / ".keras")


# ---- CIFAR-10 ----

def _string(b):
    return (b"U" + bytes([len(b)]) + b) if len(b) < 256 else (b"T" + struct.pack("<i", len(b)) + b)


def _integer(i):
    return b"K" + bytes([i]) if i < 256 else b"J" + struct.pack("<i", i)


def _py2_batch(rows, labels):
    """A batch pickled as Python 2's cPickle wrote CIFAR-10's (protocol 2, every string a
    BINSTRING, NumPy's array reduce with numpy.core.multiarray._reconstruct), opcode by
    opcode, so the reader is tested on the real format rather than on what Python 3 writes."""
    dtype = (b"cnumpy\ndtype\n" + _string(b"u1") + b"K\x00K\x01\x87R("
             + _integer(3) + _string(b"|") + b"NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb")
    array = (b"cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\nK\x00\x85" + _string(b"b")
             + b"\x87R(" + _integer(1) + _integer(rows.shape[0]) + _integer(rows.shape[1])
             + b"\x86" + dtype + b"\x89" + _string(rows.tobytes()) + b"tb")
    labels_list = b"](" + b"".join(_integer(int(v)) for v in labels) + b"e"
    filenames = b"](" + b"".join(_string(b"img%d.png" % i) for i in range(len(labels))) + b"e"
    return (b"\x80\x02}(" + _string(b"batch_label") + _string(b"a fake batch")
            + _string(b"labels") + labels_list + _string(b"data") + array
            + _string(b"filenames") + filenames + b"u.")


def _cifar_archive(batches, extra=()):
    """A tar.gz with the layout of cifar-10-python.tar.gz: cifar-10-batches-py/<batch>."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, data in list(batches.items()) + list(extra):
            info = tarfile.TarInfo("cifar-10-batches-py/" + name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def _fake_cifar(rng, per_batch=2):
    """NHWC images and labels, and the archive holding them in CIFAR-10's documented row
    layout: 1024 red, then 1024 green, then 1024 blue values, each plane row-major."""
    images = rng.integers(0, 256, (6 * per_batch, 32, 32, 3), dtype=np.uint8)
    labels = rng.integers(0, 10, 6 * per_batch)
    rows = images.transpose(0, 3, 1, 2).reshape(len(images), 3072)
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    batches = {name: _py2_batch(rows[i * per_batch:(i + 1) * per_batch],
                                labels[i * per_batch:(i + 1) * per_batch])
               for i, name in enumerate(names)}
    extra = [("batches.meta", b"meta"), ("readme.html", b"<html></html>")]
    return images, labels, _cifar_archive(batches, extra)


def test_cifar10_downloads_the_archive_and_reads_the_batches(server, keras_home, monkeypatch,
                                                             rng):
    images, labels, body = _fake_cifar(rng)
    monkeypatch.setattr(cifar10, "SHA256", server.serve("cifar-10-python.tar.gz", body))
    monkeypatch.setattr(cifar10, "ORIGIN", server.url + "cifar-10-python.tar.gz")
    (x_train, y_train), (x_test, y_test) = cifar10.load_data()
    assert x_train.shape == (10, 32, 32, 3) and x_test.shape == (2, 32, 32, 3)
    assert y_train.shape == (10, 1) and y_test.shape == (2, 1)
    for array in (x_train, y_train, x_test, y_test):
        assert array.dtype == np.uint8 and array.flags.c_contiguous
    np.testing.assert_array_equal(x_train, images[:10])
    np.testing.assert_array_equal(x_test, images[10:])
    np.testing.assert_array_equal(y_train[:, 0], labels[:10])
    np.testing.assert_array_equal(y_test[:, 0], labels[10:])
    assert _files_in(keras_home / "datasets") == ["cifar-10-batches-py-target_archive"]
    cifar10.load_data()
    assert server.requests == ["/cifar-10-python.tar.gz"]


def test_cifar10_finds_the_archive_keras_2_cached(server, keras_home, monkeypatch, rng):
    images, _, body = _fake_cifar(rng)
    (keras_home / "datasets").mkdir(parents=True)
    (keras_home / "datasets" / "cifar-10-batches-py.tar.gz").write_bytes(body)
    monkeypatch.setattr(cifar10, "SHA256", hashlib.sha256(body).hexdigest())
    np.testing.assert_array_equal(cifar10.load_data()[1][0], images[10:])


def test_cifar10_archive_missing_a_batch_is_a_clear_error(keras_home, monkeypatch):
    body = _cifar_archive({"data_batch_1": _py2_batch(np.zeros((1, 3072), np.uint8), [0])})
    (keras_home / "datasets").mkdir(parents=True)
    (keras_home / "datasets" / "cifar-10-batches-py-target_archive").write_bytes(body)
    monkeypatch.setattr(cifar10, "SHA256", hashlib.sha256(body).hexdigest())
    with pytest.raises(ValueError, match="lacks .*data_batch_2"):
        cifar10.load_data()


class _RunsCommand:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


@pytest.mark.parametrize("module, name", [
    ("os", "system"), ("posix", "system"), ("builtins", "eval"), ("builtins", "getattr"),
    ("subprocess", "Popen"), ("numpy", "load"), ("numpy.lib.npyio", "load"),
    ("numpy.core.multiarray", "scalar"), ("pickle", "loads"),
])
def test_the_batch_unpickler_refuses_every_other_global(module, name):
    payload = b"\x80\x02c" + module.encode() + b"\n" + name.encode() + b"\n."
    with pytest.raises(pickle.UnpicklingError, match=f"{module}.{name}"):
        cifar10._read_batch(payload, "test")


def test_a_cifar_archive_with_a_code_running_pickle_is_refused(keras_home, monkeypatch):
    evil = pickle.dumps({b"data": _RunsCommand(), b"labels": []}, protocol=4)
    calls = []
    monkeypatch.setattr(os, "system", lambda command: calls.append(command))
    batches = {f"data_batch_{i}": evil for i in range(1, 6)}
    batches["test_batch"] = evil
    body = _cifar_archive(batches)
    (keras_home / "datasets").mkdir(parents=True)
    (keras_home / "datasets" / "cifar-10-batches-py-target_archive").write_bytes(body)
    monkeypatch.setattr(cifar10, "SHA256", hashlib.sha256(body).hexdigest())
    with pytest.raises(pickle.UnpicklingError, match="system"):
        cifar10.load_data()
    assert calls == []


@pytest.mark.parametrize("batch", [
    pickle.dumps([1, 2, 3], protocol=4),
    pickle.dumps({b"data": np.zeros((2, 3072), np.float32), b"labels": [0, 1]}, protocol=4),
    pickle.dumps({b"data": np.zeros((2, 3071), np.uint8), b"labels": [0, 1]}, protocol=4),
    pickle.dumps({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0]}, protocol=4),
    pickle.dumps({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 10]}, protocol=4),
])
def test_a_batch_of_the_wrong_shape_is_a_clear_error(batch):
    with pytest.raises(ValueError, match="not a batch"):
        cifar10._read_batch(batch, "test")


# ---- Fashion-MNIST ----

def _idx(array):
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return gzip.compress(header + array.astype(np.uint8).tobytes(), mtime=0)


def _fake_fashion(rng, n_train=3, n_test=2):
    x_train = rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8)
    y_train = rng.integers(0, 10, n_train).astype(np.uint8)
    x_test = rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8)
    y_test = rng.integers(0, 10, n_test).astype(np.uint8)
    files = {"train-images-idx3-ubyte.gz": _idx(x_train),
             "train-labels-idx1-ubyte.gz": _idx(y_train),
             "t10k-images-idx3-ubyte.gz": _idx(x_test),
             "t10k-labels-idx1-ubyte.gz": _idx(y_test)}
    return (x_train, y_train, x_test, y_test), files


def _serve_fashion(server, monkeypatch, files):
    monkeypatch.setattr(fashion_mnist, "SHA256", {name: server.serve(name, body)
                                                  for name, body in files.items()})
    monkeypatch.setattr(fashion_mnist, "ORIGIN_FOLDER", server.url)


def _assert_loaded(loaded, arrays):
    (x_train, y_train), (x_test, y_test) = loaded
    for got, want in zip((x_train, y_train, x_test, y_test), arrays):
        np.testing.assert_array_equal(got, want)


def test_fashion_mnist_downloads_into_keras_cache_then_reuses_it(server, keras_home,
                                                                 monkeypatch, rng):
    arrays, files = _fake_fashion(rng)
    _serve_fashion(server, monkeypatch, files)
    _assert_loaded(fashion_mnist.load_data(), arrays)
    cache = keras_home / "datasets" / "fashion-mnist"
    assert _files_in(cache) == sorted(files)
    assert sorted(server.requests) == sorted("/" + name for name in files)
    assert fashion_mnist.full_data_path() == str(cache)
    _assert_loaded(fashion_mnist.load_data(), arrays)
    assert len(server.requests) == 4


def test_fashion_mnist_downloads_only_what_the_cache_lacks(server, keras_home, monkeypatch,
                                                           rng):
    arrays, files = _fake_fashion(rng)
    _serve_fashion(server, monkeypatch, files)
    cache = keras_home / "datasets" / "fashion-mnist"
    cache.mkdir(parents=True)
    (cache / "train-images-idx3-ubyte.gz").write_bytes(files["train-images-idx3-ubyte.gz"])
    _assert_loaded(fashion_mnist.load_data(), arrays)
    assert "/train-images-idx3-ubyte.gz" not in server.requests and len(server.requests) == 3


def test_fashion_mnist_prefers_keras_cache_to_debian_and_debian_to_a_download(
        server, keras_home, tmp_path, monkeypatch, rng):
    debian_arrays, debian_files = _fake_fashion(rng, 4, 1)
    debian = tmp_path / "debian"
    debian.mkdir()
    for name, body in debian_files.items():
        (debian / name).write_bytes(body)
    monkeypatch.setattr(fashion_mnist, "DEBIAN_PATH", str(debian))
    arrays, files = _fake_fashion(rng)
    _serve_fashion(server, monkeypatch, files)
    _assert_loaded(fashion_mnist.load_data(), debian_arrays)
    assert server.requests == []
    cache = keras_home / "datasets" / "fashion-mnist"
    cache.mkdir(parents=True)
    for name, body in files.items():
        (cache / name).write_bytes(body)
    _assert_loaded(fashion_mnist.load_data(), arrays)
    assert server.requests == []
    # An explicit folder still comes first.
    _assert_loaded(fashion_mnist.load_data(path=debian), debian_arrays)


def test_fashion_mnist_falls_back_to_the_subset_only_when_the_download_fails(keras_home):
    with pytest.warns(UserWarning, match=r"cannot download .*train-images-idx3-ubyte\.gz.*subset"):
        (x_train, _), (x_test, _) = fashion_mnist.load_data()
    assert x_train.shape == (5000, 28, 28) and x_test.shape == (1000, 28, 28)
    assert fashion_mnist.full_data_path() is None


def test_fashion_mnist_falls_back_when_the_download_has_the_wrong_hash(server, monkeypatch,
                                                                       rng):
    _, files = _fake_fashion(rng)
    _serve_fashion(server, monkeypatch, files)
    monkeypatch.setitem(fashion_mnist.SHA256, "t10k-images-idx3-ubyte.gz", "0" * 64)
    with pytest.warns(UserWarning, match="SHA-256"):
        assert fashion_mnist.load_data()[1][0].shape == (1000, 28, 28)


# ---- The same cache as Keras' own get_file ----

KERAS_CHECK = textwrap.dedent("""
    import json, os, sys
    import keras
    from keras.src.datasets.cifar import load_batch
    closed, home = sys.argv[1], os.environ["KERAS_HOME"]
    # Each file is in the cache, so Keras must find it without touching the (closed) origin.
    print(keras.utils.get_file("mnist.npz", origin=closed + "mnist.npz"))
    for name in ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
                 "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        print(keras.utils.get_file(name, origin=closed + name,
                                   cache_subdir=os.path.join("datasets", "fashion-mnist")))
    extracted = keras.utils.get_file(fname="cifar-10-batches-py-target", extract=True,
                                     origin=closed + "cifar-10-python.tar.gz")
    data, labels = load_batch(os.path.join(extracted, "cifar-10-batches-py", "test_batch"))
    print(data.tobytes().hex(), json.dumps([int(v) for v in labels]))
""")


def test_keras_finds_what_convnet_downloaded_and_reads_the_same_cifar_batches(
        server, keras_home, monkeypatch, rng):
    """Keras itself (torch backend, in a child process) finds the three downloads at the
    paths its get_file uses, and its own CIFAR reader agrees with convnet's."""
    if not all(importlib.util.find_spec(name) for name in ("keras", "torch")):
        pytest.skip("needs keras and torch (Keras' torch backend)")
    served_mnist_body = _fake_mnist(rng)[1]
    monkeypatch.setattr(mnist, "SHA256", server.serve("mnist.npz", served_mnist_body))
    monkeypatch.setattr(mnist, "ORIGIN_FOLDER", server.url)
    _, files = _fake_fashion(rng)
    _serve_fashion(server, monkeypatch, files)
    _, _, archive = _fake_cifar(rng)
    monkeypatch.setattr(cifar10, "SHA256", server.serve("cifar-10-python.tar.gz", archive))
    monkeypatch.setattr(cifar10, "ORIGIN", server.url + "cifar-10-python.tar.gz")
    mnist.load_data()
    fashion_mnist.load_data()
    _, (x_test, y_test) = cifar10.load_data()
    result = subprocess.run(
        [sys.executable, "-c", KERAS_CHECK, _closed_port_url()], capture_output=True,
        text=True, env={**os.environ, "KERAS_BACKEND": "torch"}, timeout=300)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()[-6:]
    datasets = keras_home / "datasets"
    assert lines[:5] == [str(datasets / "mnist.npz")] + [
        str(datasets / "fashion-mnist" / name) for name in
        ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
         "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")]
    data_hex, labels = lines[5].split(" ", 1)
    keras_images = np.frombuffer(bytes.fromhex(data_hex), np.uint8).reshape(-1, 3, 32, 32)
    np.testing.assert_array_equal(keras_images.transpose(0, 2, 3, 1), x_test)
    assert json.loads(labels) == y_test[:, 0].tolist()
