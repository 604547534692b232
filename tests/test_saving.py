"""Model files: exact round trips, and every broken or forged file rejected with a clear error."""
import hashlib
import json
import os
import pickle
import stat
import struct

import numpy as np
import pytest

import convnet as keras
from convnet import layers
from convnet.saving import MAGIC, ModelFileError


def _model():
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((8, 8, 2)), layers.Conv2D(3, 3, activation="relu"),
                              layers.MaxPooling2D(2), layers.Flatten(),
                              layers.Dense(4, activation="softmax")])
    model.compile(keras.optimizers.Adam(0.01), "sparse_categorical_crossentropy", ["accuracy"])
    return model


def test_save_and_load_round_trip_bit_exactly(tmp_path, rng):
    model = _model()
    x = rng.standard_normal((5, 8, 8, 2)).astype(np.float32)
    path = tmp_path / "model.cnet"
    model.save(path)
    loaded = keras.load_model(path)
    for a, b in zip(model.get_weights(), loaded.get_weights()):
        assert a.dtype == b.dtype and a.tobytes() == b.tobytes()
    assert loaded.predict(x).tobytes() == model.predict(x).tobytes()
    assert loaded.get_config() == model.get_config()
    assert isinstance(loaded.optimizer, keras.optimizers.Adam)
    assert loaded.optimizer.learning_rate == 0.01
    loaded.fit(x, np.arange(5) % 4, verbose=0)        # compiled as saved


def test_weights_round_trip(tmp_path):
    model, other = _model(), _model()
    other.set_weights([w + 1 for w in other.get_weights()])
    model.save_weights(tmp_path / "w.bin")
    other.load_weights(tmp_path / "w.bin")
    for a, b in zip(model.get_weights(), other.get_weights()):
        np.testing.assert_array_equal(a, b)


def _saved_bytes(tmp_path):
    path = tmp_path / "m.cnet"
    _model().save(path)
    return path, path.read_bytes()


def _with_digest(body):
    return body + hashlib.sha256(body).digest()


def _forge(data, change):
    """Rewrite the JSON header of a saved file with `change` applied, as an attacker would:
    with a valid checksum, so the loader's own checks are what must refuse it."""
    (length,) = struct.unpack("<Q", data[8:16])
    header = json.loads(data[16:16 + length])
    change(header)
    new = json.dumps(header).encode()
    return _with_digest(MAGIC + struct.pack("<Q", len(new)) + new + data[16 + length:-32])


def _set_weight(i, key, value):
    def change(header):
        header["weights"][i][key] = value
    return change


def _set_layer(key, value, index=1):
    def change(header):
        header["config"]["layers"][index][key] = value
    return change


FORGERIES = {
    "huge declared shape": (_set_weight(0, "shape", [2 ** 40, 2 ** 20]), "invalid shape|size"),
    "huge nbytes": (_set_weight(0, "nbytes", 2 ** 62), "size or offset"),
    "wrong dtype": (_set_weight(0, "dtype", "object"), "dtype"),
    "int dtype": (_set_weight(0, "dtype", "int64"), "dtype"),
    "shape that does not fit the architecture": (
        _set_weight(0, "shape", [3, 3, 2, 3, 1]), "expects"),
    "unknown layer": (_set_layer("class_name", "os.system"), "unknown layer"),
    "unknown layer argument": (_set_layer("config", {"filters": 3, "kernel_size": 3,
                                                     "evil": "__import__('os')"}),
                               "invalid config"),
    "unknown version": (lambda h: h.update(version=99), "version"),
    "unknown optimizer": (lambda h: h["compile"].update(optimizer={"class_name": "Evil"}),
                          "optimizer"),
    "compile settings that are a list": (lambda h: h.update(compile=[1]),
                                         "compile settings are list"),
    "optimizer that is a string": (lambda h: h["compile"].update(optimizer="adam"),
                                   "optimizer 'adam' is not"),
    "optimizer config that is a list": (
        lambda h: h["compile"]["optimizer"].update(config=[["learning_rate", 1]]), "optimizer"),
    "schedule that is a list": (
        lambda h: h["compile"]["optimizer"]["config"].update(learning_rate=[1]), "schedule"),
    "schedule config that is a number": (
        lambda h: h["compile"]["optimizer"]["config"].update(
            learning_rate={"class_name": "CosineDecay", "config": 3}), "schedule"),
    "loss that is a number": (lambda h: h["compile"].update(loss=3), "loss 3 is not"),
    "metrics that are not names": (lambda h: h["compile"].update(metrics=[{"a": 1}]),
                                   "metrics"),
    "model config that is a list": (lambda h: h.update(config=[]), "no model config"),
    "unknown kind": (lambda h: h.update(kind="script"), "kind"),
    "float offset": (_set_weight(0, "offset", 0.0), "size or offset"),
    "bool offset": (_set_weight(0, "offset", False), "size or offset"),
    "nesting deeper than any config": (
        lambda h: h["config"].update(extra=json.loads("[" * 200 + "]" * 200)), "nests deeper"),
    "NaN learning rate": (lambda h: h["compile"]["optimizer"]["config"].update(
        learning_rate=float("nan")), "learning_rate"),
    "Adam beta_1 of 1": (lambda h: h["compile"]["optimizer"]["config"].update(beta_1=1.0),
                         "beta_1"),
    "schedule of zero decay steps": (lambda h: h["compile"]["optimizer"]["config"].update(
        learning_rate={"class_name": "CosineDecay",
                       "config": {"initial_learning_rate": 0.1, "decay_steps": 0}}),
        "decay_steps"),
    "infinite label smoothing": (lambda h: h["compile"]["loss"].update(
        class_name="CategoricalCrossentropy", config={"label_smoothing": float("inf")}),
        "label_smoothing"),
}


@pytest.mark.parametrize("case", sorted(FORGERIES))
def test_forged_headers_are_rejected(tmp_path, case):
    path, data = _saved_bytes(tmp_path)
    change, message = FORGERIES[case]
    path.write_bytes(_forge(data, change))
    with pytest.raises(ModelFileError, match=message):
        keras.load_model(path)


def _with_raw_header(data, header):
    """A saved file whose header is the raw bytes `header` (JSON no json.dumps would write)."""
    (length,) = struct.unpack("<Q", data[8:16])
    return _with_digest(MAGIC + struct.pack("<Q", len(header)) + header + data[16 + length:-32])


RAW_HEADERS = {
    "nesting past Python's recursion limit": (
        b'{"format": "convnet", "version": 1, "x": ' + b"[" * 100000 + b"]" * 100000 + b"}",
        "nests too deeply"),
    "an integer of 5000 digits": (
        b'{"format": "convnet", "version": 1, "x": ' + b"9" * 5000 + b"}", "not valid JSON"),
    "a shape of 4000-digit integers": (
        b'{"format": "convnet", "version": 1, "kind": "weights", "weights": [{"dtype": '
        b'"float32", "shape": [' + b"9" * 4000 + b"], " + b'"offset": 0, "nbytes": 4}]}',
        "size or offset"),
    "invalid UTF-8": (b'{"format": "\xff"}', "not valid JSON"),
}


@pytest.mark.parametrize("case", sorted(RAW_HEADERS))
def test_hostile_json_is_refused_with_the_readers_error(tmp_path, case):
    path, data = _saved_bytes(tmp_path)
    header, message = RAW_HEADERS[case]
    path.write_bytes(_with_raw_header(data, header))
    with pytest.raises(ModelFileError, match=message):
        keras.load_model(path)


def test_every_truncation_is_rejected(tmp_path):
    path, data = _saved_bytes(tmp_path)
    for cut in sorted({0, 4, 8, 15, 16, 40, len(data) // 2, len(data) - 1}):
        path.write_bytes(data[:cut])
        with pytest.raises(ModelFileError):
            keras.load_model(path)


def test_flipped_bytes_are_rejected(tmp_path):
    path, data = _saved_bytes(tmp_path)
    rng = np.random.default_rng(0)
    for position in rng.choice(len(data), 60, replace=False):
        broken = bytearray(data)
        broken[position] ^= 0x5A
        path.write_bytes(bytes(broken))
        with pytest.raises(ModelFileError):
            keras.load_model(path)


def test_a_pickle_is_never_unpickled(tmp_path):
    class Boom:
        def __reduce__(self):
            return (os.system, ("echo pwned > " + str(tmp_path / "pwned"),))

    path = tmp_path / "evil.cnet"
    path.write_bytes(pickle.dumps(Boom()))
    with pytest.raises(ModelFileError, match="magic"):
        keras.load_model(path)
    path.write_bytes(_with_digest(MAGIC + struct.pack("<Q", 10) + pickle.dumps(Boom())[:10]))
    with pytest.raises(ModelFileError):
        keras.load_model(path)
    assert not (tmp_path / "pwned").exists()


def test_weights_file_refused_by_load_model_and_mismatch_refused(tmp_path):
    model = _model()
    model.save_weights(tmp_path / "w")
    with pytest.raises(ModelFileError, match="weights only"):
        keras.load_model(tmp_path / "w")
    other = keras.Sequential([keras.Input((8, 8, 2)), layers.Conv2D(5, 3), layers.Flatten(),
                              layers.Dense(4)])
    with pytest.raises(ModelFileError, match="expects"):
        other.load_weights(tmp_path / "w")


def test_a_failed_save_leaves_the_previous_file_intact(tmp_path, monkeypatch):
    path, data = _saved_bytes(tmp_path)
    model = _model()

    def broken_replace(src, dst):
        raise OSError("disk pulled out")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError):
        model.save(path)
    assert path.read_bytes() == data
    assert [p.name for p in tmp_path.iterdir()] == ["m.cnet"]   # no temporary file left


def test_forged_huge_sizes_are_refused_without_allocating(tmp_path):
    import tracemalloc
    path, data = _saved_bytes(tmp_path)
    path.write_bytes(_forge(data, _set_weight(0, "shape", [2 ** 30, 2 ** 30])))
    tracemalloc.start()
    try:
        with pytest.raises(ModelFileError):
            keras.load_model(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4 << 20          # the file is a few KB; nothing near the declared 4 EiB


def test_a_model_built_from_data_without_input_reloads(tmp_path, rng):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([layers.Conv2D(2, 3), layers.Flatten(), layers.Dense(2)])
    model.compile("sgd", "mse")
    x = rng.standard_normal((4, 6, 6, 1)).astype(np.float32)
    model.fit(x, np.zeros((4, 2)), verbose=0)
    model.save(tmp_path / "m.cnet")
    loaded = keras.load_model(tmp_path / "m.cnet")
    assert loaded.input_shape == (None, 6, 6, 1)
    assert loaded.predict(x).tobytes() == model.predict(x).tobytes()


def _mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.mark.skipif(os.name != "posix", reason="POSIX file modes")
@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_a_new_file_gets_the_mode_open_would_give_it(tmp_path, umask):
    old = os.umask(umask)
    try:
        _model().save(tmp_path / "m.cnet")
        _model().save_weights(tmp_path / "w.bin")
        with open(tmp_path / "plain", "w"):
            pass
    finally:
        os.umask(old)
    assert _mode(tmp_path / "m.cnet") == _mode(tmp_path / "w.bin") == 0o666 & ~umask
    assert _mode(tmp_path / "plain") == 0o666 & ~umask


@pytest.mark.skipif(os.name != "posix", reason="POSIX file modes")
def test_overwriting_keeps_the_files_mode(tmp_path):
    path, _ = _saved_bytes(tmp_path)
    for mode in (0o640, 0o604):
        os.chmod(path, mode)
        _model().save(path)
        assert _mode(path) == mode
    assert [p.name for p in tmp_path.iterdir()] == ["m.cnet"]   # no temporary file left


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="needs symbolic links")
def test_saving_through_a_symlink_writes_its_target(tmp_path):
    (tmp_path / "models").mkdir()
    (tmp_path / "links").mkdir()
    target = tmp_path / "models" / "m.cnet"
    link = tmp_path / "links" / "latest.cnet"
    os.symlink(os.path.join("..", "models", "m.cnet"), link)    # relative, dangling at first
    model = _model()
    model.save(link)
    assert link.is_symlink() and target.is_file() and not target.is_symlink()
    model.set_weights([w + 1 for w in model.get_weights()])
    model.save(link)                                             # again, over the target
    assert link.is_symlink()
    np.testing.assert_array_equal(keras.load_model(target).get_weights()[0],
                                  model.get_weights()[0])
    assert sorted(p.name for p in (tmp_path / "models").iterdir()) == ["m.cnet"]
    assert sorted(p.name for p in (tmp_path / "links").iterdir()) == ["latest.cnet"]


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="needs symbolic links")
def test_a_symlink_loop_is_an_error_not_a_replaced_link(tmp_path):
    os.symlink("b", tmp_path / "a")
    os.symlink("a", tmp_path / "b")
    with pytest.raises(OSError):
        _model().save(tmp_path / "a")
    assert (tmp_path / "a").is_symlink() and (tmp_path / "b").is_symlink()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "b"]
