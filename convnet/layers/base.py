"""The Layer every convnet layer (and model) is: Keras 3's interface, two ways to compute.

Configuration is validated in ``__init__`` (the bad value echoed in the error),
weights are made in ``build(input_shape)`` with ``add_weight`` (Keras'
signature; they are ``convnet.Variable`` objects), and ``__call__`` does the rest:

- On symbolic tensors (a functional model being written) it records a call
  node and returns symbolic outputs with the inferred shapes.
- A built-in layer computes with its compiled kernels: ``_forward(x, training)``
  returns the output and a per-call context, and ``_backward(ctx, grad_y,
  need_input_grad)`` returns the input gradient and the weights' gradients.
  While a training step's tape records, the call is one node on it whose rule is
  ``_backward``; the context belongs to that call, so a layer used twice, or
  trained while another thread predicts, never mixes up two calls.
- A layer written in Python (a subclass that overrides ``call``) runs its
  ``call``; the ``convnet.ops`` it uses record themselves, so it needs no
  backward pass of its own.

Outside a training step, ``layer(x, training=True)`` followed by
``layer.backward(grad_y)`` differentiates that last call by hand and fills
``layer.grads``.
"""
import inspect
import os
import re
import threading
from collections import defaultdict

import numpy as np

from .. import activations as activations_module
from .. import autodiff, backend, initializers, kernels
from ..graph import CallNode, KerasTensor, flatten, has_symbolic, map_structure, pack_like
from ..variables import Variable, stateless_scope

_name_counts = defaultdict(int)
_context = threading.local()


class _Locks:
    """The locks around naming and lazy building. A child forked while another thread held
    one would wait forever, so the child gets new ones."""
    names = threading.Lock()
    build = threading.RLock()

    @classmethod
    def renew(cls):
        cls.names, cls.build = threading.Lock(), threading.RLock()


os.register_at_fork(after_in_child=_Locks.renew)


def _unique_name(base):
    with _Locks.names:
        count = _name_counts[base]
        _name_counts[base] += 1
    return base if count == 0 else f"{base}_{count}"


def _snake_case(name):
    name = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", name).lower()


def _shape_tuple(shape, who):
    """A shape given by a user: a tuple of positive ints or None."""
    try:
        shape = tuple(shape)
    except TypeError:
        raise TypeError(f"{who}: a shape must be a tuple, got {shape!r}") from None
    for v in shape:
        if v is not None and (isinstance(v, bool) or not isinstance(v, (int, np.integer))
                              or v < 1):
            raise ValueError(f"{who}: every dimension of shape {shape} must be a positive int "
                             f"or None")
    return tuple(None if v is None else int(v) for v in shape)


def outer_training():
    """The `training` flag of the enclosing layer call on this thread (False outside one)."""
    return getattr(_context, "training", None)


class _TrainingContext:
    """Nested layer calls inherit `training` from the outer call, as in Keras."""

    def __init__(self, training):
        self.training = training

    def __enter__(self):
        self.saved = getattr(_context, "training", None)
        _context.training = self.training

    def __exit__(self, *exc):
        _context.training = self.saved


def _shape_of(x):
    return tuple(x.shape)


#: attribute values that can hold no layer or variable (most of a layer's settings)
_PLAIN_TYPES = frozenset({type(None), bool, int, float, str})


class Layer:
    """Base class: weights, config, and the call protocol (see the module docstring)."""

    #: the rank of the input including the batch axis (None: any rank >= 2)
    input_ndim = None
    #: attributes the tracker never looks at (framework bookkeeping)
    _UNTRACKED = frozenset()

    def __init__(self, *, name=None, dtype=None, trainable=True, activity_regularizer=None,
                 autocast=True, input_shape=None, input_dim=None, batch_input_shape=None,
                 batch_size=None, **kwargs):
        cls = type(self).__name__
        if kwargs:
            raise TypeError(f"{cls}: unexpected keyword arguments {sorted(kwargs)}")
        if name is not None and not isinstance(name, str):
            raise TypeError(f"{cls}: name must be a string, got {name!r}")
        if not isinstance(trainable, (bool, np.bool_)):
            raise ValueError(f"{cls}: trainable must be a boolean, got {trainable!r}")
        set_ = object.__setattr__
        set_(self, "_layers", [])
        set_(self, "_trainable_variables", [])
        set_(self, "_non_trainable_variables", [])
        set_(self, "_losses", [])
        set_(self, "_inbound_nodes", [])
        set_(self, "_last_ctx", None)
        set_(self, "_last_grads", None)
        self.name = name or _unique_name(_snake_case(cls))
        self.dtype = kernels.float_dtype(backend.floatx() if dtype is None else dtype,
                                         f"{cls} '{self.name}'")
        self._trainable = bool(trainable)
        self.autocast = bool(autocast)
        self.activity_regularizer = _get_regularizer(activity_regularizer)
        # Keras builds a layer that has no weights to make when it is constructed, so that
        # count_params() works at once (and the layer takes any input its arithmetic
        # allows): a built-in layer whose class keeps Layer.build makes no weights.
        self.built = self._is_builtin and type(self).build is Layer.build
        self.input_shape = None
        # Keras lets the first layer of a Sequential carry input_shape=(h, w, c).
        if input_dim is not None:
            input_shape = (input_dim,)
        if batch_input_shape is not None:
            input_shape = tuple(batch_input_shape)[1:]
        self.declared_input_shape = (None if input_shape is None
                                     else _shape_tuple(input_shape, self.describe()))
        self.activation = None

    # -- attribute tracking ------------------------------------------------------------------

    def __setattr__(self, name, value):
        if type(value) not in _PLAIN_TYPES and name not in self._UNTRACKED \
                and "_layers" in self.__dict__:
            self._track(value)
        object.__setattr__(self, name, value)

    def _track(self, value):
        if isinstance(value, Layer) and value is not self:
            if not any(value is layer for layer in self._layers):
                self._layers.append(value)
        elif isinstance(value, Variable):
            if not any(value is v for v in self._trainable_variables
                       + self._non_trainable_variables):
                (self._trainable_variables if value.trainable
                 else self._non_trainable_variables).append(value)
        elif isinstance(value, (list, tuple)):
            for item in value:
                if isinstance(item, (Layer, Variable, list, tuple, dict)):
                    self._track(item)
        elif isinstance(value, dict):
            for item in value.values():
                if isinstance(item, (Layer, Variable, list, tuple, dict)):
                    self._track(item)

    # -- identity ------------------------------------------------------------------------------

    def describe(self):
        """How error messages name this layer: ``Conv2D 'conv2d_1'``."""
        return f"{type(self).__name__} '{self.name}'"

    def __repr__(self):
        return f"<{self.describe()}>"

    @property
    def compute_dtype(self):
        return self.dtype.name

    @property
    def variable_dtype(self):
        return self.dtype.name

    @property
    def dtype_policy(self):
        return self.dtype.name

    @property
    def path(self):
        return self.name

    # -- weights -------------------------------------------------------------------------------

    def add_weight(self, shape=None, initializer=None, dtype=None, trainable=True,
                   autocast=True, regularizer=None, constraint=None, aggregation="none",
                   overwrite_with_gradient=False, name=None):
        """Create, track and return a Variable, as Keras' ``Layer.add_weight``."""
        shape = () if shape is None else shape
        if isinstance(shape, str):
            raise ValueError(f"{self.describe()}.add_weight: `name` must be passed as a keyword "
                             f"argument, got add_weight({shape!r}, ...)")
        shape = tuple(shape)
        if any(d is None or isinstance(d, bool) or not isinstance(d, (int, np.integer)) or d < 0
               for d in shape):
            raise ValueError(f"{self.describe()}.add_weight: shape must be fully defined "
                             f"non-negative ints, got {shape}")
        dtype = self.dtype if dtype is None else np.dtype(backend.standardize_dtype(dtype))
        if initializer is None:
            initializer = "glorot_uniform" if dtype.kind == "f" else "zeros"
        variable = Variable(initializers.get(initializer), shape=shape, dtype=dtype,
                            trainable=trainable, name=name or "variable",
                            regularizer=_get_regularizer(regularizer),
                            constraint=_get_constraint(constraint))
        variable.path = f"{self.name}/{variable.name}"
        self._track(variable)
        return variable

    @property
    def trainable(self):
        return self._trainable

    @trainable.setter
    def trainable(self, value):
        """Sets trainable on the layer, its variables and its sublayers (as Keras)."""
        value = bool(value)
        self._trainable = value
        for v in self._trainable_variables:
            v.trainable = value
        for layer in self._layers:
            layer.trainable = value

    @property
    def weights(self):
        """Own variables (created trainable first), then each sublayer's; no duplicates."""
        weights, seen = [], set()
        for w in self._trainable_variables + self._non_trainable_variables:
            if id(w) not in seen:
                weights.append(w)
                seen.add(id(w))
        for layer in self._layers:
            for w in layer.weights:
                if id(w) not in seen:
                    weights.append(w)
                    seen.add(id(w))
        return weights

    variables = weights

    @property
    def trainable_weights(self):
        return [w for w in self.weights if w.trainable] if self.trainable else []

    trainable_variables = trainable_weights

    @property
    def non_trainable_weights(self):
        return [w for w in self.weights if not w.trainable] if self.trainable else self.weights

    non_trainable_variables = non_trainable_weights

    def get_weights(self):
        return [w.numpy() for w in self.weights]

    def set_weights(self, weights):
        """Copy values into the existing variables (shapes checked first, then all written)."""
        weights = list(weights)
        own = self.weights
        if len(weights) != len(own):
            raise ValueError(f"{self.describe()} has {len(own)} weights, got a list of "
                             f"{len(weights)}")
        values = []
        for i, (current, new) in enumerate(zip(own, weights)):
            new = np.asarray(new)
            if new.shape != current.shape:
                raise ValueError(f"{self.describe()}: weight {i} ({current.path}) has shape "
                                 f"{current.shape}, got {new.shape}")
            if new.dtype.kind not in "biuf":
                raise TypeError(f"{self.describe()}: weight {i} must be numeric, got dtype "
                                f"{new.dtype}")
            values.append(new)
        for current, new in zip(own, values):
            current.assign(new)

    def count_params(self):
        if not self.built:
            raise ValueError(f"{self.describe()} has not been built yet: call it on data or "
                             f"build it before counting its parameters")
        return int(sum(w.size for w in self.weights))

    @property
    def grads(self):
        """The weight gradients of the last ``backward`` call, aligned with ``weights``."""
        grads = self._last_grads
        if grads is None:
            return [np.zeros(w.shape, w.dtype) for w in self.weights]
        return grads

    # -- losses --------------------------------------------------------------------------------

    def add_loss(self, loss):
        """Add a scalar to the loss of the training step this call is part of (Keras' add_loss).
        Outside a training step it is kept in ``layer.losses`` until the next call."""
        tape = autodiff.current_tape()
        if tape is not None:
            tape.losses.append(loss)
        self._losses.append(loss)

    @property
    def losses(self):
        """Regularization penalties of this layer's and its sublayers' weights, plus what
        ``add_loss`` added during the last call."""
        losses = list(self._losses)
        for w in self.trainable_weights:
            if w.regularizer is not None:
                losses.append(float(w.regularizer(w.value)))
        for layer in self._layers:
            losses.extend(layer._losses)
        return losses

    # -- building ------------------------------------------------------------------------------

    def build(self, input_shape=None):
        """Create the weights for inputs of `input_shape` (batch axis first, may be None)."""
        if input_shape is not None and not isinstance(input_shape, (dict, list)) \
                and all(d is None or isinstance(d, (int, np.integer)) for d in input_shape):
            input_shape = tuple(input_shape)
            self.compute_output_shape(input_shape)  # raises if the shape does not fit
            self.input_shape = (None,) + tuple(input_shape[1:])
        else:
            self.input_shape = input_shape
        self.built = True

    def _maybe_build(self, input_shape):
        if self.built:
            if self.input_shape is None and input_shape is not None \
                    and self.__dict__.get("first_input_shape") is None:
                # A layer built at construction (no weights) remembers what it was first
                # called on, without holding later calls to it: Keras' files record it.
                def batchless(shape):
                    if isinstance(shape, tuple):
                        return (None, *shape[1:])
                    if isinstance(shape, list):
                        return [batchless(s) for s in shape]
                    return shape
                self.first_input_shape = batchless(input_shape)
            return
        with _Locks.build:  # concurrent first calls build once
            if not self.built:
                if self._is_builtin and isinstance(input_shape, tuple):
                    self._check_rank(input_shape)
                self.build(input_shape)
                self.built = True
                if self.input_shape is None and isinstance(input_shape, tuple):
                    self.input_shape = (None,) + tuple(input_shape[1:])

    def compute_output_shape(self, input_shape):
        if self._is_builtin:
            return tuple(input_shape)
        return _dry_run_shape(self, input_shape)

    def compute_output_spec(self, inputs, **kwargs):
        """Symbolic outputs for symbolic `inputs` (shapes from compute_output_shape)."""
        shapes = map_structure(_shape_of, inputs)
        out_shapes = self.compute_output_shape(shapes if not isinstance(shapes, list)
                                               or len(shapes) > 1 or not self._is_builtin
                                               else shapes)
        return _as_specs(out_shapes, self.dtype)

    @property
    def output_shape(self):
        if not self.built:
            raise ValueError(f"{self.describe()} has not been built yet, so it has no output "
                             f"shape; call it on data or build it first")
        return self.compute_output_shape(self.input_shape)

    def _check_rank(self, input_shape):
        if self.input_ndim is not None and len(input_shape) != self.input_ndim:
            layout = " (batch, height, width, channels)" if self.input_ndim == 4 else ""
            raise ValueError(f"{self.describe()} expects {self.input_ndim}-D inputs{layout}, "
                             f"got shape {tuple(input_shape)}")
        if len(input_shape) < 2:
            raise ValueError(f"{self.describe()} expects inputs with a batch axis, "
                             f"got shape {tuple(input_shape)}")

    def _check_compatible(self, shape):
        """After build, every known dimension but the batch must stay the same."""
        expected = self.input_shape
        if not isinstance(expected, tuple):
            return
        if len(shape) != len(expected) or any(
                e is not None and e != s for e, s in zip(expected[1:], shape[1:])):
            raise ValueError(f"{self.describe()} was built for inputs of shape {expected}, "
                             f"got {tuple(shape)}")

    # -- running -------------------------------------------------------------------------------

    @property
    def _is_builtin(self):
        """Whether this layer computes with _forward/_backward (its call is Layer.call)."""
        return type(self).call is Layer.call

    def __call__(self, *args, **kwargs):
        training = kwargs.pop("training", None)
        if training is None:
            training = outer_training()
        training = bool(training)
        if has_symbolic((args, kwargs)):
            return self._symbolic_call(args, kwargs, training)
        if self._is_builtin:
            if len(args) != 1 or kwargs:
                raise TypeError(f"{self.describe()} takes one input (a tensor, or a list of "
                                f"tensors for a merge layer), got {len(args)} positional and "
                                f"{sorted(kwargs)} keyword arguments")
            return self._builtin_call(args[0], training)
        return self._python_call(args, kwargs, training)

    def _on_tape_input(self, x):
        """A traced input as this layer takes it on the tape: a float Tensor of another
        float dtype through a recorded cast; an integer or boolean one (argmax, a mask) as the
        constant it is (its values carry no gradient)."""
        if not isinstance(x, autodiff.Tensor) or x.dtype == self.dtype:
            return x
        if x.dtype.kind == "f":
            from .. import ops
            return ops.cast(x, self.dtype)
        return x.value

    def _convert_input(self, x, arg="input"):
        """An input as an array of this layer's dtype (cast, contiguous, native-endian)."""
        if isinstance(x, autodiff.Tensor):
            return self._on_tape_input(x).value
        if isinstance(x, Variable):
            x = x.value
        return kernels.as_batch(x, self.dtype, self.describe(), arg=arg, ndim=np.ndim(x))

    def _builtin_call(self, inputs, training):
        multi = isinstance(inputs, (list, tuple))
        items = [self._on_tape_input(x) for x in (inputs if multi else [inputs])]
        values = [self._convert_input(x) for x in items]
        for v in values:
            self._check_rank(v.shape)
        shapes = [v.shape for v in values]
        self._maybe_build(shapes if multi else shapes[0])
        if not multi:
            self._check_compatible(shapes[0])
        tape = autodiff.current_tape()
        xs = values if multi else values[0]
        if tape is None:
            outputs, ctx = self._forward(xs, training)
            if training:
                object.__setattr__(self, "_last_ctx", (ctx, np.shape(outputs)))
            self._losses.clear()
            if self.activity_regularizer is not None:
                self._losses.append(float(penalty(self.activity_regularizer, outputs)))
            return outputs
        variables = self.trainable_weights
        needs_input = [autodiff.needs_grad(x) for x in items]
        outputs, ctx = self._forward(xs, training)
        if training and hasattr(self, "_update_state"):
            tape.state_updates.append((self, ctx))
        if any(needs_input) or variables:
            layer = self

            def vjp(grad_y, needs, skip_activation=False, ctx=ctx):
                need_x = any(needs[:len(items)])
                grad_x, grad_w = layer._backward(ctx, grad_y, need_x, skip_activation)
                grad_x = list(grad_x) if multi else [grad_x]
                return (*grad_x, *layer._trainable_grads(grad_w, variables))

            outputs = autodiff.record(outputs, (*items, *variables), vjp, self.name,
                                      layer=self, ctx=ctx)
        if self.activity_regularizer is not None:
            self.add_loss(penalty(self.activity_regularizer, outputs))
        return outputs

    def _trainable_grads(self, grad_w, variables):
        """The gradients of `variables` (this layer's trainable weights) out of the
        per-weight list _backward returned (aligned with self.weights)."""
        if len(variables) == len(grad_w):
            return grad_w
        by_id = {id(w): g for w, g in zip(self.weights, grad_w)}
        return [by_id.get(id(v)) for v in variables]

    def _python_call(self, args, kwargs, training):
        """A layer written with convnet.ops: run its call (ops record themselves)."""
        args = map_structure(self._convert_python_input, args)
        kwargs = {k: map_structure(self._convert_python_input, v) for k, v in kwargs.items()}
        if not self.built:
            first = args[0] if args else next(iter(kwargs.values()), None)
            self._maybe_build(map_structure(_shape_of, first) if first is not None else None)
        if self._call_takes("training"):
            kwargs["training"] = training
        tape = autodiff.current_tape()
        if tape is None:
            self._losses.clear()
        with _TrainingContext(training):
            outputs = self.call(*args, **kwargs)
        if tape is not None:
            self._check_on_tape(args, kwargs, outputs)
        if self.activity_regularizer is not None:
            self.add_loss(penalty(self.activity_regularizer, outputs))
        return outputs

    def _convert_python_input(self, x):
        if isinstance(x, (autodiff.Tensor, Variable, np.ndarray)) or x is None \
                or isinstance(x, (str, bool, int, float)):
            if isinstance(x, np.ndarray) and x.dtype.kind == "f" and self.autocast \
                    and x.dtype != self.dtype:
                return x.astype(self.dtype)
            return x
        if isinstance(x, (list, tuple, dict)):
            return x
        array = np.asarray(x)
        if array.dtype.kind == "f" and self.autocast:
            array = array.astype(self.dtype)
        return array

    def _call_takes(self, argument):
        try:
            parameters = inspect.signature(self.call).parameters
        except (TypeError, ValueError):
            return False
        return argument in parameters or any(
            p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())

    def _check_on_tape(self, args, kwargs, outputs):
        """A traced call whose output lost the tape (a plain NumPy call on a traced value, or
        np.asarray of one) would train on a zero gradient: refuse it, naming the layer."""
        # Only a layer with trainable weights is checked: a weightless layer may well return
        # a constant (zeros_like of its input, say).
        if not self.trainable_weights:
            return
        for out in flatten(outputs):
            if isinstance(out, np.ndarray) and out.dtype.kind == "f":
                raise TypeError(
                    f"{self.describe()}: call() returned a plain NumPy array while training, so "
                    f"no gradient can flow through it: a NumPy function (or np.asarray) was "
                    f"applied to a traced tensor inside call(). Use the convnet.ops function of "
                    f"the same name (e.g. ops.exp, ops.sum, ops.reshape) instead")

    def _symbolic_call(self, args, kwargs, training):
        leaves = flatten((args, kwargs))
        for x in leaves:
            if isinstance(x, (np.ndarray, autodiff.Tensor)):
                raise ValueError(
                    f"{self.describe()} was called on symbolic tensors (keras.Input) mixed with "
                    f"a concrete array of shape {x.shape}; in a functional model every tensor "
                    f"input must come from keras.Input or another layer (pass constants as "
                    f"layer arguments instead)")
        inputs = args[0] if len(args) == 1 and not kwargs else (args, kwargs)
        shapes = map_structure(_shape_of, inputs) if self._is_builtin or len(args) == 1 \
            else map_structure(_shape_of, args[0])
        if self._is_builtin:
            items = inputs if isinstance(inputs, (list, tuple)) else [inputs]
            for x in items:
                self._check_rank(x.shape)
        self._maybe_build(shapes)
        if self._is_builtin and not isinstance(inputs, (list, tuple)):
            self._check_compatible(inputs.shape)
        outputs = self._infer_outputs(args, kwargs, training)
        CallNode(self, args, kwargs, outputs)
        return outputs

    def _infer_outputs(self, args, kwargs, training):
        if self._is_builtin:
            return _as_specs(self.compute_output_shape(map_structure(_shape_of, args[0])),
                             self.dtype)
        if type(self).compute_output_shape is not Layer.compute_output_shape and len(args) == 1 \
                and not kwargs:
            return _as_specs(self.compute_output_shape(map_structure(_shape_of, args[0])),
                             self.dtype)
        return _dry_run_outputs(self, args, kwargs, training)

    def call(self, inputs, training=False):
        """What the layer computes. Built-in layers compute with their kernels."""
        if not self._is_builtin:
            raise NotImplementedError(f"{self.describe()}: a Layer subclass must define call()")
        multi = isinstance(inputs, (list, tuple))
        xs = [self._convert_input(x) for x in inputs] if multi else self._convert_input(inputs)
        return self._forward(xs, training)[0]

    # -- the built-in protocol -----------------------------------------------------------------

    def _forward(self, x, training):
        """(outputs, ctx): ctx holds what _backward needs for this call (None if not training)."""
        raise NotImplementedError(f"{self.describe()} has no compiled forward pass")

    def _backward(self, ctx, grad_y, need_input_grad, skip_activation=False):
        """(grad_x or None, list of weight gradients aligned with self.weights).

        With ``skip_activation`` `grad_y` is already the gradient of the pre-activation
        output (the training loop fuses a final softmax with its cross-entropy)."""
        if not skip_activation:
            grad_y = self._through_activation(ctx, grad_y)
        return self._backward_op(ctx, grad_y, need_input_grad)

    def _backward_op(self, ctx, grad_z, need_input_grad):
        raise NotImplementedError(f"{self.describe()} has no compiled backward pass")

    def _through_activation(self, ctx, grad_y):
        if self.activation is None:
            return grad_y
        return self.activation.backward(ctx["z"], ctx["y"], grad_y)

    def _activate(self, z, ctx):
        """Apply the activation, keeping what its derivative needs when ctx is not None."""
        if self.activation is None:
            return z
        y = self.activation.forward(z)
        if ctx is not None:
            ctx.update(z=z, y=y)
        return y

    def backward(self, grad_y, need_input_grad=True):
        """Gradient with respect to the input of the last training call made outside a
        training step; fills ``layer.grads`` (aligned with ``weights``).

        With ``need_input_grad=False`` only the weight gradients are computed and None is
        returned.
        """
        if self._last_ctx is None:
            raise ValueError(f"{self.describe()}: backward() needs a forward call with "
                             f"training=True first")
        ctx, expected = self._last_ctx
        grad_y = kernels.as_batch(grad_y, self.dtype, self.describe(), arg="gradient",
                                  ndim=np.ndim(grad_y))
        if grad_y.shape != expected:
            raise ValueError(f"{self.describe()}: gradient of shape {grad_y.shape} does not "
                             f"match the output shape {expected}")
        grad_x, grad_w = self._backward(ctx, grad_y, need_input_grad)
        object.__setattr__(self, "_last_grads", [
            np.zeros(w.shape, w.dtype) if g is None else g for w, g in zip(self.weights, grad_w)])
        return grad_x

    # -- config --------------------------------------------------------------------------------

    def get_config(self):
        config = {"name": self.name, "dtype": self.dtype.name, "trainable": self.trainable}
        if self.declared_input_shape is not None:
            config["input_shape"] = list(self.declared_input_shape)
        return config

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def get_build_config(self):
        return {"input_shape": None if self.input_shape is None else
                map_structure(lambda d: d, self.input_shape)}

    # -- what summary() reports ---------------------------------------------------------------

    def receptive_field_step(self):
        """(kernel, stride) of the layer along height and width, for the receptive field."""
        return (1, 1), (1, 1)

    def macs(self, input_shape):
        """Multiply-accumulates for one example of `input_shape`."""
        return 0


def _get_regularizer(regularizer):
    if regularizer is None:
        return None
    from .. import regularizers
    return regularizers.get(regularizer)


def _get_constraint(constraint):
    if constraint is None:
        return None
    from .. import constraints
    return constraints.get(constraint)


def _as_specs(shapes, dtype):
    """KerasTensors for a shape or a nested structure of shapes."""
    if isinstance(shapes, tuple) and all(d is None or isinstance(d, (int, np.integer))
                                         for d in shapes):
        return KerasTensor(shapes, dtype)
    if isinstance(shapes, dict):
        return {k: _as_specs(v, dtype) for k, v in shapes.items()}
    return type(shapes)(_as_specs(s, dtype) for s in shapes)


_PROBE_SIZES = (2, 3)


def _dry_run_outputs(layer, args, kwargs, training):
    """Output specs of a Python layer on symbolic inputs: run its call twice on zeros, with
    every unknown size set to 2 and then 3; a dimension that follows is unknown (None)."""
    runs = []
    for probe in _PROBE_SIZES:
        def concrete(x, probe=probe):
            if isinstance(x, KerasTensor):
                return np.zeros(tuple(probe if d is None else d for d in x.shape), x.dtype)
            return x
        c_args = map_structure(concrete, args)
        c_kwargs = {k: map_structure(concrete, v) for k, v in kwargs.items()}
        if layer._call_takes("training"):
            c_kwargs["training"] = False
        try:
            with _TrainingContext(False), stateless_scope():
                runs.append(layer.call(*c_args, **c_kwargs))
        except Exception as error:
            raise ValueError(f"{layer.describe()}: could not infer its output shape on symbolic "
                             f"inputs by running call() on zeros ({type(error).__name__}: "
                             f"{error}); define compute_output_shape(input_shape)") from error
    first, second = (flatten(r) for r in runs)

    def spec(a, b):
        a, b = np.asarray(a), np.asarray(b)
        shape = tuple(None if i == 0 or da != db else da
                      for i, (da, db) in enumerate(zip(a.shape, b.shape)))
        return KerasTensor(shape, a.dtype)

    return pack_like(runs[0], [spec(a, b) for a, b in zip(first, second)])


def is_shape(value):
    """Whether `value` is one shape (a tuple or list of ints and None), not a structure."""
    return isinstance(value, (tuple, list)) and all(
        d is None or isinstance(d, (int, np.integer)) and not isinstance(d, bool) for d in value)


def map_shapes(fn, shapes):
    """fn applied to each shape in a nested structure of shapes."""
    if is_shape(shapes):
        return fn(tuple(shapes))
    if isinstance(shapes, dict):
        return {k: map_shapes(fn, v) for k, v in shapes.items()}
    return type(shapes)(map_shapes(fn, s) for s in shapes)


def _dry_run_shape(layer, input_shape):
    def symbolic(shape):
        return KerasTensor(shape, layer.dtype)
    outputs = _dry_run_outputs(layer, (map_shapes(symbolic, input_shape),), {}, False)
    return map_structure(_shape_of, outputs)


class KernelMixin:
    """What Dense and Conv2D share: activation(x * kernel + bias) and its options."""

    def _configure_kernel(self, activation, use_bias, kernel_initializer, bias_initializer,
                          kernel_regularizer=None, bias_regularizer=None,
                          kernel_constraint=None, bias_constraint=None):
        self.activation = activations_module.get(activation)
        if isinstance(self.activation, activations_module.Linear):
            self.activation = None
        self.use_bias = bool(use_bias)
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        self.kernel_regularizer = _get_regularizer(kernel_regularizer)
        self.bias_regularizer = _get_regularizer(bias_regularizer)
        self.kernel_constraint = _get_constraint(kernel_constraint)
        self.bias_constraint = _get_constraint(bias_constraint)

    def _add_kernel_and_bias(self, kernel_shape):
        self.kernel = self.add_weight(shape=kernel_shape, initializer=self.kernel_initializer,
                                      name="kernel", regularizer=self.kernel_regularizer,
                                      constraint=self.kernel_constraint)
        self.bias = (self.add_weight(shape=(kernel_shape[-1],), initializer=self.bias_initializer,
                                     name="bias", regularizer=self.bias_regularizer,
                                     constraint=self.bias_constraint)
                     if self.use_bias else None)

    def _kernel_config(self):
        activation = ("linear" if self.activation is None
                      else activations_module.serialize(self.activation))
        config = {"activation": activation, "use_bias": self.use_bias,
                  "kernel_initializer": initializers.serialize(self.kernel_initializer),
                  "bias_initializer": initializers.serialize(self.bias_initializer)}
        for key in ("kernel_regularizer", "bias_regularizer", "kernel_constraint",
                    "bias_constraint"):
            value = getattr(self, key)
            config[key] = None if value is None else _serialize(value)
        return config


def _serialize(obj):
    """Keras' {"class_name", "config"} form of a regularizer or constraint."""
    return {"class_name": type(obj).__name__, "config": obj.get_config()}


def penalty(regularizer, x):
    """An activity regularizer's penalty on outputs x, divided by the batch size as Keras 3
    does; on the tape (with its gradient) when x is a traced tensor."""
    from .. import regularizers
    values = autodiff.value_of(x)
    value, grad = regularizers.activity_penalty(regularizer, values)

    def vjp(g, needs):
        return (g * grad,)

    return autodiff.record(np.asarray(value, dtype=values.dtype), (x,), vjp,
                           "activity_regularizer")
