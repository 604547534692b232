"""The text of Model.summary(): Keras' table plus receptive field and MACs columns.

A Sequential model gets one row per layer in order; a functional model one row per
layer with Keras' "Connected to" column, the receptive field taken along the path
that reaches furthest into the input; a subclassed model lists the layers it tracks.
"""
import sys


def _number(n):
    return "?" if n is None else f"{n:,}"


def _size(n_params, itemsize=4):
    size = n_params * itemsize
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.2f} {unit}"
        size /= 1024


def _pair(a, b):
    return f"{a}" if a == b else f"{a}x{b}"


def _grow(field, jump, layer):
    kernel, stride = layer.receptive_field_step()
    field = tuple(f + (k - 1) * j for f, k, j in zip(field, kernel, jump))
    jump = tuple(j * s for j, s in zip(jump, stride))
    return field, jump


def _seen(field, jump, out_shape):
    # Once the image is flattened or pooled away, every output sees the whole input.
    if isinstance(out_shape, tuple) and len(out_shape) == 4:
        return f"{_pair(*field)} ({_pair(*jump)})"
    return "global"


def _params(layer):
    return layer.count_params() if layer.built else 0


def _sequential_rows(model):
    shape = model.input_shape
    field, jump = (1, 1), (1, 1)
    rows, macs = [], []
    for layer in model.layers:
        out = layer.compute_output_shape(shape)
        field, jump = _grow(field, jump, layer)
        macs.append(layer.macs(shape))
        rows.append([f"{layer.name} ({type(layer).__name__})", str(out),
                     _number(_params(layer)), _seen(field, jump, out), _number(macs[-1])])
        shape = out
    return rows, macs


def _functional_rows(model):
    """One row per layer; each tensor's receptive field is the largest over its inputs."""
    from .layers.core import InputLayer
    fields = {}
    rows, macs = [], []
    nodes_of = {}
    for node in model._nodes:
        nodes_of.setdefault(id(node.layer), []).append(node)
    for node in model._nodes:
        for tensor in node.output_tensors:
            if isinstance(node.layer, InputLayer):
                fields[id(tensor)] = ((1, 1), (1, 1))
            else:
                parents = [fields[id(t)] for t in node.input_tensors] or [((1, 1), (1, 1))]
                field, jump = max(parents, key=lambda fj: fj[0][0] * fj[0][1])
                fields[id(tensor)] = _grow(field, jump, node.layer)
    for layer in model.layers:
        nodes = nodes_of.get(id(layer), [])
        first = nodes[0] if nodes else None
        out = first.output_tensors[0].shape if first and len(first.output_tensors) == 1 \
            else [t.shape for t in first.output_tensors] if first else "?"
        field, jump = fields[id(first.output_tensors[0])] if first else ((1, 1), (1, 1))
        connected = []
        for node in nodes:
            for tensor in node.input_tensors:
                source, index, t_index = tensor._keras_history
                connected.append(f"{source.name}[{index}][{t_index}]")
        if first is None or isinstance(layer, InputLayer) or len(first.input_tensors) != 1:
            layer_macs = 0
        else:
            layer_macs = layer.macs(first.input_tensors[0].shape)
        macs.append(layer_macs * max(len(nodes), 1) if layer_macs is not None else None)
        rows.append([f"{layer.name} ({type(layer).__name__})", str(out), _number(_params(layer)),
                     ", ".join(connected) or "-", _seen(field, jump, out), _number(macs[-1])])
    return rows, macs


def _subclassed_rows(model):
    rows, macs = [], []
    for layer in model.layers:
        try:
            out = str(layer.output_shape) if layer.built and layer.input_shape else "?"
        except (ValueError, TypeError, NotImplementedError):
            out = "?"
        rows.append([f"{layer.name} ({type(layer).__name__})", out, _number(_params(layer)),
                     "?", "?"])
        macs.append(None)
    return rows, macs


def summary_text(model, ascii_only=False):
    from .models.functional import Functional
    from .models.sequential import Sequential
    if not model.built:
        raise ValueError(f"{model.describe()} has not been built: start it with Input(shape), "
                         f"call build(input_shape), or call it on data before summary()")
    if isinstance(model, Sequential):
        rows, macs = _sequential_rows(model)
        header = ["Layer (type)", "Output Shape", "Param #", "Receptive field (jump)", "MACs"]
        right = [False, False, True, False, True]
    elif isinstance(model, Functional):
        rows, macs = _functional_rows(model)
        header = ["Layer (type)", "Output Shape", "Param #", "Connected to",
                  "Receptive field (jump)", "MACs"]
        right = [False, False, True, False, False, True]
    else:
        rows, macs = _subclassed_rows(model)
        header = ["Layer (type)", "Output Shape", "Param #", "Receptive field (jump)", "MACs"]
        right = [False, False, True, False, True]
    widths = [max(len(r[i]) for r in rows + [header]) + 2 for i in range(len(header))]

    def line(left, fill, mid, end):
        return left + mid.join(fill * w for w in widths) + end

    def row(cells, bar):
        parts = [(c.rjust(w - 1) + " ") if r else (" " + c.ljust(w - 1))
                 for c, w, r in zip(cells, widths, right)]
        return bar + bar.join(parts) + bar

    if ascii_only:
        top = mid = bottom = line("+", "-", "+", "+")
        bar = head_bar = "|"
    else:
        top = line("\u250f", "\u2501", "\u2533", "\u2513")
        mid = line("\u2521", "\u2501", "\u2547", "\u2529")
        bottom = line("\u2514", "\u2500", "\u2534", "\u2518")
        bar, head_bar = "\u2502", "\u2503"
    total = model.count_params()
    trainable = sum(w.size for w in model.trainable_weights)
    itemsize = max((w.dtype.itemsize for w in model.weights), default=4)
    total_macs = None if None in macs else sum(macs)
    lines = [f'Model: "{model.name}"', top, row(header, head_bar), mid]
    lines += [row(r, bar) for r in rows]
    lines += [bottom,
              f" Total params: {total:,} ({_size(total, itemsize)})",
              f" Trainable params: {trainable:,} ({_size(trainable, itemsize)})",
              f" Non-trainable params: {total - trainable:,} "
              f"({_size(total - trainable, itemsize)})",
              f" Multiply-accumulates per example: {_number(total_macs)}"]
    return "\n".join(lines)


def print_summary(model, print_fn=None):
    text = summary_text(model)
    if print_fn is None:
        encoding = getattr(sys.stdout, "encoding", None) or "ascii"
        try:
            text.encode(encoding)
        except UnicodeEncodeError:
            text = summary_text(model, ascii_only=True)
        print(text)
    else:
        for line in text.split("\n"):
            print_fn(line)
