"""An op used on symbolic tensors becomes a node of the functional graph: an Operation
layer that calls the op again on real data (``x = layers.Dense(8)(inputs); x = x * 2``)."""
from ..layers.base import Layer, _unique_name


class Operation(Layer):
    """Calls ``convnet.ops.<name>(*inputs, **kwargs)``; it has no weights. Files store the
    op's name, which loading looks up among convnet.ops' public functions only."""

    def __init__(self, fn, op_kwargs=None, takes_list=False, name=None, **kwargs):
        if isinstance(fn, str):
            fn = _lookup(fn)
        super().__init__(name=name or _unique_name(fn.__name__), **kwargs)
        object.__setattr__(self, "fn", fn)
        self.op_kwargs = dict(op_kwargs or {})
        self.takes_list = bool(takes_list)
        self.built = True

    def call(self, *args):
        if self.takes_list:
            return self.fn(list(args), **self.op_kwargs)
        return self.fn(*args, **self.op_kwargs)

    def get_config(self):
        config = super().get_config()
        return {**config, "op": self.fn.__name__, "op_kwargs": self.op_kwargs,
                "takes_list": self.takes_list}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        return cls(config.pop("op"), config.pop("op_kwargs", None),
                   config.pop("takes_list", False), **config)


def _lookup(name):
    from .. import ops
    if name not in ops.__all__:
        raise ValueError(f"unknown op {name!r}; a saved Operation must name a public "
                         f"function of convnet.ops")
    return getattr(ops, name)
