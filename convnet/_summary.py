"""The text of Sequential.summary(): Keras' table plus receptive field and MACs."""


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


def summary_rows(model):
    """(name (type), output shape, params, receptive field (jump), MACs) per layer, and the
    MACs of each layer as numbers (None where a size is unknown)."""
    shape = model.input_shape
    field, jump = (1, 1), (1, 1)
    rows, macs = [], []
    for layer in model.layers:
        out = layer.compute_output_shape(shape)
        kernel, stride = layer.receptive_field_step()
        field = tuple(f + (k - 1) * j for f, k, j in zip(field, kernel, jump))
        jump = tuple(j * s for j, s in zip(jump, stride))
        # Once the image is flattened or pooled away, every output sees the whole input.
        seen = f"{_pair(*field)} ({_pair(*jump)})" if len(out) == 4 else "global"
        macs.append(layer.macs(shape))
        rows.append((f"{layer.name} ({type(layer).__name__})", str(out),
                     _number(layer.count_params()), seen, _number(macs[-1])))
        shape = out
    return rows, macs


def summary_text(model, ascii_only=False):
    if not model.built:
        raise ValueError(f"Sequential '{model.name}' has not been built: start it with "
                         f"Input(shape) or call build(input_shape) before summary()")
    header = ("Layer (type)", "Output Shape", "Param #", "Receptive field (jump)", "MACs")
    rows, macs = summary_rows(model)
    widths = [max(len(r[i]) for r in rows + [header]) + 2 for i in range(len(header))]
    right = (False, False, True, False, True)

    def line(left, fill, mid, end):
        return left + mid.join(fill * w for w in widths) + end

    def row(cells, bar):
        parts = [(c.rjust(w - 1) + " ") if r else (" " + c.ljust(w - 1))
                 for c, w, r in zip(cells, widths, right)]
        return bar + bar.join(parts) + bar

    if ascii_only:
        top = mid = bottom = line("+", "-", "+", "+")
        bar = "|"
    else:
        top = line("\u250f", "\u2501", "\u2533", "\u2513")
        mid = line("\u2521", "\u2501", "\u2547", "\u2529")
        bottom = line("\u2514", "\u2500", "\u2534", "\u2518")
        bar = "\u2502"
    head_bar = "|" if ascii_only else "\u2503"
    total = model.count_params()
    trainable = sum(layer.count_params() for layer in model.layers if layer.trainable)
    itemsize = max((w.itemsize for w in model.weights), default=4)
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

