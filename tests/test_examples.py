"""Each example end to end in its fast mode, run as a script (``__main__``) in this process so
that the test can read the figure it drew: titles, epoch ticks, panel sizes and colour scales,
what a reader of the PNG relies on."""
import math
import os
import runpy
import sys

import numpy as np
import pytest

EXAMPLES = os.path.join(os.path.dirname(__file__), os.pardir, "examples")

pytest.importorskip("matplotlib")


def _run(script, *args, cwd, monkeypatch):
    """Run examples/`script` as ``python script args`` from `cwd`; its global names. Layer
    names restart as in a fresh process (the summaries name add_3, not add_17)."""
    import convnet
    convnet.backend.clear_session()
    monkeypatch.chdir(cwd)
    monkeypatch.setattr(sys, "argv", [script, *args])
    return runpy.run_path(os.path.join(EXAMPLES, script), run_name="__main__")


def _suptitle(fig):
    return fig._suptitle.get_text() if fig._suptitle is not None else ""


def _size_inches(fig, ax):
    """(width, height) of an axes' box in inches."""
    box = ax.get_position()
    width, height = fig.get_size_inches()
    return box.width * width, box.height * height


def _image_axes(fig):
    """The axes that show an image, with the shape of the array shown."""
    return [(ax, ax.get_images()[0].get_array().shape) for ax in fig.axes if ax.get_images()]


def _rows(fig):
    """Image axes grouped by row (the same top edge), top row first."""
    rows = {}
    for ax, shape in _image_axes(fig):
        rows.setdefault(round(ax.get_position().y1, 6), []).append((ax, shape))
    return [sorted(rows[top], key=lambda item: item[0].get_position().x0)
            for top in sorted(rows, reverse=True)]


def _check_training_curves(fig, model_name, epochs):
    title = _suptitle(fig)
    assert model_name in title and "Fashion-MNIST" in title and "test accuracy" in title
    for ax in fig.axes:
        assert ax.get_xlabel() == "epoch" and ax.get_ylabel()
        low, high = ax.get_xlim()
        ticks = [t for t in ax.get_xticks() if low <= t <= high]
        assert ticks, "no tick on the epoch axis"
        assert all(float(t).is_integer() for t in ticks), ticks
        assert set(ticks) <= set(range(1, epochs + 1))
        if epochs == 1:
            assert ticks == [1]  # one point at epoch 1, not ticks at 0.96 ... 1.04


def test_fashion_mnist_example_then_feature_maps(tmp_path, monkeypatch, capsys):
    names = _run("fashion_mnist_convnet.py", "--fast", "--out", str(tmp_path), cwd=tmp_path,
                 monkeypatch=monkeypatch)
    out = capsys.readouterr().out
    assert "Total params: 34,826" in out
    assert "Test accuracy: " in out
    _check_training_curves(names["fig"], "fashion_mnist_convnet", epochs=1)
    assert (tmp_path / "fashion_mnist_training.png").stat().st_size > 10_000
    assert (tmp_path / "fashion_mnist_convnet.keras").exists()

    names = _run("feature_maps.py", "--out", str(tmp_path), cwd=tmp_path,
                 monkeypatch=monkeypatch)
    assert "predicted" in capsys.readouterr().out
    fig = names["fig"]
    title = _suptitle(fig)
    assert "true class" in title and "predicted" in title and "probability" in title
    labels = [text.get_text() for text in fig.texts]
    # Each layer's row says how many of its channels it shows.
    assert any("channels 0-7 of 32" in label for label in labels)
    assert any("channels 0-7 of 64" in label for label in labels)
    rows = _rows(fig)
    assert [len(row) for row in rows] == [1, 8, 8, 8, 8]      # the input, then 4 layers
    for row in rows[1:]:
        # One colour scale per row, so a brighter panel is a stronger response.
        assert len({ax.get_images()[0].get_clim() for ax, _ in row}) == 1
    assert len(fig.axes) == 1 + 4 * 8 + 4                      # a colour bar per layer row
    assert (tmp_path / "feature_maps.png").stat().st_size > 10_000


def test_feature_maps_without_a_model_says_how_to_make_one(tmp_path, monkeypatch):
    with pytest.raises(SystemExit) as exit_:
        _run("feature_maps.py", "--out", str(tmp_path), cwd=tmp_path, monkeypatch=monkeypatch)
    message = str(exit_.value.code)
    assert "no model file at fashion_mnist_convnet.keras" in message
    assert "python examples/fashion_mnist_convnet.py" in message


def test_pooling_gallery(tmp_path, monkeypatch, capsys):
    pytest.importorskip("sklearn")
    fig = _run("pooling_gallery.py", "--out", str(tmp_path), cwd=tmp_path,
               monkeypatch=monkeypatch)["fig"]
    assert "Pooling" in _suptitle(fig)
    assert all(ax.get_xlabel() for ax, _ in _image_axes(fig))  # a caption under each panel
    stride4, *stacked = _rows(fig)
    # The stride-4 row is drawn at one scale: each panel's size in the proportions of its
    # array, so a pool's output is a quarter of the input's height and width.
    assert [shape[:2] for _, shape in stride4] == [(427, 640), (106, 160), (106, 160),
                                                     (107, 160)]
    inches_per_pixel = {round(_size_inches(fig, ax)[0] / shape[1], 9) for ax, shape in stride4}
    inches_per_pixel |= {round(_size_inches(fig, ax)[1] / shape[0], 9) for ax, shape in stride4}
    assert len(inches_per_pixel) == 1
    # The stacked rows: 1 to 5 pools, each drawn at one height with the array's aspect.
    assert len(stacked) == 2
    for row in stacked:
        assert [shape[:2] for _, shape in row] == [(213, 320), (106, 160), (53, 80),
                                                   (26, 40), (13, 20)]
        for ax, shape in row:
            width, height = _size_inches(fig, ax)
            assert math.isclose(width / height, shape[1] / shape[0], rel_tol=1e-9)
        assert len({round(_size_inches(fig, ax)[1], 9) for ax, _ in row}) == 1
    assert (tmp_path / "pooling_gallery.png").stat().st_size > 50_000


def test_fashion_mnist_resnet_example(tmp_path, monkeypatch, capsys):
    names = _run("fashion_mnist_resnet.py", "--fast", "--out", str(tmp_path), cwd=tmp_path,
                 monkeypatch=monkeypatch)
    out = capsys.readouterr().out
    assert "Connected to" in out and "add_3 (Add)" in out
    assert "Test accuracy: " in out
    _check_training_curves(names["fig"], "fashion_mnist_resnet", epochs=1)
    assert (tmp_path / "fashion_mnist_resnet_training.png").stat().st_size > 10_000
    assert (tmp_path / "fashion_mnist_resnet.cnet").exists()


def test_fashion_mnist_batch_norm_example(tmp_path, monkeypatch, capsys):
    names = _run("fashion_mnist_bn.py", "--fast", "--out", str(tmp_path), cwd=tmp_path,
                 monkeypatch=monkeypatch)
    out = capsys.readouterr().out
    assert "Non-trainable params: 448" in out        # the moving statistics
    assert "Test accuracy: " in out
    assert "Folded: 16 -> 13 layers" in out and "the same class for 100.00%" in out
    _check_training_curves(names["fig"], "fashion_mnist_bn", epochs=1)
    assert (tmp_path / "fashion_mnist_bn_training.png").stat().st_size > 10_000
    assert (tmp_path / "fashion_mnist_bn.cnet").exists()


def test_training_curves_tick_whole_epochs_only():
    from convnet import plot
    for epochs in (1, 2, 5, 12, 40):
        logs = {"loss": list(np.linspace(1, 0.1, epochs)),
                "val_loss": list(np.linspace(1.1, 0.2, epochs))}
        fig = plot.training_curves(logs, title="a model on some data: test accuracy 50.0%")
        for ax in fig.axes:
            low, high = ax.get_xlim()
            ticks = [t for t in ax.get_xticks() if low <= t <= high]
            assert ticks and all(float(t).is_integer() for t in ticks)
            assert 1 <= min(ticks) and max(ticks) <= epochs
            assert len(ticks) <= 11
