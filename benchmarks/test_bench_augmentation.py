"""One augmentation layer per training batch: RandomRotation and RandomTranslation (bilinear,
Keras' default "reflect" fill) on 128 images of 28x28x1 and of 32x32x3, at 1 and 2 threads.

convnet is timed as fit runs it: ``layer(x, training=True)``, the random draw included.
torchvision is the usual peer; where it is not installed the same computation is timed in
PyTorch itself (torchvision's tensor rotate is affine_grid + grid_sample; "reflection" padding
without align_corners is Keras' "reflect"), and scipy.ndimage.affine_transform, one image at
a time, stands in for the NumPy world. Both are given the layer's own transforms, and each is
checked against kernels.affine_transform before it is timed.

Run: pytest benchmarks/test_bench_augmentation.py --benchmark-only
"""
import numpy as np
import pytest
import scipy.ndimage
from workloads import torch

from convnet import kernels, layers

try:
    import torchvision.transforms.v2.functional as torchvision_functional
except ImportError:
    torchvision_functional = None

SHAPES = {"128x28x28x1": (128, 28, 28, 1), "128x32x32x3": (128, 32, 32, 3)}
FACTOR = 0.1   # rotations up to 36 degrees; translations up to 10% of each side
IMPLEMENTATIONS = ["convnet", "torch channels_last", "torchvision", "scipy.ndimage"]


def _layer(layer_name):
    if layer_name == "rotation":
        return layers.RandomRotation(FACTOR, seed=0)
    return layers.RandomTranslation(FACTOR, FACTOR, seed=0)


def _grid_sample(x):
    """resample(transforms) by affine_grid + grid_sample on channels_last tensors."""
    h, w = x.shape[1:3]
    tx = torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2))).contiguous(
        memory_format=torch.channels_last)
    # pixel (x, y) <-> grid_sample's normalised (2x + 1) / w - 1 (align_corners=False)
    to_pixels = np.array([[w / 2, 0, (w - 1) / 2], [0, h / 2, (h - 1) / 2], [0, 0, 1]])
    to_unit = np.linalg.inv(to_pixels)

    def resample(transforms):
        matrices = np.stack([to_unit @ np.array([[a0, a1, a2], [b0, b1, b2], [0, 0, 1]])
                             @ to_pixels for a0, a1, a2, b0, b1, b2, _, _ in transforms])
        theta = torch.from_numpy(matrices[:, :2].astype(np.float32))
        with torch.no_grad():
            grid = torch.nn.functional.affine_grid(theta, list(tx.shape), align_corners=False)
            out = torch.nn.functional.grid_sample(tx, grid, mode="bilinear",
                                                  padding_mode="reflection",
                                                  align_corners=False)
        return out.numpy().transpose(0, 2, 3, 1)
    return resample


def _scipy(x):
    """resample(transforms), one scipy.ndimage.affine_transform per image."""
    def resample(transforms):
        out = np.empty_like(x)
        for i, (a0, a1, a2, b0, b1, b2, _, _) in enumerate(transforms):
            # scipy maps an output (row, column, channel) to the input; its "reflect" is Keras'
            scipy.ndimage.affine_transform(
                x[i], np.array([[b1, b0, 0], [a1, a0, 0], [0, 0, 1]]), offset=(b2, a2, 0),
                order=1, mode="reflect", output=out[i])
        return out
    return resample


def _torchvision(layer_name, x):
    """torchvision draws and applies one transform per call: one call per image, as a
    per-image augmentation in a Dataset runs (its own centre and angle conventions)."""
    tx = torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))
    rng = np.random.default_rng(0)
    bilinear = torchvision_functional.InterpolationMode.BILINEAR

    def step():
        if layer_name == "rotation":
            return [torchvision_functional.rotate(image, float(angle), interpolation=bilinear)
                    for image, angle in zip(tx, rng.uniform(-36, 36, len(tx)))]
        shifts = rng.uniform(-FACTOR, FACTOR, (len(tx), 2)) * x.shape[1:3]
        return [torchvision_functional.affine(image, angle=0.0, translate=[dx, dy], scale=1.0,
                                              shear=[0.0], interpolation=bilinear)
                for image, (dy, dx) in zip(tx, shifts.tolist())]
    return step


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
@pytest.mark.parametrize("shape", SHAPES, ids=list(SHAPES))
@pytest.mark.parametrize("layer_name", ["rotation", "translation"])
def test_augmentation_layer(benchmark, threads, layer_name, shape, implementation):
    x = np.random.default_rng(0).uniform(0, 1, SHAPES[shape]).astype(np.float32)
    layer = _layer(layer_name)
    if implementation == "convnet":
        step = lambda: layer(x, training=True)
    elif implementation == "torchvision":
        if torchvision_functional is None:
            pytest.skip("torchvision is not installed")
        step = _torchvision(layer_name, x)
    else:
        if implementation != "scipy.ndimage" and torch is None:
            pytest.skip("PyTorch is not installed")
        resample = _scipy(x) if implementation == "scipy.ndimage" else _grid_sample(x)
        transforms = layer._transforms(*x.shape[:3])
        np.testing.assert_allclose(resample(transforms), kernels.affine_transform(
            x, transforms, "bilinear", "reflect"), atol=1e-4)
        step = lambda: resample(layer._transforms(*x.shape[:3]))
    workload = f"Random{layer_name.title()} {shape}"
    benchmark.group = f"{workload}, {threads} thr"
    benchmark.extra_info.update(workload=workload, implementation=implementation,
                                threads=threads, flops=0)
    benchmark(step)
