"""Models leaving convnet for other runtimes: ``model.export(filepath, format="onnx")``.

Each format lives in its own module behind its own extra, imported only when a model is
exported to it, so ``import convnet`` never needs them.
"""

#: the formats ``export_model`` writes (Keras 3 also has "tf_saved_model", "openvino",
#: "litert" and "torch", which need those frameworks)
FORMATS = ("onnx",)


def export_model(model, filepath, format="onnx", **kwargs):
    """Write `model` to `filepath` in `format`; keyword arguments go to that format's writer
    (for ONNX: ``verbose``, ``input_signature``, ``opset_version``)."""
    if format != "onnx":
        raise ValueError(f"export: unsupported format {format!r}; convnet exports to "
                         f"{', '.join(repr(f) for f in FORMATS)}")
    from .onnx import export_onnx
    return export_onnx(model, filepath, **kwargs)
