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
layer classes come only from ``convnet.layers.LAYER_CLASSES`` (the model is
rebuilt by ``convnet.models.load_model``; this module only reads and writes files
and never imports the models). Every header
field is checked against the file's real size before anything is allocated;
the checksum (a corrupted or truncated file) is checked before anything is
parsed; every array's shape and dtype must equal the one the architecture
builds. Saving writes a temporary file beside the
target, fsyncs it and ``os.replace``s it into place, so an interrupted save
leaves the previous file whole. The file saved has the permissions ``open(path, "w")``
would leave (an existing file's, else 0o666 less the umask), and a save through a
symbolic link writes the file the link points to.
"""
import errno
import hashlib
import json
import math
import os
import secrets
import stat
import struct

import numpy as np

from . import losses, optimizers

MAGIC = b"CONVNET\x01"
FORMAT_VERSION = 1
MAX_HEADER_BYTES = 16 << 20
# Far deeper than any model config nests, far shallower than Python's recursion limit: a
# header within it can be walked by any recursive code after loading.
MAX_HEADER_DEPTH = 100
DIGEST_BYTES = 32
_DTYPES = {"float32": np.dtype("<f4"), "float64": np.dtype("<f8")}
_OPTIMIZERS = dict(optimizers.OPTIMIZERS)
_SCHEDULES = dict(optimizers.SCHEDULES)


class ModelFileError(ValueError):
    """A model file that is truncated, corrupted, forged or does not fit the model."""


# ----------------------------------------------------------------------------- writing

def _create_beside(target):
    """(fd, path) of a new, empty file in `target`'s directory, created with mode 0o666 for
    the kernel to apply the umask (and any default ACL) to, as ``open(target, "w")`` would."""
    directory = os.path.dirname(target)
    flags = (os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
             | getattr(os, "O_BINARY", 0))
    for _ in range(100):
        path = os.path.join(directory, f".convnet-{secrets.token_hex(8)}.tmp")
        try:
            return os.open(path, flags, 0o666), path
        except FileExistsError:
            continue
    raise FileExistsError(errno.EEXIST, "no unused temporary file name", directory)


def write_atomically(filepath, write):
    """Call ``write(f)`` on a new file beside `filepath`, fsync it and ``os.replace`` it into
    place: an interrupted save leaves the previous file whole (convnet.keras_format's
    .keras files are written through here too)."""
    # Through a symbolic link, the file it points to is the one to replace.
    target = os.path.realpath(os.fsdecode(filepath))
    if os.path.islink(target):  # realpath stops where links loop
        raise OSError(errno.ELOOP, os.strerror(errno.ELOOP), os.fsdecode(filepath))
    try:
        existing_mode = stat.S_IMODE(os.stat(target).st_mode)
    except FileNotFoundError:
        existing_mode = None
    fd, tmp_path = _create_beside(target)
    try:
        with os.fdopen(fd, "wb") as f:
            if existing_mode is not None:  # overwriting keeps the file's mode, as open("w") does
                os.chmod(tmp_path, existing_mode)
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp_path, target)
    except BaseException:
        try:
            os.unlink(tmp_path)
        except OSError:
            pass
        raise


def _write_atomically(filepath, header, arrays):
    header_bytes = json.dumps(header, separators=(",", ":")).encode("utf-8")

    def write(f):
        digest = hashlib.sha256()
        for chunk in (MAGIC, struct.pack("<Q", len(header_bytes)), header_bytes,
                      *(memoryview(a).cast("B") for a in arrays)):
            digest.update(chunk)
            f.write(chunk)
        f.write(digest.digest())

    write_atomically(filepath, write)


def _weights_header(arrays):
    """Header entries for `arrays`, and the arrays as contiguous little-endian data."""
    entries, offset, stored = [], 0, []
    for array in arrays:
        # (np.ascontiguousarray would make a scalar weight 1-D)
        array = np.asarray(array, dtype=_DTYPES[array.dtype.name], order="C")
        entries.append({"dtype": array.dtype.name, "shape": list(array.shape),
                        "offset": offset, "nbytes": array.nbytes})
        offset += array.nbytes
        stored.append(array)
    return entries, stored


def _serialize_losses(loss):
    if isinstance(loss, dict):
        return {k: _serialize_losses(v) for k, v in loss.items()}
    if isinstance(loss, (list, tuple)):
        return [_serialize_losses(v) for v in loss]
    return None if loss is None else losses.serialize(losses.get(loss))


def _serialize_metrics(metrics):
    if isinstance(metrics, dict):
        return {k: _serialize_metrics(v) for k, v in metrics.items()}
    if isinstance(metrics, (list, tuple)):
        return [_serialize_metrics(v) for v in metrics]
    return metrics if isinstance(metrics, str) else getattr(metrics, "name", None)


def _compile_config(model):
    if getattr(model, "optimizer", None) is None or not getattr(model, "compiled", False):
        return None
    opt = model.optimizer
    return {"optimizer": {"class_name": type(opt).__name__, "config": opt.get_config()},
            "loss": _serialize_losses(model.loss),
            "loss_weights": model._user_loss_weights,
            "metrics": _serialize_metrics(model._user_metrics)}


def _model_class(model):
    name = type(model).__name__
    if name not in ("Sequential", "Functional"):
        raise ValueError(f"save: {model.describe()} is a subclassed model ({name}); its "
                         f"architecture is Python code, which a model file never holds. Save "
                         f"its weights with save_weights() and rebuild it in code")
    return name


def _check_built(model, method):
    if not model.built or not model.weights and not model.layers:
        raise ValueError(f"{method}: {model.describe()} has not been built yet; there are "
                         f"no weights to save")


def save_model(model, filepath, overwrite=True):
    _check_built(model, "save")
    _check_overwrite(filepath, overwrite)
    entries, arrays = _weights_header(model.weights)
    header = {"format": "convnet", "version": FORMAT_VERSION, "kind": "model",
              "class_name": _model_class(model), "config": model.get_config(),
              "compile": _compile_config(model), "weights": entries}
    _write_atomically(filepath, header, arrays)


def save_weights(model, filepath, overwrite=True):
    _check_built(model, "save_weights")
    _check_overwrite(filepath, overwrite)
    entries, arrays = _weights_header(model.weights)
    header = {"format": "convnet", "version": FORMAT_VERSION, "kind": "weights",
              "weights": entries}
    _write_atomically(filepath, header, arrays)


def _check_overwrite(filepath, overwrite):
    if not overwrite and os.path.exists(filepath):
        raise FileExistsError(f"{os.fspath(filepath)} exists and overwrite=False")


# ----------------------------------------------------------------------------- reading

def fail(filepath, problem):
    raise ModelFileError(f"{os.fspath(filepath)}: not a valid convnet model file: {problem}")


_fail = fail


def _is_count(value):
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _nests_deeper_than(value, limit):
    """Whether lists and objects nest in the parsed JSON `value` deeper than `limit` (walked
    without recursion, so that no depth can exhaust Python's stack here)."""
    stack = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (dict, list)):
            if depth >= limit:
                return True
            stack.extend((child, depth + 1)
                         for child in (item.values() if isinstance(item, dict) else item))
    return False


def _is_class_entry(value):
    """{"class_name": str, "config": {...}} (config optional), as get_config writes them."""
    return (isinstance(value, dict) and isinstance(value.get("class_name"), str)
            and isinstance(value.get("config", {}), dict))


def _is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _per_output(value, valid):
    """Whether `value`, or each entry of a list or dict of them, passes `valid`."""
    if isinstance(value, dict) and "class_name" not in value:
        return all(isinstance(k, str) and valid(v) for k, v in value.items())
    if isinstance(value, list) and not valid(value):
        return all(valid(v) for v in value)
    return valid(value)


def _compile_problem(settings):
    """What is wrong with a header's compile settings, or None: the types load_model reads."""
    if settings is None or settings == {}:
        return None
    if not isinstance(settings, dict):
        return f"the compile settings are {type(settings).__name__}, not an object"
    optimizer = settings.get("optimizer")
    if not _is_class_entry(optimizer):
        return f"the optimizer {optimizer!r} is not a {{class_name, config}} object"
    schedule = optimizer.get("config", {}).get("learning_rate")
    if isinstance(schedule, (dict, list)) and not _is_class_entry(schedule):
        return f"the learning-rate schedule {schedule!r} is not a {{class_name, config}} object"
    loss = settings.get("loss")
    if not _per_output(loss, lambda v: v is None or _is_class_entry(v)):
        return (f"the loss {loss!r:.200} is not a {{class_name, config}} object (or a list or "
                f"dict of them, one per output)")
    weights = settings.get("loss_weights")
    if not _per_output(weights, lambda v: v is None or _is_number(v)):
        return f"the loss_weights {weights!r:.200} are not numbers (one per output)"
    metrics = settings.get("metrics")
    if not _per_output(metrics, lambda v: v is None or isinstance(v, str)
                       or isinstance(v, list) and all(isinstance(m, str) for m in v)):
        return f"the metrics {metrics!r:.200} are not a list of names (or one per output)"
    return None


def _check_header(header, filepath):
    """Every field of a parsed header that loading reads, by type (the weights' sizes are
    checked against the file by _read)."""
    if not isinstance(header, dict) or header.get("format") != "convnet":
        _fail(filepath, "the header is not a convnet header")
    if header.get("version") != FORMAT_VERSION:
        _fail(filepath, f"format version {header.get('version')!r} is not supported "
                        f"(this convnet reads version {FORMAT_VERSION})")
    if _nests_deeper_than(header, MAX_HEADER_DEPTH):
        _fail(filepath, f"the header nests deeper than {MAX_HEADER_DEPTH} levels")
    kind = header.get("kind")
    if kind not in ("model", "weights"):
        _fail(filepath, f"the header's kind is {kind!r}, not 'model' or 'weights'")
    if kind == "model":
        if not isinstance(header.get("config"), dict):
            _fail(filepath, "the model file has no model config object")
        problem = _compile_problem(header.get("compile"))
        if problem:
            _fail(filepath, f"invalid compile settings: {problem}")
    if not isinstance(header.get("weights"), list):
        _fail(filepath, "the header has no list of weights")


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
        except RecursionError:
            _fail(filepath, "the header nests too deeply to parse")
        except ValueError as error:  # bad UTF-8 or JSON; an integer of too many digits
            _fail(filepath, f"the header is not valid JSON ({error})")
        _check_header(header, filepath)
        entries = header["weights"]
        offset = 0
        for i, entry in enumerate(entries):
            if not isinstance(entry, dict) or entry.get("dtype") not in _DTYPES:
                _fail(filepath, f"weight {i} has no supported dtype (float32 or float64)")
            shape = entry.get("shape")
            if not isinstance(shape, list) or len(shape) > 8 or not all(map(_is_count, shape)):
                _fail(filepath, f"weight {i} has an invalid shape {shape!r}")
            nbytes = math.prod(shape) * _DTYPES[entry["dtype"]].itemsize
            if not (_is_count(entry.get("nbytes")) and _is_count(entry.get("offset"))) \
                    or entry["nbytes"] != nbytes or entry["offset"] != offset:
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


def read_model_file(filepath):
    """(header, arrays) of a file that holds a whole model (not only weights)."""
    header, arrays = _read(filepath)
    if header.get("kind") != "model" or not isinstance(header.get("config"), dict):
        _fail(filepath, "it holds weights only; build the model and call load_weights()")
    if header.get("compile") is not None and not isinstance(header.get("compile"), dict):
        _fail(filepath, "its compile settings are not a JSON object")
    return header, arrays


def assign_weights(model, arrays, filepath, skip_mismatch=False):
    """Give the model's weights the file's arrays, after checking every shape and dtype."""
    weights = model.weights
    if len(arrays) != len(weights):
        _fail(filepath, f"it holds {len(arrays)} weight arrays but the model has {len(weights)}")
    for i, (array, weight) in enumerate(zip(arrays, weights)):
        if array.shape != weight.shape or array.dtype != weight.dtype:
            if skip_mismatch:
                continue
            _fail(filepath, f"weight {i} is {array.dtype} {array.shape} but the model expects "
                            f"{weight.dtype} {weight.shape} ({weight.path})")
    for array, weight in zip(arrays, weights):
        if array.shape == weight.shape and array.dtype == weight.dtype:
            weight.assign(array)


def _optimizer_from_config(config):
    if not isinstance(config, dict) or config.get("class_name") not in _OPTIMIZERS:
        raise ModelFileError(f"unknown optimizer in the model file: {config!r:.200}")
    kwargs = dict(config.get("config", {}))
    lr = kwargs.get("learning_rate")
    if isinstance(lr, dict):
        if lr.get("class_name") not in _SCHEDULES:
            raise ModelFileError(f"unknown learning-rate schedule in the model file: {lr!r:.200}")
        kwargs["learning_rate"] = _SCHEDULES[lr["class_name"]](**lr.get("config", {}))
    try:
        return _OPTIMIZERS[config["class_name"]](**kwargs)
    except (TypeError, ValueError) as error:
        raise ModelFileError(f"invalid optimizer config in the model file: {error}") from None


def _deserialize_losses(config):
    if isinstance(config, dict) and "class_name" not in config:
        return {k: _deserialize_losses(v) for k, v in config.items()}
    if isinstance(config, list):
        return [_deserialize_losses(v) for v in config]
    return None if config is None else losses.deserialize(config)


def compile_from_file(model, settings, filepath):
    """Compile `model` with the settings a model file stored."""
    try:
        model.compile(optimizer=_optimizer_from_config(settings.get("optimizer")),
                      loss=_deserialize_losses(settings.get("loss")),
                      loss_weights=settings.get("loss_weights"),
                      metrics=settings.get("metrics"))
    except (TypeError, ValueError, AttributeError) as error:
        _fail(filepath, f"invalid compile settings ({error})")


def load_weights(model, filepath, skip_mismatch=False):
    if not model.built:
        raise ValueError(f"load_weights: build {model.describe()} first (start it with "
                         f"Input(shape) or call build)")
    _, arrays = _read(filepath)
    assign_weights(model, arrays, filepath, skip_mismatch)

