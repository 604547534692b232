"""Keras 3's .keras and .weights.h5 files, both ways (issue 17).

The reference files under tests/keras_files/ were written by Keras 3.15 itself
(make_reference_files.py, run by hand, never here), with Keras' predictions beside them:
convnet must read them and predict the same, and write files of the same structure, which
real Keras (when installed: the torch backend, in a child process) loads and predicts
with identically. Every other layer class goes both ways in a tiny model per case of
keras_layer_cases.py (Keras' files under tests/keras_files/layers/). Broken, forged and
hostile files are refused with KerasFileError.
"""
import copy
import functools
import importlib.util
import io
import json
import math
import os
import subprocess
import sys
import textwrap
import warnings
import zipfile

import numpy as np
import pytest

import convnet as keras
from convnet import layers
from convnet.keras_format import KerasFileError
from convnet.keras_format.config import weight_groups
from convnet.keras_format.registry import known_classes

import keras_layer_cases
from keras_layer_cases import CASES as LAYER_CASES

h5py = pytest.importorskip("h5py")

HERE = os.path.dirname(os.path.abspath(__file__))
FILES = os.path.join(HERE, "keras_files")
REFERENCES = {"sequential_cnn": (1, 1), "functional_residual": (2, 2)}  # inputs, outputs


def _inputs(name):
    return [np.load(os.path.join(FILES, f"{name}_x{i}.npy")) for i in range(REFERENCES[name][0])]


def _expected(name):
    return [np.load(os.path.join(FILES, f"{name}_y{i}.npy")) for i in range(REFERENCES[name][1])]


def _predict(model, xs):
    ys = model.predict(xs if len(xs) > 1 else xs[0], verbose=0)
    return ys if isinstance(ys, list) else [ys]


def _reference(name):
    return os.path.join(FILES, f"{name}.keras")


def _members(path):
    with zipfile.ZipFile(path) as archive:
        return {info.filename: archive.read(info.filename) for info in archive.infolist()}


def _write_zip(path, members, compression=zipfile.ZIP_STORED):
    with zipfile.ZipFile(path, "w", compression) as archive:
        for name, data in members.items():
            archive.writestr(name, data)


def _h5_tree(data):
    names = []
    with h5py.File(io.BytesIO(data), "r") as f:
        f.visititems(lambda name, obj: names.append(
            (name, getattr(obj, "shape", None), obj.attrs.get("name"))))
    return sorted(names)


def functional_residual():
    return keras_layer_cases.functional_residual(keras, layers)


def small_cnn(data_format="channels_last", dtype="float32"):
    keras.utils.set_random_seed(0)
    shape = (3, 9, 9) if data_format == "channels_first" else (9, 9, 3)
    model = keras.Sequential([
        keras.Input(shape, dtype=dtype),
        layers.Conv2D(4, 3, padding="same", activation="relu", data_format=data_format,
                      dtype=dtype, bias_initializer="random_normal",
                      kernel_regularizer=keras.regularizers.L2(1e-3),
                      activity_regularizer=keras.regularizers.L1(1e-4)),
        layers.MaxPooling2D(2, padding="same", data_format=data_format, dtype=dtype),
        layers.AveragePooling2D(2, strides=1, data_format=data_format, dtype=dtype),
        layers.Flatten(data_format=data_format, dtype=dtype),
        layers.Dense(3, activation="softmax", dtype=dtype, bias_initializer="random_normal",
                     kernel_constraint=keras.constraints.MaxNorm(2.0)),
    ])
    model.compile(keras.optimizers.SGD(0.05, momentum=0.9), "sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    return model


# ----------------------------------------------------------------------------- Keras -> convnet

@pytest.mark.parametrize("name", sorted(REFERENCES))
def test_files_written_by_keras_load_and_predict_the_same(name):
    model = keras.load_model(_reference(name))
    for got, expected in zip(_predict(model, _inputs(name)), _expected(name), strict=True):
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6)
    assert isinstance(model.optimizer, keras.optimizers.Adam)
    assert model.optimizer.learning_rate == pytest.approx(0.01)
    assert isinstance(keras.load_model(_reference(name), compile=False).optimizer, type(None))


def test_keras_layer_order_is_recomputed_on_convnet_graphs():
    """The weights file names each layer by Keras' walk of the graph (deepest first, then in
    the order a walk back from the outputs meets them), not by convnet's own order: a model
    written with convnet's API takes the reference file's weights by that order."""
    model = functional_residual()
    assert [layer.name for layer in model.layers][:2] == ["image", "vector"]  # Keras: image, conv
    model.load_weights(_reference("functional_residual"))
    for got, expected in zip(_predict(model, _inputs("functional_residual")),
                             _expected("functional_residual"), strict=True):
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6)
    keras_groups = {path: name for path, _, name in
                    _h5_tree(_members(_reference("functional_residual"))["model.weights.h5"])
                    if path.endswith("vars") and not path.startswith("optimizer")}
    groups = {path: name for path, name, _ in weight_groups(model)}
    assert set(groups) == set(keras_groups)
    named = {"residual", "image", "vector", "shared", "inner", "nested", "label", "value"}
    assert {p: n for p, n in groups.items() if n in named} == {
        p: n for p, n in keras_groups.items() if n in named}


# ----------------------------------------------------------------------------- convnet -> Keras

ALLOWED_MISSING = {
    # Keras' ObjectSharingScope bookkeeping, never read without it
    "shared_object_id",
    # entries newer Keras versions add (older Keras 3 refuses them), all at their defaults
    "quantization_config", "input_axes", "output_axes",
    # Keras adds mask=None to calls of nested models
    "mask",
}


def _compare_structure(reference, ours, path="$"):
    """Every object convnet writes has the reference's class, module and keys (less those
    above); lists have the reference's length. Values are not compared: the weights and
    the numbers are checked by predictions."""
    if isinstance(reference, dict):
        assert isinstance(ours, dict), path
        missing = set(reference) - set(ours) - ALLOWED_MISSING
        assert not missing and not set(ours) - set(reference), (path, missing,
                                                               set(ours) - set(reference))
        for key in ("class_name", "module", "registered_name"):
            assert reference.get(key) == ours.get(key), (path, key)
        for key in set(reference) & set(ours):
            _compare_structure(reference[key], ours[key], f"{path}.{key}")
    elif isinstance(reference, list):
        assert isinstance(ours, list) and len(ours) == len(reference), path
        for i, (a, b) in enumerate(zip(reference, ours)):
            _compare_structure(a, b, f"{path}[{i}]")


@pytest.mark.parametrize("name", sorted(REFERENCES))
def test_files_convnet_writes_have_the_structure_keras_writes(tmp_path, name):
    model = keras.load_model(_reference(name))
    model.save(tmp_path / "m.keras")
    ours, theirs = _members(tmp_path / "m.keras"), _members(_reference(name))
    assert list(ours) == list(theirs) == ["metadata.json", "config.json", "model.weights.h5"]
    assert set(json.loads(ours["metadata.json"])) == {"keras_version", "date_saved"}
    config, reference = json.loads(ours["config.json"]), json.loads(theirs["config.json"])
    # The compile settings say the same in Keras' words (a loss name and its class both load).
    compiled, reference_compiled = config.pop("compile_config"), reference.pop("compile_config")
    assert set(compiled) == set(reference_compiled)
    assert compiled["optimizer"]["class_name"] == "Adam"
    assert compiled["optimizer"]["config"]["learning_rate"] == pytest.approx(0.01)
    _compare_structure(reference, config)
    # The same HDF5 tree (Keras also keeps its unbuilt optimizer's two counters).
    tree = [entry for entry in _h5_tree(theirs["model.weights.h5"])
            if not entry[0].startswith("optimizer")]
    assert _h5_tree(ours["model.weights.h5"]) == tree
    again = keras.load_model(tmp_path / "m.keras")
    for a, b in zip(model.get_weights(), again.get_weights(), strict=True):
        assert a.dtype == b.dtype and a.tobytes() == b.tobytes()


@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_a_trained_model_round_trips_bit_exactly(tmp_path, rng, data_format, dtype):
    model = small_cnn(data_format, dtype)
    x = rng.standard_normal((6, *model.input_shape[1:])).astype(dtype)
    model.fit(x, np.arange(6) % 3, epochs=2, verbose=0)
    model.save(tmp_path / "m.keras")
    loaded = keras.load_model(tmp_path / "m.keras")
    assert loaded.get_config() == model.get_config()
    assert loaded.predict(x, verbose=0).tobytes() == model.predict(x, verbose=0).tobytes()
    assert isinstance(loaded.optimizer, keras.optimizers.SGD)
    assert loaded.optimizer.get_config() == model.optimizer.get_config()
    loaded.fit(x, np.arange(6) % 3, verbose=0)                # compiled as saved


def test_inputs_and_outputs_by_name_round_trip(tmp_path, rng):
    model = dict_model()
    model.save(tmp_path / "m.keras")
    loaded = keras.load_model(tmp_path / "m.keras")
    x = {"a": rng.standard_normal((3, 4)), "b": rng.standard_normal((3, 4)),
         "unused": np.zeros((3, 2))}
    expected, got = model.predict(x, verbose=0), loaded.predict(x, verbose=0)
    assert list(got) == list(expected) == ["sum", "left"]
    for key in expected:
        assert got[key].tobytes() == expected[key].tobytes()
    config = json.loads(_members(tmp_path / "m.keras")["config.json"])["config"]
    assert config["input_layers"] == {"a": ["a", 0, 0], "b": ["b", 0, 0],
                                      "unused": ["unused", 0, 0]}
    # Keras' order: deepest first; the unused Input at depth 0, before the outputs' layers.
    assert [layer["name"] for layer in config["layers"]] == ["a", "b", "shared", "unused",
                                                             "left", "total"]


def test_weights_files_both_ways(tmp_path, rng):
    model, other = small_cnn(), small_cnn()
    other.set_weights([w + 1 for w in other.get_weights()])
    model.save_weights(tmp_path / "w.weights.h5")
    assert open(tmp_path / "w.weights.h5", "rb").read(8) == b"\x89HDF\r\n\x1a\n"
    other.load_weights(tmp_path / "w.weights.h5")
    for a, b in zip(model.get_weights(), other.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    keras_written = tmp_path / "keras.weights.h5"              # the weights file Keras wrote
    keras_written.write_bytes(_members(_reference("sequential_cnn"))["model.weights.h5"])
    reference = keras.load_model(_reference("sequential_cnn"))
    reference.set_weights([w * 0 for w in reference.get_weights()])
    reference.load_weights(keras_written)
    np.testing.assert_allclose(_predict(reference, _inputs("sequential_cnn"))[0],
                               _expected("sequential_cnn")[0], rtol=0, atol=1e-6)
    model.save(tmp_path / "m.keras")                           # a .keras archive's weights too
    other.set_weights([w + 1 for w in other.get_weights()])
    other.load_weights(tmp_path / "m.keras")
    np.testing.assert_array_equal(other.get_weights()[0], model.get_weights()[0])


def test_skip_mismatch_keeps_the_layers_that_do_not_fit(tmp_path):
    small_cnn().save_weights(tmp_path / "w.weights.h5")
    wider = keras.Sequential([keras.Input((9, 9, 3)), layers.Conv2D(4, 3, padding="same"),
                              layers.MaxPooling2D(2, padding="same"),
                              layers.AveragePooling2D(2, strides=1), layers.Flatten(),
                              layers.Dense(5)])
    with pytest.raises(KerasFileError, match="layers/dense/vars/0 is float32 \\(64, 3\\) but "
                                             "dense.*/kernel is float32 \\(64, 5\\)"):
        wider.load_weights(tmp_path / "w.weights.h5")
    before = wider.get_weights()[2]
    with pytest.warns(UserWarning, match="skipping"):
        wider.load_weights(tmp_path / "w.weights.h5", skip_mismatch=True)
    np.testing.assert_array_equal(wider.get_weights()[0], small_cnn().get_weights()[0])
    np.testing.assert_array_equal(wider.get_weights()[2], before)


def dict_model():
    """Inputs and outputs by name, a layer shared by both inputs, an Input left unused."""
    keras.utils.set_random_seed(1)
    a, b = keras.Input((4,), name="a"), keras.Input((4,), name="b")
    unused = keras.Input((2,), name="unused")
    shared = layers.Dense(3, name="shared", bias_initializer="random_normal")
    total = layers.Add(name="total")([shared(a), shared(b)])
    return keras.Model({"a": a, "b": b, "unused": unused},
                       {"sum": total, "left": layers.Dense(2, name="left")(a)})


def _as_npz(value):
    """A prediction or an input (an array, a list or a dict of them) as npz entries."""
    if isinstance(value, dict):
        return {f"dict_{k}": v for k, v in value.items()}
    return {f"list_{i}": v for i, v in enumerate(value if isinstance(value, list) else [value])}


def test_real_keras_loads_what_convnet_writes_and_predicts_the_same(tmp_path, rng):
    """Keras 3 (torch backend, in a child process) loads each file convnet wrote, takes the
    .weights.h5 files, and predicts what convnet predicts; the README's snippet runs there."""
    if not all(importlib.util.find_spec(name) for name in ("keras", "torch")):
        pytest.skip("needs keras and torch (Keras' torch backend)")
    cases = {}
    for name in REFERENCES:
        keras.load_model(_reference(name)).save(tmp_path / f"{name}.keras")
        xs = _inputs(name)
        cases[name] = xs if len(xs) > 1 else xs[0]
    for data_format in ("channels_last", "channels_first"):
        model = small_cnn(data_format, "float64" if data_format == "channels_first" else
                          "float32")
        x = rng.standard_normal((4, *model.input_shape[1:])).astype(model.dtype)
        model.fit(x, np.arange(4) % 3, verbose=0)
        model.save(tmp_path / f"{data_format}.keras")
        model.save_weights(tmp_path / f"{data_format}.weights.h5")
        cases[data_format] = x
    dict_model().save(tmp_path / "by_name.keras")
    cases["by_name"] = {"a": rng.standard_normal((3, 4)).astype("float32"),
                        "b": rng.standard_normal((3, 4)).astype("float32"),
                        "unused": np.zeros((3, 2), "float32")}
    for name, x in cases.items():
        np.savez(tmp_path / f"{name}_in.npz", **_as_npz(x))
    readme = open(os.path.join(HERE, os.pardir, "README.md")).read()
    section = readme.split("## From and to Keras", 1)[1]
    (tmp_path / "readme.py").write_text(section.split("```python\n", 1)[1].split("```", 1)[0])
    script = textwrap.dedent("""
        import runpy, sys, warnings
        import numpy as np
        import keras
        warnings.simplefilter("ignore")
        snippet = runpy.run_path("readme.py")              # the README's round trip
        assert abs(snippet["theirs"].predict(snippet["x"], verbose=0)
                   - snippet["model"].predict(snippet["x"], verbose=0)).max() < 1e-6

        def unpack(entries):
            if all(k.startswith("dict_") for k in entries):
                return {k[5:]: entries[k] for k in entries}
            items = [entries[f"list_{i}"] for i in range(len(entries))]
            return items if len(items) > 1 else items[0]

        for name in sys.argv[1:]:
            model = keras.saving.load_model(f"{name}.keras")
            if name.startswith("channels"):
                again = keras.saving.load_model(f"{name}.keras")
                again.set_weights([w * 0 for w in again.get_weights()])
                again.load_weights(f"{name}.weights.h5")
                assert all((a == b).all() for a, b in zip(again.get_weights(),
                                                          model.get_weights()))
            y = model.predict(unpack(dict(np.load(f"{name}_in.npz"))), verbose=0)
            if isinstance(y, dict):
                np.savez(f"{name}_out.npz", **{f"dict_{k}": v for k, v in y.items()})
            else:
                y = y if isinstance(y, list) else [y]
                np.savez(f"{name}_out.npz", **{f"list_{i}": v for i, v in enumerate(y)})
    """)
    result = subprocess.run([sys.executable, "-c", script, *cases], cwd=tmp_path,
                            capture_output=True, text=True, timeout=300,
                            env={**os.environ, "KERAS_BACKEND": "torch"})
    assert result.returncode == 0, result.stderr[-3000:]
    for name, x in cases.items():
        ours = _as_npz(keras.load_model(tmp_path / f"{name}.keras").predict(x, verbose=0))
        theirs = dict(np.load(tmp_path / f"{name}_out.npz"))
        assert sorted(theirs) == sorted(ours), name
        for key, y in ours.items():
            assert theirs[key].dtype == y.dtype
            np.testing.assert_allclose(theirs[key], y, rtol=0, atol=1e-6, err_msg=name)


# ----------------------------------------------------------------------------- every layer class
# One tiny model per case of keras_layer_cases.py, written by Keras 3.15 under
# keras_files/layers/ (make_reference_files.py), with its input and Keras' prediction.

def _layer_reference(case):
    return _reference(f"layers/{case}")


@functools.lru_cache(maxsize=1)
def _layer_predictions():
    with np.load(os.path.join(FILES, "layers", "predictions.npz")) as arrays:
        return dict(arrays)


def _layer_classes(model):
    """The class names of a model's layers, its nested models' included."""
    found = set()
    for layer in model.layers:
        found |= _layer_classes(layer) if isinstance(layer, keras.Model) else {
            type(layer).__name__}
    return found


def test_every_layer_class_but_operation_is_written_and_read():
    """The reference files hold, between them, every layer class convnet has but Operation
    (a keras.ops call, refused below), and those are the classes the registry writes."""
    covered = {"InputLayer"}
    for path in [*map(_reference, REFERENCES), *map(_layer_reference, LAYER_CASES)]:
        covered |= _layer_classes(keras.load_model(path, compile=False))
    assert covered == set(layers.LAYER_CLASSES) - {"Operation"}
    assert set(known_classes()) == covered


@pytest.mark.parametrize("case", sorted(LAYER_CASES))
def test_layer_files_written_by_keras_load_and_predict_the_same(case):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")                  # LayerNormalization's rms_scaling
        model = keras.load_model(_layer_reference(case))
    arrays = _layer_predictions()
    np.testing.assert_allclose(model.predict(arrays[f"{case}_x"], verbose=0),
                               arrays[f"{case}_y"], rtol=1e-5, atol=1e-6)
    # Every variable holds the file's values (Normalization's count: Keras' int32).
    with h5py.File(io.BytesIO(_members(_layer_reference(case))["model.weights.h5"]), "r") as f:
        stored = [f[path][str(i)][()] for path, _, variables in weight_groups(model)
                  for i in range(len(variables))]
    for ours, theirs in zip(model.get_weights(), stored, strict=True):
        np.testing.assert_array_equal(ours, theirs)


def _is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _same_values(ours, theirs, path="$"):
    """Equal JSON values; numbers to float32 rounding, ints and floats alike (Keras' L1
    keeps its factor as a float32: "l1" is written 0.009999999776482582; MaxNorm writes
    its default max_value as 2, convnet as 2.0)."""
    if isinstance(theirs, dict):
        assert isinstance(ours, dict) and set(ours) == set(theirs), path
        for key in theirs:
            _same_values(ours[key], theirs[key], f"{path}.{key}")
    elif isinstance(theirs, list):
        assert isinstance(ours, list) and len(ours) == len(theirs), path
        for i, (a, b) in enumerate(zip(ours, theirs)):
            _same_values(a, b, f"{path}[{i}]")
    elif _is_number(theirs):
        assert _is_number(ours) and math.isclose(ours, theirs, rel_tol=1e-7), (path, ours,
                                                                               theirs)
    else:
        assert ours == theirs and type(ours) is type(theirs), (path, ours, theirs)


def _without_names(config):
    """A Sequential's config less what names a model or layer (convnet and Keras number
    their automatic names apart) and Keras' shared_object_id bookkeeping."""
    config = copy.deepcopy(config)
    for entry in [config["config"], *(layer["config"] for layer in config["config"]["layers"])]:
        entry.pop("name")
        if isinstance(entry.get("dtype"), dict):
            entry["dtype"].pop("shared_object_id", None)
    for layer in config["config"]["layers"]:
        if layer["class_name"] == "LayerNormalization":
            # Keras 3.15 writes the axis as given ([-1]); Keras 3.16, as convnet, the axis
            # it normalizes ([3]). Both load the same layer.
            layer["config"].pop("axis")
    return config


def _datasets(data):
    """(path, shape, dtype) of each array of a weights file, less the optimizer's."""
    found = []
    with h5py.File(io.BytesIO(data), "r") as f:
        f.visititems(lambda name, obj: found.append((name, obj.shape, obj.dtype.str))
                     if isinstance(obj, h5py.Dataset) and not name.startswith("optimizer")
                     else None)
    return sorted(found)


@pytest.mark.parametrize("case", sorted(LAYER_CASES))
def test_layer_files_convnet_writes_are_the_ones_keras_writes(tmp_path, case):
    """The same model made with convnet's API is written as Keras wrote it: every entry with
    Keras' value, the same arrays under the same names in the weights file."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        keras_layer_cases.build(keras, case).save(tmp_path / "m.keras")
    ours, theirs = _members(tmp_path / "m.keras"), _members(_layer_reference(case))
    config, reference = json.loads(ours["config.json"]), json.loads(theirs["config.json"])
    _compare_structure(reference, config)
    _same_values(_without_names(config), _without_names(reference))
    assert _datasets(ours["model.weights.h5"]) == _datasets(theirs["model.weights.h5"])


@pytest.fixture(scope="module")
def real_keras():
    from keras_reference import keras_or_skip
    return keras_or_skip()


@pytest.mark.parametrize("case", sorted(LAYER_CASES))
def test_real_keras_loads_the_layer_files_convnet_writes(tmp_path, real_keras, case):
    """Keras 3 (in this process, torch backend) loads each model convnet wrote, with seeded
    random weights, and predicts what convnet predicts."""
    rng = np.random.default_rng(sorted(LAYER_CASES).index(case))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = keras_layer_cases.build(keras, case)
        keras_layer_cases.randomize(model, rng)
        model.save(tmp_path / "m.keras")
        theirs = real_keras.saving.load_model(str(tmp_path / "m.keras"))
        x = keras_layer_cases.inputs(case, rng)
        predicted = np.asarray(theirs.predict(x, verbose=0))
    np.testing.assert_allclose(predicted, model.predict(x, verbose=0), rtol=1e-5, atol=1e-6)
    for a, b in zip(theirs.get_weights(), model.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


# ----------------------------------------------------------------------------- names and contents

def test_the_name_picks_the_format_written_and_the_contents_the_one_read(tmp_path):
    model = small_cnn()
    model.save(tmp_path / "m.keras")
    model.save(tmp_path / "m.cnet")
    model.save(tmp_path / "model.bin")
    assert zipfile.is_zipfile(tmp_path / "m.keras")
    assert open(tmp_path / "m.cnet", "rb").read(8) == open(tmp_path / "model.bin", "rb").read(8) \
        == b"CONVNET\x01"
    os.rename(tmp_path / "m.keras", tmp_path / "swapped.cnet")
    os.rename(tmp_path / "m.cnet", tmp_path / "swapped.keras")
    for name in ("swapped.cnet", "swapped.keras", "model.bin"):
        np.testing.assert_array_equal(keras.load_model(tmp_path / name).get_weights()[0],
                                      model.get_weights()[0])
    model.save_weights(tmp_path / "w.weights.cnet")
    assert open(tmp_path / "w.weights.cnet", "rb").read(8) == b"CONVNET\x01"
    for bad, what in ((lambda: model.save(tmp_path / "m.h5"), "'.keras'"),
                      (lambda: model.save_weights(tmp_path / "w.h5"), "'.weights.h5'")):
        with pytest.raises(ValueError, match=f"Keras 2's legacy HDF5 format.*{what}"):
            bad()
    model.save_weights(tmp_path / "w.weights.h5")
    with pytest.raises(KerasFileError, match="HDF5 file: a weights file"):
        keras.load_model(tmp_path / "w.weights.h5")


@pytest.mark.parametrize("layer, message", [
    (layers.MaxPooling2D(2, ceil_mode=True), "ceil_mode=True has no equivalent"),
    (layers.AveragePooling2D(2, count_include_pad=True, padding="same"),
     "count_include_pad=True has no equivalent"),
    (layers.Conv2D(2, 3, padding=1), "padding=1 has no equivalent"),
    (layers.MaxPooling2D(2, padding=((0, 1), (1, 0))), "padding=\\(\\(0, 1\\), \\(1, 0\\)\\)"),
    (layers.DepthwiseConv2D(3, padding=1), "DepthwiseConv2D .*padding=1 has no equivalent"),
    (layers.SeparableConv2D(2, 2, padding=((1, 0), (0, 1))),
     "SeparableConv2D .*padding=\\(\\(1, 0\\), \\(0, 1\\)\\) has no equivalent"),
])
def test_what_keras_cannot_hold_is_refused_naming_it(tmp_path, layer, message):
    model = keras.Sequential([keras.Input((6, 6, 1)), layer])
    with pytest.raises(ValueError, match=message + ".*convnet's own format \\(.cnet\\)"):
        model.save(tmp_path / "m.keras")
    model.save(tmp_path / "m.cnet")
    assert not (tmp_path / "m.keras").exists()


def test_a_keras_ops_call_in_a_functional_model_is_refused_naming_the_op(tmp_path):
    """Keras writes a keras.ops call as its internal op class, whose arguments convnet does
    not reproduce (registry.py says why): refused, naming the op, before anything is
    written; convnet's own format holds it."""
    inputs = keras.Input((4,))
    x = layers.Dense(3)(inputs)
    model = keras.Model(inputs, keras.ops.mean(x * 2.0, axis=-1, keepdims=True))
    for save in (model.save, model.save_weights):
        name = "m.keras" if save == model.save else "w.weights.h5"
        with pytest.raises(ValueError, match="Operation 'multiply.*': ops.multiply called on a "
                                             "functional model's tensors has no equivalent in "
                                             "Keras' format.*\\.cnet"):
            save(tmp_path / name)
        assert not (tmp_path / name).exists()
    model.save(tmp_path / "m.cnet")
    x = np.ones((2, 4), "float32")
    np.testing.assert_array_equal(keras.load_model(tmp_path / "m.cnet").predict(x, verbose=0),
                                  model.predict(x, verbose=0))


def test_the_core_never_imports_h5py(tmp_path):
    code = "import convnet, sys; assert 'h5py' not in sys.modules, 'h5py imported'"
    # cwd: a source checkout's convnet/ (without compiled kernels) must not shadow the
    # installed package, as `python -c` puts the working directory first on sys.path.
    subprocess.run([sys.executable, "-c", code], check=True, cwd=tmp_path)


def test_a_subclassed_model_is_refused_and_h5py_is_asked_for(tmp_path, monkeypatch):
    class Net(keras.Model):
        def __init__(self):
            super().__init__()
            self.dense = layers.Dense(2)

        def call(self, x):
            return self.dense(x)

    net = Net()
    net.build((None, 3))
    with pytest.raises(ValueError, match="subclassed model"):
        net.save_weights(tmp_path / "w.weights.h5")
    monkeypatch.setitem(sys.modules, "h5py", None)
    with pytest.raises(ImportError, match="convnet\\[keras-format\\]"):
        small_cnn().save(tmp_path / "m.keras")


def test_a_failed_save_leaves_the_previous_file_intact(tmp_path, monkeypatch):
    path = tmp_path / "m.keras"
    small_cnn().save(path)
    data = path.read_bytes()

    def broken_replace(src, dst):
        raise OSError("disk pulled out")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError):
        small_cnn().save(path)
    assert path.read_bytes() == data
    assert [p.name for p in tmp_path.iterdir()] == ["m.keras"]


# ----------------------------------------------------------------------------- hostile files

def _rewritten(tmp_path, change, source="sequential_cnn"):
    """The reference archive with `change(members)` applied to its {name: bytes}."""
    members = _members(_reference(source))
    change(members)
    path = tmp_path / "forged.keras"
    _write_zip(path, members)
    return path


def _config_change(edit):
    def change(members):
        config = json.loads(members["config.json"])
        edit(config)
        members["config.json"] = json.dumps(config).encode()
    return change


def _entry(config, name):
    """The entry of the layer named `name` in a model's Keras config."""
    return next(entry for entry in config["config"]["layers"] if entry["config"]["name"] == name)


def _layer(name, **entries):
    def edit(config):
        _entry(config, name).update(entries)
    return edit


def _layer_config(name, **entries):
    def edit(config):
        _entry(config, name)["config"].update(entries)
    return edit


LAMBDA = {"module": "keras.layers", "class_name": "Lambda", "registered_name": None,
          "config": {"name": "evil", "function": {"class_name": "__lambda__", "config": {
              "value": ["4wEAAAAAAAAAAAAAAAEAAAADAAAA8wQAAACXAHwAUwApAU6pAKkB2gF4cwEAAAAg"]}}}}

FORGED_CONFIGS = {
    "unknown class": (_layer("conv2d", class_name="BatchNormalizationXL"),
                      "class 'BatchNormalizationXL' is not supported; convnet reads Keras'"),
    "a Lambda layer": (lambda c: c["config"]["layers"].insert(3, LAMBDA),
                       "class 'Lambda' is not supported \\(a Lambda layer holds Python code"),
    "a keras.ops operation named like a layer": (
        _layer("conv2d", module="keras.src.ops.numpy"),
        "class 'Conv2D' from module 'keras.src.ops.numpy' is not supported \\(keras.ops"),
    "a custom class named like a Keras one": (
        _layer("conv2d", module="evil.layers", registered_name="Custom>Conv2D"),
        "class 'Conv2D' from module 'evil.layers' is not supported"),
    "a lambda as activation": (_layer_config("conv2d", activation=LAMBDA["config"]["function"]),
                               "not one of Keras' named activations"),
    "a lambda inside a value": (
        _layer_config("dropout", noise_shape=[LAMBDA["config"]["function"]]),
        "noise_shape holds a Python lambda"),
    "a function as initializer": (
        _layer_config("conv2d", kernel_initializer={
            "module": "builtins", "class_name": "function", "config": "eval",
            "registered_name": "eval"}),
        "kernel_initializer is a Python function \\('eval' from module 'builtins'\\)"),
    "an unknown initializer": (
        _layer_config("conv2d", kernel_initializer={"module": "keras.initializers",
                                                     "class_name": "STFT", "config": {}}),
        "kernel_initializer 'STFT' is not one of convnet's"),
    "grouped convolution": (_layer_config("conv2d", groups=3), "groups=3 must divide filters=4"),
    "an unknown argument": (_layer_config("conv2d", evil="__import__('os')"),
                            "invalid config for Conv2D.*unexpected keyword.*evil"),
    "a mixed-precision policy": (
        _layer_config("conv2d", dtype={"module": "keras", "class_name": "DTypePolicy",
                                "config": {"name": "mixed_float16"}}), "mixed_float16"),
    "a kernel larger than its input": (_layer_config("conv2d", kernel_size=[12, 12]),
                                       "kernel_size=\\(12, 12\\).*does not fit the input"),
    "an unknown optimizer": (
        lambda c: c["compile_config"]["optimizer"].update(class_name="Evil",
                                                          registered_name="Evil"),
        "optimizer 'Evil' is not one of convnet's.*compile=False"),
    "an optimizer option convnet lacks": (
        lambda c: c["compile_config"]["optimizer"]["config"].update(use_ema=True),
        "Adam with use_ema=True is not supported"),
    "a layer where the model should be": (
        lambda c: c.update(_entry(c, "conv2d")), "holds a Conv2D layer, not a model"),
}


@pytest.mark.parametrize("case", sorted(FORGED_CONFIGS))
def test_forged_configs_are_refused_naming_what(tmp_path, case):
    edit, message = FORGED_CONFIGS[case]
    path = _rewritten(tmp_path, _config_change(edit))
    with pytest.raises(KerasFileError, match=message):
        keras.load_model(path)


def test_files_from_before_keras_3_name_the_layers_container_differently(tmp_path):
    def rename(f):
        f.move("layers", "_layer_checkpoint_dependencies")

    model = keras.load_model(_rewritten(tmp_path, _h5_change(rename)))
    np.testing.assert_allclose(_predict(model, _inputs("sequential_cnn"))[0],
                               _expected("sequential_cnn")[0], rtol=0, atol=1e-6)


def _node(layer, index=0, **entries):
    def edit(config):
        config["config"]["layers"][layer]["inbound_nodes"][index].update(entries)
    return edit


FORGED_GRAPHS = {
    "a call on constants": (_node(1, args=[[1.0, 2.0]]), "a call argument is not a tensor"),
    "a call with keyword arguments": (_node(1, kwargs={"training": True}),
                                      "keyword arguments \\['training'\\]"),
    "two positional arguments": (_node(1, args=[1, 2]), "2 positional arguments"),
    "a tensor of no layer": (_node(1, args=[{"class_name": "__keras_tensor__", "config": {
        "keras_history": ["ghost", 0, 0]}}]), "refers to layer outputs that no layer makes"),
    "a huge node index": (_node(1, args=[{"class_name": "__keras_tensor__", "config": {
        "keras_history": ["image", 2 ** 70, 0]}}]), "no valid keras_history"),
    "outputs that are no references": (lambda c: c["config"].update(output_layers=5),
                                       "not \\[layer, node, tensor\\] references"),
}


@pytest.mark.parametrize("case", sorted(FORGED_GRAPHS))
def test_forged_graphs_are_refused(tmp_path, case):
    edit, message = FORGED_GRAPHS[case]
    path = _rewritten(tmp_path, _config_change(edit), source="functional_residual")
    with pytest.raises(KerasFileError, match=message):
        keras.load_model(path)


def test_any_mutation_of_a_config_loads_or_is_refused_cleanly(tmp_path):
    """Seeded random edits of the functional reference's config.json (values swapped for
    other JSON values of any type, entries deleted): each file loads, or is refused with a
    KerasFileError; never another exception."""
    import random
    chooser = random.Random(0)
    members = _members(_reference("functional_residual"))
    base = json.loads(members["config.json"])
    values = [None, "x", -1, 0, 2 ** 70, 1.5, [], {}, [1, 2], {"class_name": "x"}, True, [None],
              {"class_name": "__keras_tensor__", "config": {"keras_history": ["image", 0, 0]}}]
    places = []
    stack = [((), base)]
    while stack:
        path, value = stack.pop()
        items = value.items() if isinstance(value, dict) else enumerate(value) \
            if isinstance(value, list) else ()
        for key, child in items:
            places.append(path + (key,))
            stack.append((path + (key,), child))
    outcomes = set()
    for _ in range(120):
        config = json.loads(members["config.json"])
        for place in chooser.sample(places, 2):
            try:
                parent = config
                for key in place[:-1]:
                    parent = parent[key]
                if isinstance(parent, dict) and chooser.random() < 0.2:
                    del parent[place[-1]]
                else:
                    parent[place[-1]] = chooser.choice(values)
            except (KeyError, IndexError, TypeError):
                continue  # the first edit removed this place
        path = tmp_path / "mutated.keras"
        _write_zip(path, {**members, "config.json": json.dumps(config).encode()})
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                keras.load_model(path)
            outcomes.add("loaded")
        except KerasFileError:
            outcomes.add("refused")
    assert outcomes == {"loaded", "refused"}


def test_compile_false_skips_compile_settings_convnet_cannot_use(tmp_path):
    path = _rewritten(tmp_path, _config_change(
        lambda c: c["compile_config"]["optimizer"].update(class_name="Ftrl",
                                                          registered_name="Ftrl")))
    assert keras.load_model(path, compile=False).optimizer is None


def _zip_with(tmp_path, infos):
    """The reference archive plus members made from ZipInfo fields."""
    path = tmp_path / "forged.keras"
    members = _members(_reference("sequential_cnn"))
    with zipfile.ZipFile(path, "w") as archive, warnings.catch_warnings():
        warnings.simplefilter("ignore")                    # "Duplicate name"
        for name, data in members.items():
            archive.writestr(name, data)
        for fields, data in infos:
            info = zipfile.ZipInfo(fields.pop("filename"))
            for key, value in fields.items():
                setattr(info, key, value)
            archive.writestr(info, data)
    return path


ZIP_TRICKS = {
    "a parent path": ({"filename": "../../etc/cron.d/evil"}, "path that leaves the archive"),
    "an absolute path": ({"filename": "/etc/passwd"}, "path that leaves the archive"),
    "a backslash path": ({"filename": "assets\\..\\..\\evil"}, "path that leaves the archive"),
    "a drive letter": ({"filename": "C:/Windows/evil"}, "path that leaves the archive"),
    "a symbolic link": ({"filename": "assets/link", "external_attr": (0o120777 << 16)},
                        "symbolic link"),
    "a second config.json": ({"filename": "config.json"}, "names a member twice"),
}


@pytest.mark.parametrize("case", sorted(ZIP_TRICKS))
def test_zip_path_tricks_are_refused(tmp_path, case):
    fields, message = ZIP_TRICKS[case]
    path = _zip_with(tmp_path, [(dict(fields), b"/tmp/evil")])
    with pytest.raises(KerasFileError, match=message):
        keras.load_model(path)


def test_a_zip_bomb_is_refused_without_inflating_it(tmp_path):
    import tracemalloc
    members = _members(_reference("sequential_cnn"))
    members["model.weights.h5"] = bytes(16 << 20)          # 16 MiB of zeros, deflated to ~16 KB
    path = tmp_path / "bomb.keras"
    _write_zip(path, members, zipfile.ZIP_DEFLATED)
    assert path.stat().st_size < 1 << 20
    tracemalloc.start()
    try:
        with pytest.raises(KerasFileError, match="declares 16777216 bytes but stores .* zip bomb"):
            keras.load_model(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 8 << 20


def test_broken_archives_and_json_are_refused(tmp_path):
    data = open(_reference("sequential_cnn"), "rb").read()
    path = tmp_path / "broken.keras"
    for cut in (4, 30, len(data) // 2, len(data) - 10):
        path.write_bytes(data[:cut])
        with pytest.raises(KerasFileError, match="not a valid zip archive|truncated"):
            keras.load_model(path)
    for change, message in (
            (lambda m: m.update({"config.json": b"{not json"}), "config.json is not valid JSON"),
            (lambda m: m.update({"config.json": b"[" * 100_000 + b"]" * 100_000}),
             "config.json nests"),
            (lambda m: m.update({"config.json": b"\xff\xfe"}), "not valid JSON"),
            (lambda m: m.update({"config.json": b"[]"}), "config.json is not an object"),
            (lambda m: m.pop("model.weights.h5"), "has no model.weights.h5"),
            (lambda m: m.pop("config.json"), "has no config.json"),
            (lambda m: m.update({"model.weights.h5": b"not hdf5"}), "not a valid HDF5 file")):
        with pytest.raises(KerasFileError, match=message):
            keras.load_model(_rewritten(tmp_path, change))
    broken = bytearray(data)
    position = data.index(b"max_pooling2d")            # inside config.json, stored as is
    broken[position] ^= 0x20
    path.write_bytes(bytes(broken))
    with pytest.raises(KerasFileError, match="Bad CRC|not a valid zip"):
        keras.load_model(path)


def _h5_change(edit):
    def change(members):
        buffer = io.BytesIO(members["model.weights.h5"])
        with h5py.File(buffer, "r+") as f:
            edit(f)
        members["model.weights.h5"] = buffer.getvalue()
    return change


def _replace(name, **dataset):
    def edit(f):
        del f[name]
        f.create_dataset(name, **dataset)
    return edit


def _link(name, link):
    def edit(f):
        del f[name]
        f[name] = link
    return edit


def _group_for_array(f):
    del f["layers/dense/vars/1"]
    f.create_group("layers/dense/vars/1")


H5_FORGERIES = {
    "a wrong shape": (_replace("layers/dense/vars/0", data=np.zeros((5, 7), "<f4")),
                      "layers/dense/vars/0 is float32 \\(5, 7\\) but dense/kernel is float32 "
                      "\\(5, 6\\)"),
    "a wrong dtype": (_replace("layers/dense/vars/0", data=np.zeros((5, 6), "<f8")),
                      "is float64 \\(5, 6\\) but dense/kernel is float32"),
    "integers": (_replace("layers/dense/vars/1", data=np.zeros(6, "<i4")), "is int32"),
    "big-endian floats": (_replace("layers/dense/vars/1", data=np.zeros(6, ">f4")),
                          "is >f4"),
    "a missing array": (lambda f: f.__delitem__("layers/conv2d/vars/1"),
                        "holds 1 arrays for 'conv2d' at layers/conv2d/vars, the model has 2"),
    "an extra array": (lambda f: f["layers/dense/vars"].create_dataset("2", data=[1.0]),
                       "holds 3 arrays for 'dense'"),
    "a missing layer": (lambda f: f.__delitem__("layers/conv2d_1"), "holds 0 arrays"),
    "a soft link": (_link("layers/dense/vars/1", h5py.SoftLink("/layers/dense_1/vars/1")),
                    "/layers/dense/vars/1 is a SoftLink \\(links are refused\\)"),
    "an external link": (_link("layers/conv2d", h5py.ExternalLink("/etc/passwd", "/")),
                         "/layers/conv2d is a ExternalLink"),
    "an external dataset": (_replace("layers/dense/vars/1", shape=(6,), dtype="<f4",
                                     external=[("/etc/passwd", 0, 24)]),
                            "external dataset"),
    "a group for an array": (_group_for_array, "vars/1 is not an HDF5 Dataset"),
    "a keras 2 weights file": (lambda f: f.attrs.__setitem__("layer_names", [b"dense"]),
                               "Keras 2 \\(legacy HDF5\\) weights file"),
}


@pytest.mark.parametrize("case", sorted(H5_FORGERIES))
def test_forged_weights_are_refused_before_any_is_read(tmp_path, case):
    edit, message = H5_FORGERIES[case]
    path = _rewritten(tmp_path, _h5_change(edit))
    with pytest.raises(KerasFileError, match=message):
        keras.load_model(path)


def test_a_shape_bomb_is_refused_without_allocating(tmp_path):
    """A forged architecture (a Dense of 2**30 x 2**12) and a dataset of that shape that
    stores almost nothing (compressed chunks of zeros, never written): refused from the
    declared and stored sizes, without allocating the 16 TiB."""
    import tracemalloc

    def forge(members):
        config = json.loads(members["config.json"])
        _entry(config, "dense_1")["config"]["units"] = 2 ** 30
        config["config"]["layers"].pop()                   # the Softmax after it
        members["config.json"] = json.dumps(config).encode()
        buffer = io.BytesIO(members["model.weights.h5"])
        with h5py.File(buffer, "r+") as f:
            for i, shape in ((0, (6, 2 ** 30)), (1, (2 ** 30,))):
                del f[f"layers/dense_1/vars/{i}"]
                f["layers/dense_1/vars"].create_dataset(str(i), shape=shape, dtype="<f4",
                                                        chunks=True, compression="gzip")
            del f["layers/softmax"]
        members["model.weights.h5"] = buffer.getvalue()

    path = _rewritten(tmp_path, forge)
    assert path.stat().st_size < 1 << 20
    tracemalloc.start()
    try:
        with pytest.raises(KerasFileError, match="declares 25769803776 bytes but stores"):
            keras.load_model(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 16 << 20


def _layer_change(**entries):
    """Set entries of the config of the layer after the Input (of a layers/ reference)."""
    return _config_change(lambda c: c["config"]["layers"][1]["config"].update(entries))


NUMPY_SCALE = {"class_name": "__numpy__", "config": {"value": [0.5, 1.0, 2.0],
                                                     "dtype": "float32"}}

LAYER_OPTIONS_CONVNET_LACKS = {
    "batch renormalization": ("batch_norm", _layer_change(renorm=True),
                              "renorm=True \\(batch renormalization\\) is not supported"),
    "synchronized batch norm": ("batch_norm", _layer_change(synchronized=True),
                                "synchronized=True is not supported"),
    "bicubic upsampling": ("up_sampling2d", _layer_change(interpolation="bicubic"),
                           "convnet has no 'bicubic' resampling"),
    "lanczos resizing": ("resizing", _layer_change(interpolation="lanczos3"),
                         "convnet has no 'lanczos3' resampling"),
    "antialiased resizing": ("resizing", _layer_change(antialias=True),
                             "antialias=True is not supported"),
    "reflected padding": ("resizing_padded", _layer_change(fill_mode="reflect"),
                          "fill_mode must be 'constant'"),
    "a gaussian dropout of rate 1": ("gaussian_dropout", _layer_change(rate=1.0),
                                     "rate must be in \\[0, 1\\)"),
    "an array of strings as scale": (
        "rescaling", _layer_change(scale={"class_name": "__numpy__",
                                          "config": {"value": ["a"], "dtype": "object"}}),
        "scale is not a numeric array"),
    "a float count": ("normalization_adapted", _h5_change(_replace(
        "layers/normalization/vars/2", data=np.float32(7))),
        "vars/2 is float32 \\(\\) but normalization.*/count is int32 \\(\\)"),
}


@pytest.mark.parametrize("case", sorted(LAYER_OPTIONS_CONVNET_LACKS))
def test_layer_options_convnet_lacks_are_refused_naming_them(tmp_path, case):
    source, change, message = LAYER_OPTIONS_CONVNET_LACKS[case]
    with pytest.raises(KerasFileError, match=message):
        keras.load_model(_rewritten(tmp_path, change, source=f"layers/{source}"))


def test_an_array_keras_wrote_as_numpy_loads(tmp_path):
    """Keras writes an array given to Rescaling as a __numpy__ object (a list as a list)."""
    path = _rewritten(tmp_path, _layer_change(scale=NUMPY_SCALE),
                      source="layers/rescaling_per_channel")
    x = _layer_predictions()["rescaling_per_channel_x"]
    np.testing.assert_allclose(keras.load_model(path).predict(x, verbose=0),
                               _layer_predictions()["rescaling_per_channel_y"], rtol=1e-6)


def test_any_mutation_of_a_layer_config_loads_or_is_refused_cleanly(tmp_path):
    """Seeded random edits of the layer's config in each layers/ reference (entries swapped
    for other JSON values or deleted): each file loads, or is refused with a
    KerasFileError; never another exception."""
    import random
    chooser = random.Random(1)
    values = [None, "x", -1, 0, 2 ** 70, 1.5, [], {}, [1, 2], [[1, 2], [3]], True, "same",
              {"class_name": "x"}, {"class_name": "__numpy__", "config": {"value": [1]}}]
    outcomes = set()
    for case in sorted(LAYER_CASES):
        members = _members(_layer_reference(case))
        keys = list(json.loads(members["config.json"])["config"]["layers"][1]["config"])
        for _ in range(8):
            config = json.loads(members["config.json"])
            entries = config["config"]["layers"][1]["config"]
            for key in chooser.sample(keys, min(2, len(keys))):
                if chooser.random() < 0.2:
                    del entries[key]
                else:
                    entries[key] = chooser.choice(values)
            path = tmp_path / "mutated.keras"
            _write_zip(path, {**members, "config.json": json.dumps(config).encode()})
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    keras.load_model(path)
                outcomes.add("loaded")
            except KerasFileError:
                outcomes.add("refused")
    assert outcomes == {"loaded", "refused"}
