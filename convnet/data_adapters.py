"""What fit, evaluate and predict accept, as batches of NumPy arrays.

Keras takes arrays (and nested lists/dicts of them for several inputs or
outputs), ``(x, y, sample_weight)`` tuples, any Python iterable or generator of
batches, ``keras.utils.PyDataset``, and a ``tf.data.Dataset`` or a torch
``DataLoader``. Each becomes a ``DataAdapter`` whose ``batches()`` yields one
epoch of ``(x, y, sample_weight)`` with NumPy arrays inside. TensorFlow and
PyTorch objects are recognised by their type's module and converted batch by
batch; convnet never imports either library.
"""
import math
import warnings

import numpy as np

from . import random
from .graph import flatten, map_structure


def unpack_x_y_sample_weight(data):
    """(x, y, sample_weight) from `x`, `(x,)`, `(x, y)` or `(x, y, sample_weight)`."""
    if isinstance(data, list):
        data = tuple(data)
    if not isinstance(data, tuple):
        return data, None, None
    if len(data) == 1:
        return data[0], None, None
    if len(data) == 2:
        return data[0], data[1], None
    if len(data) == 3:
        return data
    raise ValueError(f"Data is expected to be in format `x`, `(x,)`, `(x, y)`, or "
                     f"`(x, y, sample_weight)`, found a tuple of {len(data)} items")


def pack_x_y_sample_weight(x, y=None, sample_weight=None):
    if y is None:
        return (x,)
    return (x, y) if sample_weight is None else (x, y, sample_weight)


def _to_numpy(value):
    """A batch leaf as a NumPy array: tf/torch tensors converted, arrays as they are."""
    if value is None or isinstance(value, np.ndarray):
        return value
    module = type(value).__module__
    if module.startswith("torch"):
        return value.detach().cpu().numpy()
    if module.startswith("tensorflow") or hasattr(value, "numpy") and not hasattr(value, "node"):
        try:
            return np.asarray(value.numpy())
        except AttributeError:
            pass
    return np.asarray(value)


def _check_numbers(array, what, method):
    if array.dtype.kind not in "biuf":
        raise TypeError(f"{method}: {what} must hold real numbers, got dtype {array.dtype}")
    if array.ndim == 0:
        raise ValueError(f"{method}: {what} must have a batch axis, got a scalar")
    return array


def class_weight_to_sample_weights(y, class_weight, method="fit"):
    """Per-sample weights from a {class index: weight} dict, by the label (or its argmax
    for one-hot targets), as Keras does."""
    if not hasattr(class_weight, "items"):
        raise ValueError(f"{method}: class_weight must be a dict of class index -> weight, got "
                         f"{type(class_weight).__name__}")
    try:
        weights = {int(k): float(v) for k, v in class_weight.items()}
    except (TypeError, ValueError):
        raise ValueError(f"{method}: class_weight must map integer class indices to numbers, "
                         f"got {class_weight!r}") from None
    if isinstance(y, (list, tuple, dict)):
        raise ValueError(f"{method}: class_weight is only supported for models with one "
                         f"output; pass sample_weight per output instead")
    y = np.asarray(y)
    labels = np.argmax(y, axis=-1) if y.ndim > 1 and y.shape[-1] > 1 else \
        np.round(y.reshape(len(y), -1)[:, 0]).astype(np.int64)
    return np.array([weights.get(int(label), 1.0) for label in labels], dtype=np.float32)


class DataAdapter:
    """One source of batches. ``num_batches`` is the batches in an epoch (None: unknown)."""
    num_batches = None

    def batches(self):
        raise NotImplementedError

    def on_epoch_end(self):
        pass


class ArrayAdapter(DataAdapter):
    """In-memory arrays (nested in lists/dicts for several inputs or outputs), sliced into
    batches; shuffled each epoch from convnet's seeded generator (``shuffle="batch"``
    shuffles the order of whole batches, as Keras)."""

    def __init__(self, x, y=None, sample_weight=None, batch_size=32, shuffle=False,
                 class_weight=None, steps=None, method="fit"):
        self.x = map_structure(lambda a: _check_numbers(_to_numpy(a), "x", method), x)
        # A None target is an output without a loss (compile(loss=[..., None])).
        self.y = None if y is None else map_structure(
            lambda a: None if a is None else _check_numbers(_to_numpy(a), "y", method), y)
        if class_weight is not None:
            if self.y is None:
                raise ValueError(f"{method}: class_weight needs targets y")
            if sample_weight is not None:
                raise ValueError(f"{method}: give class_weight or sample_weight, not both")
            sample_weight = class_weight_to_sample_weights(self.y, class_weight, method)
        self.sample_weight = None if sample_weight is None else map_structure(
            lambda a: _check_numbers(_to_numpy(a), "sample_weight", method), sample_weight)
        lengths = {len(a) for a in flatten((self.x, self.y, self.sample_weight))
                   if a is not None}
        if len(lengths) > 1:
            counts = " but ".join(
                f"{what} has {', '.join(str(n) for n in sorted({len(a) for a in flatten(v)}))}"
                f"{' samples' if i == 0 else ''}"
                for i, (what, v) in enumerate((("x", self.x), ("y", self.y),
                                                ("sample_weight", self.sample_weight)))
                if v is not None)
            raise ValueError(f"{method}: {counts}; they must match")
        self.size = lengths.pop() if lengths else 0
        if self.size == 0:
            raise ValueError(f"{method}: the data is empty")
        self.batch_size = batch_size
        self.shuffle = shuffle
        full = math.ceil(self.size / batch_size)
        self.num_batches = full if steps is None else min(steps, full)

    def _take(self, index):
        def take(a):
            return None if a is None else a[index]

        return tuple(None if part is None else map_structure(take, part)
                     for part in (self.x, self.y, self.sample_weight))

    def batches(self):
        n, size = self.size, self.batch_size
        starts = list(range(0, n, size))[:self.num_batches]
        order = None
        if self.shuffle == "batch":
            starts = [starts[i] for i in random.generator().permutation(len(starts))]
        elif self.shuffle:
            order = random.generator().permutation(n)
        for start in starts:
            stop = min(n, start + size)
            yield self._take(slice(start, stop) if order is None else order[start:stop])

    def split(self, validation_split, method="fit"):
        """(train adapter, validation arrays): Keras takes the last samples, before shuffling."""
        split = self.size - int(math.floor(self.size * validation_split))
        if split in (0, self.size):
            raise ValueError(f"{method}: validation_split={validation_split} of {self.size} "
                             f"samples leaves no training or no validation data")
        head = self._take(slice(0, split))
        tail = self._take(slice(split, self.size))
        return head, tail


class IterableAdapter(DataAdapter):
    """A Python iterable or generator of batches (x, (x, y) or (x, y, sample_weight)).

    An iterable that can be iterated again (a list, a torch DataLoader, a tf.data
    Dataset) starts over each epoch; a one-shot iterator (a generator) is consumed across
    epochs, so give ``steps_per_epoch`` to cut it into epochs, as in Keras.
    """

    def __init__(self, data, steps=None, class_weight=None):
        self.data = data
        self.steps = steps
        self.num_batches = steps
        if steps is None and hasattr(data, "__len__"):
            try:
                self.num_batches = len(data)
            except TypeError:
                pass
        self.class_weight = class_weight
        self.reiterable = iter(data) is not data
        self._iterator = None
        self._exhausted_warned = False

    def _source(self):
        if self.reiterable:
            return iter(self._elements())
        if self._iterator is None:
            self._iterator = iter(self._elements())
        return self._iterator

    def _elements(self):
        module = type(self.data).__module__
        if module.startswith("tensorflow") and hasattr(self.data, "as_numpy_iterator"):
            return self.data.as_numpy_iterator()
        return self.data

    def batches(self):
        source = self._source()
        count = 0
        while self.steps is None or count < self.steps:
            try:
                batch = next(source)
            except StopIteration:
                if self.steps is not None and not self._exhausted_warned:
                    warnings.warn(f"Your input ran out of data after {count} of {self.steps} "
                                  f"steps; make sure it can generate steps_per_epoch * epochs "
                                  f"batches", stacklevel=4)
                    self._exhausted_warned = True
                if not self.reiterable:
                    self._iterator = None
                return
            x, y, sw = unpack_x_y_sample_weight(batch)
            x = map_structure(_to_numpy, x)
            y = None if y is None else map_structure(_to_numpy, y)
            sw = None if sw is None else map_structure(_to_numpy, sw)
            if self.class_weight is not None and y is not None and sw is None:
                sw = class_weight_to_sample_weights(y, self.class_weight)
            count += 1
            yield x, y, sw


class PyDatasetAdapter(DataAdapter):
    """``keras.utils.PyDataset``: ``__getitem__(i)`` gives batch i of ``len()``; shuffled
    batch order when asked, ``on_epoch_end`` after each epoch."""

    def __init__(self, dataset, steps=None, shuffle=False, class_weight=None):
        self.dataset = dataset
        length = dataset.num_batches if getattr(dataset, "num_batches", None) is not None \
            else len(dataset)
        self.num_batches = length if steps is None else min(steps, length)
        self.shuffle = shuffle
        self.class_weight = class_weight

    def batches(self):
        order = range(self.num_batches)
        if self.shuffle:
            order = random.generator().permutation(self.num_batches)
        for i in order:
            x, y, sw = unpack_x_y_sample_weight(self.dataset[int(i)])
            x = map_structure(_to_numpy, x)
            y = None if y is None else map_structure(_to_numpy, y)
            sw = None if sw is None else map_structure(_to_numpy, sw)
            if self.class_weight is not None and y is not None and sw is None:
                sw = class_weight_to_sample_weights(y, self.class_weight)
            yield x, y, sw

    def on_epoch_end(self):
        if hasattr(self.dataset, "on_epoch_end"):
            self.dataset.on_epoch_end()


class PyDataset:
    """Keras' base class for a dataset written in Python: implement ``__len__`` (batches
    per epoch) and ``__getitem__(index)`` (one batch: x, (x, y) or (x, y, sample_weight));
    ``on_epoch_end`` is called after each epoch. ``workers``, ``use_multiprocessing`` and
    ``max_queue_size`` are accepted for compatibility; batches are read in the training
    thread."""

    def __init__(self, workers=1, use_multiprocessing=False, max_queue_size=10):
        self._workers = workers
        self._use_multiprocessing = use_multiprocessing
        self._max_queue_size = max_queue_size

    @property
    def workers(self):
        return getattr(self, "_workers", 1)

    @property
    def use_multiprocessing(self):
        return getattr(self, "_use_multiprocessing", False)

    @property
    def max_queue_size(self):
        return getattr(self, "_max_queue_size", 10)

    @property
    def num_batches(self):
        if hasattr(self, "__len__"):
            return len(self)
        return None

    def __getitem__(self, index):
        raise NotImplementedError

    def on_epoch_begin(self):
        pass

    def on_epoch_end(self):
        pass


def _is_iterable_source(x):
    if isinstance(x, (np.ndarray, list, tuple, dict)) or x is None:
        return False
    module = type(x).__module__
    if module.startswith(("tensorflow", "torch")) and not hasattr(x, "shape"):
        return True  # tf.data.Dataset, torch DataLoader
    return hasattr(x, "__iter__") or hasattr(x, "__next__")


def get_adapter(x, y=None, sample_weight=None, batch_size=None, steps=None, shuffle=False,
                class_weight=None, method="fit"):
    """The DataAdapter for what the user passed to `method`."""
    if isinstance(x, PyDataset) or (hasattr(x, "__getitem__") and hasattr(x, "__len__")
                                    and hasattr(x, "on_epoch_end")
                                    and not isinstance(x, (np.ndarray, list, tuple, dict))):
        _no_extra(method, y, sample_weight, batch_size, "a PyDataset")
        return PyDatasetAdapter(x, steps, shuffle, class_weight)
    if _is_iterable_source(x):
        _no_extra(method, y, sample_weight, batch_size, f"a {type(x).__name__}")
        return IterableAdapter(x, steps, class_weight)
    if x is None:
        raise ValueError(f"{method}: x (the inputs) is required")
    return ArrayAdapter(x, y, sample_weight, 32 if batch_size is None else batch_size,
                        shuffle, class_weight, steps, method)


def _no_extra(method, y, sample_weight, batch_size, what):
    for name, value in (("y", y), ("sample_weight", sample_weight),
                        ("batch_size", batch_size)):
        if value is not None:
            raise ValueError(f"{method}: do not pass {name} when x is {what}; it yields whole "
                             f"batches of (x, y) or (x, y, sample_weight)")
