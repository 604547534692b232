"""ONNX export: a convnet model as an ONNX graph that ONNX Runtime runs, written with
``onnx.helper`` (tf2onnx is unmaintained and broken for Keras 3; keras2onnx is archived).

The graph is built layer by layer through a registry of emitters, one small function per
layer class: ``emit(layer, builder, input_names) -> output_names``. A Sequential model
chains them; a model whose layers form a graph drives the same emitters node by node
(``emit_layer``).

Layout. convnet's images are NHWC; ONNX's Conv and pooling operators take NCHW. Every
tensor of the graph is one of the model's tensors (its *logical* shape, as the model sees
it) stored in an order of its axes: ``stored = logical.transpose(order)``. A spatial layer asks
for its input stored in NCHW order and leaves its output stored that way; the builder
writes a Transpose only where the stored order differs from the one asked for. A stack of
convolution and pooling layers therefore runs in NCHW after one Transpose at the input,
kernels permuted to (out, in, kh, kw), and the tensor goes back to the model's order only
where order matters: before a Flatten (NHWC's flattening order is not NCHW's: a plain NCHW
Flatten feeding a Dense is silently wrong), before a Dense on images, and at the output.

Padding is always written as explicit pads (ONNX Runtime refuses ``auto_pad=SAME`` with
dilation, and Keras' "same" puts the odd cell after, which only SAME_UPPER matches), so a
"same" padding with strides, or a ceil_mode window, needs the input's height and width;
unknown ones are refused with a clear error. ``ceil_mode`` is written as extra end padding
with ``ceil_mode=0``: ONNX shape inference and ONNX Runtime disagree before opset 22 about
a last window that would start in the padding, and extra padding is exact here (max pooling
pads with -inf; average pooling leaves padded cells out of the divisor, and with
``count_include_pad`` the declared padding is written as zeros by a Pad first).
"""
import math
import os
import tempfile
from dataclasses import dataclass

import numpy as np

try:
    import onnx
    from onnx import helper, numpy_helper
except ImportError as error:  # pragma: no cover - depends on the environment
    raise ImportError('ONNX export needs the onnx package: pip install "convnet[onnx]"') \
        from error

from .. import __version__, activations, kernels
from .. import layers as layers_module
from ..models import Functional, Sequential
from ..utils import conv_output_length, conv_transpose_padding

#: the opsets this exporter writes, each with the oldest IR version that carries it: the
#: file then loads in ONNX Runtimes as old as the opset allows (onnx's own default IR
#: version follows the newest onnx release, which older runtimes refuse).
IR_VERSION_FOR_OPSET = {13: 7, 14: 7, 15: 8, 16: 8, 17: 8, 18: 8, 19: 9, 20: 9, 21: 10, 22: 10}
#: ONNX Runtime 1.12 (2022) and later load opset 17, and it has every operator written here.
DEFAULT_OPSET = 17

#: the operators ONNX Runtime's CPU provider runs in float64 at every opset from 13 to 22
#: (checked with onnxruntime 1.32); Conv, AveragePool, the global pools, Softplus and Elu
#: have float32 kernels only, LeakyRelu and PRelu float64 ones at opsets 16 to 21 only.
FLOAT64_OPS = frozenset({"Add", "Cast", "Concat", "Div", "Flatten", "Gemm", "Greater",
                         "Identity", "MatMul", "Max", "MaxPool", "Min", "Mul", "Neg", "Pad",
                         "ReduceMean", "Relu", "Reshape", "Sigmoid", "Slice", "Softmax", "Sqrt",
                         "Sub", "Tanh", "Transpose", "Where"})

#: the stored order that makes an NHWC tensor NCHW
NHWC_TO_NCHW = (0, 3, 1, 2)
#: Slice's "to the end"
_END = np.iinfo(np.int64).max


# ----------------------------------------------------------------------------- the graph

@dataclass(frozen=True)
class TensorInfo:
    """What the builder knows of a tensor of the graph."""
    shape: tuple    # the model's (logical) shape, batch axis first; None: known at run time
    order: tuple    # how it is stored: stored = logical.transpose(order)
    dtype: np.dtype

    @property
    def stored_shape(self):
        return tuple(self.shape[axis] for axis in self.order)


def _identity(ndim):
    return tuple(range(ndim))


def _value_info(name, info):
    """A graph input or output: the batch axis is the symbolic dimension "batch", other
    unknown sizes are left anonymous."""
    dims = ["batch" if axis == 0 and size is None else size
            for axis, size in enumerate(info.stored_shape)]
    return helper.make_tensor_value_info(name, helper.np_dtype_to_tensor_dtype(info.dtype),
                                         dims)


class GraphBuilder:
    """Collects the nodes, weights, inputs and outputs of one ONNX graph, and what is known of
    each tensor (its logical shape, stored order and dtype, see TensorInfo)."""

    def __init__(self, opset):
        self.opset = opset
        self.nodes, self.initializers, self.inputs, self.outputs = [], [], [], []
        self.info = {}
        self.layer = None           # the layer being emitted, named by errors
        self._names = set()
        self._reserved = set()      # output names kept for add_output
        self._views = {}            # (tensor, order) -> the same tensor stored in that order

    def describe(self):
        return "ONNX export" if self.layer is None else f"ONNX export of {self.layer.describe()}"

    def fresh(self, hint):
        """A tensor name made from `hint` that the graph does not use yet."""
        name, count = hint, 1
        while name in self._names:
            count += 1
            name = f"{hint}:{count}"
        self._names.add(name)
        return name

    def add_input(self, hint, shape, dtype):
        name = self.fresh(hint)
        self.info[name] = TensorInfo(tuple(shape), _identity(len(shape)), np.dtype(dtype))
        self.inputs.append(_value_info(name, self.info[name]))
        return name

    def reserve(self, name):
        """Keep `name` free until add_output gives it to an output of the graph."""
        self._reserved.add(self.fresh(name))

    def add_output(self, tensor, hint):
        """Make `tensor`, in the model's own order, an output of the graph named `hint`."""
        tensor = self.stored(tensor, _identity(len(self.info[tensor].shape)))
        if hint in self._reserved:
            self._reserved.discard(hint)
            self._names.discard(hint)
        name = self.node("Identity", [tensor], hint, like=tensor)
        self.outputs.append(_value_info(name, self.info[name]))
        return name

    def constant(self, value, hint, dtype=None):
        """A weight of the graph (an initializer) holding `value`."""
        name = self.fresh(hint)
        array = np.ascontiguousarray(np.asarray(value, dtype=dtype))
        self.initializers.append(numpy_helper.from_array(array, name))
        return name

    def node(self, op, inputs, hint, shape=None, order=None, dtype=None, like=None,
             **attributes):
        """Append an `op` node; its output (returned) has the given logical shape, stored
        order and dtype, or those of tensor `like`. Refuses a float64 op that ONNX Runtime
        cannot run, naming the layer."""
        if like is not None:
            info = self.info[like]
            shape, order, dtype = info.shape, info.order, info.dtype
        dtype = np.dtype(dtype)
        computes_in_float64 = dtype == np.float64 or any(
            name in self.info and self.info[name].dtype == np.float64 for name in inputs)
        if computes_in_float64 and op not in FLOAT64_OPS:
            raise ValueError(f"{self.describe()}: ONNX Runtime has no float64 kernel for the "
                             f"{op} operator this layer needs; export a float32 model "
                             f"instead (build it with dtype='float32')")
        name = self.fresh(hint)
        self.nodes.append(helper.make_node(op, list(inputs), [name], name=name, **attributes))
        self.info[name] = TensorInfo(tuple(shape), tuple(order), dtype)
        return name

    def stored(self, tensor, order):
        """`tensor` stored in `order` (a Transpose, written once per tensor and order, where
        it is stored otherwise)."""
        order = tuple(order)
        info = self.info[tensor]
        if info.order == order:
            return tensor
        if (tensor, order) not in self._views:
            view = self.node("Transpose", [tensor], f"{tensor}/transpose", info.shape, order,
                             info.dtype, perm=[info.order.index(axis) for axis in order])
            self._views[(tensor, order)] = view
            self._views[(view, info.order)] = tensor
        return self._views[(tensor, order)]

    def cast(self, tensor, dtype):
        """`tensor` in `dtype` (a layer computes in its own dtype, as in convnet)."""
        if self.info[tensor].dtype == dtype:
            return tensor
        info = self.info[tensor]
        return self.node("Cast", [tensor], f"{tensor}/cast", info.shape, info.order, dtype,
                         to=helper.np_dtype_to_tensor_dtype(np.dtype(dtype)))

    def model(self, name, doc_string=""):
        graph = helper.make_graph(self.nodes, name, self.inputs, self.outputs,
                                  self.initializers, doc_string=doc_string)
        return helper.make_model(graph, producer_name="convnet", producer_version=__version__,
                                 opset_imports=[helper.make_opsetid("", self.opset)],
                                 ir_version=IR_VERSION_FOR_OPSET[self.opset])


# ----------------------------------------------------------------------------- operations
# Each takes the model's tensors, in whatever order they are stored, writes its nodes and
# returns its output. The emitters below call them, and so will the emitters of the layers
# still to come (layer normalization, Rescaling and Normalization, the merge layers,
# Reshape, Permute, Cropping2D, UpSampling2D, PReLU, ELU), a few lines each. Their tests
# hold them to NumPy's formula of the operation.

def _nchw_order(data_format):
    """The stored order that puts a 4-D tensor in `data_format` in ONNX's NCHW."""
    return _identity(4) if data_format == "channels_first" else NHWC_TO_NCHW


def _spatial_axes(data_format):
    """The axes of height and width in the model's order."""
    return (2, 3) if data_format == "channels_first" else (1, 2)


def _nchw_shape(shape, data_format):
    return tuple(shape[axis] for axis in _nchw_order(data_format))


def _from_nchw_shape(shape, data_format):
    order = _nchw_order(data_format)
    return tuple(shape[order.index(axis)] for axis in range(4))


def broadcast_constant(builder, x, value, hint):
    """`value`, which broadcasts against the model's tensor `x` by NumPy's rules, as a
    constant in x's dtype that broadcasts against `x` as stored."""
    info = builder.info[x]
    value = np.asarray(value, dtype=info.dtype)
    value = value.reshape((1,) * (len(info.shape) - value.ndim) + value.shape)
    return builder.constant(value.transpose(info.order), hint)


def with_constant(builder, op, x, value, hint):
    """`op` (Add, Sub, Mul, Div, Min, ...) of `x` and a constant that broadcasts against it."""
    constant = broadcast_constant(builder, x, value, f"{hint}/{op.lower()}")
    return builder.node(op, [x, constant], hint, like=x)


def conv2d(builder, x, kernel, bias, strides, dilation, pads, data_format, hint, groups=1):
    """Keras' convolution of `x` by a (kh, kw, in_channels / groups, filters) kernel with
    explicit `pads` [top, left, bottom, right]. With `groups`, each block of
    in_channels / groups channels meets its own block of filters / groups filters (Keras'
    grouping and ONNX's)."""
    info = builder.info[x]
    n, _, h, w = _nchw_shape(info.shape, data_format)
    kh, kw, _, filters = kernel.shape
    out_hw = [conv_output_length(size, k, s, d, pads[i] + pads[i + 2])
              for i, (size, k, s, d) in enumerate(zip((h, w), (kh, kw), strides, dilation))]
    inputs = [builder.stored(x, _nchw_order(data_format)),
              builder.constant(np.transpose(kernel, (3, 2, 0, 1)), f"{hint}/kernel",
                               info.dtype)]
    if bias is not None:
        inputs.append(builder.constant(bias, f"{hint}/bias", info.dtype))
    return builder.node("Conv", inputs, hint,
                        _from_nchw_shape((n, filters, *out_hw), data_format),
                        _nchw_order(data_format), info.dtype, kernel_shape=[kh, kw],
                        strides=list(strides), dilations=list(dilation), pads=list(pads),
                        group=groups)


def depthwise_kernel(kernel):
    """Keras' depthwise (kh, kw, channels, multiplier) kernel as the kernel of a conv2d with
    groups=channels: output channel c * multiplier + m, Keras' order."""
    kh, kw, channels, multiplier = kernel.shape
    return kernel.reshape(kh, kw, 1, channels * multiplier)


def conv2d_transpose(builder, x, kernel, bias, strides, dilation, pads, output_padding,
                     data_format, hint):
    """The transpose of conv2d (Keras' Conv2DTranspose) by a (kh, kw, filters, in_channels)
    kernel: each input pixel adds kernel-weighted copies to a window of the output. `pads`
    [top, left, bottom, right] crop the full result and `output_padding` (smaller than the
    strides, as Keras requires) adds cells at its end:
    out = s * (n - 1) + d * (k - 1) + 1 + output_padding - pads, per axis."""
    info = builder.info[x]
    n, _, h, w = _nchw_shape(info.shape, data_format)
    kh, kw, filters, _ = kernel.shape
    out_hw = [None if size is None else
              s * (size - 1) + d * (k - 1) + 1 + extra - pads[i] - pads[i + 2]
              for i, (size, k, s, d, extra)
              in enumerate(zip((h, w), (kh, kw), strides, dilation, output_padding))]
    inputs = [builder.stored(x, _nchw_order(data_format)),
              builder.constant(np.transpose(kernel, (3, 2, 0, 1)), f"{hint}/kernel",
                               info.dtype)]
    if bias is not None:
        inputs.append(builder.constant(bias, f"{hint}/bias", info.dtype))
    return builder.node("ConvTranspose", inputs, hint,
                        _from_nchw_shape((n, filters, *out_hw), data_format),
                        _nchw_order(data_format), info.dtype, kernel_shape=[kh, kw],
                        strides=list(strides), dilations=list(dilation), pads=list(pads),
                        output_padding=list(output_padding))


def batch_normalization(builder, x, axis, mean, variance, gamma, beta, epsilon, hint):
    """Keras' batch normalization at inference over the model's `axis`: x * inv + shift with
    inv = gamma / sqrt(variance + epsilon) and shift = beta - mean * inv, computed here in
    x's dtype as Keras computes them (gamma, beta None: 1 and 0)."""
    info = builder.info[x]
    dtype = info.dtype
    shape = [1] * len(info.shape)
    shape[axis % len(info.shape)] = -1
    mean, variance = (np.asarray(v, dtype).reshape(shape) for v in (mean, variance))
    inv = dtype.type(1) / np.sqrt(variance + dtype.type(epsilon))
    if gamma is not None:
        inv = inv * np.asarray(gamma, dtype).reshape(shape)
    shift = -mean * inv
    if beta is not None:
        shift = shift + np.asarray(beta, dtype).reshape(shape)
    scaled = with_constant(builder, "Mul", x, inv, f"{hint}/scaled")
    return with_constant(builder, "Add", scaled, shift, hint)


def layer_normalization(builder, x, axes, gamma, beta, epsilon, hint):
    """Keras' layer normalization over the model's `axes` of each example: Keras' moments
    (variance = E[x^2] - E[x]^2), then x * inv + (beta - mean * inv) with
    inv = gamma / sqrt(variance + epsilon); gamma and beta have the sizes of `axes`
    (None: 1 and 0)."""
    info = builder.info[x]
    ndim = len(info.shape)
    axes = sorted(a % ndim for a in ((axes,) if isinstance(axes, int) else axes))
    kept = tuple(1 if axis in axes else size for axis, size in enumerate(info.shape))
    stored_axes = sorted(info.order.index(axis) for axis in axes)

    def reduce_mean(t, name):
        # opset 18 moved ReduceMean's axes from an attribute to an input
        if builder.opset >= 18:
            axes_input = builder.constant(stored_axes, f"{name}/axes", np.int64)
            return builder.node("ReduceMean", [t, axes_input], name, kept, info.order,
                                info.dtype, keepdims=1)
        return builder.node("ReduceMean", [t], name, kept, info.order, info.dtype,
                            axes=stored_axes, keepdims=1)

    mean = reduce_mean(x, f"{hint}/mean")
    square = builder.node("Mul", [x, x], f"{hint}/square", like=x)
    mean_squared = builder.node("Mul", [mean, mean], f"{hint}/mean_squared", like=mean)
    variance = builder.node("Sub", [reduce_mean(square, f"{hint}/mean_square"), mean_squared],
                            f"{hint}/variance", like=mean)
    std = builder.node("Sqrt", [with_constant(builder, "Add", variance, epsilon,
                                              f"{hint}/variance_epsilon")],
                       f"{hint}/std", like=mean)
    inv = builder.node("Div", [broadcast_constant(builder, mean, 1, f"{hint}/one"), std],
                       f"{hint}/inv", like=mean)
    sizes = [size if axis in axes else 1 for axis, size in enumerate(info.shape)]
    if gamma is not None:
        inv = builder.node("Mul", [inv, broadcast_constant(builder, x, np.reshape(gamma, sizes),
                                                           f"{hint}/gamma")],
                           f"{hint}/inv_gamma", like=x)
    shift = builder.node("Mul", [builder.node("Neg", [mean], f"{hint}/minus_mean", like=mean),
                                 inv], f"{hint}/shift", like=inv)
    if beta is not None:
        shift = with_constant(builder, "Add", shift, np.reshape(beta, sizes), f"{hint}/beta")
    return builder.node("Add", [builder.node("Mul", [x, inv], f"{hint}/scaled", like=x), shift],
                        hint, like=x)


def merge(builder, op, tensors, hint):
    """Keras' Add, Subtract, Multiply, Maximum and Minimum: `op` (Add, Sub, Mul, Max, Min)
    folded from the left over tensors of one shape, in the first one's stored order."""
    order = builder.info[tensors[0]].order
    y, *rest = [builder.stored(t, order) for t in tensors]
    for i, t in enumerate(rest):
        y = builder.node(op, [y, t], hint if i == len(rest) - 1 else f"{hint}/{i}", like=y)
    return y


def average(builder, tensors, hint):
    """Keras' Average: the sum, divided by the count."""
    total = merge(builder, "Add", tensors, f"{hint}/sum")
    return with_constant(builder, "Div", total, len(tensors), hint)


def concatenate(builder, tensors, axis, hint):
    """Keras' Concatenate along the model's `axis`, in the first tensor's stored order."""
    info = builder.info[tensors[0]]
    tensors = [builder.stored(t, info.order) for t in tensors]
    axis %= len(info.shape)
    sizes = [builder.info[t].shape[axis] for t in tensors]
    shape = list(info.shape)
    shape[axis] = None if None in sizes else sum(sizes)
    return builder.node("Concat", tensors, hint, shape, info.order, info.dtype,
                        axis=info.order.index(axis))


def reshape(builder, x, target_shape, hint):
    """Keras' Reshape: each example to `target_shape` (one -1 allowed), in the model's
    order."""
    x = builder.stored(x, _identity(len(builder.info[x].shape)))
    info = builder.info[x]
    shape = list(target_shape)
    if -1 in shape:
        # math.prod(shape) counts the -1: it is minus the product of the known sizes
        shape[shape.index(-1)] = (None if None in info.shape[1:]
                                  else math.prod(info.shape[1:]) // -math.prod(shape))
    spec = builder.constant([0, *target_shape], f"{hint}/shape", np.int64)  # 0: the batch
    return builder.node("Reshape", [x, spec], hint, (info.shape[0], *shape),
                        _identity(1 + len(shape)), info.dtype)


def permute(builder, x, dims, hint):
    """Keras' Permute: the axes of each example in the order `dims` (counted from 1). The
    data need not move: the stored tensor is the permuted one, stored in another order."""
    info = builder.info[x]
    perm = (0, *dims)
    return builder.node("Identity", [x], hint, tuple(info.shape[axis] for axis in perm),
                        tuple(perm.index(axis) for axis in info.order), info.dtype)


def crop2d(builder, x, cropping, data_format, hint):
    """Keras' Cropping2D: ((top, bottom), (left, right)) cells off the edges of the images,
    at any image size, in the order the data are stored."""
    info = builder.info[x]
    axes = _spatial_axes(data_format)
    (top, bottom), (left, right) = cropping
    shape = list(info.shape)
    for axis, (before, after) in zip(axes, cropping):
        shape[axis] = None if shape[axis] is None else shape[axis] - before - after
    bounds = [builder.constant([top, left], f"{hint}/starts", np.int64),
              builder.constant([-bottom if bottom else _END, -right if right else _END],
                               f"{hint}/ends", np.int64),
              builder.constant([info.order.index(axis) for axis in axes], f"{hint}/axes",
                               np.int64)]
    return builder.node("Slice", [x, *bounds], hint, shape, info.order, info.dtype)


#: Resize's attributes for Keras' interpolations when enlarging: "nearest" repeats each
#: pixel; "bilinear" weighs the two nearest pixels with half-pixel centres, the edges
#: clamped (Keras' resize, whose antialiasing only acts when shrinking)
_RESIZE_MODES = {
    "nearest": dict(mode="nearest", coordinate_transformation_mode="asymmetric",
                    nearest_mode="floor"),
    "bilinear": dict(mode="linear", coordinate_transformation_mode="half_pixel"),
}


def upsample2d(builder, x, size, interpolation, data_format, hint):
    """Keras' UpSampling2D: the images `size` = (height, width) times larger."""
    if interpolation not in _RESIZE_MODES:
        raise ValueError(f"{builder.describe()}: interpolation {interpolation!r} has no ONNX "
                         f"form here; {sorted(_RESIZE_MODES)} do")
    info = builder.info[x]
    factors = [1] * len(info.shape)
    for axis, factor in zip(_spatial_axes(data_format), size):
        factors[axis] = factor
    scales = builder.constant([factors[axis] for axis in info.order], f"{hint}/scales",
                              np.float32)
    shape = tuple(None if n is None else n * f for n, f in zip(info.shape, factors))
    return builder.node("Resize", [x, "", scales], hint, shape, info.order, info.dtype,
                        **_RESIZE_MODES[interpolation])


def below_threshold(builder, x, slope, threshold, hint):
    """x where x > threshold, else slope * (x - threshold): NumPy's formula in x's dtype,
    for Keras' ReLU, LeakyReLU and PReLU (whose `slope` is an array that broadcasts against
    an example). ONNX's LeakyRelu and PRelu compute the same at threshold 0, but ONNX Runtime
    has their float64 kernels at opsets 16 to 21 only, and LeakyRelu's float attribute would
    round a float64 model's slope to float32."""
    info = builder.info[x]
    t = broadcast_constant(builder, x, threshold, f"{hint}/threshold")
    above = builder.node("Greater", [x, t], f"{hint}/above", info.shape, info.order, bool)
    shifted = builder.node("Sub", [x, t], f"{hint}/shifted", like=x) if threshold else x
    below = with_constant(builder, "Mul", shifted, slope, f"{hint}/below")
    return builder.node("Where", [above, x, below], hint, like=x)


def elu(builder, x, alpha, hint):
    """Keras' ELU: x where x > 0, else alpha * (exp(x) - 1)."""
    return builder.node("Elu", [x], hint, like=x, alpha=float(alpha))


# ----------------------------------------------------------------------------- emitters

#: layer class -> emit(layer, builder, input_names) -> output_names. Looked up by the
#: exact class: a subclass may compute something else, so it needs its own emitter.
EMITTERS = {}


def register(*classes):
    """Register the decorated function as the emitter of `classes`."""
    def decorate(emit):
        for cls in classes:
            EMITTERS[cls] = emit
        return emit
    return decorate


def emit_layer(layer, builder, inputs):
    """The ONNX nodes of one call of `layer` on the tensors `inputs`; returns its outputs."""
    emit = EMITTERS.get(type(layer))
    if emit is None:
        known = ", ".join(sorted(cls.__name__ for cls in EMITTERS))
        raise ValueError(f"ONNX export: {layer.describe()} is of class "
                         f"{type(layer).__name__}, which the ONNX exporter does not know; "
                         f"it exports {known}")
    builder.layer = layer
    outputs = emit(layer, builder, [builder.cast(x, layer.dtype) for x in inputs])
    builder.layer = None
    return outputs


def _unknown_size_error(builder, shape, what):
    return ValueError(f"{builder.describe()}: {what} needs the input's height and width to "
                      f"write explicit ONNX pads, but the layer's input shape {shape} leaves "
                      f"them unknown. Give the model's input shape with those sizes at export "
                      f"(input_signature=[shape]) or build the model with a fixed-size Input.")


def _explicit_pads(layer, builder, shape, kernel, strides, dilation, ceil_mode=False):
    """ONNX ``pads`` [top, left, bottom, right] of a window sliding over the layer's input of
    logical `shape`: the layer's padding resolved (Keras' "same" rule), plus, for
    ``ceil_mode``, the end padding that makes a floor-mode window reach convnet's ceil-mode
    output length (a window that would start in the end padding is dropped, PyTorch's rule).
    """
    hw = tuple(shape[axis] for axis in _spatial_axes(layer.data_format))
    begins, ends = [], []
    for axis, (n, k, s, d) in enumerate(zip(hw, kernel, strides, dilation)):
        if n is None and s > 1 and (layer.padding == "same" or ceil_mode):
            what = "padding='same'" if layer.padding == "same" else "ceil_mode=True"
            raise _unknown_size_error(builder, shape, f"{what} with strides {tuple(strides)}")
        if n is None and layer.padding == "same":
            # At stride 1 "same" pads d*(k-1) cells whatever the size.
            before, after = (d * (k - 1)) // 2, d * (k - 1) - (d * (k - 1)) // 2
        else:
            before, after = kernels.resolve_padding(layer.padding, kernel, strides, dilation,
                                                    hw, layer.describe())[axis]
        if ceil_mode and n is not None:
            out = conv_output_length(n, k, s, d, before + after, True, before)
            after = max(after, (out - 1) * s + d * (k - 1) + 1 - n - before)
        begins.append(before)
        ends.append(after)
    return begins + ends


def _spatial_output(layer, builder, shape, op, inputs, **attributes):
    """Append the layer's `op` on NCHW `inputs` (the layer's input had logical `shape`); the
    output is stored NCHW too."""
    return builder.node(op, inputs, _before_activation(layer), layer.compute_output_shape(shape),
                        _nchw_order(layer.data_format), layer.dtype, **attributes)


def _before_activation(layer):
    """The name of a layer's result before its activation; the layer's name is the after's."""
    return layer.name if layer.activation is None else f"{layer.name}/linear"


@register(layers_module.InputLayer, layers_module.Dropout, layers_module.RandomFlip,
          layers_module.RandomTranslation, layers_module.RandomRotation,
          layers_module.RandomZoom, layers_module.RandomContrast,
          layers_module.RandomBrightness)
def _emit_identity(layer, builder, inputs):
    """Dropout and the augmentation layers (but RandomCrop) are the identity at inference;
    an InputLayer only declares the input."""
    return list(inputs)


@register(layers_module.RandomCrop)
def _emit_random_crop(layer, builder, inputs):
    """RandomCrop at inference: its centred window (a Slice), resized to (height, width)
    with half-pixel centres and clamped edges where the window is not that size."""
    (x,) = inputs
    info = builder.info[x]
    axes = _spatial_axes(layer.data_format)
    hw = tuple(info.shape[axis] for axis in axes)
    if None in hw:
        raise _unknown_size_error(builder, info.shape, "RandomCrop's centred window")
    top, left, rows, columns = layer.crop_window(*hw, training=False)
    cropping = ((top, hw[0] - top - rows), (left, hw[1] - left - columns))
    resized = (rows, columns) != (layer.height, layer.width)
    hint = f"{layer.name}/crop" if resized else layer.name
    if any(sum(pair) for pair in cropping):
        window = crop2d(builder, x, cropping, layer.data_format, hint)
    else:
        window = builder.node("Identity", [x], hint, like=x)
    if not resized:
        return [window]
    factors = [1.0] * 4
    for axis, size, target in zip(axes, (rows, columns), (layer.height, layer.width)):
        factors[axis] = _resize_scale(size, target)
    scales = builder.constant([factors[axis] for axis in info.order], f"{layer.name}/scales",
                              np.float32)
    shape = list(info.shape)
    shape[axes[0]], shape[axes[1]] = layer.height, layer.width
    return [builder.node("Resize", [window, "", scales], layer.name, tuple(shape), info.order,
                         info.dtype, **_RESIZE_MODES["bilinear"])]


def _resize_scale(size, target):
    """The float32 scale that Resize turns into `target` cells out of `size`: target / size,
    rounded up to where floor(size * scale) reaches target (the rounded-down quotient can
    floor to target - 1)."""
    scale = np.float32(target / size)
    while float(scale) * size < target:
        scale = np.nextafter(scale, np.float32(np.inf))
    return float(scale)


@register(layers_module.Conv2D)
def _emit_conv2d(layer, builder, inputs):
    (x,) = inputs
    pads = _explicit_pads(layer, builder, builder.info[x].shape, layer.kernel_size,
                          layer.strides, layer.dilation_rate)
    z = conv2d(builder, x, layer.kernel, layer.bias, layer.strides, layer.dilation_rate, pads,
               layer.data_format, _before_activation(layer), groups=layer.groups)
    return [emit_activation(layer.activation, builder, z, layer.name)]


def _depthwise(layer, builder, x, kernel, bias, hint):
    """Keras' depthwise convolution of the layer's window: a Conv with one group per
    input channel."""
    pads = _explicit_pads(layer, builder, builder.info[x].shape, layer.kernel_size,
                          layer.strides, layer.dilation_rate)
    kernel = np.asarray(kernel)
    return conv2d(builder, x, depthwise_kernel(kernel), bias, layer.strides, layer.dilation_rate,
                  pads, layer.data_format, hint, groups=kernel.shape[2])


@register(layers_module.DepthwiseConv2D)
def _emit_depthwise_conv2d(layer, builder, inputs):
    (x,) = inputs
    z = _depthwise(layer, builder, x, layer.kernel, layer.bias, _before_activation(layer))
    return [emit_activation(layer.activation, builder, z, layer.name)]


@register(layers_module.SeparableConv2D)
def _emit_separable_conv2d(layer, builder, inputs):
    """The depthwise Conv (no bias), then a 1x1 Conv with the bias."""
    (x,) = inputs
    depthwise = _depthwise(layer, builder, x, layer.depthwise_kernel, None,
                           f"{layer.name}/depthwise")
    z = conv2d(builder, depthwise, layer.pointwise_kernel, layer.bias, (1, 1), (1, 1),
               [0, 0, 0, 0], layer.data_format, _before_activation(layer))
    return [emit_activation(layer.activation, builder, z, layer.name)]


@register(layers_module.Conv2DTranspose)
def _emit_conv2d_transpose(layer, builder, inputs):
    """ConvTranspose with Keras' output size: its full result (n-1)*s + k cut by the crop
    Keras' rule gives at the start and, at the end, by what is left over, or lengthened by
    output_padding where Keras' output is longer than the full result. Both amounts are the
    same for every input size, so a size left as None exports too."""
    (x,) = inputs
    begins, ends, extra = [], [], []
    for axis, (k, s, d) in enumerate(zip(layer.kernel_size, layer.strides,
                                         layer.dilation_rate)):
        output_padding = None if layer.output_padding is None else layer.output_padding[axis]
        length, crop = conv_transpose_padding(1, k, s, layer.padding, output_padding, d)
        after = d * (k - 1) + 1 - crop - length     # at n = 1 the full result is k long
        begins.append(crop)
        ends.append(max(after, 0))
        extra.append(max(-after, 0))
    z = conv2d_transpose(builder, x, layer.kernel, layer.bias, layer.strides,
                         layer.dilation_rate, begins + ends, extra, layer.data_format,
                         _before_activation(layer))
    return [emit_activation(layer.activation, builder, z, layer.name)]


@register(layers_module.BatchNormalization)
def _emit_batch_normalization(layer, builder, inputs):
    """The inference map with the moving statistics (an exported model only infers)."""
    (x,) = inputs
    return [batch_normalization(builder, x, layer.axis, layer.moving_mean.numpy(),
                                layer.moving_variance.numpy(),
                                None if layer.gamma is None else layer.gamma.numpy(),
                                None if layer.beta is None else layer.beta.numpy(),
                                layer.epsilon, layer.name)]


@register(layers_module.Dense)
def _emit_dense(layer, builder, inputs):
    (x,) = inputs
    info = builder.info[x]
    last = len(info.shape) - 1
    if info.order[-1] != last:
        # MatMul contracts the stored last axis, which must be the model's last axis.
        x = builder.stored(x, _identity(len(info.shape)))
        info = builder.info[x]
    kernel = builder.constant(layer.kernel, f"{layer.name}/kernel")
    bias = [builder.constant(layer.bias, f"{layer.name}/bias")] if layer.use_bias else []
    shape = layer.compute_output_shape(info.shape)
    name = _before_activation(layer)
    if len(shape) == 2:
        z = builder.node("Gemm", [x, kernel, *bias], name, shape, info.order, layer.dtype)
    else:
        z = builder.node("MatMul", [x, kernel], f"{layer.name}/matmul" if bias else name,
                         shape, info.order, layer.dtype)
        if bias:
            z = builder.node("Add", [z, *bias], name, like=z)
    return [emit_activation(layer.activation, builder, z, layer.name)]


@register(layers_module.Flatten)
def _emit_flatten(layer, builder, inputs):
    (x,) = inputs
    shape = builder.info[x].shape
    order = _identity(len(shape))
    if layer.data_format == "channels_first" and len(shape) > 2:
        order = (0, *range(2, len(shape)), 1)  # convnet moves the channels last first
    y = builder.node("Flatten", [builder.stored(x, order)], layer.name,
                     layer.compute_output_shape(shape), _identity(2), layer.dtype, axis=1)
    return [y]


@register(layers_module.Activation, layers_module.ReLU, layers_module.Softmax)
def _emit_activation_layer(layer, builder, inputs):
    (x,) = inputs
    return [emit_activation(layer.activation, builder, x, layer.name)]


@register(layers_module.ZeroPadding2D)
def _emit_zero_padding2d(layer, builder, inputs):
    (x,) = inputs
    (top, bottom), (left, right) = layer.padding
    pads = builder.constant([0, 0, top, left, 0, 0, bottom, right], f"{layer.name}/pads",
                            np.int64)
    return [_spatial_output(layer, builder, builder.info[x].shape, "Pad",
                            [builder.stored(x, _nchw_order(layer.data_format)), pads])]


@register(layers_module.MaxPooling2D)
def _emit_max_pooling2d(layer, builder, inputs):
    (x,) = inputs
    shape = builder.info[x].shape
    pads = _explicit_pads(layer, builder, shape, layer.pool_size, layer.strides, (1, 1),
                          layer.ceil_mode)
    return [_spatial_output(layer, builder, shape, "MaxPool",
                            [builder.stored(x, _nchw_order(layer.data_format))],
                            kernel_shape=list(layer.pool_size), strides=list(layer.strides),
                            pads=pads)]


@register(layers_module.AveragePooling2D)
def _emit_average_pooling2d(layer, builder, inputs):
    (x,) = inputs
    shape = builder.info[x].shape
    pads = _explicit_pads(layer, builder, shape, layer.pool_size, layer.strides, (1, 1),
                          layer.ceil_mode)
    x = builder.stored(x, _nchw_order(layer.data_format))
    if layer.count_include_pad:
        # The declared padding is counted in a window's divisor, the ceil_mode overhang is
        # not (PyTorch's rule, convnet's): write the declared padding as zeros, and let
        # AveragePool leave only the overhang out.
        declared = _explicit_pads(layer, builder, shape, layer.pool_size, layer.strides,
                                  (1, 1))
        padded_shape = list(shape)
        for axis, before, after in zip(_spatial_axes(layer.data_format),
                                       declared[:2], declared[2:]):
            padded_shape[axis] = None if shape[axis] is None else shape[axis] + before + after
        padding = builder.constant([0, 0, *declared[:2], 0, 0, *declared[2:]],
                                   f"{layer.name}/pads", np.int64)
        x = builder.node("Pad", [x, padding], f"{layer.name}/pad", padded_shape,
                         builder.info[x].order, layer.dtype)
        pads = [0, 0, pads[2] - declared[2], pads[3] - declared[3]]
    return [_spatial_output(layer, builder, shape, "AveragePool", [x],
                            kernel_shape=list(layer.pool_size), strides=list(layer.strides),
                            pads=pads, count_include_pad=0)]


@register(layers_module.Add, layers_module.Subtract, layers_module.Multiply,
          layers_module.Maximum, layers_module.Minimum)
def _emit_merge(layer, builder, inputs):
    op = {layers_module.Add: "Add", layers_module.Subtract: "Sub",
          layers_module.Multiply: "Mul", layers_module.Maximum: "Max",
          layers_module.Minimum: "Min"}[type(layer)]
    return [merge(builder, op, list(inputs), layer.name)]


@register(layers_module.Average)
def _emit_average(layer, builder, inputs):
    return [average(builder, list(inputs), layer.name)]


@register(layers_module.Concatenate)
def _emit_concatenate(layer, builder, inputs):
    return [concatenate(builder, list(inputs), layer.axis, layer.name)]


def _emit_global_pooling2d(op):
    def emit(layer, builder, inputs):
        (x,) = inputs
        shape = builder.info[x].shape
        batch, channels, _, _ = _nchw_shape(shape, layer.data_format)
        kept = _from_nchw_shape((batch, channels, 1, 1), layer.data_format)
        pooled = builder.node(op, [builder.stored(x, _nchw_order(layer.data_format))],
                              layer.name if layer.keepdims else f"{layer.name}/{op}", kept,
                              _nchw_order(layer.data_format), layer.dtype)
        if layer.keepdims:
            return [pooled]
        # the pooled (N, C, 1, 1), stored so, flattens to (N, C)
        return [builder.node("Flatten", [pooled], layer.name, (batch, channels),
                             _identity(2), layer.dtype, axis=1)]
    return emit


register(layers_module.GlobalAveragePooling2D)(_emit_global_pooling2d("GlobalAveragePool"))
register(layers_module.GlobalMaxPooling2D)(_emit_global_pooling2d("GlobalMaxPool"))


# -- shape, regularization, activation, normalization and preprocessing layers (issue 14) --

# The identity at inference; an activity penalty only adds to the training loss.
register(layers_module.Identity, layers_module.SpatialDropout2D, layers_module.GaussianNoise,
         layers_module.GaussianDropout, layers_module.ActivityRegularization)(_emit_identity)
register(layers_module.LeakyReLU)(_emit_activation_layer)


@register(layers_module.Reshape)
def _emit_reshape(layer, builder, inputs):
    return [reshape(builder, inputs[0], layer.target_shape, layer.name)]


@register(layers_module.Permute)
def _emit_permute(layer, builder, inputs):
    return [permute(builder, inputs[0], layer.dims, layer.name)]


@register(layers_module.Cropping2D)
def _emit_cropping2d(layer, builder, inputs):
    return [crop2d(builder, inputs[0], layer.cropping, layer.data_format, layer.name)]


@register(layers_module.UpSampling2D)
def _emit_up_sampling2d(layer, builder, inputs):
    return [upsample2d(builder, inputs[0], layer.size, layer.interpolation, layer.data_format,
                       layer.name)]


@register(layers_module.ELU)
def _emit_elu_layer(layer, builder, inputs):
    return [elu(builder, inputs[0], layer.alpha, layer.name)]


@register(layers_module.PReLU)
def _emit_prelu(layer, builder, inputs):
    return [below_threshold(builder, inputs[0], layer.alpha.numpy(), 0, layer.name)]


@register(layers_module.LayerNormalization)
def _emit_layer_normalization(layer, builder, inputs):
    if layer.rms_scaling:
        raise ValueError(f"{builder.describe()}: rms_scaling=True (deprecated in Keras 3) has "
                         f"no ONNX form in this exporter")
    weights = [None if w is None else w.numpy() for w in (layer.gamma, layer.beta)]
    return [layer_normalization(builder, inputs[0], layer.axis, *weights, layer.epsilon,
                                layer.name)]


@register(layers_module.Normalization)
def _emit_normalization(layer, builder, inputs):
    """The statistics as they are at export: (x - mean) / std, or mean + x * std."""
    mean, std = layer._statistics()
    if layer.invert:
        scaled = with_constant(builder, "Mul", inputs[0], std, f"{layer.name}/scaled")
        return [with_constant(builder, "Add", scaled, mean, layer.name)]
    centered = with_constant(builder, "Sub", inputs[0], mean, f"{layer.name}/centered")
    return [with_constant(builder, "Div", centered, std, layer.name)]


@register(layers_module.Rescaling)
def _emit_rescaling(layer, builder, inputs):
    scaled = with_constant(builder, "Mul", inputs[0], layer._scale(), f"{layer.name}/scaled")
    return [with_constant(builder, "Add", scaled, layer.offset, layer.name)]


#: Resize's attributes for Keras' resize to a given size: half-pixel centres; "nearest"
#: takes floor((dst + 0.5) * in / out), which is ONNX's half_pixel source rounded half up
_RESIZE_TO_SIZE = {
    "nearest": dict(mode="nearest", coordinate_transformation_mode="half_pixel",
                    nearest_mode="round_prefer_ceil"),
    "bilinear": dict(mode="linear", coordinate_transformation_mode="half_pixel"),
}


@register(layers_module.Resizing, layers_module.CenterCrop)
def _emit_resampling(layer, builder, inputs):
    """The layer's crop (Slice) or padding (Pad), worked out from the input's height and
    width, then a Resize to (height, width) where the size changes."""
    (x,) = inputs
    info = builder.info[x]
    axes = _spatial_axes(layer.data_format)
    h, w = (info.shape[axis] for axis in axes)
    if h is None or w is None:
        raise _unknown_size_error(builder, info.shape, f"{type(layer).__name__}'s crop, "
                                                       f"padding and resize")
    box = layer._box(h, w)
    shape = list(info.shape)
    if box is not None:
        if min(min(pair) for pair in box) >= 0:
            x = crop2d(builder, x, box, layer.data_format, f"{layer.name}/crop")
        else:
            x = builder.stored(x, _nchw_order(layer.data_format))
            (top, bottom), (left, right) = box
            pads = builder.constant([0, 0, -top, -left, 0, 0, -bottom, -right],
                                    f"{layer.name}/pads", np.int64)
            fill = builder.constant(np.asarray(layer.fill_value, info.dtype),
                                    f"{layer.name}/fill_value")
            for axis, (before, after) in zip(axes, box):
                shape[axis] -= before + after
            x = builder.node("Pad", [x, pads, fill], f"{layer.name}/pad", shape,
                             builder.info[x].order, info.dtype)
    current = builder.info[x]
    if tuple(current.shape[axis] for axis in axes) == (layer.height, layer.width):
        return [builder.node("Identity", [x], layer.name, like=x)]
    out_shape = list(current.shape)
    out_shape[axes[0]], out_shape[axes[1]] = layer.height, layer.width
    if info.dtype == np.float64:
        raise ValueError(f"{builder.describe()}: ONNX Runtime has no float64 kernel for the "
                         f"Resize operator this layer needs; export a float32 model instead "
                         f"(build it with dtype='float32')")
    # The batch keeps its size; "sizes" needs every axis, so the batch's is read off x.
    stored_shape = builder.node("Shape", [x], f"{layer.name}/input_shape", (len(out_shape),),
                                (0,), np.int64)
    first = [builder.constant([i], f"{layer.name}/batch_{i}", np.int64) for i in (0, 1)]
    batch = builder.node("Slice", [stored_shape, *first], f"{layer.name}/batch", (1,), (0,),
                         np.int64)
    rest = builder.constant([out_shape[axis] for axis in current.order[1:]],
                            f"{layer.name}/sizes", np.int64)
    sizes = builder.node("Concat", [batch, rest], f"{layer.name}/sizes", (len(out_shape),),
                         (0,), np.int64, axis=0)
    return [builder.node("Resize", [x, "", "", sizes], layer.name, tuple(out_shape),
                         current.order, info.dtype, **_RESIZE_TO_SIZE[layer.interpolation])]


# -- end of the issue 14 layers --


# ----------------------------------------------------------------------------- activations

#: activation class -> emit(activation, builder, x, hint) -> y, stored like x
ACTIVATION_EMITTERS = {}


def emit_activation(activation, builder, x, hint):
    """`activation` (from convnet.activations, or None) applied to tensor `x`."""
    if activation is None:
        return x
    emit = ACTIVATION_EMITTERS.get(type(activation))
    if emit is None:
        raise ValueError(f"{builder.describe()}: the activation {activation.name!r} has no "
                         f"ONNX form in this exporter")
    return emit(activation, builder, x, hint)


def _register_activation(cls):
    def decorate(emit):
        ACTIVATION_EMITTERS[cls] = emit
        return emit
    return decorate


@_register_activation(activations.Linear)
def _emit_linear(activation, builder, x, hint):
    return x


def _elementwise(op):
    def emit(activation, builder, x, hint):
        return builder.node(op, [x], hint, like=x)
    return emit


_register_activation(activations.Sigmoid)(_elementwise("Sigmoid"))
_register_activation(activations.Tanh)(_elementwise("Tanh"))
_register_activation(activations.Softplus)(_elementwise("Softplus"))


@_register_activation(activations.ELU)
def _emit_elu(activation, builder, x, hint):
    return elu(builder, x, activation.alpha, hint)


@_register_activation(activations.LeakyReLU)
def _emit_leaky_relu(activation, builder, x, hint):
    return below_threshold(builder, x, activation.negative_slope, 0, hint)


@_register_activation(activations.SiLU)
def _emit_silu(activation, builder, x, hint):
    return builder.node("Mul", [x, builder.node("Sigmoid", [x], f"{hint}/sigmoid", like=x)],
                        hint, like=x)


@_register_activation(activations.Softmax)
def _emit_softmax(activation, builder, x, hint):
    info = builder.info[x]
    axis = activation.axis % len(info.shape)
    return builder.node("Softmax", [x], hint, like=x, axis=info.order.index(axis))


@_register_activation(activations.ReLU)
def _emit_relu(activation, builder, x, hint):
    """Keras' ReLU: x above the threshold, negative_slope * (x - threshold) below it, then
    capped at max_value; each option adds its nodes only when it is set."""
    slope, threshold, max_value = (activation.negative_slope, activation.threshold,
                                   activation.max_value)
    capped = max_value is not None
    name = f"{hint}/relu" if capped else hint
    if threshold == 0 and slope == 0:
        y = builder.node("Relu", [x], name, like=x)
    else:
        y = below_threshold(builder, x, slope, threshold, name)
    if capped:
        y = with_constant(builder, "Min", y, max_value, hint)
    return y


# -- the activations Keras 3 names (issue 14): each Keras formula in ONNX operators --

_register_activation(activations.Exponential)(_elementwise("Exp"))
_register_activation(activations.Softsign)(_elementwise("Softsign"))


@_register_activation(activations.GELU)
def _emit_gelu(activation, builder, x, hint):
    """0.5 * x * (1 + erf(x / sqrt(2))), or with approximate=True
    0.5 * x * (1 + tanh(sqrt(2 / pi) * (x + 0.044715 * x**3)))."""
    if activation.approximate:
        cube = builder.node("Mul", [builder.node("Mul", [x, x], f"{hint}/square", like=x), x],
                            f"{hint}/cube", like=x)
        inner = builder.node("Add", [x, with_constant(builder, "Mul", cube, 0.044715,
                                                      f"{hint}/cubic")], f"{hint}/inner",
                             like=x)
        bend = builder.node("Tanh", [with_constant(builder, "Mul", inner,
                                                   math.sqrt(2 / math.pi), f"{hint}/scaled")],
                            f"{hint}/tanh", like=x)
    else:
        bend = builder.node("Erf", [with_constant(builder, "Mul", x, 1 / math.sqrt(2),
                                                  f"{hint}/scaled")], f"{hint}/erf", like=x)
    half_x = with_constant(builder, "Mul", x, 0.5, f"{hint}/half")
    return builder.node("Mul", [half_x, with_constant(builder, "Add", bend, 1.0,
                                                      f"{hint}/one_plus")], hint, like=x)


@_register_activation(activations.SELU)
def _emit_selu(activation, builder, x, hint):
    return builder.node("Selu", [x], hint, like=x, alpha=activation.alpha,
                        gamma=activation.scale)


@_register_activation(activations.CELU)
def _emit_celu(activation, builder, x, hint):
    return builder.node("Celu", [x], hint, like=x, alpha=float(activation.alpha))


@_register_activation(activations.HardSigmoid)
def _emit_hard_sigmoid(activation, builder, x, hint):
    """Keras 3's clip(x / 6 + 0.5, 0, 1)."""
    return builder.node("HardSigmoid", [x], hint, like=x, alpha=1 / 6, beta=0.5)


@_register_activation(activations.HardSiLU)
def _emit_hard_silu(activation, builder, x, hint):
    gate = builder.node("HardSigmoid", [x], f"{hint}/gate", like=x, alpha=1 / 6, beta=0.5)
    return builder.node("Mul", [x, gate], hint, like=x)


@_register_activation(activations.Mish)
def _emit_mish(activation, builder, x, hint):
    softplus = builder.node("Softplus", [x], f"{hint}/softplus", like=x)
    return builder.node("Mul", [x, builder.node("Tanh", [softplus], f"{hint}/tanh", like=x)],
                        hint, like=x)


@_register_activation(activations.ReLU6)
def _emit_relu6(activation, builder, x, hint):
    return with_constant(builder, "Min", builder.node("Relu", [x], f"{hint}/relu", like=x),
                         6.0, hint)


@_register_activation(activations.HardTanh)
def _emit_hard_tanh(activation, builder, x, hint):
    return with_constant(builder, "Min", with_constant(builder, "Max", x, -1.0,
                                                       f"{hint}/floor"), 1.0, hint)


@_register_activation(activations.LogSigmoid)
def _emit_log_sigmoid(activation, builder, x, hint):
    """-softplus(-x)."""
    minus_x = builder.node("Neg", [x], f"{hint}/minus", like=x)
    softplus = builder.node("Softplus", [minus_x], f"{hint}/softplus", like=x)
    return builder.node("Neg", [softplus], hint, like=x)


@_register_activation(activations.TanhShrink)
def _emit_tanh_shrink(activation, builder, x, hint):
    return builder.node("Sub", [x, builder.node("Tanh", [x], f"{hint}/tanh", like=x)], hint,
                        like=x)


@_register_activation(activations.LogSoftmax)
def _emit_log_softmax(activation, builder, x, hint):
    info = builder.info[x]
    axis = activation.axis % len(info.shape)
    return builder.node("LogSoftmax", [x], hint, like=x, axis=info.order.index(axis))


# -- end of the issue 14 activations --


# ----------------------------------------------------------------------------- models

def _check_opset(opset_version):
    if opset_version is None:
        return DEFAULT_OPSET
    if (isinstance(opset_version, bool) or not isinstance(opset_version, (int, np.integer))
            or int(opset_version) not in IR_VERSION_FOR_OPSET):
        raise ValueError(f"ONNX export: opset_version must be an int from "
                         f"{min(IR_VERSION_FOR_OPSET)} to {max(IR_VERSION_FOR_OPSET)} "
                         f"(default {DEFAULT_OPSET}), got {opset_version!r}")
    return int(opset_version)


def _is_size(value):
    return value is None or (isinstance(value, (int, np.integer)) and not isinstance(value, bool))


def _input_shape(model, input_shape, input_signature):
    """The shape an input of the graph takes: the model's, with the unknown sizes that
    `input_signature` fixes: a shape, a sample array, anything with a ``.shape`` (an
    InputSpec), or a list of one of these."""
    who = f"ONNX export of {model.describe()}"
    if not model.built or input_shape is None:
        raise ValueError(f"{who}: the model has not been built, so its input shape is "
                         f"unknown; start it with keras.Input(shape) or call build() first")
    shape = tuple(input_shape)
    if input_signature is None:
        return shape
    spec = input_signature
    if isinstance(spec, (list, tuple)) and len(spec) == 1 and not _is_size(spec[0]):
        spec = spec[0]
    given = getattr(spec, "shape", spec)
    try:
        given = tuple(given)
    except TypeError:
        given = None
    if isinstance(spec, np.ndarray) and given:
        given = (None, *given[1:])  # a sample fixes the sizes, not the batch (as in Keras)
    if (given is None or not all(_is_size(v) and (v is None or v >= 1) for v in given)
            or len(given) != len(shape)
            or any(m is not None and g is not None and m != g for m, g in zip(shape, given))):
        raise ValueError(f"{who}: input_signature {input_signature!r} must give one shape "
                         f"of the model's rank that agrees with its input shape {shape} "
                         f"(None where a size is free)")
    return tuple(m if g is None else int(g) for m, g in zip(shape, given))


def to_onnx(model, opset_version=None, input_signature=None):
    """`model` as an ``onnx.ModelProto``, checked with ``onnx.checker`` (full check).

    A Sequential graph takes one input named "input" and gives one output named "output";
    a functional graph takes one input per keras.Input (named after it) and gives one
    output per model output (named after the layer that makes it). Every input is in the
    model's layout and dtype, with a dynamic batch axis "batch".
    """
    opset = _check_opset(opset_version)
    builder = GraphBuilder(opset)
    if isinstance(model, Sequential):
        shape = _input_shape(model, model.input_shape, input_signature)
        dtype = model.layers[0].dtype if model.layers else np.dtype(np.float32)
        x = builder.add_input("input", shape, dtype)
        for layer in model.layers:
            (x,) = emit_layer(layer, builder, [x])
        builder.add_output(x, "output")
    elif isinstance(model, Functional):
        _emit_functional(model, builder, input_signature)
    else:
        raise TypeError(f"ONNX export takes a convnet Sequential or functional model, got "
                        f"{type(model).__name__} (a subclassed model's call is Python code)")
    kind = type(model).__name__
    proto = builder.model(model.name, doc_string=f"convnet {kind} '{model.name}'")
    onnx.checker.check_model(proto, full_check=True)
    return proto


def _emit_functional(model, builder, input_signature):
    """Walk the graph's call nodes in topological order, one emitter call per node."""
    signatures = input_signature
    if signatures is not None and len(model.inputs) == 1 and not (
            isinstance(signatures, (list, tuple)) and len(signatures) == 1
            and not _is_size(signatures[0])):
        signatures = [signatures]
    if signatures is not None and len(signatures) != len(model.inputs):
        raise ValueError(f"ONNX export of {model.describe()}: input_signature must give one "
                         f"shape per input ({len(model.inputs)}), got {len(signatures)}")
    names = {}
    for name in model.output_names:
        builder.reserve(name)
    for i, tensor in enumerate(model.inputs):
        layer = tensor._keras_history[0]
        shape = _input_shape(model, tensor.shape,
                             None if signatures is None else [signatures[i]])
        names[id(tensor)] = builder.add_input(layer.name, shape, layer.dtype)
    for node in model._nodes:
        if isinstance(node.layer, layers_module.InputLayer):
            continue
        if node.kwargs:
            raise ValueError(f"ONNX export: {node.layer.describe()} is called with keyword "
                             f"arguments {sorted(node.kwargs)}, which the exporter does not "
                             f"take")
        inputs = [names[id(t)] for t in node.input_tensors]
        outputs = emit_layer(node.layer, builder, inputs)
        for tensor, name in zip(node.output_tensors, outputs):
            names[id(tensor)] = name
    for tensor, name in zip(model.outputs, model.output_names):
        builder.add_output(names[id(tensor)], name)


def export_onnx(model, filepath, verbose=None, input_signature=None, opset_version=None,
                **kwargs):
    """Keras' ``model.export(filepath, format="onnx")``: write `model` as an ONNX file.

    The file is written to a temporary file beside `filepath` and moved into place, so an
    interrupted export leaves any previous file whole. Prints where it saved unless
    ``verbose`` is False (Keras' default prints).
    """
    if kwargs:
        raise TypeError(f"export(format='onnx'): unexpected keyword arguments {sorted(kwargs)}")
    data = to_onnx(model, opset_version, input_signature).SerializeToString()
    filepath = os.fspath(filepath)
    fd, tmp_path = tempfile.mkstemp(prefix=".convnet-", suffix=".tmp",
                                    dir=os.path.dirname(os.path.abspath(filepath)))
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp_path, filepath)
    except BaseException:
        try:
            os.unlink(tmp_path)
        except OSError:
            pass
        raise
    if verbose is None or verbose:
        print(f"Saved artifact at '{filepath}'.")
