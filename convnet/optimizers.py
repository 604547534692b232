"""SGD, Adam and RMSprop with Keras 3's update rules, defaults and learning-rate schedules.

An optimizer updates the weight arrays in place (layers hand out references),
keeping one slot array per weight, created on the first step.
"""
import math

import numpy as np

from .utils import from_registry


class LearningRateSchedule:
    """A learning rate that is a function of the step (the optimizer's ``iterations``)."""

    def __call__(self, step):
        raise NotImplementedError

    def get_config(self):
        return dict(vars(self))


class ExponentialDecay(LearningRateSchedule):
    """lr * decay_rate ** (step / decay_steps), floored per step with staircase=True."""

    def __init__(self, initial_learning_rate, decay_steps, decay_rate, staircase=False):
        if decay_steps <= 0:
            raise ValueError(f"ExponentialDecay: decay_steps must be > 0, got {decay_steps}")
        self.initial_learning_rate = float(initial_learning_rate)
        self.decay_steps, self.decay_rate, self.staircase = decay_steps, decay_rate, staircase

    def __call__(self, step):
        p = step / self.decay_steps
        return self.initial_learning_rate * self.decay_rate ** (math.floor(p) if self.staircase
                                                                else p)


class PiecewiseConstantDecay(LearningRateSchedule):
    """values[i] while step <= boundaries[i] (Keras' rule), values[-1] afterwards."""

    def __init__(self, boundaries, values):
        if len(values) != len(boundaries) + 1:
            raise ValueError("PiecewiseConstantDecay: values must have one more entry than "
                             f"boundaries, got {len(values)} and {len(boundaries)}")
        self.boundaries, self.values = list(boundaries), [float(v) for v in values]

    def __call__(self, step):
        for boundary, value in zip(self.boundaries, self.values):
            if step <= boundary:
                return value
        return self.values[-1]


class CosineDecay(LearningRateSchedule):
    """Cosine decay from initial_learning_rate to alpha * initial over decay_steps."""

    def __init__(self, initial_learning_rate, decay_steps, alpha=0.0):
        self.initial_learning_rate, self.decay_steps, self.alpha = (
            float(initial_learning_rate), decay_steps, alpha)

    def __call__(self, step):
        fraction = min(step, self.decay_steps) / self.decay_steps
        cosine = 0.5 * (1 + math.cos(math.pi * fraction))
        return self.initial_learning_rate * ((1 - self.alpha) * cosine + self.alpha)


class schedules:  # noqa: N801 - Keras' namespace: optimizers.schedules.ExponentialDecay
    LearningRateSchedule = LearningRateSchedule
    ExponentialDecay = ExponentialDecay
    PiecewiseConstantDecay = PiecewiseConstantDecay
    CosineDecay = CosineDecay


class Optimizer:
    def __init__(self, learning_rate, weight_decay=None, name=None):
        self.name = name or type(self).__name__.lower()
        self.learning_rate = learning_rate
        if weight_decay is not None and weight_decay < 0:
            raise ValueError(f"{type(self).__name__}: weight_decay must be >= 0, "
                             f"got {weight_decay}")
        self.weight_decay = weight_decay
        self.iterations = 0
        self._slots = None

    @property
    def learning_rate(self):
        """The rate of the next step (a schedule is evaluated at the current iteration)."""
        if isinstance(self._learning_rate, LearningRateSchedule):
            return float(self._learning_rate(self.iterations))
        return self._learning_rate

    @learning_rate.setter
    def learning_rate(self, value):
        if not isinstance(value, LearningRateSchedule):
            if isinstance(value, bool) or not isinstance(value, (int, float, np.floating)) \
                    or not value > 0:
                raise ValueError(f"{type(self).__name__}: learning_rate must be a positive "
                                 f"number or a schedule, got {value!r}")
            value = float(value)
        self._learning_rate = value

    def apply(self, grads, variables):
        """One update of every variable (arrays, changed in place) from its gradient."""
        grads, variables = list(grads), list(variables)
        if len(grads) != len(variables):
            raise ValueError(f"{type(self).__name__}: {len(grads)} gradients for "
                             f"{len(variables)} variables")
        if self._slots is None:
            self._slots = [self._make_slots(v) for v in variables]
        elif len(self._slots) != len(variables):
            raise ValueError(f"{type(self).__name__} was used with {len(self._slots)} variables "
                             f"and now gets {len(variables)}; use a new optimizer per model")
        lr = self.learning_rate
        for variable, grad, slots in zip(variables, grads, self._slots):
            if self.weight_decay:
                # Decoupled weight decay, applied before the step, as in Keras 3.
                variable -= variable * (self.weight_decay * lr)
            self._update(variable, grad.astype(variable.dtype, copy=False), slots, lr)
        self.iterations += 1

    def apply_gradients(self, grads_and_vars):
        grads, variables = zip(*grads_and_vars)
        self.apply(grads, variables)

    def _make_slots(self, variable):
        return {}

    def _update(self, variable, grad, slots, lr):
        raise NotImplementedError

    def get_config(self):
        lr = self._learning_rate
        return {"learning_rate": lr if not isinstance(lr, LearningRateSchedule) else
                {"class_name": type(lr).__name__, "config": lr.get_config()},
                "weight_decay": self.weight_decay}


class SGD(Optimizer):
    """Keras' SGD: m = momentum*m - lr*g; w += m (Nesterov: w += momentum*m - lr*g)."""

    def __init__(self, learning_rate=0.01, momentum=0.0, nesterov=False, weight_decay=None,
                 name=None):
        super().__init__(learning_rate, weight_decay, name)
        if not 0 <= momentum <= 1:
            raise ValueError(f"SGD: momentum must be in [0, 1], got {momentum}")
        self.momentum, self.nesterov = float(momentum), bool(nesterov)

    def _make_slots(self, variable):
        return {"momentum": np.zeros_like(variable)} if self.momentum else {}

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
    """Keras' Adam: bias correction folded into the step size, epsilon outside the sqrt."""

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7,
                 amsgrad=False, weight_decay=None, name=None):
        super().__init__(learning_rate, weight_decay, name)
        self.beta_1, self.beta_2, self.epsilon, self.amsgrad = beta_1, beta_2, epsilon, amsgrad

    def _make_slots(self, variable):
        slots = {"m": np.zeros_like(variable), "v": np.zeros_like(variable)}
        if self.amsgrad:
            slots["v_hat"] = np.zeros_like(variable)
        return slots

    def _update(self, variable, grad, slots, lr):
        t = self.iterations + 1
        step = lr * math.sqrt(1 - self.beta_2 ** t) / (1 - self.beta_1 ** t)
        m, v = slots["m"], slots["v"]
        m += (grad - m) * (1 - self.beta_1)
        v += (grad * grad - v) * (1 - self.beta_2)
        if self.amsgrad:
            np.maximum(slots["v_hat"], v, out=slots["v_hat"])
            v = slots["v_hat"]
        variable -= step * m / (np.sqrt(v) + self.epsilon)

    def get_config(self):
        return {**super().get_config(), "beta_1": self.beta_1, "beta_2": self.beta_2,
                "epsilon": self.epsilon, "amsgrad": self.amsgrad}


class RMSprop(Optimizer):
    """Keras' RMSprop: v = rho*v + (1-rho)*g^2; w -= lr * g / (sqrt(v) + epsilon)."""

    def __init__(self, learning_rate=0.001, rho=0.9, epsilon=1e-7, weight_decay=None, name=None):
        super().__init__(learning_rate, weight_decay, name)
        self.rho, self.epsilon = rho, epsilon

    def _make_slots(self, variable):
        return {"v": np.zeros_like(variable)}

    def _update(self, variable, grad, slots, lr):
        v = slots["v"]
        v *= self.rho
        v += (1 - self.rho) * grad * grad
        variable -= lr * grad / (np.sqrt(v) + self.epsilon)

    def get_config(self):
        return {**super().get_config(), "rho": self.rho, "epsilon": self.epsilon}


_BY_NAME = {"sgd": SGD, "adam": Adam, "rmsprop": RMSprop}


def get(identifier):
    return from_registry(identifier, Optimizer, _BY_NAME, "optimizer",
                         " or a convnet.optimizers.Optimizer")
