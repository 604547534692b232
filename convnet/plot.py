"""Figures for the examples: training curves, image grids, feature maps (needs matplotlib,
the ``examples`` extra; the rest of convnet never imports it).

Each function returns a ``matplotlib.figure.Figure`` (made without pyplot, so no GUI
backend is involved and nothing stays registered once the figure is dropped); ``save``
writes one to a file. Returning the figure lets a test read its titles, ticks and panel
sizes instead of looking at pixels.
"""
import numpy as np

try:
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator
except ImportError:  # pragma: no cover - a clear message instead of a bare ImportError
    raise ImportError("convnet.plot needs matplotlib: pip install 'convnet[examples]'") from None

# Layout of image grids, in inches.
_GAP = 0.1            # between panels
_LINE = 0.13          # one line of 7-point caption text
_CHAR = 0.055         # the width of a character of it, about
_ROW_LABEL = 1.35     # left of each row
_COLORBAR = 0.55      # right of a row with a colour bar
_MARGIN = 0.12


def save(fig, path, dpi=100):
    """Write `fig` to `path` (the format from the extension, e.g. .png)."""
    fig.savefig(path, dpi=dpi)


def training_curves(history, title=None):
    """Loss and every metric per epoch, training and validation, side by side.

    `history` is what ``fit`` returns (or its ``.history`` dict). The epoch axis has a tick
    at each whole epoch (at most about ten), so a one-epoch run shows one point at epoch 1.
    `title` goes above the panels: say there which model, which data and what it scored.
    """
    logs = history.history if hasattr(history, "history") else history
    names = [k for k in logs if not k.startswith("val_") and k != "learning_rate"]
    fig = Figure(figsize=(4.6 * len(names), 3.7 if title else 3.4))
    axes = fig.subplots(1, len(names), squeeze=False)[0]
    for ax, name in zip(axes, names):
        epochs = np.arange(1, len(logs[name]) + 1)
        ax.plot(epochs, logs[name], "o-", label="training")
        if f"val_{name}" in logs:
            ax.plot(epochs, logs[f"val_{name}"], "s--", label="validation")
        ax.set_xlim(0.5, len(epochs) + 0.5)
        ax.xaxis.set_major_locator(MaxNLocator(nbins=10, integer=True, min_n_ticks=1))
        ax.set_xlabel("epoch")
        ax.set_ylabel(name.replace("_", " "))
        ax.set_title(name.replace("_", " "))
        ax.grid(alpha=0.3)
        ax.legend()
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def _is_rgb(image):
    return image.ndim == 3 and image.shape[2] == 3


def _panel_sizes(images, true_size, height):
    """(width, height) in inches of each panel: all `height` tall, or, for a true-size row,
    one scale for the row with its tallest image `height` tall, so the panels' sizes are in
    the proportions of the arrays' shapes."""
    shapes = [np.asarray(image).shape[:2] for image in images]
    if true_size:
        scale = height / max(h for h, _ in shapes)
        return [(w * scale, h * scale) for h, w in shapes]
    return [(height * w / h, height) for h, w in shapes]


def image_grid(rows, row_titles=None, title=None, panel_height=1.3, true_size_rows=(),
               true_size_height=None, colorbar_rows=(), cmap="gray", colorbar_cmap="viridis"):
    """Rows of images, each panel with its caption underneath and each row titled on the left.

    rows: a list of rows, each a list of ``(image, caption)``; an image is (H, W), (H, W, 1)
      or RGB (H, W, 3) in [0, 1].
    true_size_rows: the indices of rows drawn at one scale (the row's tallest image
      `true_size_height` inches tall, `panel_height` unless given), so a pooled image appears
      as much smaller than its input as it is. Other rows draw every panel `panel_height`
      tall (small images enlarged), to show their detail.
    colorbar_rows: the indices of rows whose single-channel panels share one colour scale
      (the row's minimum to maximum, in `colorbar_cmap`), shown by a colour bar at the
      row's right end. Other single-channel panels use `cmap`, each on its own range.
    """
    row_titles = row_titles or [""] * len(rows)
    sizes = [_panel_sizes([im for im, _ in row], r in true_size_rows,
                          true_size_height or panel_height if r in true_size_rows else panel_height)
             for r, row in enumerate(rows)]
    # Each panel sits in a slot as wide as the panel or its caption, whichever is wider.
    slots = [[max(w, _CHAR * max(len(line) for line in caption.split("\n")))
              for (_, caption), (w, _) in zip(row, s)] for row, s in zip(rows, sizes)]
    widths = [sum(row_slots) + _GAP * (len(row_slots) - 1)
              + (_COLORBAR if r in colorbar_rows else 0) for r, row_slots in enumerate(slots)]
    captions = [_LINE * max(caption.count("\n") + 1 for _, caption in row) + 0.1 for row in rows]
    heights = [max(h for _, h in s) + c for s, c in zip(sizes, captions)]
    top = 0.45 if title else _MARGIN
    fig_w = _ROW_LABEL + max(widths) + _MARGIN
    fig_h = top + sum(heights) + _GAP * (len(rows) - 1) + _MARGIN
    fig = Figure(figsize=(fig_w, fig_h))
    y = fig_h - top                           # the top of the current row, from the bottom
    for r, (row, row_sizes, row_slots, label) in enumerate(zip(rows, sizes, slots, row_titles)):
        single = [np.asarray(im).squeeze() for im, _ in row]
        scale, row_cmap = {}, cmap
        if r in colorbar_rows:
            row_cmap = colorbar_cmap
            values = [im for im in single if im.ndim == 2]
            scale = {"vmin": min(float(im.min()) for im in values),
                     "vmax": max(float(im.max()) for im in values)}
        x = _ROW_LABEL
        shown = None
        for (image, caption), im, (w, h), slot in zip(row, single, row_sizes, row_slots):
            left = x + (slot - w) / 2
            ax = fig.add_axes((left / fig_w, (y - h) / fig_h, w / fig_w, h / fig_h))
            rgb = _is_rgb(im)
            shown_here = ax.imshow(np.clip(im, 0, 1) if rgb else im, cmap=None if rgb else row_cmap,
                                   interpolation="nearest", aspect="auto",
                                   **({} if rgb else scale))
            shown = shown if rgb else shown_here
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_xlabel(caption, fontsize=7, labelpad=2)
            x += slot + _GAP
        if r in colorbar_rows and shown is not None:
            row_h = max(h for _, h in row_sizes)
            cax = fig.add_axes((x / fig_w, (y - row_h) / fig_h, 0.1 / fig_w, row_h / fig_h))
            fig.colorbar(shown, cax=cax).ax.tick_params(labelsize=6)
        fig.text(_MARGIN / fig_w, (y - max(h for _, h in row_sizes) / 2) / fig_h, label,
                 fontsize=8, va="center", ha="left")
        y -= heights[r] + _GAP
    if title:
        fig.suptitle(title, fontsize=10, y=1 - 0.1 / fig_h, va="top")
    return fig


def feature_maps(maps_by_layer, image=None, max_channels=8, title=None):
    """One row per layer: its first `max_channels` feature maps for one example.

    `maps_by_layer` is a list of ``(layer name, array (H, W, C))``. Each row's label says how
    many of the layer's channels are shown; the panels of a row share one colour scale (its
    colour bar), so a bright panel is a strong response compared with its neighbours.
    """
    rows, titles, colorbars = [], [], []
    if image is not None:
        rows.append([(image, f"{image.shape[0]}x{image.shape[1]}")])
        titles.append("input")
    for name, maps in maps_by_layer:
        shown = min(max_channels, maps.shape[-1])
        colorbars.append(len(rows))
        rows.append([(maps[..., c], f"channel {c}") for c in range(shown)])
        titles.append(f"{name}\n{maps.shape[0]}x{maps.shape[1]}x{maps.shape[2]}\n"
                      f"channels 0-{shown - 1} of {maps.shape[-1]}")
    return image_grid(rows, titles, title=title, panel_height=1.0, colorbar_rows=colorbars)
