"""Model files: safe to load from a stranger, written atomically.

Layout (all integers little-endian)::

    8 bytes   b"CONVNET\\x01"
    8 bytes   header length H (uint64)
    H bytes   UTF-8 JSON header: format version, kind ("model" or "weights"),
              the model config and compile settings (kind "model"), and one
              {"dtype", "shape", "offset", "nbytes"} entry per weight array
    payload   the weight arrays' raw bytes, one after another
    32 bytes  SHA-256 of everything before it

Loading never unpickles and never imports or runs code named by the file:
layer classes come only from ``convnet.layers.LAYER_CLASSES``. Every header
field is checked against the file's real size before anything is allocated;
the checksum (a corrupted or truncated file) is checked before anything is
parsed; every array's shape and dtype must equal the one the architecture
builds. Saving writes a temporary file beside the
target, fsyncs it and ``os.replace``s it into place, so an interrupted save
leaves the previous file whole.
"""
import hashlib
import json
import math
import os
import struct
import tempfile

import numpy as np

from . import losses, optimizers
from .layers import LAYER_CLASSES

MAGIC = b"CONVNET\x01"
FORMAT_VERSION = 1
MAX_HEADER_BYTES = 16 << 20
DIGEST_BYTES = 32
_DTYPES = {"float32": np.dtype("<f4"), "float64": np.dtype("<f8")}
_OPTIMIZERS = dict(optimizers.OPTIMIZERS)
_SCHEDULES = dict(optimizers.SCHEDULES)


class ModelFileError(ValueError):
    """A model file that is truncated, corrupted, forged or does not fit the model."""


# ----------------------------------------------------------------------------- writing

def _write_atomically(filepath, header, arrays):
    filepath = os.fspath(filepath)
    header_bytes = json.dumps(header, separators=(",", ":")).encode("utf-8")
    directory = os.path.dirname(os.path.abspath(filepath))
    fd, tmp_path = tempfile.mkstemp(prefix=".convnet-", suffix=".tmp", dir=directory)
    digest = hashlib.sha256()
    try:
        with os.fdopen(fd, "wb") as f:
            for chunk in (MAGIC, struct.pack("<Q", len(header_bytes)), header_bytes,
                          *(memoryview(a).cast("B") for a in arrays)):
                digest.update(chunk)
                f.write(chunk)
            f.write(digest.digest())
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp_path, filepath)
    except BaseException:
        try:
            os.unlink(tmp_path)
        except OSError:
            pass
        raise


def _weights_header(arrays):
    """Header entries for `arrays`, and the arrays as contiguous little-endian data."""
    entries, offset, stored = [], 0, []
    for array in arrays:
        array = np.ascontiguousarray(array, dtype=_DTYPES[array.dtype.name])
        entries.append({"dtype": array.dtype.name, "shape": list(array.shape),
                        "offset": offset, "nbytes": array.nbytes})
        offset += array.nbytes
        stored.append(array)
    return entries, stored


def _compile_config(model):
    if model.optimizer is None:
        return None
    opt = model.optimizer
    return {"optimizer": {"class_name": type(opt).__name__, "config": opt.get_config()},
            "loss": losses.serialize(model.loss),
            "metrics": [m.name for m in model.metrics]}


def save_model(model, filepath):
    if not model.built:
        raise ValueError(f"save: Sequential '{model.name}' has not been built yet; there are "
                         f"no weights to save")
    entries, arrays = _weights_header(model.weights)
    header = {"format": "convnet", "version": FORMAT_VERSION, "kind": "model",
              "config": model.get_config(), "compile": _compile_config(model),
              "weights": entries}
    _write_atomically(filepath, header, arrays)


def save_weights(model, filepath):
    if not model.built:
        raise ValueError(f"save_weights: Sequential '{model.name}' has not been built yet")
    entries, arrays = _weights_header(model.weights)
    header = {"format": "convnet", "version": FORMAT_VERSION, "kind": "weights",
              "weights": entries}
    _write_atomically(filepath, header, arrays)


# ----------------------------------------------------------------------------- reading

def _fail(filepath, problem):
    raise ModelFileError(f"{os.fspath(filepath)}: not a valid convnet model file: {problem}")


def _is_count(value):
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _check_digest(f, size, filepath):
    """Compare the trailing SHA-256 with the file's contents, reading in bounded chunks."""
    digest = hashlib.sha256()
    f.seek(0)
    remaining = size - DIGEST_BYTES
    while remaining:
        chunk = f.read(min(remaining, 1 << 20))
        if not chunk:
            _fail(filepath, "the file changed while it was read")
        digest.update(chunk)
        remaining -= len(chunk)
    if f.read(DIGEST_BYTES) != digest.digest():
        _fail(filepath, "its checksum does not match (the file is truncated or corrupted)")


def _read(filepath):
    """(header, list of arrays) after checking every field against the file itself."""
    with open(filepath, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        if size < 16 + DIGEST_BYTES or f.read(8) != MAGIC:
            _fail(filepath, "it does not start with the convnet magic bytes")
        _check_digest(f, size, filepath)
        f.seek(8)
        (header_length,) = struct.unpack("<Q", f.read(8))
        payload_size = size - 16 - DIGEST_BYTES - header_length
        if header_length > MAX_HEADER_BYTES or payload_size < 0:
            _fail(filepath, f"the header claims {header_length} bytes, more than the file has")
        try:
            header = json.loads(f.read(header_length).decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            _fail(filepath, f"the header is not valid JSON ({error})")
        if not isinstance(header, dict) or header.get("format") != "convnet":
            _fail(filepath, "the header is not a convnet header")
        if header.get("version") != FORMAT_VERSION:
            _fail(filepath, f"format version {header.get('version')!r} is not supported "
                            f"(this convnet reads version {FORMAT_VERSION})")
        entries = header.get("weights")
        if not isinstance(entries, list):
            _fail(filepath, "the header has no list of weights")
        offset = 0
        for i, entry in enumerate(entries):
            if not isinstance(entry, dict) or entry.get("dtype") not in _DTYPES:
                _fail(filepath, f"weight {i} has no supported dtype (float32 or float64)")
            shape = entry.get("shape")
            if not isinstance(shape, list) or len(shape) > 8 or not all(map(_is_count, shape)):
                _fail(filepath, f"weight {i} has an invalid shape {shape!r}")
            nbytes = math.prod(shape) * _DTYPES[entry["dtype"]].itemsize
            if entry.get("nbytes") != nbytes or entry.get("offset") != offset:
                _fail(filepath, f"weight {i}'s size or offset does not match its shape")
            offset += nbytes
            if offset > payload_size:
                _fail(filepath, f"weight {i} ends at byte {offset} of a {payload_size}-byte "
                                f"payload (forged sizes)")
        if offset != payload_size:
            _fail(filepath, f"the payload has {payload_size} bytes but the weights take {offset}")
        payload = f.read(payload_size)
    arrays = [np.frombuffer(payload, dtype=_DTYPES[e["dtype"]], count=math.prod(e["shape"]),
                            offset=e["offset"]).reshape(e["shape"]).copy() for e in entries]
    return header, arrays


def layer_from_config(item):
    """A layer from {"class_name", "config"}, only for the classes convnet defines."""
    if not isinstance(item, dict) or item.get("class_name") not in LAYER_CLASSES \
            or not isinstance(item.get("config"), dict):
        name = item.get("class_name") if isinstance(item, dict) else item
        raise ModelFileError(f"unknown layer {name!r} in the model config; known layers are "
                             f"{sorted(LAYER_CLASSES)}")
    try:
        return LAYER_CLASSES[item["class_name"]].from_config(item["config"])
    except (TypeError, ValueError) as error:
        raise ModelFileError(f"invalid config for layer {item['class_name']}: {error}") from None


def _assign(model, arrays, filepath):
    weights = model.weights
    if len(arrays) != len(weights):
        _fail(filepath, f"it holds {len(arrays)} weight arrays but the model has {len(weights)}")
    for i, (array, weight) in enumerate(zip(arrays, weights)):
        if array.shape != weight.shape or array.dtype != weight.dtype:
            _fail(filepath, f"weight {i} is {array.dtype} {array.shape} but the model expects "
                            f"{weight.dtype} {weight.shape}")
    model.set_weights(arrays)


def _optimizer_from_config(config):
    if not isinstance(config, dict) or config.get("class_name") not in _OPTIMIZERS:
        raise ModelFileError(f"unknown optimizer in the model file: {config!r}")
    kwargs = dict(config.get("config", {}))
    lr = kwargs.get("learning_rate")
    if isinstance(lr, dict):
        if lr.get("class_name") not in _SCHEDULES:
            raise ModelFileError(f"unknown learning-rate schedule in the model file: {lr!r}")
        kwargs["learning_rate"] = _SCHEDULES[lr["class_name"]](**lr.get("config", {}))
    try:
        return _OPTIMIZERS[config["class_name"]](**kwargs)
    except (TypeError, ValueError) as error:
        raise ModelFileError(f"invalid optimizer config in the model file: {error}") from None


def load_model(filepath, compile=True):
    """A Sequential model from a file written by ``model.save``; compiled as it was saved."""
    from .models import Sequential
    header, arrays = _read(filepath)
    if header.get("kind") != "model" or not isinstance(header.get("config"), dict):
        _fail(filepath, "it holds weights only; build the model and call load_weights()")
    config = header["config"]
    if not isinstance(config.get("layers"), list) or not isinstance(config.get("name"), str):
        _fail(filepath, "the model config has no list of layers")
    try:
        model = Sequential.from_config(config)
        if model.layers:
            model.build()
    except ModelFileError as error:
        _fail(filepath, str(error))
    except (TypeError, ValueError) as error:
        _fail(filepath, f"the architecture does not build ({error})")
    _assign(model, arrays, filepath)
    settings = header.get("compile")
    if compile and settings:
        try:
            model.compile(optimizer=_optimizer_from_config(settings.get("optimizer")),
                          loss=losses.deserialize(settings.get("loss")),
                          metrics=list(settings.get("metrics") or []))
        except (TypeError, ValueError) as error:
            _fail(filepath, f"invalid compile settings ({error})")
    return model


def load_weights(model, filepath):
    if not model.built:
        raise ValueError(f"load_weights: build Sequential '{model.name}' first (start it with "
                         f"Input(shape) or call build)")
    _, arrays = _read(filepath)
    _assign(model, arrays, filepath)
