"""Reverse-mode differentiation on a tape: micrograd's idea, over arrays.

While a ``GradientTape`` is active on a Python thread, every differentiable
operation whose inputs need a gradient returns a ``Tensor``: the array it
computed plus the ``Node`` that made it, which keeps the operation's inputs and
its vector-Jacobian product (the gradient rule written beside the forward, in
``convnet.ops`` and in each built-in layer). ``GradientTape.gradient`` sorts the
nodes reachable from the target topologically once, then runs their rules in
reverse, adding up (out of place) the gradients of a value used more than once.

What needs a gradient: a trainable ``Variable`` (a leaf) and any ``Tensor`` made
from one. Constants stay plain NumPy arrays, so an operation on constants alone
records nothing and a model's first layer is never asked for its input
gradient. With no tape active nothing is recorded at all: inference runs on
plain arrays.

Built-in layers keep their compiled, fused backward passes: a layer call is one
node whose rule is the layer's ``_backward`` (see ``convnet.layers.base``).
"""
import threading

import numpy as np

_local = threading.local()
_ops_module = None


def _ops():
    """convnet.ops, imported on first use (it imports this module)."""
    global _ops_module
    if _ops_module is None:
        from . import ops
        _ops_module = ops
    return _ops_module


def current_tape():
    """The tape recording on this Python thread, or None."""
    stack = getattr(_local, "stack", None)
    return stack[-1] if stack else None


class Operators:
    """Python's operators and indexing as convnet.ops calls, for Tensor, Variable and
    the symbolic tensors of functional models: recorded on the tape when one is active."""
    __slots__ = ()
    # NumPy must hand binary operators with arrays back to these methods.
    __array_priority__ = 1000

    def __add__(self, other): return _ops().add(self, other)
    def __radd__(self, other): return _ops().add(other, self)
    def __sub__(self, other): return _ops().subtract(self, other)
    def __rsub__(self, other): return _ops().subtract(other, self)
    def __mul__(self, other): return _ops().multiply(self, other)
    def __rmul__(self, other): return _ops().multiply(other, self)
    def __truediv__(self, other): return _ops().divide(self, other)
    def __rtruediv__(self, other): return _ops().divide(other, self)
    def __floordiv__(self, other): return _ops().floor_divide(self, other)
    def __rfloordiv__(self, other): return _ops().floor_divide(other, self)
    def __mod__(self, other): return _ops().mod(self, other)
    def __rmod__(self, other): return _ops().mod(other, self)
    def __pow__(self, other): return _ops().power(self, other)
    def __rpow__(self, other): return _ops().power(other, self)
    def __matmul__(self, other): return _ops().matmul(self, other)
    def __rmatmul__(self, other): return _ops().matmul(other, self)
    def __neg__(self): return _ops().negative(self)
    def __pos__(self): return self
    def __abs__(self): return _ops().absolute(self)
    def __invert__(self): return _ops().logical_not(self)
    def __and__(self, other): return _ops().logical_and(self, other)
    def __rand__(self, other): return _ops().logical_and(other, self)
    def __or__(self, other): return _ops().logical_or(self, other)
    def __ror__(self, other): return _ops().logical_or(other, self)
    def __xor__(self, other): return _ops().logical_xor(self, other)
    def __rxor__(self, other): return _ops().logical_xor(other, self)
    def __eq__(self, other): return _ops().equal(self, other)
    def __ne__(self, other): return _ops().not_equal(self, other)
    def __lt__(self, other): return _ops().less(self, other)
    def __le__(self, other): return _ops().less_equal(self, other)
    def __gt__(self, other): return _ops().greater(self, other)
    def __ge__(self, other): return _ops().greater_equal(self, other)
    def __getitem__(self, key): return _ops().getitem(self, key)
    __hash__ = object.__hash__

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        """NumPy ufuncs (``np.exp(t)``, ``array + t``) run as the convnet.ops function of the
        same name where an operand needs a gradient or is symbolic, so they are recorded;
        otherwise NumPy computes on the values."""
        return _ops()._numpy_ufunc(ufunc, method, inputs, kwargs)

    def __array_function__(self, func, types, args, kwargs):
        """NumPy functions (``np.sum(t)``, ``np.concatenate``) likewise: convnet.ops' function
        of the same name on the tape or on symbolic tensors, NumPy's own elsewhere."""
        return _ops()._numpy_function(func, args, kwargs)

    @property
    def T(self):  # noqa: N802 - NumPy's name
        return _ops().transpose(self)

    def __len__(self):
        if not self.shape:
            raise TypeError("len() of a 0-d tensor")
        return self.shape[0]

    def __iter__(self):
        for i in range(len(self)):
            yield self[i]

    def __bool__(self):
        return bool(np.asarray(self))

    def __float__(self):
        return float(np.asarray(self))

    def __int__(self):
        return int(np.asarray(self))

    def __index__(self):
        return int(np.asarray(self))

    @property
    def ndim(self):
        return len(self.shape)

    @property
    def size(self):
        return int(np.prod(self.shape, dtype=np.int64))


class Tensor(Operators):
    """A value computed while a tape records: the array, and the node (and output index)
    that made it. It behaves like a Keras tensor: operators, indexing, ``shape``, ``dtype``;
    ``np.asarray(t)`` (or ``t.numpy()``) gives its array, off the tape."""
    __slots__ = ("value", "node", "index")

    def __init__(self, value, node=None, index=0):
        self.value = value
        self.node = node
        self.index = index

    @property
    def shape(self):
        return self.value.shape

    @property
    def dtype(self):
        return self.value.dtype

    def numpy(self):
        return np.array(self.value)

    def __array__(self, dtype=None, copy=None):
        if dtype is not None and np.dtype(dtype) != self.value.dtype:
            return self.value.astype(dtype)
        return self.value.copy() if copy else self.value

    def __setitem__(self, key, value):
        made_by = f" (made by {self.node.name})" if self.node else ""
        raise TypeError(f"a traced tensor{made_by} cannot be written in place: the tape keeps "
                        f"it for the backward pass, so its gradient would be wrong; build a "
                        f"new one, e.g. with convnet.ops.where or convnet.ops.slice_update")

    def __repr__(self):
        where = " (on the tape)" if self.node else ""
        return f"<Tensor shape={self.shape} dtype={self.dtype}{where}>"


class Node:
    """One recorded operation: its inputs (Tensors, Variables or constants), which of them
    need a gradient, and its vector-Jacobian product ``vjp(output_grads, needs)``.

    ``vjp`` gets the gradient of each output (None for an output nothing flowed back to;
    for a single-output operation it gets the array itself) and returns one gradient per
    input (None where not needed or zero). ``vjp`` None marks an op that is not
    differentiable: the gradient stops there (see ``_refuse_lost_gradients``).
    """
    __slots__ = ("inputs", "needs", "vjp", "n_outputs", "name", "layer", "ctx")

    def __init__(self, inputs, needs, vjp, n_outputs, name, layer=None, ctx=None):
        self.inputs, self.needs, self.vjp = inputs, needs, vjp
        self.n_outputs, self.name = n_outputs, name
        self.layer, self.ctx = layer, ctx  # the layer call this node is, if it is one

    def __repr__(self):
        return f"<Node {self.name}>"


_variable_class = None


def _is_variable(x):
    global _variable_class
    if _variable_class is None:
        from .variables import Variable  # it imports this module
        _variable_class = Variable
    return isinstance(x, _variable_class)


def needs_grad(x):
    """Whether `x` needs a gradient on the active tape."""
    if isinstance(x, Tensor):
        return x.node is not None
    if _is_variable(x):
        return x.trainable and current_tape() is not None
    return False


def value_of(x):
    """The array behind a Tensor or Variable; anything else as it is."""
    if isinstance(x, Tensor):
        return x.value
    if _is_variable(x):
        return x.value
    return x


def record(outputs, inputs, vjp, name, layer=None, ctx=None):
    """Put an operation on the active tape.

    `outputs` is the computed array (or a tuple of arrays for a multi-output
    operation); `inputs` the operation's operands. Returns Tensors on the tape
    where some input needs a gradient, else `outputs` unchanged.
    """
    if current_tape() is None:
        return outputs
    needs = tuple(needs_grad(x) for x in inputs)
    if not any(needs):
        return outputs
    multi = isinstance(outputs, tuple)
    node = Node(tuple(inputs), needs, vjp, len(outputs) if multi else 1, name, layer, ctx)
    if multi:
        return tuple(Tensor(v, node, i) for i, v in enumerate(outputs))
    return Tensor(outputs, node)


def _topological(roots):
    """The nodes reachable from `roots`, each after every node it takes input from."""
    order, visited = [], set()
    stack = [(t.node, False) for t in roots if isinstance(t, Tensor) and t.node is not None]
    while stack:
        node, expanded = stack.pop()
        if expanded:
            order.append(node)
            continue
        if id(node) in visited:
            continue
        visited.add(id(node))
        stack.append((node, True))
        for x, need in zip(node.inputs, node.needs):
            if need and isinstance(x, Tensor) and id(x.node) not in visited:
                stack.append((x.node, False))
    return order


def _add(grads, key, index, n_outputs, g):
    slot = grads.get(key)
    if slot is None:
        slot = grads[key] = [None] * n_outputs
    slot[index] = g if slot[index] is None else slot[index] + g


def backpropagate(roots, seeds, replace=None, sources=None):
    """Gradients of sum(seed . root) for every Variable reached: {id(variable): (variable, grad)}.

    ``replace`` maps a node to a function used instead of its vjp (the training loop
    uses it to hand the gradient of a softmax's logits straight to the layer below).
    ``sources``, if given, are the variables whose gradients are wanted: only they are
    checked for a gradient lost at an op that has none.
    """
    order = _topological(roots)
    grads, variable_grads = {}, {}
    for root, seed in zip(roots, seeds):
        if isinstance(root, Tensor) and root.node is not None:
            _add(grads, id(root.node), root.index, root.node.n_outputs, seed)
    replace = replace or {}
    cut = []
    for node in reversed(order):
        slot = grads.pop(id(node), None)
        if slot is None:
            continue
        vjp = replace.get(id(node), node.vjp)
        if vjp is None:  # an op with no gradient (argmax, floor, a comparison)
            cut.append(node)
            continue
        input_grads = vjp(slot if node.n_outputs > 1 else slot[0], node.needs)
        for x, need, g in zip(node.inputs, node.needs, input_grads):
            if not need or g is None:
                continue
            if isinstance(x, Tensor):
                _add(grads, id(x.node), x.index, x.node.n_outputs, g)
            else:
                entry = variable_grads.get(id(x))
                variable_grads[id(x)] = (x, g if entry is None else entry[1] + g)
    if cut:
        _refuse_lost_gradients(cut, variable_grads, sources)
    return variable_grads


def _refuse_lost_gradients(cut, variable_grads, sources=None):
    """A gradient reached ops that have none. Where a trainable variable behind such an op
    got no gradient from any other path, training it would silently use zeros: raise,
    naming the op nearest that variable (``stop_gradient`` asks for a zero on purpose)."""
    stack, seen = [(node, node) for node in cut], set()
    while stack:
        node, nearest_cut = stack.pop()
        for x, need in zip(node.inputs, node.needs):
            if not need:
                continue
            if isinstance(x, Tensor):
                if id(x.node) not in seen:
                    seen.add(id(x.node))
                    stack.append((x.node, x.node if x.node.vjp is None else nearest_cut))
            elif id(x) not in variable_grads and (sources is None or
                                                  any(x is v for v in sources)):
                raise TypeError(
                    f"no gradient reaches {getattr(x, 'path', 'a variable')}: the loss depends "
                    f"on it only through {nearest_cut.name}, which is not differentiable (its "
                    f"result is an integer, a boolean or piecewise constant). Compute the loss "
                    f"from a differentiable op (e.g. softmax probabilities rather than argmax), "
                    f"or wrap that value in convnet.ops.stop_gradient if a zero gradient is "
                    f"what you mean")


class GradientTape:
    """Records differentiable operations on this thread while active.

    ``with GradientTape() as tape: loss = ...`` then ``tape.gradient(loss, variables)``
    gives one gradient per variable (zeros for one the loss does not reach). Layers
    queue their state updates (BatchNormalization's moving statistics) and extra losses
    (``add_loss``, activity regularizers) on the tape; the training loop applies them.
    """

    def __init__(self):
        self.state_updates = []
        self.losses = []

    def __enter__(self):
        stack = getattr(_local, "stack", None)
        if stack is None:
            stack = _local.stack = []
        stack.append(self)
        return self

    def __exit__(self, *exc):
        _local.stack.pop()

    def gradient(self, target, sources, output_gradients=None):
        """d target / d `sources`, in their structure (as TensorFlow's tape): one Variable
        gives one gradient, a list or tuple a list, a dict a dict with the same keys."""
        seed = (np.ones_like(value_of(target)) if output_gradients is None
                else np.asarray(value_of(output_gradients)))
        if isinstance(sources, dict):
            flat = list(sources.values())
        elif isinstance(sources, (list, tuple)):
            flat = list(sources)
        else:
            flat = [sources]
        found = backpropagate([target], [seed], sources=flat)
        grads = [_grad_or_zeros(found, v) for v in flat]
        if isinstance(sources, dict):
            return dict(zip(sources, grads))
        return grads if isinstance(sources, (list, tuple)) else grads[0]


def _grad_or_zeros(found, variable):
    entry = found.get(id(variable))
    return np.zeros(variable.shape, dtype=variable.dtype) if entry is None else entry[1]


def stop_gradient(x):
    """`x`'s value, off the tape."""
    return value_of(x)


def unbroadcast(grad, shape):
    """Sum `grad` down to `shape`, undoing NumPy broadcasting."""
    grad = np.asarray(grad)
    if grad.shape == tuple(shape):
        return grad
    extra = grad.ndim - len(shape)
    if extra > 0:
        grad = grad.sum(axis=tuple(range(extra)))
    axes = tuple(i for i, n in enumerate(shape) if n == 1 and grad.shape[i] != 1)
    if axes:
        grad = grad.sum(axis=axes, keepdims=True)
    return grad.reshape(shape)
