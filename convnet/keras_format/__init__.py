"""Keras 3's own file format: ``.keras`` archives and ``.weights.h5`` weights files, both
ways (issue 17).

``model.save("m.keras")`` writes the zip archive Keras 3 writes (config.json in Keras'
serialization schema, metadata.json, model.weights.h5), which ``keras.saving.load_model``
loads and predicts with identically; ``convnet.load_model`` reads one written by Keras for
every layer class convnet has (registry.py) and refuses any other, naming it;
``save_weights``/``load_weights`` do the same for ``.weights.h5``. The files keep the
guarantees of convnet's own format (archive.py says how). h5py (the ``keras-format`` extra)
is imported only when such a file is read or written.

Which format a name means (``format_for_saving``): ``.keras`` and ``.weights.h5`` are
Keras'; a bare ``.h5`` is Keras 2's legacy HDF5 model format, refused; any other name (we
use ``.cnet``) is convnet's own (convnet.saving), which also holds what Keras' cannot (explicit
padding, ceil_mode, count_include_pad, subclassed models' weights). Loading goes by the
file's first bytes (``format_for_loading``), never by its name.
"""
import os

from .. import saving
from . import archive
from .archive import (KerasFileError, assign_weights, compile_from_file, fail, load_weights,
                      read_model_file, save_model, save_weights, sniff)
from .registry import register


def format_for_saving(filepath, what):
    """The module that writes a model (what="model") or its weights (what="weights") to
    `filepath`: keras_format.archive for Keras' names, convnet.saving for any other."""
    name = os.fsdecode(filepath).lower()
    keras_name = name.endswith(".keras") if what == "model" else name.endswith(".weights.h5")
    if keras_name:
        return archive
    if name.endswith(".h5"):
        hint = ("'.keras' (Keras 3's format) or '.cnet' (convnet's own)" if what == "model"
                else "'.weights.h5' (Keras 3's weights file) or '.weights.cnet' (convnet's own)")
        raise ValueError(f"{os.fsdecode(filepath)}: a '.h5' name means Keras 2's legacy HDF5 "
                         f"format, which convnet does not write; name the file {hint}")
    return saving


def format_for_loading(filepath):
    """The module that reads `filepath`, by its first bytes: keras_format.archive for a zip
    archive or an HDF5 file, convnet.saving for anything else (which refuses what is not its
    own). Both have read_model_file, assign_weights, compile_from_file, fail, load_weights."""
    return archive if sniff(filepath) else saving


__all__ = ["KerasFileError", "save_model", "save_weights", "load_weights", "read_model_file",
           "assign_weights", "compile_from_file", "fail", "register", "format_for_saving",
           "format_for_loading"]
