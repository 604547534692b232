"""Each example end to end in its fast mode: it must print its result and write its PNG."""
import os
import subprocess
import sys

import pytest

EXAMPLES = os.path.join(os.path.dirname(__file__), os.pardir, "examples")

pytest.importorskip("matplotlib")


def _run(script, *args, cwd):
    result = subprocess.run([sys.executable, os.path.join(EXAMPLES, script), *args],
                            capture_output=True, text=True, cwd=cwd, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def test_fashion_mnist_example_then_feature_maps(tmp_path):
    out = _run("fashion_mnist_convnet.py", "--fast", "--out", str(tmp_path), cwd=tmp_path)
    assert "Total params: 34,826" in out
    assert "Test accuracy: " in out
    assert (tmp_path / "fashion_mnist_training.png").stat().st_size > 10_000
    assert (tmp_path / "fashion_mnist_convnet.keras").exists()
    out = _run("feature_maps.py", "--model", str(tmp_path / "fashion_mnist_convnet.keras"),
               "--out", str(tmp_path), cwd=tmp_path)
    assert "predicted" in out
    assert (tmp_path / "feature_maps.png").stat().st_size > 10_000


def test_pooling_gallery(tmp_path):
    pytest.importorskip("sklearn")
    _run("pooling_gallery.py", "--out", str(tmp_path), cwd=tmp_path)
    assert (tmp_path / "pooling_gallery.png").stat().st_size > 50_000


def test_fashion_mnist_resnet_example(tmp_path):
    out = _run("fashion_mnist_resnet.py", "--fast", "--out", str(tmp_path), cwd=tmp_path)
    assert "Connected to" in out and "add_3 (Add)" in out
    assert "Test accuracy: " in out
    assert (tmp_path / "fashion_mnist_resnet_training.png").stat().st_size > 10_000
    assert (tmp_path / "fashion_mnist_resnet.cnet").exists()


def test_fashion_mnist_batch_norm_example(tmp_path):
    out = _run("fashion_mnist_bn.py", "--fast", "--out", str(tmp_path), cwd=tmp_path)
    assert "Non-trainable params: 448" in out        # the moving statistics
    assert "Test accuracy: " in out
    assert "Folded: 16 -> 13 layers" in out and "the same class for 100.00%" in out
    assert (tmp_path / "fashion_mnist_bn_training.png").stat().st_size > 10_000
    assert (tmp_path / "fashion_mnist_bn.keras").exists()
