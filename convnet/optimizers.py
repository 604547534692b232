"""Optimizers and learning-rate schedules with Keras 3's names, arguments, defaults and update
rules.

``optimizer.apply(grads, variables)`` updates each variable in place: an ndarray, or an
object whose ``np.asarray(variable)`` is the array that holds its value (a
``convnet.Variable``, whose ``version`` counter is then incremented, as its ``assign`` does, so
caches of the weight know it changed). One step, as in
Keras' BaseOptimizer: gradients clipped (``clipnorm`` per variable, ``global_clipnorm``
over all, or ``clipvalue``), then decoupled weight decay ``w -= w * weight_decay * lr``,
then the optimizer's update, then the variable's ``constraint`` (if it has one) applied to
the result; ``iterations`` counts the steps and a schedule is read at the step's start.

The optimizer's state, for checkpoints: ``variables`` (iterations, the learning rate unless
it is a schedule, then every slot array in a fixed order) and ``set_weights`` to put it back.

Every setting is validated at construction: NaN, infinite or out-of-range values (e.g.
``Adam(beta_1=1)``, whose bias correction divides by zero) are a ValueError naming the
argument.
"""
import math
import re
import warnings

import numpy as np

from . import _checks
from ._naming import auto_name


# ----------------------------------------------------------------------------- schedules

class LearningRateSchedule:
    """A learning rate that is a function of the step (the optimizer's ``iterations``)."""

    def __call__(self, step):
        raise NotImplementedError

    def get_config(self):
        raise NotImplementedError

    @classmethod
    def from_config(cls, config):
        return cls(**config)


def _rate(owner, name, value):
    return _checks.real(owner, name, value, low=0)


def _steps(owner, name, value):
    return _checks.real(owner, name, value, low=0, low_open=True)


class ExponentialDecay(LearningRateSchedule):
    """``initial_learning_rate * decay_rate ** (step / decay_steps)`` (the exponent floored
    with staircase=True)."""

    def __init__(self, initial_learning_rate, decay_steps, decay_rate, staircase=False,
                 name="ExponentialDecay"):
        owner = "ExponentialDecay"
        self.initial_learning_rate = _rate(owner, "initial_learning_rate", initial_learning_rate)
        self.decay_steps = _steps(owner, "decay_steps", decay_steps)
        self.decay_rate = _checks.real(owner, "decay_rate", decay_rate, low=0, low_open=True)
        self.staircase = _checks.boolean(owner, "staircase", staircase)
        self.name = name

    def __call__(self, step):
        p = step / self.decay_steps
        return self.initial_learning_rate * self.decay_rate ** (math.floor(p) if self.staircase
                                                                else p)

    def get_config(self):
        return {"initial_learning_rate": self.initial_learning_rate,
                "decay_steps": self.decay_steps, "decay_rate": self.decay_rate,
                "staircase": self.staircase, "name": self.name}


class PiecewiseConstantDecay(LearningRateSchedule):
    """``values[0]`` while step <= boundaries[0], ``values[i]`` while boundaries[i-1] < step <=
    boundaries[i], ``values[-1]`` after the last boundary (Keras' rule)."""

    def __init__(self, boundaries, values, name="PiecewiseConstant"):
        owner = "PiecewiseConstantDecay"
        boundaries, values = list(boundaries), list(values)
        if len(values) != len(boundaries) + 1:
            raise ValueError(f"{owner}: values must have one more entry than boundaries, got "
                             f"{len(values)} and {len(boundaries)}")
        self.boundaries = [_checks.real(owner, "boundaries", b) for b in boundaries]
        if any(b >= c for b, c in zip(self.boundaries, self.boundaries[1:])):
            raise ValueError(f"{owner}: boundaries must be strictly increasing, got "
                             f"{self.boundaries}")
        self.values = [_rate(owner, "values", v) for v in values]
        self.name = name

    def __call__(self, step):
        for boundary, value in zip(self.boundaries, self.values):
            if step <= boundary:
                return value
        return self.values[-1]

    def get_config(self):
        return {"boundaries": self.boundaries, "values": self.values, "name": self.name}


class PolynomialDecay(LearningRateSchedule):
    """From initial_learning_rate to end_learning_rate as ``(1 - step / decay_steps) ** power``
    over decay_steps, then constant; with ``cycle`` decay_steps grows to the next multiple of
    itself past the step, restarting the decay."""

    def __init__(self, initial_learning_rate, decay_steps, end_learning_rate=0.0001, power=1.0,
                 cycle=False, name="PolynomialDecay"):
        owner = "PolynomialDecay"
        self.initial_learning_rate = _rate(owner, "initial_learning_rate", initial_learning_rate)
        self.decay_steps = _steps(owner, "decay_steps", decay_steps)
        self.end_learning_rate = _rate(owner, "end_learning_rate", end_learning_rate)
        self.power = _checks.real(owner, "power", power, low=0, low_open=True)
        self.cycle = _checks.boolean(owner, "cycle", cycle)
        self.name = name

    def __call__(self, step):
        decay_steps = self.decay_steps
        if self.cycle:
            decay_steps *= 1.0 if step == 0 else math.ceil(step / self.decay_steps)
        else:
            step = min(step, decay_steps)
        p = step / decay_steps
        return ((self.initial_learning_rate - self.end_learning_rate) * (1 - p) ** self.power
                + self.end_learning_rate)

    def get_config(self):
        return {"initial_learning_rate": self.initial_learning_rate,
                "decay_steps": self.decay_steps, "end_learning_rate": self.end_learning_rate,
                "power": self.power, "cycle": self.cycle, "name": self.name}


class InverseTimeDecay(LearningRateSchedule):
    """``initial_learning_rate / (1 + decay_rate * step / decay_steps)`` (floored with
    staircase=True)."""

    def __init__(self, initial_learning_rate, decay_steps, decay_rate, staircase=False,
                 name="InverseTimeDecay"):
        owner = "InverseTimeDecay"
        self.initial_learning_rate = _rate(owner, "initial_learning_rate", initial_learning_rate)
        self.decay_steps = _steps(owner, "decay_steps", decay_steps)
        self.decay_rate = _checks.real(owner, "decay_rate", decay_rate, low=0)
        self.staircase = _checks.boolean(owner, "staircase", staircase)
        self.name = name

    def __call__(self, step):
        p = step / self.decay_steps
        return self.initial_learning_rate / (1 + self.decay_rate * (math.floor(p)
                                                                    if self.staircase else p))

    def get_config(self):
        return {"initial_learning_rate": self.initial_learning_rate,
                "decay_steps": self.decay_steps, "decay_rate": self.decay_rate,
                "staircase": self.staircase, "name": self.name}


class CosineDecay(LearningRateSchedule):
    """Optionally a linear warmup from initial_learning_rate to ``warmup_target`` over
    ``warmup_steps``, then a cosine decay over ``decay_steps`` to ``alpha`` times the rate it
    started from, then constant."""

    def __init__(self, initial_learning_rate, decay_steps, alpha=0.0, name="CosineDecay",
                 warmup_target=None, warmup_steps=0):
        owner = "CosineDecay"
        self.initial_learning_rate = _rate(owner, "initial_learning_rate", initial_learning_rate)
        self.decay_steps = _steps(owner, "decay_steps", decay_steps)
        self.alpha = _checks.real(owner, "alpha", alpha, 0, 1)
        self.name = name
        self.warmup_target = (None if warmup_target is None else
                              _rate(owner, "warmup_target", warmup_target))
        self.warmup_steps = _checks.real(owner, "warmup_steps", warmup_steps, low=0)

    def _decay(self, step, rate):
        cosine = 0.5 * (1 + math.cos(math.pi * step / self.decay_steps))
        return rate * ((1 - self.alpha) * cosine + self.alpha)

    def __call__(self, step):
        if self.warmup_target is None:
            return self._decay(min(step, self.decay_steps), self.initial_learning_rate)
        step = min(step, self.decay_steps + self.warmup_steps)
        if step < self.warmup_steps:
            return (self.initial_learning_rate + (self.warmup_target - self.initial_learning_rate)
                    * step / self.warmup_steps)
        return self._decay(step - self.warmup_steps, self.warmup_target)

    def get_config(self):
        return {"initial_learning_rate": self.initial_learning_rate,
                "decay_steps": self.decay_steps, "alpha": self.alpha, "name": self.name,
                "warmup_target": self.warmup_target, "warmup_steps": self.warmup_steps}


class CosineDecayRestarts(LearningRateSchedule):
    """Cosine decay with warm restarts (SGDR): the i-th period lasts
    ``first_decay_steps * t_mul**i`` steps and starts from ``m_mul**i`` times the rate."""

    def __init__(self, initial_learning_rate, first_decay_steps, t_mul=2.0, m_mul=1.0,
                 alpha=0.0, name="SGDRDecay"):
        owner = "CosineDecayRestarts"
        self.initial_learning_rate = _rate(owner, "initial_learning_rate", initial_learning_rate)
        self.first_decay_steps = _steps(owner, "first_decay_steps", first_decay_steps)
        # Periods that shrink (t_mul < 1) run out after finitely many steps: log of a
        # negative number, NaN rates.
        self._t_mul = _checks.real(owner, "t_mul", t_mul, low=1)
        self._m_mul = _checks.real(owner, "m_mul", m_mul, low=0)
        self.alpha = _checks.real(owner, "alpha", alpha, 0, 1)
        self.name = name

    def __call__(self, step):
        fraction = step / self.first_decay_steps
        if self._t_mul == 1.0:
            restart = math.floor(fraction)
            fraction -= restart
        else:
            restart = math.floor(math.log(1 - fraction * (1 - self._t_mul))
                                 / math.log(self._t_mul))
            done = (1 - self._t_mul ** restart) / (1 - self._t_mul)
            fraction = (fraction - done) / self._t_mul ** restart
        cosine = 0.5 * self._m_mul ** restart * (1 + math.cos(math.pi * fraction))
        return self.initial_learning_rate * ((1 - self.alpha) * cosine + self.alpha)

    def get_config(self):
        return {"initial_learning_rate": self.initial_learning_rate,
                "first_decay_steps": self.first_decay_steps, "t_mul": self._t_mul,
                "m_mul": self._m_mul, "alpha": self.alpha, "name": self.name}


class schedules:  # noqa: N801 - Keras' namespace: optimizers.schedules.ExponentialDecay
    LearningRateSchedule = LearningRateSchedule
    ExponentialDecay = ExponentialDecay
    PiecewiseConstantDecay = PiecewiseConstantDecay
    PolynomialDecay = PolynomialDecay
    InverseTimeDecay = InverseTimeDecay
    CosineDecay = CosineDecay
    CosineDecayRestarts = CosineDecayRestarts


SCHEDULES = {cls.__name__: cls for cls in (
    ExponentialDecay, PiecewiseConstantDecay, PolynomialDecay, InverseTimeDecay, CosineDecay,
    CosineDecayRestarts)}


# ----------------------------------------------------------------------------- optimizers

def _clip_by_norm(grad, clipnorm):
    norm = math.sqrt(float(np.sum(np.square(grad, dtype=np.float64))))
    return grad * (clipnorm / max(norm, clipnorm))


def _clip_by_global_norm(grads, clipnorm):
    """Keras' clip_by_global_norm: every gradient scaled by clipnorm / max(global norm,
    clipnorm); a NaN or infinite norm makes every gradient NaN (it does not hide)."""
    norm = math.sqrt(sum(float(np.sum(np.square(g, dtype=np.float64))) for g in grads))
    scale = clipnorm / max(norm, clipnorm) if math.isfinite(norm) else math.nan
    return [g * scale for g in grads]


class Optimizer:
    """Base class: learning rate (a number, a schedule or a function of no arguments),
    ``weight_decay``, ``clipnorm``/``clipvalue``/``global_clipnorm`` and ``name``."""
    #: slot names per variable, in the order ``variables`` lists them
    _slot_names = ()

    def __init__(self, learning_rate, weight_decay=None, clipnorm=None, clipvalue=None,
                 global_clipnorm=None, name=None):
        owner = type(self).__name__
        if name is not None and not isinstance(name, str):
            raise TypeError(f"{owner}: name must be a string, got {name!r}")
        self.name = name or auto_name(owner)
        self.weight_decay = (None if weight_decay is None else
                             _checks.real(owner, "weight_decay", weight_decay, low=0))
        clips = {"clipnorm": clipnorm, "clipvalue": clipvalue,
                 "global_clipnorm": global_clipnorm}
        if sum(value is not None for value in clips.values()) > 1:
            raise ValueError(f"{owner}: only one of clipnorm, clipvalue and global_clipnorm "
                             f"can be set, got {clips}")
        # Keras treats a clip of 0 as no clipping.
        for arg, value in clips.items():
            setattr(self, arg, None if value is None else _checks.real(owner, arg, value, low=0))
        self._iterations = 0
        self._learning_rate = None
        self.learning_rate = learning_rate
        self._slots = None
        self._index = None
        self._exclude_ids = set()
        self._exclude_pattern = None

    # -- learning rate ------------------------------------------------------------------------

    @property
    def iterations(self):
        return self._iterations

    @property
    def learning_rate(self):
        """The rate of the next step (a schedule is read at the current iteration)."""
        if isinstance(self._learning_rate, LearningRateSchedule):
            return float(self._learning_rate(self._iterations))
        if callable(self._learning_rate):
            return _checks.real(self.name, "learning_rate()", self._learning_rate(), low=0)
        return self._learning_rate

    @learning_rate.setter
    def learning_rate(self, value):
        owner = type(self).__name__
        if isinstance(value, LearningRateSchedule) or (callable(value)
                                                       and not isinstance(value, type)):
            self._learning_rate = value
            return
        if isinstance(self._learning_rate, LearningRateSchedule):
            raise TypeError(f"{owner} was created with a LearningRateSchedule as its "
                            f"learning_rate, so its learning rate is not settable; create it "
                            f"with a float learning_rate instead")
        self._learning_rate = _checks.real(owner, "learning_rate", value, low=0, low_open=True)

    # -- building and state -------------------------------------------------------------------

    def build(self, variables):
        """Create the slots (momentums, velocities, ...) for these variables, once; later
        steps may update any of them (a subset, e.g. after freezing a layer), no others."""
        if self._slots is not None:
            return
        arrays = [self._storage_of(i, variable) for i, variable in enumerate(variables)]
        self._index = {id(variable): i for i, variable in enumerate(variables)}
        self._slots = [{name: self._initial_slot(name, array) for name in self._slot_names}
                       for array in arrays]
        self._build_globals(arrays)

    def _storage_of(self, i, variable):
        """The ndarray that holds a variable's value, updated in place."""
        array = variable if isinstance(variable, np.ndarray) else np.asarray(variable)
        if array is not np.asarray(variable) or not array.flags.writeable \
                or array.dtype.kind != "f":
            raise TypeError(f"{self.name}: variable {i} must be a writeable float ndarray or "
                            f"hold its value in one (np.asarray(variable) returning the same "
                            f"array each time), got {type(variable).__name__}")
        return array

    def _initial_slot(self, name, array):
        return np.zeros(array.shape, array.dtype)

    def _build_globals(self, arrays):
        """State shared by all variables (Nadam's product of momentum coefficients)."""

    def _globals(self):
        return []

    @property
    def built(self):
        return self._slots is not None

    @property
    def variables(self):
        """The optimizer's state as arrays: iterations and the learning rate (unless it is a
        schedule or a function) first, as in Keras, then any shared state (Nadam's), then each
        variable's slots, interleaved per variable. The slots are the live arrays."""
        state = [np.array(self._iterations, dtype=np.int64)]
        if not callable(self._learning_rate):
            state.append(np.array(self._learning_rate, dtype=np.float64))
        state += self._globals()
        for slots in self._slots or []:
            state += list(slots.values())
        return state

    def set_weights(self, weights):
        """Restore state saved from ``variables`` (the optimizer must be built)."""
        weights = [np.asarray(w) for w in weights]
        current = self.variables
        if not self.built:
            raise ValueError(f"{self.name}: build the optimizer (build(variables) or one "
                             f"apply) before set_weights")
        if len(weights) != len(current):
            raise ValueError(f"{self.name}: expected {len(current)} state arrays, got "
                             f"{len(weights)}")
        for i, (weight, array) in enumerate(zip(weights, current)):
            if weight.shape != array.shape or weight.dtype.kind not in "biuf":
                raise ValueError(f"{self.name}: state array {i} must be numbers of shape "
                                 f"{array.shape}, got {weight.dtype} {weight.shape}")
        iterations = _checks.integer(self.name, "iterations", weights[0].item(), low=0)
        first_array = 1
        if not callable(self._learning_rate):
            self.learning_rate = weights[1].item()
            first_array = 2
        for array, weight in zip(current[first_array:], weights[first_array:]):
            array[...] = weight
        self._iterations = iterations

    # -- weight decay exclusions --------------------------------------------------------------

    def exclude_from_weight_decay(self, var_list=None, var_names=None):
        """Exempt these variables, or those whose ``name`` contains any of ``var_names``,
        from weight decay (before the first step, as in Keras)."""
        if self.built:
            raise ValueError(f"{self.name}: exclude_from_weight_decay() must be called before "
                             f"the optimizer is built")
        self._exclude_ids = {id(v) for v in var_list or []}
        self._exclude_pattern = (re.compile("|".join(map(re.escape, set(var_names))))
                                 if var_names else None)

    def _decays(self, variable):
        if id(variable) in self._exclude_ids:
            return False
        name = getattr(variable, "name", None)
        return not (self._exclude_pattern is not None and isinstance(name, str)
                    and self._exclude_pattern.search(name))

    # -- one step -----------------------------------------------------------------------------

    def apply(self, grads, variables):
        """One update of every variable (changed in place) from its gradient; a None
        gradient leaves its variable alone (Keras warns about it too)."""
        grads, variables = list(grads), list(variables)
        if len(grads) != len(variables):
            raise ValueError(f"{self.name}: {len(grads)} gradients for {len(variables)} "
                             f"variables")
        if not grads:
            return
        self.build(variables)
        slots = []
        for i, variable in enumerate(variables):
            if id(variable) not in self._index:
                raise ValueError(f"{self.name}: variable {i} is not one of the "
                                 f"{len(self._index)} variables the optimizer was built for; "
                                 f"use one optimizer per model")
            slots.append(self._slots[self._index[id(variable)]])
        arrays = [self._storage_of(i, variable) for i, variable in enumerate(variables)]
        present = [i for i, g in enumerate(grads) if g is not None]
        if not present:
            raise ValueError(f"{self.name}: no gradients provided for any variable")
        if len(present) < len(grads):
            warnings.warn(f"{self.name}: gradients do not exist for variables "
                          f"{[i for i, g in enumerate(grads) if g is None]}", stacklevel=2)
        taken = []
        for i in present:
            grad = np.asarray(grads[i])
            if grad.dtype.kind not in "biuf":
                raise TypeError(f"{self.name}: gradient {i} must hold real numbers, got dtype "
                                f"{grad.dtype}")
            if grad.shape != arrays[i].shape:
                raise ValueError(f"{self.name}: gradient {i} has shape {grad.shape} but its "
                                 f"variable has shape {arrays[i].shape}")
            taken.append(grad.astype(arrays[i].dtype, copy=False))
        taken = self._clip(taken)
        lr = self.learning_rate
        if self.weight_decay:
            for i in present:
                if self._decays(variables[i]):
                    arrays[i] -= arrays[i] * (self.weight_decay * lr)
        self._before_updates()
        for i, grad in zip(present, taken):
            self._update(arrays[i], grad, slots[i], lr)
            constraint = getattr(variables[i], "constraint", None)
            if constraint is not None:
                arrays[i][...] = constraint(arrays[i])
            if isinstance(getattr(variables[i], "version", None), int):
                variables[i].version += 1
        self._iterations += 1

    def apply_gradients(self, grads_and_vars):
        grads, variables = zip(*grads_and_vars)
        self.apply(grads, variables)

    def _clip(self, grads):
        if self.clipnorm:
            return [_clip_by_norm(g, self.clipnorm) for g in grads]
        if self.global_clipnorm:
            return _clip_by_global_norm(grads, self.global_clipnorm)
        if self.clipvalue:
            return [np.clip(g, -self.clipvalue, self.clipvalue) for g in grads]
        return grads

    def _before_updates(self):
        """Once per step, before the per-variable updates (Nadam's momentum product)."""

    def _update(self, variable, grad, slots, lr):
        raise NotImplementedError

    def get_config(self):
        lr = self._learning_rate
        if isinstance(lr, LearningRateSchedule):
            lr = {"class_name": type(lr).__name__, "config": lr.get_config()}
        elif callable(lr):
            raise ValueError(f"{self.name}: a learning_rate given as a function cannot be "
                             f"saved; use a LearningRateSchedule")
        return {"name": self.name, "learning_rate": lr, "weight_decay": self.weight_decay,
                "clipnorm": self.clipnorm, "global_clipnorm": self.global_clipnorm,
                "clipvalue": self.clipvalue}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        lr = config.get("learning_rate")
        if isinstance(lr, dict):
            if lr.get("class_name") not in SCHEDULES or not isinstance(lr.get("config"), dict):
                raise ValueError(f"{cls.__name__}: unknown learning-rate schedule {lr!r}")
            config["learning_rate"] = SCHEDULES[lr["class_name"]].from_config(lr["config"])
        return cls(**config)


def _beta(owner, name, value):
    """A decay coefficient in [0, 1): 1 would stop the average from moving (and divide by
    zero in Adam's bias correction)."""
    return _checks.real(owner, name, value, 0, 1, high_open=True)


def _epsilon(owner, value):
    # A zero epsilon divides 0 by 0 for any weight whose gradient has always been 0.
    return _checks.real(owner, "epsilon", value, low=0, low_open=True)


class SGD(Optimizer):
    """``m = momentum * m - lr * g; w += m`` (Nesterov: ``w += momentum * m - lr * g``)."""

    def __init__(self, learning_rate=0.01, momentum=0.0, nesterov=False, weight_decay=None,
                 clipnorm=None, clipvalue=None, global_clipnorm=None, name=None):
        super().__init__(learning_rate, weight_decay, clipnorm, clipvalue, global_clipnorm,
                         name)
        self.momentum = _checks.real("SGD", "momentum", momentum, 0, 1)
        self.nesterov = _checks.boolean("SGD", "nesterov", nesterov)
        self._slot_names = ("momentum",) if self.momentum else ()

    def _update(self, variable, grad, slots, lr):
        if not self.momentum:
            variable -= lr * grad
            return
        m = slots["momentum"]
        m *= self.momentum
        m -= lr * grad
        if self.nesterov:
            variable += self.momentum * m - lr * grad
        else:
            variable += m

    def get_config(self):
        return {**super().get_config(), "momentum": self.momentum, "nesterov": self.nesterov}


class Adam(Optimizer):
    """``m += (g - m)(1 - beta_1); v += (g^2 - v)(1 - beta_2);
    w -= lr sqrt(1 - beta_2^t) / (1 - beta_1^t) * m / (sqrt(v) + epsilon)`` (Keras folds the
    bias correction into the step size, epsilon outside the sqrt); amsgrad uses the running
    maximum of v."""
    _slot_names = ("momentum", "velocity")

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7,
                 amsgrad=False, weight_decay=None, clipnorm=None, clipvalue=None,
                 global_clipnorm=None, name=None):
        super().__init__(learning_rate, weight_decay, clipnorm, clipvalue, global_clipnorm,
                         name)
        owner = type(self).__name__
        self.beta_1 = _beta(owner, "beta_1", beta_1)
        self.beta_2 = _beta(owner, "beta_2", beta_2)
        self.epsilon = _epsilon(owner, epsilon)
        self.amsgrad = _checks.boolean(owner, "amsgrad", amsgrad)
        if self.amsgrad:
            self._slot_names = ("momentum", "velocity", "velocity_hat")

    def _update(self, variable, grad, slots, lr):
        t = self._iterations + 1
        step = lr * math.sqrt(1 - self.beta_2 ** t) / (1 - self.beta_1 ** t)
        m, v = slots["momentum"], slots["velocity"]
        m += (grad - m) * (1 - self.beta_1)
        v += (grad * grad - v) * (1 - self.beta_2)
        if self.amsgrad:
            np.maximum(slots["velocity_hat"], v, out=slots["velocity_hat"])
            v = slots["velocity_hat"]
        variable -= step * m / (np.sqrt(v) + self.epsilon)

    def get_config(self):
        return {**super().get_config(), "beta_1": self.beta_1, "beta_2": self.beta_2,
                "epsilon": self.epsilon, "amsgrad": self.amsgrad}


class AdamW(Adam):
    """Adam with decoupled weight decay, on by default (``weight_decay=0.004``)."""

    def __init__(self, learning_rate=0.001, weight_decay=0.004, beta_1=0.9, beta_2=0.999,
                 epsilon=1e-7, amsgrad=False, clipnorm=None, clipvalue=None,
                 global_clipnorm=None, name=None):
        if weight_decay is None:
            raise ValueError("AdamW: weight_decay must be a number, got None")
        super().__init__(learning_rate, beta_1, beta_2, epsilon, amsgrad, weight_decay,
                         clipnorm, clipvalue, global_clipnorm, name)


class Nadam(Optimizer):
    """Adam with Nesterov momentum and Keras' momentum schedule
    ``u_t = beta_1 (1 - 0.5 * 0.96^t)``."""
    _slot_names = ("momentum", "velocity")

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7,
                 weight_decay=None, clipnorm=None, clipvalue=None, global_clipnorm=None,
                 name=None):
        super().__init__(learning_rate, weight_decay, clipnorm, clipvalue, global_clipnorm,
                         name)
        self.beta_1 = _beta("Nadam", "beta_1", beta_1)
        self.beta_2 = _beta("Nadam", "beta_2", beta_2)
        self.epsilon = _epsilon("Nadam", epsilon)

    def _build_globals(self, arrays):
        self._u_product = np.array(1.0)

    def _globals(self):
        return [self._u_product] if self.built else []

    def _before_updates(self):
        self._u_product *= self.beta_1 * (1 - 0.5 * 0.96 ** (self._iterations + 1))

    def _update(self, variable, grad, slots, lr):
        t = self._iterations + 1
        u_t = self.beta_1 * (1 - 0.5 * 0.96 ** t)
        u_next = self.beta_1 * (1 - 0.5 * 0.96 ** (t + 1))
        u_product = float(self._u_product)
        m, v = slots["momentum"], slots["velocity"]
        m += (grad - m) * (1 - self.beta_1)
        v += (grad * grad - v) * (1 - self.beta_2)
        m_hat = u_next * m / (1 - u_product * u_next) + (1 - u_t) * grad / (1 - u_product)
        v_hat = v / (1 - self.beta_2 ** t)
        variable -= m_hat * lr / (np.sqrt(v_hat) + self.epsilon)

    def get_config(self):
        return {**super().get_config(), "beta_1": self.beta_1, "beta_2": self.beta_2,
                "epsilon": self.epsilon}


class Adamax(Optimizer):
    """Adam with the infinity norm: ``u = max(beta_2 u, |g|);
    w -= lr m / ((1 - beta_1^t)(u + epsilon))``."""
    _slot_names = ("momentum", "norm")

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7,
                 weight_decay=None, clipnorm=None, clipvalue=None, global_clipnorm=None,
                 name=None):
        super().__init__(learning_rate, weight_decay, clipnorm, clipvalue, global_clipnorm,
                         name)
        self.beta_1 = _beta("Adamax", "beta_1", beta_1)
        self.beta_2 = _beta("Adamax", "beta_2", beta_2)
        self.epsilon = _epsilon("Adamax", epsilon)

    def _update(self, variable, grad, slots, lr):
        t = self._iterations + 1
        m, u = slots["momentum"], slots["norm"]
        m += (grad - m) * (1 - self.beta_1)
        np.maximum(self.beta_2 * u, np.abs(grad), out=u)
        variable -= lr * m / ((1 - self.beta_1 ** t) * (u + self.epsilon))

    def get_config(self):
        return {**super().get_config(), "beta_1": self.beta_1, "beta_2": self.beta_2,
                "epsilon": self.epsilon}


class Adagrad(Optimizer):
    """``a += g^2; w -= lr g / sqrt(a + epsilon)``, the accumulator starting at
    ``initial_accumulator_value``."""
    _slot_names = ("accumulator",)

    def __init__(self, learning_rate=0.001, initial_accumulator_value=0.1, epsilon=1e-7,
                 weight_decay=None, clipnorm=None, clipvalue=None, global_clipnorm=None,
                 name=None):
        super().__init__(learning_rate, weight_decay, clipnorm, clipvalue, global_clipnorm,
                         name)
        self.initial_accumulator_value = _checks.real("Adagrad", "initial_accumulator_value",
                                                      initial_accumulator_value, low=0)
        self.epsilon = _epsilon("Adagrad", epsilon)

    def _initial_slot(self, name, array):
        return np.full(array.shape, self.initial_accumulator_value, array.dtype)

    def _update(self, variable, grad, slots, lr):
        accumulator = slots["accumulator"]
        accumulator += grad * grad
        variable -= lr * grad / np.sqrt(accumulator + self.epsilon)

    def get_config(self):
        return {**super().get_config(),
                "initial_accumulator_value": self.initial_accumulator_value,
                "epsilon": self.epsilon}


class Adadelta(Optimizer):
    """``a = rho a + (1 - rho) g^2; d = -sqrt(s + eps) / sqrt(a + eps) g;
    s = rho s + (1 - rho) d^2; w += lr d``."""
    _slot_names = ("accumulated_grad", "accumulated_delta_var")

    def __init__(self, learning_rate=0.001, rho=0.95, epsilon=1e-7, weight_decay=None,
                 clipnorm=None, clipvalue=None, global_clipnorm=None, name=None):
        super().__init__(learning_rate, weight_decay, clipnorm, clipvalue, global_clipnorm,
                         name)
        self.rho = _beta("Adadelta", "rho", rho)
        self.epsilon = _epsilon("Adadelta", epsilon)

    def _update(self, variable, grad, slots, lr):
        grads, deltas = slots["accumulated_grad"], slots["accumulated_delta_var"]
        grads[...] = self.rho * grads + (1 - self.rho) * grad * grad
        delta = -np.sqrt(deltas + self.epsilon) * grad / np.sqrt(grads + self.epsilon)
        deltas[...] = self.rho * deltas + (1 - self.rho) * delta * delta
        variable += lr * delta

    def get_config(self):
        return {**super().get_config(), "rho": self.rho, "epsilon": self.epsilon}


class Lion(Optimizer):
    """``w -= lr sign(beta_1 m + (1 - beta_1) g); m = beta_2 m + (1 - beta_2) g``."""
    _slot_names = ("momentum",)

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.99, weight_decay=None,
                 clipnorm=None, clipvalue=None, global_clipnorm=None, name=None):
        super().__init__(learning_rate, weight_decay, clipnorm, clipvalue, global_clipnorm,
                         name)
        # Keras: beta_1 = 0 would make Lion plain SignSGD.
        self.beta_1 = _checks.real("Lion", "beta_1", beta_1, 0, 1, low_open=True)
        self.beta_2 = _checks.real("Lion", "beta_2", beta_2, 0, 1)

    def _update(self, variable, grad, slots, lr):
        m = slots["momentum"]
        variable -= lr * np.sign(self.beta_1 * m + (1 - self.beta_1) * grad)
        m[...] = self.beta_2 * m + (1 - self.beta_2) * grad

    def get_config(self):
        return {**super().get_config(), "beta_1": self.beta_1, "beta_2": self.beta_2}


class RMSprop(Optimizer):
    """``v = rho v + (1 - rho) g^2; w -= lr g / sqrt(v + epsilon)`` (epsilon inside the sqrt,
    as Keras has it); ``centered`` subtracts the squared running mean of g from v, and
    ``momentum`` accumulates the steps."""

    def __init__(self, learning_rate=0.001, rho=0.9, momentum=0.0, epsilon=1e-7,
                 centered=False, weight_decay=None, clipnorm=None, clipvalue=None,
                 global_clipnorm=None, name=None):
        super().__init__(learning_rate, weight_decay, clipnorm, clipvalue, global_clipnorm,
                         name)
        self.rho = _beta("RMSprop", "rho", rho)
        self.momentum = _checks.real("RMSprop", "momentum", momentum, 0, 1)
        self.epsilon = _epsilon("RMSprop", epsilon)
        self.centered = _checks.boolean("RMSprop", "centered", centered)
        self._slot_names = (("velocity",) + (("momentum",) if self.momentum else ())
                            + (("average_gradient",) if self.centered else ()))

    def _update(self, variable, grad, slots, lr):
        v = slots["velocity"]
        v *= self.rho
        v += (1 - self.rho) * grad * grad
        if self.centered:
            average = slots["average_gradient"]
            average[...] = self.rho * average + (1 - self.rho) * grad
            denominator = v - average * average + self.epsilon
        else:
            denominator = v + self.epsilon
        increment = lr * grad / np.sqrt(denominator)
        if self.momentum:
            m = slots["momentum"]
            m[...] = self.momentum * m + increment
            variable -= m
        else:
            variable -= increment

    def get_config(self):
        return {**super().get_config(), "rho": self.rho, "momentum": self.momentum,
                "epsilon": self.epsilon, "centered": self.centered}


OPTIMIZERS = {cls.__name__: cls for cls in (SGD, Adam, AdamW, Nadam, Adamax, Adagrad, Adadelta,
                                            Lion, RMSprop)}
_BY_NAME = {**{name.lower(): cls for name, cls in OPTIMIZERS.items()}}


def get(identifier):
    """An Optimizer from a Keras name ("adam", "sgd", "adamw", ...), a {"class_name",
    "config"} dict, or an Optimizer class or instance."""
    if isinstance(identifier, Optimizer):
        return identifier
    if isinstance(identifier, type) and issubclass(identifier, Optimizer):
        return identifier()
    if isinstance(identifier, dict) and identifier.get("class_name") in OPTIMIZERS \
            and isinstance(identifier.get("config", {}), dict):
        return OPTIMIZERS[identifier["class_name"]].from_config(identifier.get("config", {}))
    if isinstance(identifier, str) and identifier.lower() in _BY_NAME:
        return _BY_NAME[identifier.lower()]()
    raise ValueError(f"Unknown optimizer {identifier!r}; expected one of {sorted(_BY_NAME)} "
                     f"or a convnet.optimizers.Optimizer")


def serialize(optimizer):
    return {"class_name": type(optimizer).__name__, "config": optimizer.get_config()}


def deserialize(config):
    return get(config)
