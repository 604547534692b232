"""Argument checks shared by the training pieces (optimizers, schedules, losses, metrics,
initializers, regularizers, constraints, callbacks).

Each refuses a value that would poison training later (NaN, an infinity, a value outside
its range) at construction, with the owner and the argument named in the message.
"""
import math
import numbers


def real(owner, name, value, low=None, high=None, low_open=False, high_open=False):
    """``value`` as a float if it is a finite real number in the range, else TypeError
    (not a number) or ValueError (NaN, infinite, out of range) naming owner and argument.

    ``low``/``high`` bound the range (None: unbounded); ``low_open``/``high_open`` exclude
    the bound itself.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{owner}: {name} must be a number, got {value!r}")
    value = float(value)
    below = low is not None and (value <= low if low_open else value < low)
    above = high is not None and (value >= high if high_open else value > high)
    if not math.isfinite(value) or below or above:
        bounds = _describe(low, high, low_open, high_open)
        raise ValueError(f"{owner}: {name} must be a finite number{bounds}, got {value!r}")
    return value


def integer(owner, name, value, low=None):
    """``value`` as an int if it is an integer (a float with an integral value too) >= low."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{owner}: {name} must be an integer, got {value!r}")
    if not math.isfinite(value) or value != int(value):
        raise ValueError(f"{owner}: {name} must be an integer, got {value!r}")
    value = int(value)
    if low is not None and value < low:
        raise ValueError(f"{owner}: {name} must be an integer >= {low}, got {value}")
    return value


def boolean(owner, name, value):
    if not isinstance(value, bool) and type(value).__name__ != "bool_":
        raise TypeError(f"{owner}: {name} must be True or False, got {value!r}")
    return bool(value)


def choice(owner, name, value, allowed):
    if not isinstance(value, str) or value not in allowed:
        raise ValueError(f"{owner}: {name} must be one of {list(allowed)}, got {value!r}")
    return value


def _describe(low, high, low_open, high_open):
    if low is None and high is None:
        return ""
    if high is None:
        return f" {'>' if low_open else '>='} {low:g}"
    if low is None:
        return f" {'<' if high_open else '<='} {high:g}"
    return f" in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
