"""Figures for the examples: training curves, image grids, feature maps (needs matplotlib,
the ``examples`` extra; the rest of convnet never imports it)."""
import numpy as np

try:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
except ImportError:  # pragma: no cover - a clear message instead of a bare ImportError
    raise ImportError("convnet.plot needs matplotlib: pip install 'convnet[examples]'") from None


def training_curves(history, path):
    """Loss and every metric per epoch, training and validation, side by side."""
    logs = history.history if hasattr(history, "history") else history
    names = [k for k in logs if not k.startswith("val_") and k != "learning_rate"]
    fig, axes = plt.subplots(1, len(names), figsize=(5 * len(names), 3.6), squeeze=False)
    for ax, name in zip(axes[0], names):
        epochs = np.arange(1, len(logs[name]) + 1)
        ax.plot(epochs, logs[name], "o-", label="training")
        if f"val_{name}" in logs:
            ax.plot(epochs, logs[f"val_{name}"], "s--", label="validation")
        ax.set_xlabel("epoch")
        ax.set_title(name)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def image_row(images, titles, path, suptitle=None, cmap="gray"):
    """Images side by side, each with its title underneath."""
    fig, axes = plt.subplots(1, len(images), figsize=(2.4 * len(images), 2.9), squeeze=False)
    for ax, image, title in zip(axes[0], images, titles):
        image = np.asarray(image)
        ax.imshow(image.squeeze(), cmap=None if image.ndim == 3 and image.shape[2] == 3 else cmap,
                  interpolation="nearest")
        ax.set_xlabel(title, fontsize=8)
        ax.set_xticks([])
        ax.set_yticks([])
    if suptitle:
        fig.suptitle(suptitle)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def image_grid(rows, row_titles, path, suptitle=None):
    """A grid: one row per entry of `rows` (a list of image lists), titled on the left."""
    columns = max(len(r) for r in rows)
    fig, axes = plt.subplots(len(rows), columns, figsize=(1.9 * columns, 2.1 * len(rows)),
                             squeeze=False)
    for r, (images, title) in enumerate(zip(rows, row_titles)):
        for c in range(columns):
            ax = axes[r][c]
            ax.set_xticks([])
            ax.set_yticks([])
            if c < len(images):
                image, label = images[c]
                image = np.asarray(image)
                ax.imshow(image.squeeze(),
                          cmap=None if image.ndim == 3 and image.shape[2] == 3 else "gray",
                          interpolation="nearest")
                ax.set_xlabel(label, fontsize=7)
            else:
                ax.axis("off")
        axes[r][0].set_ylabel(title, fontsize=8)
    if suptitle:
        fig.suptitle(suptitle)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def feature_maps(maps_by_layer, path, image=None, max_channels=8):
    """One row per layer: its first `max_channels` feature maps for one example."""
    rows, titles = [], []
    if image is not None:
        rows.append([(image, "input")])
        titles.append("input")
    for name, maps in maps_by_layer:
        channels = min(max_channels, maps.shape[-1])
        rows.append([(maps[..., c], f"{name} #{c}") for c in range(channels)])
        titles.append(f"{name}\n{maps.shape[0]}x{maps.shape[1]}x{maps.shape[2]}")
    image_grid(rows, titles, path)
