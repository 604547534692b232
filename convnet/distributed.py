"""Data-parallel training across processes and machines on MPI, with Horovod's Keras API.

A Horovod script reads the same with ``import convnet.distributed as hvd``::

    import convnet as keras
    import convnet.distributed as hvd

    hvd.init()
    model.compile(optimizer=hvd.DistributedOptimizer(keras.optimizers.Adam(1e-3 * hvd.size())),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x, y, batch_size=64, epochs=5, verbose=1 if hvd.rank() == 0 else 0,
              callbacks=[hvd.callbacks.BroadcastGlobalVariablesCallback(0),
                         hvd.callbacks.MetricAverageCallback(),
                         hvd.callbacks.LearningRateWarmupCallback(1e-3 * hvd.size(),
                                                                  warmup_epochs=2)])

and runs as one process per share of the machines::

    mpiexec -n 4 python -m mpi4py train.py

``python -m mpi4py`` turns an uncaught exception on any rank into MPI_Abort, which ends
every rank; without it the other ranks would wait forever in their next collective.
(``init()`` installs the same abort in ``sys.excepthook`` as a second line of defence.)

Every rank holds the whole model. After ``init()``, ``fit`` and ``evaluate`` split the
data themselves (every rank passes the same arrays):

- ``fit``: global batch k is ``batch_size * size()`` samples of one shuffle, drawn on rank 0
  and broadcast, and rank r trains on its r-th part of it. Every rank runs the same number
  of steps by construction. The ``DistributedOptimizer`` sums the ranks' gradients weighted
  by their share of the global batch (a ragged last batch included), which is the gradient
  one process computes on the whole global batch: 2 ranks at batch 32 train as 1 process at
  batch 64. A last global batch with fewer samples than ranks is shared: those samples are
  held by several ranks, with weights that still add up to the one-process gradient (the
  epoch's metrics count them once per rank that holds them).
  Generators, datasets and ``PyDataset``\\ s are each rank's own (Horovod's convention:
  give each rank its share, e.g. ``dataset.shard(hvd.size(), hvd.rank())``); an epoch
  ends when the first rank runs out, and every step's weights are the ranks' sample counts.
- ``evaluate`` (and fit's validation) splits the same way and adds up the metrics' sums
  and counts over the ranks, so every rank gets the one-process result. It is a
  collective: call it on every rank.
- ``stop_training`` (EarlyStopping, TerminateOnNaN, a callback of yours) is agreed after
  every batch and every epoch: when one rank stops, all stop at the same step.
- Only rank 0 draws the progress bar and writes ModelCheckpoint's files; save other files
  yourself under ``if hvd.rank() == 0``.

The core never imports this module or mpi4py; mpi4py is imported by ``init()``
(``pip install "convnet[mpi]"`` installs it with MPICH).
"""
import copy
import math
import os
import sys
import warnings

import numpy as np
from threadpoolctl import threadpool_limits

from . import callbacks as callbacks_module, kernels, optimizers, random
from .data_adapters import ArrayAdapter, DataAdapter
from .graph import flatten

_MPI = None        # the mpi4py.MPI module, once init() has imported it
_world = None      # the communicator of the job
_node = None       # the ranks of this node (MPI's COMM_TYPE_SHARED split of _world)
_parallel = None   # fit's and evaluate's hooks while the job has several ranks

_OPS = {"average": "SUM", "sum": "SUM", "min": "MIN", "max": "MAX", "product": "PROD"}


# -- the job ------------------------------------------------------------------------------

def init(comm=None):
    """Join the MPI job (Horovod's ``hvd.init``); call it once, before anything else here.

    ``comm`` is an mpi4py communicator (default ``MPI.COMM_WORLD``). Each rank's kernel
    threads become the node's cores divided by the ranks on that node (at most what
    ``convnet.get_num_threads()`` was, which honours OMP_NUM_THREADS), and BLAS is held to
    as many: two ranks of two threads each on two cores ran a step 5.7x slower than two
    ranks of one. Call ``convnet.set_num_threads`` afterwards to choose otherwise.
    """
    global _MPI, _world, _node, _parallel
    if _world is not None:
        return
    try:
        from mpi4py import MPI
    except ImportError as error:
        raise ImportError("convnet.distributed.init: needs mpi4py and an MPI library; "
                          "pip install \"convnet[mpi]\" (mpi4py with MPICH)") from error
    world = MPI.COMM_WORLD if comm is None else comm
    if not isinstance(world, MPI.Comm):
        raise TypeError(f"convnet.distributed.init: comm must be an mpi4py communicator, "
                        f"got {type(comm).__name__}")
    _MPI, _world = MPI, world
    _node = world.Split_type(MPI.COMM_TYPE_SHARED, key=world.Get_rank())
    _share_cores(_node.Get_size())
    if world.Get_size() > 1:
        _abort_on_uncaught_exception(world)
        _parallel = _DataParallel(world)


def is_initialized():
    """Whether init() has run in this process."""
    return _world is not None


def _job(function):
    if _world is None:
        raise ValueError(f"convnet.distributed.{function}: call convnet.distributed.init() "
                         f"first")
    return _world


def rank():
    """This process's rank in the job, 0 to size() - 1."""
    return _job("rank").Get_rank()


def size():
    """The number of processes (ranks) in the job."""
    return _job("size").Get_size()


def local_rank():
    """This process's rank among the ranks on its node."""
    _job("local_rank")
    return _node.Get_rank()


def local_size():
    """The number of ranks on this process's node."""
    _job("local_size")
    return _node.Get_size()


def _share_cores(ranks_on_node):
    threads = max(1, min(kernels.get_num_threads(), (os.cpu_count() or 1) // ranks_on_node))
    kernels.set_num_threads(threads)
    threadpool_limits(threads, user_api="blas")


def _abort_on_uncaught_exception(world):
    """What ``python -m mpi4py`` does, for a script started without it: an exception that
    ends this rank ends the job, instead of leaving the others in a collective forever."""
    report = sys.excepthook

    def abort(kind, value, traceback):
        report(kind, value, traceback)
        sys.stderr.flush()
        world.Abort(1)
    sys.excepthook = abort


# -- collectives on arrays ------------------------------------------------------------------

def _numbers(value, function):
    array = np.asarray(value)
    if array.dtype.kind not in "biuf":
        raise TypeError(f"convnet.distributed.{function}: expected numbers, got dtype "
                        f"{array.dtype}")
    return np.array(array, dtype=np.int64 if array.dtype.kind == "b" else array.dtype,
                    order="C")


def allreduce(value, op="average"):
    """``value`` (an array or a number of the same shape on every rank) combined over the
    ranks: op is "average" (Horovod's default), "sum", "min", "max" or "product". Returns
    a new array (a NumPy scalar for a scalar); an average of integers is a float."""
    world = _job("allreduce")
    if op not in _OPS:
        raise ValueError(f"convnet.distributed.allreduce: op must be one of {sorted(_OPS)}, "
                         f"got {op!r}")
    buffer = _numbers(value, "allreduce")
    world.Allreduce(_MPI.IN_PLACE, buffer, op=getattr(_MPI, _OPS[op]))
    if op == "average":
        buffer = buffer / world.Get_size()
    return buffer if buffer.ndim else buffer[()]


def _check_root(root, function):
    world = _job(function)
    if isinstance(root, bool) or not isinstance(root, (int, np.integer)) or \
            not 0 <= root < world.Get_size():
        raise ValueError(f"convnet.distributed.{function}: root rank must be an int in "
                         f"[0, {world.Get_size()}), got {root!r}")
    return world, int(root)


def broadcast(value, root_rank=0):
    """Rank ``root_rank``'s ``value`` on every rank (same shape and dtype everywhere)."""
    world, root_rank = _check_root(root_rank, "broadcast")
    buffer = _numbers(value, "broadcast")
    world.Bcast(buffer, root=root_rank)
    return buffer if buffer.ndim else buffer[()]


def _agree_on_count(count, what):
    """Raise on every rank (so the job ends instead of hanging) unless all ranks hold
    the same number of `what`: a collective over differently sized buffers never returns."""
    bounds = np.array([count, -count], np.int64)
    _world.Allreduce(_MPI.IN_PLACE, bounds, op=_MPI.MAX)
    if bounds[0] != -bounds[1]:
        raise ValueError(f"convnet.distributed: the ranks hold different numbers of {what} "
                         f"(from {-bounds[1]} to {bounds[0]}); this rank has {count}")


def broadcast_weights(model, root=0):
    """Copy rank ``root``'s weights (trainable and not) into every rank's model, and its
    optimizer's state (step count and slots, e.g. Adam's moments) where it has one: what
    makes a resumed run, or ranks that initialised differently, start from one state."""
    world, root = _check_root(root, "broadcast_weights")
    weights = list(model.weights)
    _agree_on_count(len(weights), f"weights in {type(model).__name__}")
    here = world.Get_rank()
    for variable in weights:
        buffer = np.ascontiguousarray(variable.value) if here == root else \
            np.empty(variable.shape, variable.dtype)
        world.Bcast(buffer, root=root)
        if here != root:
            variable.assign(buffer)
    optimizer = getattr(model, "optimizer", None)
    if isinstance(optimizer, optimizers.Optimizer):
        _broadcast_optimizer_state(optimizer, model.trainable_weights, root)


def _broadcast_optimizer_state(optimizer, variables, root):
    """Root's optimizer state (its ``variables``: step count, learning rate, slots) to every
    rank, through the optimizer's public state API (build / variables / set_weights)."""
    built = np.array([optimizer.built], np.int64)
    _world.Bcast(built, root=root)
    if not built[0]:
        return  # root has not stepped yet: every rank starts fresh
    optimizer.build(variables)
    state = optimizer.variables
    _agree_on_count(len(state), "optimizer state arrays")
    received = []
    for array in state:
        buffer = np.array(array)  # a contiguous copy that keeps 0-d counters 0-d
        _world.Bcast(buffer, root=root)
        received.append(buffer)
    if _world.Get_rank() != root:
        optimizer.set_weights(received)


# -- the optimizer --------------------------------------------------------------------------

class _AveragedGradients:
    """Put in front of an optimizer's class by DistributedOptimizer: gradients are combined
    over the ranks before the wrapped class's update."""

    def apply(self, grads, variables):
        grads, variables = list(grads), list(variables)
        if _world is not None and _world.Get_size() > 1 and variables \
                and len(grads) == len(variables):
            grads = self._allreduce_gradients(grads, variables)
        super().apply(grads, variables)

    def _allreduce_gradients(self, grads, variables):
        layout = [(tuple(v.shape), np.dtype(v.dtype)) for v in variables]
        if self._fused is None or self._fused[0] != layout:
            buffer = np.empty(sum(math.prod(shape) for shape, _ in layout),
                              np.result_type(*(dtype for _, dtype in layout)))
            views, offset = [], 0
            for shape, _ in layout:
                count = math.prod(shape)
                views.append(buffer[offset:offset + count].reshape(shape))
                offset += count
            self._fused = (layout, buffer, views)
        _, buffer, views = self._fused
        # fit's sharding sets this rank's share of the global batch before each step;
        # elsewhere (train_on_batch, a loop of your own) every rank weighs the same.
        share = 1 / _world.Get_size() if self._batch_share is None else self._batch_share
        self._batch_share = None
        for grad, view in zip(grads, views):
            np.multiply(grad, share, out=view, casting="same_kind")
        _sum_in_place(buffer)
        return views


def _sum_in_place(buffer):
    """The step's one Allreduce: every rank's weighted gradients, summed in place."""
    _world.Allreduce(_MPI.IN_PLACE, buffer, op=_MPI.SUM)


_DISTRIBUTED_CLASSES = {}


def DistributedOptimizer(optimizer):  # noqa: N802 - Horovod's name
    """``optimizer`` (an Optimizer or its name) that averages the gradients over the ranks
    before each update: one fused, in-place Allreduce per step over a buffer holding every
    gradient, allocated on the first step. Under fit the average is weighted by each rank's
    share of the global batch (see the module's docstring); elsewhere all ranks weigh the
    same, as in Horovod.

    The result is an instance of a subclass of the optimizer's class with the same name,
    state (learning rate, schedule, iterations, slots) and ``get_config``, so callbacks
    that set ``learning_rate`` work and a saved model loads without MPI.
    """
    optimizer = optimizers.get(optimizer)
    if isinstance(optimizer, _AveragedGradients):
        return optimizer
    cls = type(optimizer)
    if cls not in _DISTRIBUTED_CLASSES:
        _DISTRIBUTED_CLASSES[cls] = type(cls.__name__, (_AveragedGradients, cls),
                                         {"__module__": cls.__module__,
                                          "__qualname__": cls.__qualname__,
                                          "__doc__": cls.__doc__})
    distributed = copy.copy(optimizer)
    distributed.__class__ = _DISTRIBUTED_CLASSES[cls]
    distributed._fused = None
    distributed._batch_share = None
    return distributed


# -- fit and evaluate on several ranks ------------------------------------------------------

def _data_parallel():
    """The hooks trainer.fit/evaluate call in a job of several ranks, else None."""
    return _parallel


class _DataParallel:
    """What fit and evaluate change when the job has several ranks (the trainer calls
    ``setup_fit`` / ``setup_evaluate`` once per call)."""

    def __init__(self, world):
        self.rank, self.ranks = world.Get_rank(), world.Get_size()

    def setup_fit(self, model, adapter, validation, verbose, user_callbacks):
        if not isinstance(model.optimizer, _AveragedGradients) and self.rank == 0:
            warnings.warn(f"fit on {self.ranks} ranks with an optimizer that does not average "
                          f"gradients: each rank trains its own model; compile with "
                          f"convnet.distributed.DistributedOptimizer(optimizer)", stacklevel=3)
        kept = [c for c in user_callbacks or []
                if self.rank == 0 or not isinstance(c, callbacks_module.ModelCheckpoint)]
        return (self._shard(model, adapter, training=True),
                None if validation is None else self._shard(model, validation, training=False),
                verbose if self.rank == 0 else 0,
                kept + [_AgreeOnStopping()])

    def setup_evaluate(self, model, adapter, verbose):
        return self._shard(model, adapter, training=False), verbose if self.rank == 0 else 0

    def _shard(self, model, adapter, training):
        if isinstance(adapter, ArrayAdapter):
            return _ShardedArrays(model, adapter, training, self.rank, self.ranks)
        return _OwnBatches(model, adapter, training, self.ranks)


def _set_share(model, share):
    if isinstance(getattr(model, "optimizer", None), _AveragedGradients):
        model.optimizer._batch_share = share


def _reduce_metrics(model):
    """Each metric's state (sums and counts, confusion counts) added over the ranks: every
    rank then reports the one-process result."""
    metrics = [m for m in model.metrics if hasattr(m, "state")]
    _agree_on_count(len(metrics), "metrics")
    states = [m.state() for m in metrics]
    sizes = [sum(a.size for a in state) for state in states]
    _agree_on_count(sum(sizes), "metric state values")
    flat = np.concatenate([a.reshape(-1) for state in states for a in state]) if sum(sizes) \
        else np.zeros(0)
    _world.Allreduce(_MPI.IN_PLACE, flat, op=_MPI.SUM)
    offset = 0
    for metric, state in zip(metrics, states):
        arrays = []
        for a in state:
            arrays.append(flat[offset:offset + a.size].reshape(a.shape))
            offset += a.size
        metric.set_state(arrays)


class _ShardedArrays(DataAdapter):
    """Rank r's part of every global batch of an ArrayAdapter.

    A global batch is ``batch_size * ranks`` samples of one order, drawn on rank 0 exactly
    as one process draws it (so 2 ranks at batch 32 see the batches 1 process sees at 64)
    and broadcast, so ranks that seeded differently, or not at all, still agree. Its m
    samples are cut into `ranks` nearly equal contiguous parts; with m < ranks (only a last
    batch can be so small) sample j goes to every rank r with r % m == j, for training,
    while evaluation leaves those ranks out of the step (it needs no lockstep).
    """

    def __init__(self, model, adapter, training, rank, ranks):
        self.model, self.adapter, self.training = model, adapter, training
        self.rank, self.ranks = rank, ranks
        self.global_batch = adapter.batch_size * ranks
        self.num_batches = min(adapter.num_batches, math.ceil(adapter.size / self.global_batch))
        if not training and adapter.size < ranks:
            raise ValueError(f"convnet.distributed: evaluating {adapter.size} samples on {ranks} "
                             f"ranks; every rank needs at least one")

    def _from_root(self, n):
        order = random.generator().permutation(n).astype(np.int64) if self.rank == 0 \
            else np.empty(n, np.int64)
        _world.Bcast(order, root=0)
        return order

    def _part(self, m):
        """(start, stop, share of the global batch) of this rank's part of m samples."""
        r, ranks = self.rank, self.ranks
        if m >= ranks:
            base, extra = divmod(m, ranks)
            start = r * base + min(r, extra)
            stop = start + base + (r < extra)
            return start, stop, (stop - start) / m
        if not self.training:
            return (r, r + 1, None) if r < m else (0, 0, None)
        j = r % m
        holders = ranks // m + (j < ranks % m)
        return j, j + 1, 1 / (m * holders)

    def batches(self):
        adapter, n = self.adapter, self.adapter.size
        starts = list(range(0, n, self.global_batch))[:self.num_batches]
        order = None
        if adapter.shuffle == "batch":
            starts = [starts[i] for i in self._from_root(len(starts))]
        elif adapter.shuffle:
            order = self._from_root(n)
        for start in starts:
            low, high, share = self._part(min(n, start + self.global_batch) - start)
            if low == high:
                continue
            if self.training:
                _set_share(self.model, share)
            yield adapter._take(slice(start + low, start + high) if order is None
                                else order[start + low:start + high])

    def on_epoch_end(self):
        self.adapter.on_epoch_end()
        _reduce_metrics(self.model)


class _OwnBatches(DataAdapter):
    """A generator, dataset or PyDataset that is each rank's own. Training agrees on
    every step with one small Allreduce of (ranks holding a batch, samples in the global
    batch): the epoch ends for all when one rank runs out, and each rank's gradient is
    weighted by its count of samples."""

    def __init__(self, model, adapter, training, ranks):
        self.model, self.adapter, self.training, self.ranks = model, adapter, training, ranks
        self.num_batches = adapter.num_batches
        if training:  # the fewest batches of any rank (None if any rank's count is unknown)
            known = adapter.num_batches is not None
            bounds = np.array([adapter.num_batches if known else np.iinfo(np.int64).max,
                               -int(not known)], np.int64)
            _world.Allreduce(_MPI.IN_PLACE, bounds, op=_MPI.MIN)
            self.num_batches = None if bounds[1] else int(bounds[0])

    def batches(self):
        if not self.training:
            yield from self.adapter.batches()
            return
        source = iter(self.adapter.batches())
        counts = np.zeros(2, np.int64)
        for _ in range(self.num_batches or sys.maxsize):
            batch = next(source, None)
            samples = 0 if batch is None else len(flatten(batch[0])[0])
            counts[:] = (batch is not None, samples)
            _world.Allreduce(_MPI.IN_PLACE, counts, op=_MPI.SUM)
            if counts[0] < self.ranks:
                return
            _set_share(self.model, samples / int(counts[1]))
            yield batch

    def on_epoch_end(self):
        self.adapter.on_epoch_end()
        _reduce_metrics(self.model)


class _AgreeOnStopping(callbacks_module.Callback):
    """Put last among fit's callbacks on several ranks: after each batch and each epoch,
    stop_training becomes true on every rank when it is true on any, so no rank leaves
    the loop while the others wait for it in the next step's Allreduce."""

    def __init__(self):
        super().__init__()
        self._flag = np.zeros(1, np.int32)

    def _agree(self):
        self._flag[0] = bool(self.model.stop_training)
        _world.Allreduce(_MPI.IN_PLACE, self._flag, op=_MPI.MAX)
        self.model.stop_training = bool(self._flag[0])

    def on_train_batch_end(self, batch, logs=None):
        self._agree()

    def on_epoch_end(self, epoch, logs=None):
        self._agree()


# -- Horovod's callbacks --------------------------------------------------------------------

class BroadcastGlobalVariablesCallback(callbacks_module.Callback):
    """Broadcasts rank ``root_rank``'s weights and optimizer state to every rank once,
    before the first training step (Horovod broadcasts after it; before makes ranks that
    initialised differently train exactly as one process)."""

    def __init__(self, root_rank=0):
        super().__init__()
        self.root_rank = root_rank
        self.broadcast_done = False

    def on_train_batch_begin(self, batch, logs=None):
        if not self.broadcast_done:
            broadcast_weights(self.model, self.root_rank)
            self.broadcast_done = True


class MetricAverageCallback(callbacks_module.Callback):
    """Averages every value in the epoch's logs over the ranks, in one Allreduce.

    fit on several ranks already reports the compiled metrics over all the data; this
    averages what it does not reduce (logs added by callbacks before this one, metrics
    without a sum and a count). Put it before callbacks that read the logs."""

    def on_epoch_end(self, epoch, logs=None):
        if not logs:
            return
        keys = sorted(logs)
        _agree_on_count(len(keys), "log entries")
        values = allreduce(np.array([float(logs[k]) for k in keys], np.float64))
        logs.update(zip(keys, (float(v) for v in values)))


class LearningRateScheduleCallback(callbacks_module.Callback):
    """Horovod's schedule: from ``start_epoch`` until ``end_epoch`` the learning rate is
    ``initial_lr * multiplier(epoch)`` (``multiplier ** epoch`` for a number), set at each
    epoch's first batch (``staircase=True``) or at every batch with a fractional epoch.
    With ``momentum_correction``, an optimizer's ``momentum`` is scaled by new_lr / old_lr
    for the batch where the rate changes (Goyal et al. 2017, "Accurate, Large Minibatch
    SGD"). The epoch's logs get ``lr``."""

    def __init__(self, initial_lr, multiplier, start_epoch=0, end_epoch=None, staircase=True,
                 momentum_correction=True, steps_per_epoch=None):
        super().__init__()
        if initial_lr is None:
            raise ValueError(f"{type(self).__name__}: initial_lr is required")
        self.initial_lr = float(initial_lr)
        self.multiplier = multiplier if callable(multiplier) else \
            (lambda epoch: multiplier ** epoch)
        self.start_epoch, self.end_epoch, self.staircase = start_epoch, end_epoch, staircase
        self.momentum_correction = momentum_correction
        self.steps_per_epoch = steps_per_epoch
        self.current_epoch = None
        self.restore_momentum = None

    def on_train_begin(self, logs=None):
        if not self.staircase and not self.steps_per_epoch:
            self.steps_per_epoch = self.params.get("steps")
            if not self.steps_per_epoch:
                raise ValueError(f"{type(self).__name__}: the number of steps per epoch is "
                                 f"unknown; pass steps_per_epoch")

    def on_epoch_begin(self, epoch, logs=None):
        self.current_epoch = epoch

    def _adjust_learning_rate(self, epoch):
        optimizer = self.model.optimizer
        old_lr = float(optimizer.learning_rate)
        new_lr = self.initial_lr * self.multiplier(epoch)
        optimizer.learning_rate = new_lr
        if self.momentum_correction and getattr(optimizer, "momentum", None):
            self.restore_momentum = optimizer.momentum
            optimizer.momentum = self.restore_momentum * new_lr / old_lr

    def on_train_batch_begin(self, batch, logs=None):
        if self.current_epoch < self.start_epoch or (
                self.end_epoch is not None and self.current_epoch >= self.end_epoch):
            return
        if not self.staircase:
            self._adjust_learning_rate(self.current_epoch + batch / self.steps_per_epoch)
        elif batch == 0:
            self._adjust_learning_rate(self.current_epoch)

    def on_train_batch_end(self, batch, logs=None):
        if self.restore_momentum is not None:
            self.model.optimizer.momentum = self.restore_momentum
            self.restore_momentum = None

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["lr"] = float(self.model.optimizer.learning_rate)


class LearningRateWarmupCallback(LearningRateScheduleCallback):
    """Horovod's warmup: the rate climbs linearly from ``initial_lr / size()`` to
    ``initial_lr`` over ``warmup_epochs``, adjusted at every batch. The multiplier at
    fractional epoch e is ``(1 + (e + 1/steps_per_epoch) * (size - 1) / warmup_epochs) /
    size``, so the last batch of the warmup runs at initial_lr (Goyal et al. 2017)."""

    def __init__(self, initial_lr, warmup_epochs=5, momentum_correction=True,
                 steps_per_epoch=None, verbose=0):
        def multiplier(epoch):
            epoch += 1 / self.steps_per_epoch
            ranks = size()
            return (epoch * (ranks - 1) / warmup_epochs + 1) / ranks
        super().__init__(initial_lr, multiplier, start_epoch=0, end_epoch=warmup_epochs,
                         staircase=False, momentum_correction=momentum_correction,
                         steps_per_epoch=steps_per_epoch)
        self.verbose = verbose

    def on_epoch_end(self, epoch, logs=None):
        super().on_epoch_end(epoch, logs)
        if epoch == self.end_epoch - 1 and self.verbose and rank() == 0:
            print(f"\nEpoch {epoch + 1}: finished gradual learning rate warmup to "
                  f"{float(self.model.optimizer.learning_rate):g}.")


class callbacks:  # noqa: N801 - Horovod's namespace: hvd.callbacks.MetricAverageCallback
    BroadcastGlobalVariablesCallback = BroadcastGlobalVariablesCallback
    MetricAverageCallback = MetricAverageCallback
    LearningRateScheduleCallback = LearningRateScheduleCallback
    LearningRateWarmupCallback = LearningRateWarmupCallback
