"""Keras 3's files on disk: the ``.keras`` zip archive and the HDF5 weights file.

A ``.keras`` file is a zip archive (members stored, as Keras writes them) of
``metadata.json``, ``config.json`` and ``model.weights.h5``; a ``.weights.h5`` file is the
last alone. In the HDF5 file each object Keras walks has a group ``<path>/vars`` whose
datasets ``0``, ``1``, ... are its variables, and whose ``name`` attribute is the object's
name: ``vars`` for the model, ``layers/<layer>/vars`` for its layers, recursively for
nested models (see config.weight_groups for the naming). Keras before 3.0 called the
container ``_layer_checkpoint_dependencies``; both are read.

Reading keeps convnet's own format's guarantees (convnet.saving): nothing in the file is
run or unpickled; members with path tricks (absolute, ``..``, backslashes, drive letters),
symbolic links, encryption or other compressors are refused, and so is a member that
declares more bytes than the archive can hold (a zip bomb); JSON is parsed with a size and
depth bound; the architecture is rebuilt from a fixed list of classes with deferred
variables, and every HDF5 dataset's shape and dtype (and its stored size, against a shape
bomb; links, external and virtual datasets refused) is compared with the variable it fills
before any is read. Files are written to a temporary file and ``os.replace``d into place.
h5py is imported only here, when a file is read or written.
"""
import datetime
import io
import json
import math
import os
import stat
import warnings
import zipfile
import zlib

import numpy as np

from .. import saving
from ..saving import ModelFileError
from .config import compile_from_keras, compile_to_keras, from_keras, to_keras, weight_groups

#: the Keras release whose schema these files follow (metadata.json's keras_version)
KERAS_VERSION = "3.15.1"
CONFIG, METADATA, WEIGHTS = "config.json", "metadata.json", "model.weights.h5"
ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")
HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
MAX_JSON_BYTES = saving.MAX_HEADER_BYTES
#: a compressed member (or dataset) may expand this much, no more (deflate reaches ~1032)
MAX_ZIP_EXPANSION = 100
MAX_H5_EXPANSION = 1000
_FLOATS = (np.dtype("<f4"), np.dtype("<f8"))


class KerasFileError(ModelFileError):
    """A .keras or .weights.h5 file that is malformed, forged, or holds what convnet does
    not load (the message names the class, entry or member)."""


def fail(filepath, problem):
    raise KerasFileError(f"{os.fsdecode(filepath)}: not a Keras file convnet can load: "
                         f"{problem}")


def _h5py():
    try:
        import h5py
    except ImportError:
        raise ImportError("Keras' file format (.keras, .weights.h5) needs h5py: pip install "
                          "\"convnet[keras-format]\" (or save in convnet's own format, a "
                          ".cnet file)") from None
    return h5py


def sniff(filepath):
    """"zip", "hdf5" or None, from the file's first bytes."""
    try:
        with open(filepath, "rb") as f:
            start = f.read(8)
    except (IsADirectoryError, FileNotFoundError, PermissionError):
        return None
    if start[:4] in ZIP_MAGIC:
        return "zip"
    return "hdf5" if start == HDF5_MAGIC else None


# ----------------------------------------------------------------------------- writing

def _weights_bytes(model):
    """The HDF5 weights file of `model`, in memory."""
    h5py = _h5py()
    buffer = io.BytesIO()
    with h5py.File(buffer, "w") as f:
        for path, name, variables in weight_groups(model):
            group = f.create_group(path)
            group.attrs["name"] = name
            for i, variable in enumerate(variables):
                group.create_dataset(str(i), data=np.asarray(variable))
    return buffer.getvalue()


def save_model(model, filepath, overwrite=True):
    """``model.save("m.keras")``: Keras 3's zip archive, which keras.saving.load_model reads."""
    saving._check_built(model, "save")
    saving._check_overwrite(filepath, overwrite)
    config = json.dumps(to_keras(model, compile_config=compile_to_keras(model)))
    weights = _weights_bytes(model)
    metadata = json.dumps({"keras_version": KERAS_VERSION,
                           "date_saved": datetime.datetime.now().strftime("%Y-%m-%d@%H:%M:%S")})

    def write(f):
        with zipfile.ZipFile(f, "w") as archive:   # members stored, as Keras writes them
            archive.writestr(METADATA, metadata)
            archive.writestr(CONFIG, config)
            archive.writestr(WEIGHTS, weights)

    saving.write_atomically(filepath, write)


def save_weights(model, filepath, overwrite=True):
    """``model.save_weights("w.weights.h5")``: Keras 3's HDF5 weights file."""
    saving._check_built(model, "save_weights")
    saving._check_overwrite(filepath, overwrite)
    weights = _weights_bytes(model)
    saving.write_atomically(filepath, lambda f: f.write(weights))


# ----------------------------------------------------------------------------- the archive

def _member_problem(info, archive_size):
    name = info.orig_filename
    parts = name.split("/")
    if (name.startswith("/") or "\\" in name or "\x00" in name or ":" in parts[0]
            or ".." in parts):
        return f"member {name!r} has a path that leaves the archive"
    if stat.S_ISLNK(info.external_attr >> 16):
        return f"member {name!r} is a symbolic link"
    if info.flag_bits & 0x1:
        return f"member {name!r} is encrypted"
    if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        return f"member {name!r} uses compression method {info.compress_type}"
    if info.header_offset + info.compress_size > archive_size:
        return f"member {name!r} ends past the end of the archive (truncated)"
    if info.compress_type == zipfile.ZIP_STORED and info.file_size != info.compress_size:
        return f"member {name!r} is stored but declares {info.file_size} bytes in " \
               f"{info.compress_size}"
    if info.file_size > max(1 << 20, MAX_ZIP_EXPANSION * info.compress_size):
        return (f"member {name!r} declares {info.file_size} bytes but stores "
                f"{info.compress_size} (a zip bomb)")
    return None


def read_archive(filepath):
    """{member: bytes} of config.json, metadata.json (if there) and model.weights.h5, after
    checking every member of the archive."""
    members = {}
    try:
        archive_size = os.path.getsize(filepath)
        with zipfile.ZipFile(filepath) as archive:
            infos = archive.infolist()
            names = [info.orig_filename for info in infos]
            if len(set(names)) != len(names):
                fail(filepath, "the archive names a member twice")
            for info in infos:
                problem = _member_problem(info, archive_size)
                if problem:
                    fail(filepath, problem)
            if WEIGHTS not in names and "model.weights.npz" in names:
                fail(filepath, "its weights are in Keras' npz layout; convnet reads the h5 "
                               "layout Keras writes by default")
            for name, limit in ((CONFIG, MAX_JSON_BYTES), (METADATA, MAX_JSON_BYTES),
                                (WEIGHTS, None)):
                if name not in names:
                    if name != METADATA:
                        fail(filepath, f"the archive has no {name}")
                    continue
                if limit is not None and archive.getinfo(name).file_size > limit:
                    fail(filepath, f"{name} is larger than {limit} bytes")
                members[name] = archive.read(name)
    except KerasFileError:
        raise
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, NotImplementedError,
            RuntimeError, ValueError, OSError, zlib.error) as error:
        fail(filepath, f"it is not a valid zip archive ({type(error).__name__}: {error})")
    return members


def parse_json(data, filepath, name):
    try:
        value = json.loads(data.decode("utf-8"))
    except RecursionError:
        fail(filepath, f"{name} nests too deeply to parse")
    except ValueError as error:  # bad UTF-8 or JSON
        fail(filepath, f"{name} is not valid JSON ({error})")
    if saving._nests_deeper_than(value, saving.MAX_HEADER_DEPTH):
        fail(filepath, f"{name} nests deeper than {saving.MAX_HEADER_DEPTH} levels")
    return value


def read_model_file(filepath):
    """(header, weights file bytes): the header in convnet's form ({"class_name", "config",
    "compile"}) for convnet.models.load_model to build from; nothing allocated yet."""
    if sniff(filepath) == "hdf5":
        fail(filepath, "it is an HDF5 file: a weights file (use model.load_weights) or Keras "
                       "2's legacy .h5 model format, which convnet does not read (load it in "
                       "Keras and save it as .keras)")
    members = read_archive(filepath)
    config = parse_json(members[CONFIG], filepath, CONFIG)
    if METADATA in members:
        parse_json(members[METADATA], filepath, METADATA)
    if not isinstance(config, dict):
        fail(filepath, "config.json is not an object")
    try:
        model = from_keras(config)
    except ModelFileError as error:
        fail(filepath, str(error))
    if model["class_name"] not in ("Sequential", "Functional"):
        fail(filepath, f"config.json holds a {model['class_name']} layer, not a model")
    compile_config = config.get("compile_config")
    return ({"class_name": model["class_name"], "config": model["config"],
             "compile": compile_config or None}, members[WEIGHTS])


def compile_from_file(model, settings, filepath):
    """Compile `model` as Keras' compile_config says."""
    try:
        model.compile(**compile_from_keras(settings, "compile_config"))
    except ModelFileError as error:
        fail(filepath, str(error))
    except (TypeError, ValueError, AttributeError) as error:
        fail(filepath, f"invalid compile_config ({error}); load with compile=False to skip it")


# ----------------------------------------------------------------------------- the weights

def _open_h5(source, filepath):
    h5py = _h5py()
    try:
        return h5py.File(io.BytesIO(source) if isinstance(source, bytes) else source, "r")
    except OSError as error:
        fail(filepath, f"the weights are not a valid HDF5 file ({error})")


def _child(h5py, parent, name, kind, filepath):
    """parent[name] if it is a hard link to a `kind` (Group or Dataset); None if absent."""
    link = parent.get(name, getlink=True)
    if link is None:
        return None
    where = f"{parent.name.rstrip('/')}/{name}"
    if not isinstance(link, h5py.HardLink):
        fail(filepath, f"{where} is a {type(link).__name__} (links are refused)")
    if parent.get(name, getclass=True) is not kind:
        fail(filepath, f"{where} is not an HDF5 {kind.__name__}")
    return parent[name]


def _group_at(h5py, root, path, filepath):
    group = root
    for part in path.split("/"):
        group = _child(h5py, group, part, h5py.Group, filepath)
        if group is None:
            return None
    return group


def _dataset_problem(dataset, variable):
    """Why `dataset` cannot fill `variable`, or None: read only its metadata."""
    if dataset.external:
        return "is an external dataset (its data lives in another file)"
    if dataset.is_virtual:
        return "is a virtual dataset"
    if dataset.dtype not in _FLOATS or dataset.dtype != variable.dtype \
            or dataset.shape != variable.shape:
        return (f"is {dataset.dtype} {dataset.shape} but {variable.path} is "
                f"{variable.dtype} {variable.shape}")
    declared = math.prod(dataset.shape) * dataset.dtype.itemsize
    stored = dataset.id.get_storage_size()
    filtered = dataset.id.get_create_plist().get_nfilters() > 0
    if declared and stored * (MAX_H5_EXPANSION if filtered else 1) < declared:
        return f"declares {declared} bytes but stores {stored} (a shape bomb)"
    return None


def _legacy_layout(root):
    return "layer_names" in root.attrs or "model_weights" in root


def assign_weights(model, source, filepath, skip_mismatch=False):
    """Fill the model's variables from a Keras weights file (bytes or a path), after checking
    every dataset against the variable it fills; with ``skip_mismatch`` a layer whose
    datasets do not fit keeps its weights (with a warning), as in Keras."""
    h5py = _h5py()
    with _open_h5(source, filepath) as root:
        try:
            plan = _weights_plan(h5py, root, model, filepath, skip_mismatch)
            for variables, datasets in plan:
                for variable, dataset in zip(variables, datasets):
                    array = np.empty(variable.shape, variable.dtype)
                    if array.size:
                        dataset.read_direct(array)
                    variable.assign(array)
        except KerasFileError:
            raise
        except (OSError, RuntimeError, KeyError, ValueError, TypeError) as error:
            # HDF5's own errors on a damaged file (its structures, not what they declare)
            fail(filepath, f"the weights file is damaged ({type(error).__name__}: {error})")
    unfilled = [w.path for w in model.weights if w._value is None]
    if unfilled:
        fail(filepath, f"it holds no values for {unfilled}")


def _weights_plan(h5py, root, model, filepath, skip_mismatch):
    """[(variables, datasets)] for each object of the model, every dataset checked (its
    metadata only) against the variable it fills."""
    if _legacy_layout(root):
        fail(filepath, "it is a Keras 2 (legacy HDF5) weights file; load it in Keras and "
                       "save it again with Keras 3")
    container = "layers" if "layers" in root or "_layer_checkpoint_dependencies" not in \
        root else "_layer_checkpoint_dependencies"
    plan = []
    for path, name, variables in weight_groups(model, container):
        group = _group_at(h5py, root, path, filepath)
        found = [] if group is None else sorted(group.keys())
        expected = [str(i) for i in range(len(variables))]
        problem = None
        if found != sorted(expected):
            problem = (f"the file holds {len(found)} arrays for '{name}' at {path}, the model "
                       f"has {len(variables)}")
        datasets = []
        for key, variable in zip(expected, variables):
            if problem:
                break
            dataset = _child(h5py, group, key, h5py.Dataset, filepath)
            why = "cannot be opened" if dataset is None else _dataset_problem(dataset, variable)
            if why:
                problem = f"{path}/{key} {why}"
            datasets.append(dataset)
        if problem:
            if not skip_mismatch:
                fail(filepath, problem)
            warnings.warn(f"load_weights: skipping '{name}': {problem}", stacklevel=4)
            continue
        plan.append((variables, datasets))
    return plan


def load_weights(model, filepath, skip_mismatch=False):
    """``model.load_weights`` from a .weights.h5 file or a .keras archive's weights."""
    if not model.built:
        raise ValueError(f"load_weights: build {model.describe()} first (start it with "
                         f"Input(shape) or call build)")
    weight_groups(model)  # a model Keras' format cannot describe is refused before reading
    source = read_archive(filepath)[WEIGHTS] if sniff(filepath) == "zip" else filepath
    assign_weights(model, source, filepath, skip_mismatch)
